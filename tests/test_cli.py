"""The command line: exit codes, messages, summary, demo."""

from __future__ import annotations

import json
import math
import os
import re
import shutil

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits
from conftest import notebook_sources, pipeline_groupdq, tricky_ramps
from scipy import ndimage

from miripersist import simulate
from miripersist.cli import main
from miripersist.inventory import DETECTOR_SHAPE, discover, read_exposure
from miripersist.store import open_store

SIDECAR_FLAGS = 1 | 32 | 1073741824  # DO_NOT_USE | PERSISTENCE | OTHER_BAD_PIXEL


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return simulate.make_program(
        str(tmp_path_factory.mktemp("cli") / "in"),
        n_exposures=3,
        ngroups=4,
        subarrays=("SUB256", "SUB64"),
    )


@pytest.fixture(scope="module")
def small_groupdq(small):
    """GROUPDQ of every exposure of ``small`` after the real jwst steps, computed once."""
    return {p: pipeline_groupdq(p, small.saturation_ref, small.mask_ref, 1) for p in small.files}


def expected_dq(
    groupdq: dict[str, np.ndarray],
    flags: int,
    window_days: float = math.inf,
    dilate: int = 0,
    all_integrations: bool = False,
) -> dict[str, np.ndarray]:
    """The DQ image each exposure must get, by file name, computed independently of the engine.

    The pipeline's GROUPDQ gives each exposure's sources by the notebook's rule (first
    integration, or any with ``all_integrations``); they are placed on the detector by the
    SUBSTRT1/2 that astropy reads and grown by scipy's box dilation; then each exposure, in
    mid-time order per detector, is masked by the sources of every earlier one that ended at
    most ``window_days`` before it started (naive loop), cut to its own frame.
    """
    rows = []
    for path, gdq in groupdq.items():
        with fits.open(path) as hdul:
            primary, sci = hdul[0].header, hdul["SCI"].header
        ints = range(gdq.shape[0]) if all_integrations else range(1)
        own = np.zeros(gdq.shape[-2:], dtype=bool)
        for k in ints:
            own |= notebook_sources(gdq[k : k + 1], 3)
        y0, x0 = primary["SUBSTRT2"] - 1, primary["SUBSTRT1"] - 1
        frame = slice(y0, y0 + own.shape[0]), slice(x0, x0 + own.shape[1])
        placed = np.zeros(DETECTOR_SHAPE, dtype=bool)
        placed[frame] = own
        if dilate:
            placed = ndimage.binary_dilation(placed, np.ones((2 * dilate + 1,) * 2, dtype=bool))
        key = (primary["DETECTOR"], sci["MJD-AVG"])
        rows.append((key, primary["EXPSTART"], primary["EXPEND"], frame, placed, path))
    rows.sort(key=lambda row: row[0])
    out = {}
    for i, (key, start, _, frame, _, path) in enumerate(rows):
        mask = np.zeros(DETECTOR_SHAPE, dtype=bool)
        for other, _, end, _, placed, _ in rows[:i]:
            if other[0] == key[0] and end >= start - window_days:
                mask |= placed
        out[os.path.basename(path)] = np.where(mask[frame], flags, 0).astype(np.uint32)
    return out


def sidecars(out) -> dict[str, tuple[np.ndarray, fits.Header]]:
    """The sidecars written into ``out``, by the name of their input."""
    found = {}
    for path in sorted(out.glob("*_persistence_dq.fits")):
        name = path.name.replace("_persistence_dq.fits", "_uncal.fits")
        found[name] = (fits.getdata(path), fits.getheader(path))
    return found


def stored_parameters(out) -> dict:
    """The parameters the run recorded in its store (JSON text or a dict)."""
    parameters = xr.open_zarr(out / "persistence.zarr").attrs["parameters"]
    return json.loads(parameters) if isinstance(parameters, str) else parameters


def assert_sidecars_are(out, expected: dict[str, np.ndarray]) -> None:
    got = sidecars(out)
    assert sorted(got) == sorted(expected)
    for name, (dq, _) in got.items():
        np.testing.assert_array_equal(dq, expected[name], err_msg=name)


def run_args(program, out, *extra) -> list[str]:
    """``miripersist run`` of ``program`` into ``out`` with its reference, plus ``extra``."""
    return [
        "run",
        program.directory,
        "--output-dir",
        str(out),
        "--saturation-ref",
        program.saturation_ref,
        *extra,
    ]


def test_run_prints_summary_and_exits_zero(tmp_path, small, small_groupdq, capsys):
    code = main(
        run_args(
            small,
            tmp_path,
            "--mode",
            "sidecar",
            "--flags",
            "DO_NOT_USE,PERSISTENCE,OTHER_BAD_PIXEL",
        )
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "new_sources" in out and "masked_pct" in out
    assert out.count("_uncal.fits") == 3
    expected = expected_dq(small_groupdq, SIDECAR_FLAGS)
    side = sidecars(tmp_path)
    assert len(side) == 3
    values = set(np.unique(np.concatenate([dq.ravel() for dq, _ in side.values()])))
    assert values == {0, SIDECAR_FLAGS}, "flags set, and only these flags"
    assert_sidecars_are(tmp_path, expected)
    assert all(header["MPTOOL"] == "miripersist" for _, header in side.values())
    # The summary's masked column counts the flagged pixels of each exposure.
    lines = out.splitlines()
    header = next(line for line in lines if "masked_pct" in line).split()
    rows = [line.split() for line in lines if "_uncal.fits" in line]
    masked = {row[header.index("file")]: int(row[header.index("masked")]) for row in rows}
    assert masked == {name: int(np.count_nonzero(dq)) for name, dq in expected.items()}
    assert sum(masked.values()) > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--flags", "NOT_A_FLAG"], "not a jwst pixel DQ flag"),
        (["--n-unsat-threshold", "-1"], "must be 0 or more"),
        (["--user-mask", "/nonexistent/mask.csv"], "cannot read user mask"),
        (["--batch", "0"], "--batch must be 1 or more, not 0"),
        (["--threads-per-worker", "2"], "--threads-per-worker is for a local cluster"),
        (["--method", "snowblind", "--integrations", "all"], "--integrations does not apply"),
    ],
)
def test_configuration_errors_exit_two_with_one_line(tmp_path, small, capsys, args, message):
    code = main(run_args(small, tmp_path, *args))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1


def test_cluster_options_are_one_of_three(tmp_path, small, capsys):
    with pytest.raises(SystemExit) as info:
        main(run_args(small, tmp_path, "--scheduler", "tcp://127.0.0.1:9", "--workers", "2"))
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_version_is_the_packages(capsys):
    from miripersist import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"miripersist {__version__}\n"


def test_glob_matching_nothing_names_it(tmp_path, capsys):
    code = main(["run", str(tmp_path / "nothing*_uncal.fits"), "--output-dir", str(tmp_path)])
    assert code == 2
    assert "nothing*_uncal.fits" in capsys.readouterr().err


def test_no_crds_and_no_reference_names_both_ways_out(tmp_path, small, capsys, monkeypatch):
    import crds

    def unreachable(*args, **kwargs):
        raise crds.CrdsError("server unreachable")

    monkeypatch.setattr(crds, "getreferences", unreachable)
    code = main(["run", small.directory, "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "--saturation-ref" in err and "CRDS_PATH" in err
    assert not list(tmp_path.glob("*.fits"))


def test_rerun_resumes_and_other_parameters_need_overwrite(tmp_path, small, capsys):
    args = run_args(small, tmp_path, "--quiet")
    assert main(args) == 0
    assert capsys.readouterr().out == ""
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.fits")}
    assert main(args) == 0, "the same command again resumes (here: nothing left to do)"
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.fits")} == stamps
    assert main([*args, "--n-unsat-threshold", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--n-unsat-threshold", "2", "--overwrite"]) == 0


def test_non_miri_files_are_skipped_with_a_warning(tmp_path, small, caplog):
    inp = tmp_path / "in"
    shutil.copytree(small.directory, inp)
    nircam = inp / "jw9_nrca1_uncal.fits"
    shutil.copy(small.files[0], nircam)
    with fits.open(nircam, mode="update") as hdul:
        hdul[0].header["INSTRUME"] = "NIRCAM"
    assert read_exposure(str(nircam)) is None
    assert "not MIRI" in caplog.text
    assert str(nircam) in discover([str(inp)])


def test_time_keyword_fallbacks(tmp_path, small):
    path = tmp_path / "t_uncal.fits"
    shutil.copy(small.files[0], path)
    full = read_exposure(str(path))
    with fits.open(path, mode="update") as hdul:
        del hdul["SCI"].header["MJD-AVG"]
        hdul[0].header["EXPMID"] = full.mid_mjd + 1
    assert read_exposure(str(path)).mid_mjd == full.mid_mjd + 1
    with fits.open(path, mode="update") as hdul:
        del hdul[0].header["EXPMID"]
    e = read_exposure(str(path))
    assert e.mid_mjd == pytest.approx(0.5 * (full.start_mjd + full.end_mjd))


def test_demo_makes_outputs_and_a_plot(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "demo"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "12 exposures masked" in out
    png = tmp_path / "demo" / "demo.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((tmp_path / "demo" / "outputs").glob("*_masked_persistence_uncal.fits"))) == 12
    # the two counts of the last line are the store's: flags summed over the exposures, and
    # the detector's final mask with each pixel once
    flags, held = map(
        int, re.search(r"(\d+) pixel flags written.*, (\d+) detector pixels", out).groups()
    )
    ds = open_store(str(tmp_path / "demo" / "outputs" / "persistence.zarr"))
    assert flags == int(ds["n_masked"].sum())
    assert held == int((ds["mask"][-1] | ds["source"][-1]).sum())
    assert held < flags


# --- the duration parser of --window --------------------------------------------------


@pytest.fixture
def engine_calls(monkeypatch):
    """Replace the engine's run by one that records what the command line gives it."""
    import miripersist.engine as engine

    calls = []

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return "a request"

    monkeypatch.setattr(engine, "resolve", recording)
    monkeypatch.setattr(engine, "run_request", lambda request, progress: "")
    return calls


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("2500s", 2500 / 86400),
        ("30m", 30 / 1440),
        ("10h", 10 / 24),
        ("2d", 2.0),
        ("1.5d", 1.5),
        ("7200", 7200 / 86400),  # plain seconds
        (" 10H ", 10 / 24),
        ("inf", math.inf),
    ],
)
def test_window_durations(tmp_path, engine_calls, text, days):
    assert main(["run", "in", "--output-dir", str(tmp_path), "--quiet", f"--window={text}"]) == 0
    (call,) = engine_calls
    assert call["params"].window_days == pytest.approx(days, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("abc", "not a duration: 'abc'"),
        ("5x", "not a duration"),
        ("0", "duration must be positive: '0'"),
        ("0s", "duration must be positive"),
        ("-5m", "duration must be positive: '-5m'"),
        ("nan", "duration must be positive"),
    ],
)
def test_bad_durations_are_usage_errors(tmp_path, engine_calls, capsys, text, message):
    with pytest.raises(SystemExit) as stop:
        main(["run", "in", "--output-dir", str(tmp_path), f"--window={text}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --window" in err and message in err
    assert not engine_calls


# --- options reach the engine, and show in the outputs ---------------------------------


@pytest.mark.parametrize(
    ("extra", "oracle", "recorded", "cards", "effect"),
    [
        # Every gap between exposures is about 60 s or more: a 30 s window masks nothing.
        (
            ["--window", "30s"],
            {"window_days": 30 / 86400},
            {"window_days": pytest.approx(30 / 86400, rel=1e-12)},
            {"MPWINDOW": 30.0},
            "nothing masked",
        ),
        (
            ["--window", "1h"],
            {"window_days": 1 / 24},
            {"window_days": pytest.approx(1 / 24, rel=1e-12)},
            {"MPWINDOW": 3600.0},
            "as many",
        ),
        (["--dilate", "2"], {"dilate": 2}, {"dilate": 2}, {"MPDILATE": 2}, "more"),
        (
            [],
            {},
            {"window_days": "inf", "dilate": 0, "integrations": "first"},
            {"MPWINDOW": "inf", "MPDILATE": 0, "MPINTEG": "first"},
            "as many",
        ),
    ],
    ids=["window-30s", "window-1h", "dilate-2", "defaults"],
)
def test_options_reach_the_engine(
    tmp_path, small, small_groupdq, extra, oracle, recorded, cards, effect
):
    flags = 1 | 32
    expected = expected_dq(small_groupdq, flags, **oracle)
    assert main(run_args(small, tmp_path, "--mode", "sidecar", "--quiet", *extra)) == 0
    assert_sidecars_are(tmp_path, expected)
    parameters = stored_parameters(tmp_path)
    assert {k: parameters[k] for k in recorded} == recorded
    for _, header in sidecars(tmp_path).values():
        got = {k: header[k] for k in cards}
        if got.get("MPWINDOW", "inf") != "inf":
            got["MPWINDOW"] = float(got["MPWINDOW"])
        assert got == cards
    # The effect is visible against the defaults (which do mask some pixels).
    n_default = sum(np.count_nonzero(dq) for dq in expected_dq(small_groupdq, flags).values())
    n_here = sum(np.count_nonzero(dq) for dq in expected.values())
    assert n_default > 0
    assert {
        "nothing masked": n_here == 0,
        "as many": n_here == n_default,
        "more": n_here > n_default,
    }[effect]


def _write_sub64(path, data, start, end):
    """A SUB64 uncal file whose times are set to exactly these MJD values."""
    simulate.write_uncal(str(path), data, start_mjd=start, subarray="SUB64")
    with fits.open(path, mode="update") as hdul:
        primary, sci = hdul[0].header, hdul["SCI"].header
        primary["EXPSTART"], primary["EXPEND"] = start, end
        primary["EXPMID"] = sci["MJD-AVG"] = (start + end) / 2
        sci["MJD-BEG"], sci["MJD-END"] = start, end
    return str(path)


@pytest.fixture(scope="module")
def two_integrations(tmp_path_factory, sat_thresholds, sat_ref, mask_ref):
    """A SUB64 exposure whose two integrations saturate differently, then a faint one."""
    thr, _ = sat_thresholds
    xs, ys, nx, ny = simulate.SUBARRAYS["SUB64"]
    window = thr[ys - 1 : ys - 1 + ny, xs - 1 : xs - 1 + nx]
    d = tmp_path_factory.mktemp("ints") / "in"
    d.mkdir()
    bright = tricky_ramps(window, ngroups=5, nints=2, rng=np.random.default_rng(8))
    faint = np.full((1, 5, ny, nx), 1000, np.uint16)
    paths = [
        _write_sub64(d / "a_uncal.fits", bright, 60300.0, 60300.001),
        _write_sub64(d / "b_uncal.fits", faint, 60300.01, 60300.011),
    ]
    return d, {p: pipeline_groupdq(p, sat_ref, mask_ref, 1) for p in paths}


@pytest.mark.parametrize("integrations", ["first", "all"])
def test_integrations_reach_the_engine(tmp_path, sat_ref, two_integrations, integrations):
    directory, groupdq = two_integrations
    flags = 1 | 32
    expected = expected_dq(groupdq, flags, all_integrations=integrations == "all")
    other = expected_dq(groupdq, flags, all_integrations=integrations != "all")
    assert expected["b_uncal.fits"].any()
    assert not np.array_equal(expected["b_uncal.fits"], other["b_uncal.fits"])
    args = ["run", str(directory), "--output-dir", str(tmp_path), "--saturation-ref", sat_ref]
    args += ["--mode", "sidecar", "--quiet", "--integrations", integrations]
    assert main(args) == 0
    assert_sidecars_are(tmp_path, expected)
    assert stored_parameters(tmp_path)["integrations"] == integrations
    assert {header["MPINTEG"] for _, header in sidecars(tmp_path).values()} == {integrations}


@pytest.fixture(scope="module")
def exact_gap(tmp_path_factory, sat_thresholds, sat_ref, mask_ref):
    """A saturating exposure ending at MJD 60300.5, one starting exactly 45 minutes later
    (0.03125 day: exact in binary) and one a day later; only the first saturates."""
    thr, _ = sat_thresholds
    xs, ys, nx, ny = simulate.SUBARRAYS["SUB64"]
    window = thr[ys - 1 : ys - 1 + ny, xs - 1 : xs - 1 + nx]
    d = tmp_path_factory.mktemp("gap") / "in"
    d.mkdir()
    bright = tricky_ramps(window, ngroups=4, nints=1, rng=np.random.default_rng(9))
    faint = np.full((1, 4, ny, nx), 1000, np.uint16)
    paths = [
        _write_sub64(d / "a_uncal.fits", bright, 60300.25, 60300.5),
        _write_sub64(d / "b_uncal.fits", faint, 60300.53125, 60300.5625),
        _write_sub64(d / "c_uncal.fits", faint, 60301.5, 60301.53125),
    ]
    return d, {p: pipeline_groupdq(p, sat_ref, mask_ref, 1) for p in paths}


@pytest.mark.parametrize(("window", "masks_b"), [("45m", True), ("2700s", True), ("2699s", False)])
def test_a_window_exactly_equal_to_the_gap_masks(tmp_path, sat_ref, exact_gap, window, masks_b):
    directory, groupdq = exact_gap
    end_a = fits.getval(directory / "a_uncal.fits", "EXPEND")
    start_b = fits.getval(directory / "b_uncal.fits", "EXPSTART")
    args = ["run", str(directory), "--output-dir", str(tmp_path), "--saturation-ref", sat_ref]
    assert main([*args, "--mode", "sidecar", "--quiet", "--window", window]) == 0
    days = stored_parameters(tmp_path)["window_days"]
    if masks_b:
        assert end_a == start_b - days, "the window is exactly the gap, in floating point"
    else:
        assert end_a < start_b - days
    expected = expected_dq(groupdq, 1 | 32, window_days=days)
    assert expected["b_uncal.fits"].any() == masks_b
    assert not expected["c_uncal.fits"].any()
    assert_sidecars_are(tmp_path, expected)


# --- bad inputs ----------------------------------------------------------------------


def test_a_bad_input_file_exits_one_naming_it(tmp_path, small, capsys):
    inp = tmp_path / "in"
    shutil.copytree(small.directory, inp)
    junk = inp / "jw9_junk_uncal.fits"
    junk.write_text("this is not a FITS file\n")
    out = tmp_path / "out"
    args = ["run", str(inp), "--output-dir", str(out), "--saturation-ref", small.saturation_ref]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"miripersist: error: {junk}: not a FITS file"]
    assert not out.exists() or not list(out.glob("*.fits")), "nothing is written"


def test_verify_checksums_reaches_the_engine(tmp_path, small, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    damaged = inp / os.path.basename(small.files[0])
    with fits.open(small.files[0]) as hdul:
        hdul.writeto(damaged, checksum=True)
    with fits.open(damaged) as hdul:
        at = hdul["SCI"].fileinfo()["datLoc"] + 11
    raw = bytearray(damaged.read_bytes())
    raw[at] ^= 0x01  # one bit of one pixel: the headers still describe a good file
    damaged.write_bytes(bytes(raw))
    args = ["run", str(inp), "--saturation-ref", small.saturation_ref, "--quiet"]
    assert main([*args, "--output-dir", str(tmp_path / "plain")]) == 0
    assert capsys.readouterr().err == ""
    out = tmp_path / "checked"
    assert main([*args, "--output-dir", str(out), "--verify-checksums"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{damaged}: " in err[0] and "verification failed" in err[0]
    assert not out.exists() or not list(out.glob("*.fits")), "nothing is written"
