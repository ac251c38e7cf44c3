"""Start-up: the DQ flag tables without importing stdatamodels, and what a run imports."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from miripersist import flags, simulate

# Imports a one-exposure run does without: each costs from 0.1 to 0.9 s. (dask.array
# imports scipy, xarray and pandas, as it may.)
HEAVY = ("stdatamodels", "jwst", "crds", "distributed", "matplotlib", "astropy.table")

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
    # The tables are written out for start-up's sake; they must stay stdatamodels', in order.
    from stdatamodels.jwst.datamodels import dqflags

    assert list(flags.PIXEL.items()) == list(dqflags.pixel.items())
    assert list(flags.GROUP.items()) == list(dqflags.group.items())
    assert flags.SATURATED_GROUP == dqflags.group["SATURATED"]
    assert flags.NO_SAT_CHECK == dqflags.pixel["NO_SAT_CHECK"]


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
