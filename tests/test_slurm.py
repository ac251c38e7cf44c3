"""Under a real SLURM: worker jobs through dask-jobqueue, kills at wall time, lost workers.

The SLURM is started by the ``slurm`` fixture (tests/slurm.py); ``site`` is a user's
environment there, with the site's jobqueue.yaml. Every run's outputs are compared, byte for
byte, with the same run on local threads, whose masks a test elsewhere compares with the
notebook's rule run on jwst's own saturation flags.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import sha256

from benchmarks.workers import hand_started
from miripersist import Parameters, run, simulate

MIRIPERSIST = f"{sys.executable} -m miripersist"


@pytest.fixture(scope="module")
def long_program(tmp_path_factory):
    """Enough full frames that a run is still going when a test stops it, and its answer."""
    base = tmp_path_factory.mktemp("long")
    prog = simulate.make_program(
        str(base / "in"), n_exposures=16, ngroups=10, subarrays=("FULL",), seed=29
    )
    out = base / "local"
    run([prog.directory], str(out), [prog.saturation_ref], Parameters(mode="sidecar", batch=2))
    return prog, out


def outputs(directory: Path) -> dict[str, str]:
    """Every file beside the store, by name, with its digest (temporaries included)."""
    return {p.name: sha256(p) for p in sorted(directory.iterdir()) if p.is_file()}


def command(prog, out: Path, *more: str) -> str:
    return (
        f"{MIRIPERSIST} run {prog.directory} --output-dir {out} --saturation-ref "
        f"{prog.saturation_ref} --mode sidecar --batch 2 --quiet " + " ".join(more)
    )


def job_script(path: Path, line: str, *directives: str) -> Path:
    """A batch script of one command, as a user writes it."""
    heads = "".join(f"#SBATCH {d}\n" for d in ("--time=00:20:00", "--mem=2G", *directives))
    path.write_text(f"#!/bin/bash\n{heads}{line}\n")
    return path


def wait_for_outputs(out: Path, some: int, proc_or_job, timeout: float = 120.0) -> int:
    """Wait until ``some`` outputs exist (the run is under way); how many there were."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        made = len(list(out.glob("*_persistence_dq.fits"))) if out.exists() else 0
        if made >= some:
            return made
        if not proc_or_job():
            raise AssertionError("the run ended before it was stopped")
        time.sleep(0.05)
    raise TimeoutError(f"no {some} outputs in {out} after {timeout:g} s")


def no_jobs_left(slurm, timeout: float = 30.0) -> list[str]:
    """The queue once every job has left it (or what is still there at the timeout)."""
    deadline = time.monotonic() + timeout
    while (queued := slurm.queue()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return queued


def test_a_batch_job_starting_its_own_worker_jobs_gives_the_local_answer(
    tmp_path, slurm, site, program, expected_masks
):
    out = tmp_path / "out"
    script = job_script(
        tmp_path / "job.sh", command(program, out, "--cluster slurm --jobs 2"), "--cpus-per-task=1"
    )
    job = slurm.sbatch(script, f"--output={tmp_path}/job.log", cwd=tmp_path)
    assert slurm.wait(job) == "COMPLETED", (tmp_path / "job.log").read_text()
    import xarray as xr

    ds = xr.open_zarr(out / "persistence.zarr")
    exposures, sources, masks = expected_masks
    np.testing.assert_array_equal(ds["source"].values, np.array(sources))
    for j, (e, mask) in enumerate(zip(exposures, masks, strict=True)):
        np.testing.assert_array_equal(ds["mask"].values[j][e.window], mask)
    assert no_jobs_left(slurm) == []
    assert (tmp_path / "job.log").read_text() == ""


def test_a_job_cancelled_mid_run_and_submitted_again_gives_the_same_bytes(
    tmp_path, slurm, site, long_program
):
    prog, local = long_program
    out = tmp_path / "out"
    script = job_script(tmp_path / "job.sh", command(prog, out, "--cluster slurm --jobs 2"))
    job = slurm.sbatch(script, f"--output={tmp_path}/first.log", cwd=tmp_path)
    made = wait_for_outputs(out, 1, lambda: slurm.state(job) in ("PENDING", "RUNNING"))
    slurm.run("scancel", job, check=True)  # as at wall time: SIGTERM, SIGKILL after KillWait
    assert slurm.wait(job) == "CANCELLED"
    assert made < 16
    assert no_jobs_left(slurm) == [], "worker jobs outlived the run"
    partial = [n for n in os.listdir(out) if n.startswith(".")]
    assert partial == [], partial

    again = slurm.sbatch(script, f"--output={tmp_path}/second.log", cwd=tmp_path)
    assert slurm.wait(again) == "COMPLETED", (tmp_path / "second.log").read_text()
    assert outputs(out) == outputs(local)


def test_a_second_submission_while_the_first_runs_is_refused(tmp_path, slurm, site, long_program):
    prog, local = long_program
    out = tmp_path / "out"
    script = job_script(tmp_path / "job.sh", command(prog, out))
    first = slurm.sbatch(script, f"--output={tmp_path}/first.log", cwd=tmp_path)
    wait_for_outputs(out, 1, lambda: slurm.state(first) in ("PENDING", "RUNNING"))
    # Held mid-run (SIGSTOP), the first still runs whatever the machine's speed.
    slurm.run("scontrol", "suspend", first, check=True)
    second = slurm.sbatch(script, f"--output={tmp_path}/second.log", cwd=tmp_path)
    assert slurm.wait(second) == "FAILED"
    assert slurm.exit_code(second) == 2
    said = (tmp_path / "second.log").read_text().splitlines()
    assert len(said) == 1 and "in use by another run" in said[0], said
    slurm.run("scontrol", "resume", first, check=True)
    assert slurm.wait(first) == "COMPLETED", (tmp_path / "first.log").read_text()
    assert outputs(out) == outputs(local)


def _client(prog, out: Path, site: dict, *more: str) -> subprocess.Popen:
    return subprocess.Popen(
        command(prog, out, *more).split(),
        cwd=out.parent,
        env=site,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _worker_jobs(slurm, state: str = "") -> list[str]:
    """The worker jobs queued (in ``state``, when given)."""
    return [
        job
        for job, name, now in (line.split() for line in slurm.queue())
        if name == "dask-worker" and now.startswith(state)
    ]


def test_a_worker_job_cancelled_mid_run_the_others_finish_it(tmp_path, slurm, site, long_program):
    prog, local = long_program
    out = tmp_path / "out"
    proc = _client(prog, out, site, "--cluster slurm --jobs 2")
    wait_for_outputs(out, 1, lambda: proc.poll() is None)
    deadline = time.monotonic() + 30
    while len(_worker_jobs(slurm, "RUNNING")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = sorted(_worker_jobs(slurm, "RUNNING"), key=int)
    assert len(workers) == 2, slurm.queue()
    # The later one: the first to join holds what the run sent every worker at its start.
    slurm.run("scancel", workers[-1], check=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert outputs(out) == outputs(local)
    assert no_jobs_left(slurm) == []


def test_with_every_worker_lost_one_line_then_the_same_command_resumes(
    tmp_path, slurm, site, long_program
):
    prog, local = long_program
    out = tmp_path / "out"
    more = ("--cluster slurm --jobs 1 --wait-for-workers 3s",)
    proc = _client(prog, out, site, *more)
    made = wait_for_outputs(out, 1, lambda: proc.poll() is None)
    slurm.run("scancel", *_worker_jobs(slurm), check=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "every dask worker was lost (SLURMCluster-0" in lines[0], lines
    assert made < 16
    assert no_jobs_left(slurm) == []

    again = _client(prog, out, site, *more)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert outputs(out) == outputs(local)


def test_a_scheduler_that_dies_mid_run_one_line_then_the_same_command_resumes(
    tmp_path, long_program
):
    prog, local = long_program
    out = tmp_path / "out"
    sched = tmp_path / "scheduler.json"
    with hand_started(sched, 1, tmp_path) as started:
        proc = _client(prog, out, dict(os.environ), f"--scheduler-file {sched}")
        made = wait_for_outputs(out, 1, lambda: proc.poll() is None)
        started.scheduler.kill()
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "the dask scheduler is gone" in lines[0], lines
    assert made < 16

    with hand_started(sched, 1, tmp_path):
        again = _client(prog, out, dict(os.environ), f"--scheduler-file {sched}")
        _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert outputs(out) == outputs(local)


@pytest.fixture
def python_site(site, monkeypatch, tmp_path):
    """This process as a user's Python session there: SLURM_CONF, and the site's settings."""
    import dask
    import yaml
    from conftest import JOBQUEUE_YAML

    monkeypatch.setenv("SLURM_CONF", site["SLURM_CONF"])
    settings = yaml.safe_load(JOBQUEUE_YAML)["jobqueue"]["slurm"]
    settings["log-directory"] = str(tmp_path / "logs")
    with dask.config.set({f"jobqueue.slurm.{k}": v for k, v in settings.items()}):
        yield


def test_from_python_and_the_step_worker_jobs_start_and_end_with_the_run(
    tmp_path, slurm, python_site, program
):
    from miripersist import Batch, PersistenceMaskStep, batch_client

    params = Parameters(mode="sidecar")
    local = tmp_path / "local"
    run([program.directory], str(local), [program.saturation_ref], params)
    with batch_client(Batch("slurm", jobs=1, walltime="00:10:00")) as client:
        assert len(_worker_jobs(slurm)) == 1
        run([program.directory], str(tmp_path / "python"), [program.saturation_ref], params)
        assert len(client.scheduler_info()["workers"]) == 1
    assert no_jobs_left(slurm) == []
    assert outputs(tmp_path / "python") == outputs(local)

    PersistenceMaskStep.call(
        program.directory,
        saturation_ref=program.saturation_ref,
        mode="sidecar",
        output_dir=str(tmp_path / "step"),
        cluster="slurm",
        jobs=1,
    )
    assert no_jobs_left(slurm) == []
    assert outputs(tmp_path / "step") == outputs(local)


def recipe(name: str) -> str:
    """A batch script of docs/hpc.md, as the page gives it (``<!-- file: NAME -->``)."""
    page = (Path(__file__).parents[1] / "docs" / "hpc.md").read_text()
    found = re.search(rf"<!-- file: {re.escape(name)} -->\n```bash\n(.*?)```", page, re.S)
    assert found, f"docs/hpc.md has no {name}"
    return found[1]


def test_the_resubmit_recipe_resumes_a_job_killed_at_its_wall_time(
    tmp_path, slurm, site, long_program
):
    # The page's script as written, on this module's long program in blocks of two (so that
    # the kill comes mid-run).
    prog, local = long_program
    script = recipe("resume.sbatch")
    script = script.replace("obs1 obs2 visit3", prog.directory)
    script = script.replace("sat.fits", prog.saturation_ref).replace("sidecar", "sidecar --batch 2")
    (tmp_path / "resume.sbatch").write_text(script)
    out = tmp_path / "resumed"
    first = slurm.sbatch(tmp_path / "resume.sbatch", cwd=tmp_path)
    made = wait_for_outputs(out, 1, lambda: slurm.state(first) in ("PENDING", "RUNNING"))
    slurm.run("scancel", first, check=True)
    assert slurm.wait(first) == "CANCELLED"
    assert made < 16
    # Its successor: the first job after it (the first may still be listed a moment,
    # completing, and a successor that started has queued the third try).
    queued = sorted((line.split() for line in slurm.queue() if line.split()[0] != first),
                    key=lambda job: int(job[0]))  # fmt: skip
    assert queued and all(name == "prog1234-resume" for _, name, _ in queued), queued
    second = queued[0][0]
    assert slurm.wait(second) == "COMPLETED", (tmp_path / f"slurm-{second}.out").read_text()
    assert outputs(out) == outputs(local)
    assert no_jobs_left(slurm) == [], "the third try outlived the run that succeeded"
