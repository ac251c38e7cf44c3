"""Process workers against threads: what a dask cluster on one machine costs an exposure.

    python -m benchmarks.workers [--small 10] [--large 40] [--rounds 3] [--groups 30]

One process runs the sidecar job on the same full-frame program, warm, with dask's local
threads and on a ``LocalCluster`` of worker processes (``--workers`` x
``--threads-per-worker``, started once, on the same cores), alternately, ``--rounds``
times. Each figure is a marginal cost per exposure, (T(large) - T(small)) / (large - small),
from the fastest of the round's runs, so that the cluster's start-up and the first block's
fill and drain do not count. The report gives both and their ratio round by round (the
host's load moves from minute to minute; a ratio of runs taken side by side holds better);
``workers.json`` in ``--out`` keeps every sample.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from .data import build

HERE = os.path.dirname(os.path.abspath(__file__))


def _timed(files: list[str], ref: str, workdir: str, params) -> float:
    from miripersist.engine import run_to_store

    out = tempfile.mkdtemp(dir=workdir, prefix="workers-")
    try:
        t0 = time.perf_counter()
        run_to_store(files, out, [ref], params)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)


def marginal(files: list[str], ref: str, workdir: str, params, small: int, large: int) -> float:
    """Seconds an exposure between ``small`` and ``large`` exposures (fastest of two each)."""
    t_small = min(_timed(files[:small], ref, workdir, params) for _ in range(2))
    t_large = min(_timed(files[:large], ref, workdir, params) for _ in range(2))
    return (t_large - t_small) / (large - small)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.workers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=40)
    parser.add_argument("--groups", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads-per-worker", type=int, default=2)
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "miripersist-bench")
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)

    import dask
    from distributed import Client, LocalCluster

    from miripersist import Parameters

    os.makedirs(args.workdir, exist_ok=True)
    program = build(
        os.path.join(args.workdir, f"data_FULL_{args.large}x{args.groups}"),
        args.large,
        args.groups,
    )
    files = sorted(program.files)
    params = Parameters(mode="sidecar")
    samples: dict[str, list[float]] = {"threads": [], "processes": []}
    with LocalCluster(
        n_workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    ) as cluster:
        for _ in range(args.rounds):
            # No client while the threads run: the engine uses dask's local scheduler.
            with dask.config.set(scheduler="threads"):
                samples["threads"].append(
                    marginal(
                        files, program.saturation_ref, args.workdir, params, args.small, args.large
                    )
                )
            with Client(cluster):
                samples["processes"].append(
                    marginal(
                        files, program.saturation_ref, args.workdir, params, args.small, args.large
                    )
                )
    ratios = [p / t for t, p in zip(samples["threads"], samples["processes"], strict=True)]
    lines = [
        f"{args.workers} worker processes x {args.threads_per_worker} threads against local "
        f"threads, {os.cpu_count()} cores, full frames of {args.groups} groups, sidecar mode, "
        f"marginal {args.small} -> {args.large}:"
    ]
    for k, (t, p) in enumerate(zip(samples["threads"], samples["processes"], strict=True)):
        lines.append(
            f"  round {k + 1}: threads {1000 * t:.1f} ms, processes {1000 * p:.1f} ms "
            f"({p / t:.2f}x)"
        )
    lines.append(f"  median ratio {statistics.median(ratios):.2f}x")
    report = "\n".join(lines)
    print(report)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "workers.json"), "w") as fh:
        json.dump(
            {"samples_s": samples, "ratios": ratios, "cpus": os.cpu_count(), "report": report},
            fh,
            indent=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
