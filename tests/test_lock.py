"""One run per store and output directory: refusal, takeover of dead runs' locks, reading free."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import xarray as xr
from conftest import sha256

from miripersist import Parameters, run, simulate
from miripersist.cli import main
from miripersist.lock import lock_paths


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    return simulate.make_program(
        str(tmp_path_factory.mktemp("lock") / "in"), n_exposures=8, ngroups=4, seed=5
    )


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, prog):
    out = tmp_path_factory.mktemp("fresh")
    run([prog.directory], str(out), [prog.saturation_ref], Parameters(batch=1))
    return {p.name: sha256(p) for p in out.glob("*.fits")}


def _command(prog, out, *extra):
    return [
        "run",
        prog.directory,
        "--output-dir",
        str(out),
        "--saturation-ref",
        prog.saturation_ref,
        "--batch",
        "1",
        "--quiet",
        *extra,
    ]


def _start_and_freeze(prog, out, until_output=False):
    """A run in a child process, frozen (SIGSTOP) once it holds its locks (and wrote a file)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "miripersist", *_command(prog, out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    markers = lock_paths(str(out), str(out / "persistence.zarr"))
    deadline = time.monotonic() + 120
    while not all(os.path.exists(m + ".json") for m in markers) or (
        until_output and not any(out.glob("*_masked_persistence_uncal.fits"))
    ):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.002)
    proc.send_signal(signal.SIGSTOP)
    return proc


def test_a_second_run_is_refused_and_the_first_finishes(tmp_path, prog, fresh, capsys):
    out = tmp_path / "out"
    first = _start_and_freeze(prog, out, until_output=True)
    try:
        before = sorted(os.listdir(out))
        assert main(_command(prog, out)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert f"{out}: in use by another run (pid {first.pid} on {socket.gethostname()}" in err[0]
        assert "started 20" in err[0]
        assert sorted(os.listdir(out)) == before, "the refused run writes nothing"
        # a second run on the same store through another output directory is refused too
        other = tmp_path / "other"
        code = main([*_command(prog, other), "--store", str(out / "persistence.zarr")])
        assert code == 2
        assert "persistence.zarr: in use by another run" in capsys.readouterr().err
        # reading needs no lock
        assert xr.open_zarr(out / "persistence.zarr").sizes["exposure"] == 8
        assert main(["report", str(out / "persistence.zarr"), "--out", str(tmp_path / "r")]) == 0
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=120) == 0
    assert {p.name: sha256(p) for p in out.glob("*.fits")} == fresh
    assert not any(os.path.exists(m) for m in lock_paths(str(out), str(out / "persistence.zarr")))


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path, prog, fresh, caplog):
    out = tmp_path / "out"
    dead = _start_and_freeze(prog, out)
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    with caplog.at_level(logging.WARNING):
        run([prog.directory], str(out), [prog.saturation_ref], Parameters(batch=1))
    taken = [r.getMessage() for r in caplog.records if "took over the lock" in r.getMessage()]
    assert len(taken) == 2 and all(f"pid {dead.pid}" in m for m in taken)
    assert {p.name: sha256(p) for p in out.glob("*.fits")} == fresh


def test_a_lock_held_from_another_host_is_taken_over_once_its_lease_ran_out(
    tmp_path, prog, fresh, monkeypatch, caplog
):
    monkeypatch.setenv("MIRIPERSIST_LOCK_LEASE", "1.5")
    out = tmp_path / "out"
    out.mkdir()
    for marker in lock_paths(str(out), str(out / "persistence.zarr")):
        with open(marker, "w") as fh:  # what filelock's lease writes, from a node that crashed
            fh.write("filelock/2\npid=4242\nhost=node17.cluster\nmode=lease\ntoken=ab\n")
            fh.write("duration=1.5\n")
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING):
        run([prog.directory], str(out), [prog.saturation_ref], Parameters(batch=1))
    assert time.monotonic() - t0 >= 1.5, "a foreign lock is taken only after its lease"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("took over the lock" in m and "node17.cluster" in m for m in messages) == 2
    assert {p.name: sha256(p) for p in out.glob("*.fits")} == fresh
