"""The end-of-run table, laid out as astropy.table's ``pformat`` lays out the same columns."""

from __future__ import annotations

import string

from astropy.table import Table
from hypothesis import given, settings
from hypothesis import strategies as st

from miripersist.summary import fixed_width

names = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
cells = st.text(string.ascii_letters + string.digits + ".:-_", min_size=1, max_size=14)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda rows: st.dictionaries(
            names, st.lists(cells, min_size=rows, max_size=rows), min_size=1, max_size=6
        )
    )
)
def test_layout_is_astropys(columns):
    expected = Table({name: values for name, values in columns.items()}).pformat(
        max_lines=-1, max_width=-1
    )
    assert fixed_width(columns) == expected


def test_a_few_masked_pixels_are_not_shown_as_none():
    from miripersist.summary import last_run_line, summary_columns

    ds = {
        "file": ["a_uncal.fits", "b_uncal.fits", "c_uncal.fits"],
        "detector": ["MIRIMAGE"] * 3,
        "filter": ["F770W"] * 3,
        "subarray": ["FULL", "FULL", "SUB64"],
        "mid_mjd": [60000.0, 60000.1, 60000.2],
        "n_source": [5, 0, 0],
        "n_masked": [0, 2, 2],
        "xsize": [1032, 1032, 72],
        "ysize": [1024, 1024, 64],
    }
    columns = summary_columns(ds)
    assert columns["masked_pct"] == ["0.0", "<0.001", "0.043"]
    assert columns["mid_time"][0] == "2023-02-25T00:00:00"
    assert last_run_line({"computed": 1, "written": 1}).startswith(
        "this run: 1 exposure computed, 0 reused from the store; 1 output written"
    )


def test_a_large_program_is_summarised_per_detector(tmp_path, capsys):
    import numpy as np

    from miripersist import simulate
    from miripersist.cli import main
    from miripersist.store import Stored

    n = 42
    inputs, refs = [], []
    for detector, count in (("MIRIMAGE", 30), ("MIRIFULONG", n - 30)):
        prog = simulate.make_program(
            str(tmp_path / detector), n_exposures=count, ngroups=3, subarrays=("SUB64", "FULL"),
            stars_per_exposure=1, detector=detector, seed=count,
        )  # fmt: skip
        inputs.append(prog.directory)
        refs += ["--saturation-ref", prog.saturation_ref]
    out = tmp_path / "out"
    args = ["run", *inputs, "--output-dir", str(out), *refs, "--mode", "sidecar"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "_uncal.fits" not in printed  # no row per exposure
    rows = [line.split() for line in printed.splitlines() if line.lstrip().startswith("MIRI")]
    store = Stored(str(out / "persistence.zarr"))
    detectors = np.asarray(store["detector"]).astype(str)
    masked = np.asarray(store["n_masked"])
    assert {r[0]: (int(r[1]), int(r[-1])) for r in rows} == {
        d: (int((detectors == d).sum()), int(masked[detectors == d].sum())) for d in set(detectors)
    }
    assert f"outputs: {out}" in printed and f"store: {out / 'persistence.zarr'}" in printed
    assert main([*args, "--summary", "exposures"]) == 0
    assert capsys.readouterr().out.count("_uncal.fits") == n
