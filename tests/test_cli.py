"""The command line: exit codes, messages, summary, demo."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from astropy.io import fits

from miripersist import simulate
from miripersist.cli import main
from miripersist.inventory import discover, read_exposure


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return simulate.make_program(
        str(tmp_path_factory.mktemp("cli") / "in"),
        n_exposures=3,
        ngroups=4,
        subarrays=("SUB256", "SUB64"),
    )


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


def test_run_prints_summary_and_exits_zero(tmp_path, small, capsys):
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
    side = sorted(tmp_path.glob("*_persistence_dq.fits"))
    assert len(side) == 3
    values = set(np.unique(np.concatenate([fits.getdata(p).ravel() for p in side])))
    assert values <= {0, 1 | 32 | 1073741824}
    assert fits.getheader(side[0])["MPTOOL"] == "miripersist"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--flags", "NOT_A_FLAG"], "not a jwst pixel DQ flag"),
        (["--n-unsat-threshold", "-1"], "must be 0 or more"),
        (["--user-mask", "/nonexistent/mask.csv"], "cannot read user mask"),
    ],
)
def test_configuration_errors_exit_two_with_one_line(tmp_path, small, capsys, args, message):
    code = main(run_args(small, tmp_path, *args))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1


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
