"""Paths that travel: relative paths given on the client reach dask workers that run in
another working directory, and asking the workers whether they see the files creates
nothing anywhere."""

from __future__ import annotations

import os
import re
import types
from pathlib import Path

import pytest
import xarray as xr
from distributed import Client
from test_cluster import command_line_cluster, digests

from miripersist import ConfigError, Parameters, run, simulate
from miripersist.cli import main
from miripersist.cluster import check_workers


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    return simulate.make_program(
        str(tmp_path_factory.mktemp("paths") / "obs1"),
        n_exposures=3,
        ngroups=4,
        subarrays=("FULL", "SUB256"),
        seed=4,
    )


@pytest.fixture(scope="module")
def local_out(tmp_path_factory, prog):
    """The outputs of a plain in-process run, given absolute paths."""
    out = tmp_path_factory.mktemp("paths-local")
    run([prog.directory], str(out), [prog.saturation_ref], Parameters(mode="sidecar"))
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two workers started from the command line in their own directory."""
    base = tmp_path_factory.mktemp("paths-cluster")
    workers_cwd = base / "workers"
    workers_cwd.mkdir()
    with command_line_cluster(base / "scheduler.json", 2, cwd=workers_cwd) as sched_file:
        yield types.SimpleNamespace(scheduler_file=sched_file, cwd=workers_cwd)


def tree(*roots: Path) -> set[str]:
    """Every file and directory under ``roots`` (symbolic links not followed)."""
    found = set()
    for root in roots:
        for d, dirs, files in os.walk(root):
            found.update(os.path.join(d, name) for name in dirs + files)
    return found


@pytest.fixture
def client_cwd(tmp_path, prog, monkeypatch):
    """The client's working directory: ``w3/obs1`` holds the inputs (a link to them)."""
    home = tmp_path / "client"
    (home / "w3").mkdir(parents=True)
    (home / "w3" / "obs1").symlink_to(prog.directory, target_is_directory=True)
    monkeypatch.chdir(home)
    return home


def test_relative_paths_reach_workers_in_another_directory(
    cluster, client_cwd, prog, local_out, capsys
):
    ref = os.path.join("w3", "obs1", os.path.basename(prog.saturation_ref))
    watched = (client_cwd, cluster.cwd, Path(prog.directory), Path(cluster.scheduler_file).parent)
    before = tree(*watched)
    code = main(
        [
            "run",
            "w3/obs1",
            "--output-dir",
            "w3/out",
            "--store",
            "w3/persistence.zarr",
            "--saturation-ref",
            ref,
            "--mode",
            "sidecar",
            "--scheduler-file",
            os.path.relpath(cluster.scheduler_file),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert digests(client_cwd / "w3" / "out") == digests(local_out)
    new = tree(*watched) - before
    made = {client_cwd / "w3" / "out", client_cwd / "w3" / "persistence.zarr"}
    assert made <= {Path(p) for p in new}
    strays = [p for p in new if not any(Path(p).is_relative_to(m) for m in made)]
    assert strays == [], "only the outputs and the store are new"

    with xr.open_zarr(client_cwd / "w3" / "persistence.zarr") as ds:
        for path in [*ds["path"].values, *ds["saturation_ref"].values]:
            assert os.path.isabs(path), path
        assert set(ds["saturation_ref"].values) == {str(client_cwd / ref)}


def test_asking_the_workers_creates_nothing(cluster, client_cwd, prog):
    with Client(scheduler_file=cluster.scheduler_file, timeout="60s") as client:
        before = tree(client_cwd, cluster.cwd, Path(prog.directory))
        check_workers(client, prog.files, str(client_cwd / "w3" / "not" / "yet" / "out"))
        assert tree(client_cwd, cluster.cwd, Path(prog.directory)) == before
        # Relative paths are the client's: resolved there, before they travel.
        inputs = [os.path.join("w3", "obs1", os.path.basename(f)) for f in prog.files]
        check_workers(client, inputs, os.path.join("w3", "not", "yet", "out"))
        assert tree(client_cwd, cluster.cwd, Path(prog.directory)) == before

        # An output directory that cannot be made (its parent is a file) is named, absolute.
        blocked = client_cwd / "w3" / "obs1" / os.path.basename(prog.files[0]) / "out"
        with pytest.raises(ConfigError, match=re.escape(f"cannot reach {blocked} (workers need")):
            check_workers(client, inputs, os.path.relpath(blocked))
        # A relative input that exists only in the workers' directory is not theirs to read.
        (cluster.cwd / "only_here_uncal.fits").write_bytes(b"")
        try:
            theirs = re.escape(f"cannot reach {client_cwd}/only_here_uncal.fits")
            with pytest.raises(ConfigError, match=theirs):
                check_workers(client, ["only_here_uncal.fits"], "w3")
        finally:
            (cluster.cwd / "only_here_uncal.fits").unlink()
        assert tree(client_cwd, cluster.cwd, Path(prog.directory)) == before


def test_the_command_line_gives_the_engine_absolute_paths(client_cwd, prog, monkeypatch):
    import miripersist.engine as engine

    seen = []
    monkeypatch.setattr(engine, "run_request", lambda request, progress: seen.append(request))
    (client_cwd / "mask.csv").write_text("x,y\n10,20\n")
    ref = os.path.join("w3", "obs1", os.path.basename(prog.saturation_ref))
    code = main(
        [
            "run",
            "w3/obs1",
            "--output-dir",
            "out",
            "--saturation-ref",
            ref,
            "--store",
            "s.zarr",
            "--user-mask",
            "mask.csv",
            "--history",
            "./old/persistence.zarr",
            "--quiet",
        ]
    )
    assert code == 0
    (request,) = seen
    here = str(client_cwd)
    assert [e.path for e in request.exposures] == [
        f"{here}/w3/obs1/{os.path.basename(f)}" for f in prog.files
    ]
    assert request.readable()[-1] == f"{here}/{ref}"
    assert request.output_dir == f"{here}/out"
    assert request.store == f"{here}/s.zarr"
    assert request.user_mask_path == f"{here}/mask.csv"
    assert request.user_mask.sum() == 1
    assert request.history == f"{here}/old/persistence.zarr"
