"""Scale check on a dask cluster: many small-subarray exposures through a LocalCluster.

    python -m benchmarks.scale_cluster [--exposures 1000] [--workers 2]

Reports wall time and scheduler overhead per exposure (the cluster run against the same
run on local threads), and the number of tasks per block of exposures, which must grow
linearly with the number of exposures in it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from .data import build


def graph_tasks(program, n_unsat: int = 3) -> list[tuple[int, int]]:
    """(exposures, tasks) of the lazy source graph for growing subsets of the program."""
    import dask

    from miripersist import Parameters
    from miripersist.inventory import inventory
    from miripersist.reader import lazy_sources
    from miripersist.thresholds import Window, load_reference

    exposures, _ = inventory(program.files)
    ref = load_reference(program.saturation_ref)
    tile = Parameters().tile
    out = []
    for n in (10, 100, len(exposures)):
        window = dask.delayed(Window(ref.window_for(exposures[0])), pure=True)
        arrays = [lazy_sources(e, window, n_unsat, 1, tile) for e in exposures[:n]]
        tasks = len(dask.base.collections_to_expr(arrays).__dask_graph__())
        out.append((n, tasks))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale_cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--exposures", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--subarray", default="SUB64")
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "miripersist-bench")
    )
    args = parser.parse_args(argv)

    from distributed import Client, LocalCluster

    from miripersist import Parameters, run

    n = args.exposures
    program = build(
        os.path.join(args.workdir, f"data_{args.subarray}_{n}x10"), n, 10, args.subarray
    )
    for n_tasks in graph_tasks(program):
        print(f"graph: {n_tasks[0]:5d} exposures -> {n_tasks[1]:6d} tasks")
    params = Parameters(mode="sidecar", batch=64)
    t0 = time.perf_counter()
    run([program.directory], tempfile.mkdtemp(dir=args.workdir), [program.saturation_ref], params)
    local = time.perf_counter() - t0
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        Client(cluster),
    ):
        t0 = time.perf_counter()
        run(
            [program.directory],
            tempfile.mkdtemp(dir=args.workdir),
            [program.saturation_ref],
            params,
        )
        distributed = time.perf_counter() - t0
    print(
        f"{n} {args.subarray} exposures: local threads {local:.1f} s "
        f"({1000 * local / n:.1f} ms/exposure); LocalCluster of {args.workers} processes "
        f"{distributed:.1f} s ({1000 * distributed / n:.1f} ms/exposure); "
        f"scheduler overhead {1000 * (distributed - local) / n:+.1f} ms/exposure"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
