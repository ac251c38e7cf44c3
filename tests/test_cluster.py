"""A real dask cluster (worker processes) gives results identical to a local run."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import sha256
from dask.utils import key_split
from distributed import Client, LocalCluster, get_task_stream

from benchmarks.workers import command_line_cluster
from miripersist import ConfigError, Parameters, run, simulate
from miripersist.cli import main
from miripersist.cluster import check_workers, connect, disconnect
from miripersist.inventory import read_exposure


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    return simulate.make_program(
        str(tmp_path_factory.mktemp("cl") / "in"),
        n_exposures=6,
        ngroups=4,
        subarrays=("FULL", "SUB256"),
        seed=3,
    )


@pytest.fixture(scope="module")
def local(tmp_path_factory, prog):
    out = tmp_path_factory.mktemp("local")
    ds = run([prog.directory], str(out), [prog.saturation_ref], Parameters(mode="sidecar"))
    return out, ds


def digests(directory):
    return {p.name: sha256(p) for p in sorted(directory.glob("*.fits"))}


def local_cluster(n_workers: int):
    """A LocalCluster of single-threaded worker processes on loopback, no dashboard."""
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    )


def test_local_cluster_of_processes_matches_local_run(tmp_path, prog, local):
    out, ds_local = local
    with (
        local_cluster(2) as cluster,
        Client(cluster) as client,
        get_task_stream(client) as stream,
    ):
        params = Parameters(mode="sidecar", tile=(100, 300))  # uneven tiles, both ways
        ds = run([prog.directory], str(tmp_path), [prog.saturation_ref], params)
    # Tiles go to the client as they are and are put together there: no task gathers an
    # exposure's tiles on a worker (moving them between workers, then the whole image).
    ran = [key_split(task["key"]) for task in stream.data]
    exposures = [read_exposure(f) for f in prog.files]
    tiles = sum(-(-e.ysize // 100) * -(-e.xsize // 300) for e in exposures)
    assert ran.count("sources") == tiles > len(prog.files)
    assert set(ran) == {"sources", "write_files"}, set(ran)  # tiles, and writes of files
    # A tile comes back as bits, packed by the task that made it (and what dask's memory
    # accounting counts is those bits): an eighth of a byte a pixel, not a byte.
    tiles_back = [task for task in stream.data if key_split(task["key"]) == "sources"]
    assert {task["typename"] for task in tiles_back} == {"miripersist.execute.Bits"}
    pixels = sum(e.ysize * e.xsize for e in exposures)
    assert pixels / 8 <= sum(task["nbytes"] for task in tiles_back) < pixels / 4
    np.testing.assert_array_equal(ds["mask"].values, ds_local["mask"].values)
    np.testing.assert_array_equal(ds["source"].values, ds_local["source"].values)
    assert digests(tmp_path) == digests(out)


def test_workers_that_cannot_see_files_are_named(tmp_path, prog):
    with (
        local_cluster(1) as cluster,
        Client(cluster) as client,
    ):
        check_workers(client, prog.files, str(tmp_path))
        with pytest.raises(ConfigError, match="cannot reach /nonexistent/x_uncal.fits"):
            check_workers(client, ["/nonexistent/x_uncal.fits"], str(tmp_path))


def test_scheduler_and_workers_started_from_the_command_line(tmp_path, prog, local, capsys):
    out, _ = local
    elsewhere = tmp_path / "workers"  # a batch job's workers start in their own directory
    elsewhere.mkdir()
    with command_line_cluster(tmp_path / "scheduler.json", 2, cwd=elsewhere) as sched_file:
        code = main(
            [
                "run",
                prog.directory,
                "--output-dir",
                str(tmp_path / "out"),
                "--saturation-ref",
                prog.saturation_ref,
                "--mode",
                "sidecar",
                "--scheduler-file",
                sched_file,
            ]
        )
    assert code == 0
    assert "dask dashboard at" in capsys.readouterr().err
    assert digests(tmp_path / "out") == digests(out)
    assert os.listdir(elsewhere) == []


def test_graph_grows_linearly_with_exposures(prog):
    import dask
    from dask.highlevelgraph import HighLevelGraph

    from miripersist.inventory import read_exposure
    from miripersist.reader import lazy_sources
    from miripersist.thresholds import Window, load_reference

    e = read_exposure(prog.files[0])
    window = dask.delayed(Window(load_reference(prog.saturation_ref).window_for(e)), pure=True)
    tile = Parameters().tile

    def tasks(n):
        arrays = [
            lazy_sources(e.__class__(**{**e.__dict__, "path": f"{e.path}.{k}"}), window, 3, 1, tile)
            for k in range(n)
        ]
        # The graphs merged as dask merges them for one computation (shared keys once).
        return len(HighLevelGraph.merge(*(a.__dask_graph__() for a in arrays)))

    per = (tasks(200) - tasks(20)) / 180
    assert per == tasks(1) - 1, "one task per tile per exposure, plus one shared threshold"


def test_disconnect_stops_the_local_cluster_it_started():
    # Left to interpreter exit, the scheduler could stop before the workers, whose next
    # heartbeat then logs an error even under --quiet.
    client = connect(workers=1)
    cluster = client.cluster
    assert cluster is not None and len(cluster.workers) == 1
    disconnect(client)
    assert client.status == "closed"
    assert cluster.status.name == "closed" and not cluster.workers


def test_quiet_workers_print_nothing(tmp_path, prog, local):
    # A whole command in its own process: the workers' log lines go to its file descriptors.
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "miripersist", "run", prog.directory, "--output-dir", str(out)]
    cmd += ["--saturation-ref", prog.saturation_ref, "--mode", "sidecar", "--workers", "2"]
    quiet = subprocess.run([*cmd, "--quiet"], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "" and quiet.stderr == ""
    assert digests(out) == digests(local[0])
    # Without --quiet: the dashboard's address and the progress bar, none of dask's chatter.
    said = subprocess.run([*cmd, "--overwrite"], capture_output=True, text=True, timeout=300)
    assert said.returncode == 0, said.stderr
    lines = [line for line in said.stderr.splitlines() if line.startswith("miripersist:")]
    assert len(lines) == 1 and lines[0].startswith("miripersist: dask dashboard at http"), lines


def test_a_task_s_own_error_on_a_cluster_is_raised_as_it_is():
    # An unreadable input raises an OSError in the task that reads it: that error, naming
    # the file, not a lost cluster.
    from miripersist.execute import watched

    def unreadable():
        raise FileNotFoundError(2, "No such file or directory", "/data/gone_uncal.fits")

    with local_cluster(1) as cluster, Client(cluster) as client:
        futures = [client.submit(unreadable, pure=False)]
        with pytest.raises(FileNotFoundError) as info:
            watched(client, futures)
    assert info.value.filename == "/data/gone_uncal.fits"
