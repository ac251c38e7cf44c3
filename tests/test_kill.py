"""SIGKILL at every point of fresh, incremental and in-place runs; the same command then finishes.

A child process runs the engine, on local threads or on a local cluster of worker
processes (whose workers write the files), with one step replaced by a wrapper that kills
the run's processes (SIGKILL: no handler, no cleanup) at that point. The same command is then run
again, and its outputs and store must equal a fresh run's, with nothing left behind.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr
from conftest import sha256

from miripersist import Parameters, run, simulate
from miripersist.inventory import read_exposure

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys

    import miripersist.engine as engine

    args = json.loads(sys.argv[1])

    def install(point, store_path, counter):
        # In the run's process, and on a cluster in every worker's too: a worker's kill
        # takes the whole process group (the run, its workers), as a batch system's does.
        import miripersist.store as store
        import miripersist.writeback as writeback
        import miripersist.writers as writers
        from miripersist.kinds import Kind

        def die():
            os.killpg(os.getpgid(0), signal.SIGKILL)

        if point == "store-update":  # after the first block's arrays are stored, before files
            real_block = store.Writer.block

            def block(self, *a, **k):
                real_block(self, *a, **k)
                die()

            store.Writer.block = block
        elif point == "file-start":  # as the first output is about to be written
            for kind in (Kind.PIXELDQ_COPY, Kind.DQ_SIDECAR):
                writers.WRITERS[kind] = lambda *a, **k: die()
        elif point == "mid-file":  # the first output's bytes written, not yet synced or renamed
            writeback.os.fsync = lambda fd: die()
        elif point == "after-files":  # three outputs in place, the rest not
            real_write = writers.write_pixel_mask

            def write(*a, **k):
                out = real_write(*a, **k)
                # Counted in a file: on a cluster, several processes write.
                with open(counter, "a") as fh:
                    fh.write("+ ")
                with open(counter) as fh:
                    if len(fh.read().split()) >= 3:
                        die()
                return out

            for kind in (Kind.PIXELDQ_COPY, Kind.DQ_SIDECAR):
                writers.WRITERS[kind] = write
        elif point == "swap":  # between the two renames that put a new store in place
            real_rename = store.os.rename

            def rename(src, dst):
                if ".new-" in os.path.basename(str(src)) and str(dst) == store_path:
                    die()
                real_rename(src, dst)

            store.os.rename = rename

    def go():
        engine.run(
            args["inputs"],
            args["out"],
            [args["ref"]],
            engine.Parameters(mode=args["mode"], batch=2),
            history=args["history"],
        )

    install(args["point"], args["store"], args["counter"])
    if args["where"] == "threads":
        go()
    else:
        from distributed import Client, LocalCluster

        if __name__ == "__main__":
            with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as c:
                with Client(c) as client:
                    client.run(install, args["point"], args["store"], args["counter"])
                    go()
    """
)


@pytest.fixture(scope="module")
def visits(tmp_path_factory):
    """Two visits of one program; the first one's store is the second one's history."""
    base = tmp_path_factory.mktemp("visits")
    program = simulate.make_program(
        str(base / "all"), n_exposures=11, ngroups=4, subarrays=("FULL", "SUB256"), seed=21
    )
    by_time = sorted(program.files, key=lambda p: read_exposure(p).mid_mjd)
    dirs = {}
    for name, files in (("v1", by_time[:3]), ("v2a", by_time[3:7]), ("v2b", by_time[7:])):
        dirs[name] = base / name
        dirs[name].mkdir()
        for f in files:
            shutil.copy2(f, dirs[name])
    histories = {}
    for mode in ("copy", "sidecar"):
        out = base / f"history-{mode}"
        run([str(dirs["v1"])], str(out), [program.saturation_ref], Parameters(mode=mode))
        histories[mode] = str(out / "persistence.zarr")
    return program, dirs, histories


def _fresh(tmp_path_factory, visits, mode, inputs, history):
    program, _, _ = visits
    out = tmp_path_factory.mktemp("fresh")
    ds = run(inputs, str(out), [program.saturation_ref], Parameters(mode=mode), history=history)
    return out, ds


def _outputs(directory) -> dict[str, str]:
    return {p.name: sha256(p) for p in sorted(directory.iterdir()) if p.is_file()}


KINDS = ("fresh", "incremental", "in-place")
POINTS = ("store-update", "file-start", "mid-file", "after-files", "swap")


#: Where the killed run works: local threads, both modes; a cluster of worker processes
#: (whose workers write the files), sidecars.
WHERE = [("threads", "copy"), ("threads", "sidecar"), ("cluster", "sidecar")]


@pytest.mark.parametrize(("where", "mode"), WHERE)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("point", POINTS)
def test_killed_anywhere_the_same_command_finishes_as_a_fresh_run(
    tmp_path, tmp_path_factory, visits, where, mode, kind, point
):
    if point == "swap" and kind != "incremental":
        pytest.skip("only a run that grows the store swaps a new one in")
    program, dirs, histories = visits
    out = tmp_path / "out"
    inputs = [str(dirs["v2a"]), str(dirs["v2b"])]
    history = histories[mode] if kind == "in-place" else None
    params = Parameters(mode=mode, batch=2)
    if kind == "incremental":
        run([str(dirs["v2a"])], str(out), [program.saturation_ref], params)
    elif kind == "in-place":
        # The run that is killed adds a history: every mask of the first exposures changes.
        run(inputs, str(out), [program.saturation_ref], params)
    store = str(out / "persistence.zarr")
    child = {
        "point": point,
        "inputs": inputs,
        "out": str(out),
        "ref": program.saturation_ref,
        "mode": mode,
        "history": history,
        "store": store,
        "where": where,
        "counter": str(tmp_path / "writes"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(child)],
        capture_output=True,
        timeout=300,
        start_new_session=True,  # its own process group, which the kill takes whole
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]

    ds = run(inputs, str(out), [program.saturation_ref], params, history=history)
    fresh_out, fresh = _fresh(tmp_path_factory, visits, mode, inputs, history)
    assert _outputs(out) == _outputs(fresh_out)
    np.testing.assert_array_equal(ds["mask"].values, fresh["mask"].values)
    np.testing.assert_array_equal(ds["source"].values, fresh["source"].values)
    assert ds["written"].values.all() and ds["complete"].values.all()
    leftovers = [p.name for p in out.iterdir() if p.name.startswith((".tmp-", "persistence.zarr."))]
    assert leftovers == []
    again = run(inputs, str(out), [program.saturation_ref], params, history=history)
    assert again.attrs["last_run"]["written"] == 0
    assert again.attrs["last_run"]["computed"] == 0
    assert xr.open_zarr(store).sizes["exposure"] == 8
