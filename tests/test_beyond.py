"""Beyond the notebook: integrations, dilation, time windows, associations, the stpipe step,
calwebb_detector1 on the outputs, and the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from conftest import notebook_sources, pipeline_groupdq, sha256

from miripersist import Parameters, PersistenceMaskStep, run, simulate
from miripersist.cli import main
from miripersist.inventory import DETECTOR_SHAPE, read_exposure
from miripersist.reader import lazy_sources
from miripersist.saturation import grow
from miripersist.thresholds import load_reference


@pytest.mark.parametrize("n_unsat", [0, 2, 3])
def test_all_integrations_match_the_pipeline_per_integration(
    sub64_two_ints, sat_ref, mask_ref, n_unsat
):
    gdq = pipeline_groupdq(sub64_two_ints, sat_ref, mask_ref, 1)
    expected = notebook_sources(gdq[:1], n_unsat) | notebook_sources(gdq[1:], n_unsat)
    assert (expected & ~notebook_sources(gdq[:1], n_unsat)).any()
    e = read_exposure(sub64_two_ints)
    thr = load_reference(sat_ref).window_for(e)
    got = lazy_sources(e, thr, n_unsat, 1, (16, 24), all_integrations=True).compute()
    np.testing.assert_array_equal(got, expected)


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    return simulate.make_program(
        str(tmp_path_factory.mktemp("beyond") / "in"),
        n_exposures=6,
        ngroups=4,
        subarrays=("FULL", "SUB256"),
        nints=(1, 2),
        seed=8,
    )


def test_dilate_grows_sources_in_detector_coordinates(tmp_path, prog):
    plain = run([prog.directory], str(tmp_path / "a"), [prog.saturation_ref])
    wide = run([prog.directory], str(tmp_path / "b"), [prog.saturation_ref], Parameters(dilate=2))
    for i in range(plain.sizes["exposure"]):
        np.testing.assert_array_equal(wide["source"][i].values, grow(plain["source"][i].values, 2))
    assert (wide["n_masked"].values >= plain["n_masked"].values).all()
    assert wide["n_masked"].values.sum() > plain["n_masked"].values.sum()
    out = sorted((tmp_path / "b").glob("*.fits"))[-1]
    header = fits.getheader(out, "PIXELDQ")
    assert header["MPDILATE"] == 2 and header["MPINTEG"] == "first"
    assert any("DO_NOT_USE,PERSISTENCE" in h for h in header["HISTORY"])


def test_window_masks_only_recent_saturation(tmp_path, prog):
    window_s = 150.0
    ds = run(
        [prog.directory],
        str(tmp_path),
        [prog.saturation_ref],
        Parameters(window_days=window_s / 86400),
    )
    src = ds["source"].values
    start, end = ds["start_mjd"].values, ds["end_mjd"].values
    for i in range(len(start)):
        expected = np.zeros(DETECTOR_SHAPE, dtype=bool)
        for j in range(i):
            if (start[i] - end[j]) * 86400 <= window_s:
                expected |= src[j]
        np.testing.assert_array_equal(ds["mask"][i].values, expected, err_msg=str(i))
    infinite = run([prog.directory], str(tmp_path / "inf"), [prog.saturation_ref])
    assert ds["n_masked"].values.sum() < infinite["n_masked"].values.sum()
    assert fits.getheader(sorted(tmp_path.glob("*.fits"))[0], "PIXELDQ")["MPWINDOW"] != "inf"


def _asn(path, members):
    asn = {
        "asn_type": "image2",
        "asn_id": "a3001",
        "products": [{"name": "prog", "members": members}],
    }
    path.write_text(json.dumps(asn))
    return path


def test_association_input_takes_its_science_members(tmp_path, prog):
    files = sorted(prog.files)
    members = [{"expname": os.path.relpath(f, tmp_path), "exptype": "science"} for f in files[:4]]
    members.append({"expname": os.path.relpath(files[4], tmp_path), "exptype": "background"})
    asn = _asn(tmp_path / "my_asn.json", members)
    ds = run([str(asn)], str(tmp_path / "out"), [prog.saturation_ref])
    assert sorted(ds["file"].values) == sorted(os.path.basename(f) for f in files[:4])


def test_stpipe_step_in_python_and_through_strun(tmp_path, prog):
    members = [{"expname": os.path.relpath(f, tmp_path), "exptype": "science"} for f in prog.files]
    asn = _asn(tmp_path / "my_asn.json", members)
    ds = PersistenceMaskStep.call(
        str(asn),
        saturation_ref=prog.saturation_ref,
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
            f"--saturation_ref={prog.saturation_ref}",
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


def test_calwebb_detector1_keeps_the_flags_and_nans_the_rates(tmp_path, prog):
    """The recipe of docs/pipeline.md: detector1 with the steps whose references are at hand."""
    from jwst.pipeline import Detector1Pipeline
    from stdatamodels.jwst import datamodels

    ds = run([prog.directory], str(tmp_path), [prog.saturation_ref])
    i = int(np.argmax(ds["n_masked"].values))
    e = read_exposure(str(ds["path"].values[i]))
    masked = tmp_path / e.name.replace("_uncal.fits", "_masked_persistence_uncal.fits")
    gain = datamodels.GainModel(data=np.full(DETECTOR_SHAPE, 4.0, np.float32))
    noise = datamodels.ReadnoiseModel(data=np.full(DETECTOR_SHAPE, 6.0, np.float32))
    refs = {}
    for name, model in (("gain", gain), ("readnoise", noise)):
        refs[name] = str(tmp_path / f"{name}.fits")
        simulate.reference_meta(model, name.upper()).save(refs[name])
    keep = {"dq_init", "saturation", "ramp_fit"}
    steps = {s: {"skip": True} for s in Detector1Pipeline.step_defs if s not in keep}
    steps["dq_init"] = {"override_mask": prog.mask_ref}
    steps["saturation"] = {"override_saturation": prog.saturation_ref, "override_superbias": "N/A"}
    steps["ramp_fit"] = {"override_gain": refs["gain"], "override_readnoise": refs["readnoise"]}
    rate = Detector1Pipeline.call(
        str(masked), steps=steps, output_dir=str(tmp_path / "rate"), save_results=False
    )
    flagged = (ds["mask"][i].values | ds["user_mask"].values)[e.window]
    assert flagged.any()
    persistence = 32 | 1
    assert ((rate.dq[flagged] & persistence) == persistence).all()
    assert np.isnan(rate.data[flagged]).all()
    assert np.isfinite(rate.data[~flagged & (rate.dq & 1 == 0)]).all()


def test_report_table_and_figures(tmp_path, prog, capsys):
    run([prog.directory], str(tmp_path), [prog.saturation_ref])
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
