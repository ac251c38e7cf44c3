"""Start-up: the DQ flag tables without importing stdatamodels, and what a run imports."""

from __future__ import annotations

import ast
import gc
import json
import subprocess
import sys

import pytest

from miripersist import flags, simulate

# Imports a one-exposure run does without: each costs from 0.1 to 0.9 s.
HEAVY = (
    "stdatamodels",
    "jwst",
    "crds",
    "distributed",
    "scipy",
    "matplotlib",
    "astropy.table",
    "xarray",
    "pandas",
)

CHILD = """
import json, sys
from miripersist.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
import gc
assert gc.isenabled(), "the collector is on again after the imports"
print(json.dumps([code, [m for m in {heavy!r} if m in sys.modules], "numpy" in sys.modules]))
"""


def _child(*argv: str) -> tuple[int, list[str], bool]:
    """``miripersist ARGV`` in a fresh interpreter: its exit code, the heavy modules it
    imported, and whether it imported numpy."""
    script = CHILD.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, check=True
    )
    code, heavy, numpy = json.loads(done.stdout.splitlines()[-1])
    return code, heavy, numpy


def test_flag_tables_are_stdatamodels_own():
    from stdatamodels.jwst.datamodels import dqflags

    tables = flags._from_source()
    assert list(tables["pixel"].items()) == list(dqflags.pixel.items())
    assert list(tables["group"].items()) == list(dqflags.group.items())
    assert flags.PIXEL == dqflags.pixel and flags.GROUP == dqflags.group
    assert flags.SATURATED_GROUP == dqflags.group["SATURATED"]
    assert flags.NO_SAT_CHECK == dqflags.pixel["NO_SAT_CHECK"]


def test_flag_tables_come_from_the_module_when_its_source_cannot_be_read(monkeypatch):
    from stdatamodels.jwst.datamodels import dqflags

    # The import below binds a fresh module to the package: put the original back after.
    monkeypatch.setattr(sys.modules["stdatamodels.jwst.datamodels"], "dqflags", dqflags)
    monkeypatch.delitem(sys.modules, flags.DQFLAGS)
    monkeypatch.setattr(flags, "find_spec", lambda name: None)
    assert flags._tables() == {"pixel": dqflags.pixel, "group": dqflags.group}


@pytest.mark.parametrize(
    ("text", "value"),
    [("2**5", 32), ("1 << 30", 2**30), ("2**0 | 2**3", 9), ('pixel["X"]', 7)],
)
def test_flag_expressions_evaluated(text, value):
    assert flags._evaluate(ast.parse(text, mode="eval").body, {"pixel": {"X": 7}}) == value


@pytest.mark.parametrize("text", ["int('3')", "2.0**3", "True", "x", "2 - 1", 'pixel["Y"]'])
def test_other_flag_expressions_refused(text):
    # Refused (ValueError, or KeyError for an entry not read): the module is imported instead.
    with pytest.raises((ValueError, KeyError)):
        flags._evaluate(ast.parse(text, mode="eval").body, {"pixel": {"X": 7}})


def test_collection_paused_only_for_the_first_import(monkeypatch):
    from miripersist.cli import _importing

    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))  # not this test process
    with _importing("miripersist.not_imported"):
        assert not gc.isenabled()
    assert gc.isenabled() and frozen == [True]
    with _importing("miripersist.cli"):
        assert gc.isenabled()
    assert frozen == [True]


def test_help_imports_nothing_heavy():
    assert _child("--help") == (0, [], False)
    assert _child("run", "--help") == (0, [], False)


def test_one_exposure_run_imports_only_what_it_needs(tmp_path):
    program = simulate.make_program(
        str(tmp_path / "in"), n_exposures=1, ngroups=3, subarrays=("SUB64",)
    )
    args = ["run", program.directory, "--saturation-ref", program.saturation_ref]
    code, heavy, _ = _child(*args, "--output-dir", str(tmp_path / "out"), "--quiet")
    assert code == 0
    assert heavy == [], "a run needs none of " + ", ".join(HEAVY)
    assert len(list((tmp_path / "out").glob("*_masked_persistence_uncal.fits"))) == 1


def test_summary_and_rerun_import_no_xarray(tmp_path):
    program = simulate.make_program(
        str(tmp_path / "in"), n_exposures=2, ngroups=3, subarrays=("SUB64",)
    )
    args = ["run", program.directory, "--saturation-ref", program.saturation_ref]
    out = ["--output-dir", str(tmp_path / "out")]
    assert _child(*args, *out)[:2] == (0, [])  # the summary's table: no astropy.table
    assert _child(*args, *out, "--quiet")[:2] == (0, [])  # a resume reads the store too


DATAARRAY = """
import sys
from miripersist.cli import _dask_array_lean
_dask_array_lean()
import dask.array as da
assert "xarray" not in sys.modules and "pandas" not in sys.modules
import xarray as xr
x = da.ones((4, 4), chunks=2)
assert da.from_array(xr.DataArray(x)) is x, "dask.array knows xarray once it is imported"
print("ok")
"""


def test_dask_array_recognises_xarray_once_imported():
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", DATAARRAY], capture_output=True, text=True
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_startup_benchmark_times_every_row(tmp_path, capsys):
    from benchmarks import startup

    rows = "python,help,run_one_quiet"
    args = ["--repeats", "1", "--groups", "3", "--rows", rows]
    assert startup.main([*args, "--workdir", str(tmp_path), "--out", str(tmp_path)]) == 0
    with open(tmp_path / "startup.json") as fh:
        result = json.load(fh)
    assert list(result["median_s"]) == rows.split(",")
    assert all(v > 0 for v in result["median_s"].values())
    assert "run_one_quiet" in capsys.readouterr().out
    assert not list(tmp_path.glob("startup-*")), "every run's outputs are removed"
