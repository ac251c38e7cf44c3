"""miripersist among the jwst tools: association files as inputs, the stpipe step from
Python and through ``strun``, and the report of a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from astropy.table import Table
from conftest import sha256

from miripersist import PersistenceMaskStep, run
from miripersist.cli import main


def _asn(path, members):
    asn = {
        "asn_type": "image2",
        "asn_id": "a3001",
        "products": [{"name": "prog", "members": members}],
    }
    path.write_text(json.dumps(asn))
    return path


def test_association_input_takes_its_science_members(tmp_path, mixed_program):
    files = sorted(mixed_program.files)
    members = [{"expname": os.path.relpath(f, tmp_path), "exptype": "science"} for f in files[:4]]
    members.append({"expname": os.path.relpath(files[4], tmp_path), "exptype": "background"})
    asn = _asn(tmp_path / "my_asn.json", members)
    ds = run([str(asn)], str(tmp_path / "out"), [mixed_program.saturation_ref])
    assert sorted(ds["file"].values) == sorted(os.path.basename(f) for f in files[:4])


def test_stpipe_step_in_python_and_through_strun(tmp_path, mixed_program):
    members = [
        {"expname": os.path.relpath(f, tmp_path), "exptype": "science"} for f in mixed_program.files
    ]
    asn = _asn(tmp_path / "my_asn.json", members)
    ds = PersistenceMaskStep.call(
        str(asn),
        saturation_ref=mixed_program.saturation_ref,
        output_dir=str(tmp_path / "py"),
        mode="sidecar",
    )
    assert ds.sizes["exposure"] == 6
    env = dict(os.environ, STPIPE_DISABLE_CRDS_STEPPARS="True")
    strun = os.path.join(os.path.dirname(sys.executable), "strun")
    subprocess.run(
        [
            strun,
            "persistence_mask",
            str(asn),
            "--n_unsat_threshold=3",
            f"--saturation_ref={mixed_program.saturation_ref}",
            f"--output_dir={tmp_path / 'cli'}",
            "--mode=sidecar",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    a = {p.name: sha256(p) for p in (tmp_path / "py").glob("*.fits")}
    b = {p.name: sha256(p) for p in (tmp_path / "cli").glob("*.fits")}
    assert a == b and len(a) == 6


def test_report_table_and_figures(tmp_path, mixed_program, capsys):
    run([mixed_program.directory], str(tmp_path), [mixed_program.saturation_ref])
    assert main(["report", str(tmp_path / "persistence.zarr"), "--out", str(tmp_path / "rep")]) == 0
    table = Table.read(tmp_path / "rep" / "persistence_report.ecsv")
    for col in (
        "file",
        "detector",
        "filter",
        "subarray",
        "start",
        "end",
        "new_sources",
        "masked",
        "masked_pct",
        "mask_age_min_h",
        "mask_age_median_h",
        "mask_age_max_h",
    ):
        assert col in table.colnames
    assert np.isnan(table["mask_age_min_h"][0])  # nothing before the first exposure
    later = table[1:][table["masked"][1:] > 0]
    assert (later["mask_age_min_h"] > 0).all()
    assert (later["mask_age_min_h"] <= later["mask_age_max_h"]).all()
    for name in ("masked_fraction.png", "final_mask.png", "mask_strip.png"):
        assert (tmp_path / "rep" / name).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "rep" / "index.html").read_text().startswith("<!DOCTYPE html>")
    out = capsys.readouterr().out
    assert "figure:" in out and f"page: {tmp_path / 'rep' / 'index.html'}" in out
