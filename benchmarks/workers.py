"""Process workers against threads: what a dask cluster on one machine costs an exposure.

    python -m benchmarks.workers [--small 10] [--large 40] [--rounds 3] [--groups 30]

One process runs the sidecar job on the same full-frame program, warm, with dask's local
threads, on a ``LocalCluster`` of worker processes (``--workers`` x
``--threads-per-worker``, started once, on the same cores; its scheduler runs in this
process, as ``miripersist run --workers`` starts it) and on a cluster started as a batch
job starts one (``dask scheduler --scheduler-file`` and ``dask worker`` processes: the
scheduler in a process of its own), in turn, ``--rounds`` times. Each figure is a
marginal cost per exposure, (T(large) - T(small)) / (large - small), from the fastest of
the round's runs, so that the cluster's start-up and the first block's fill and drain do
not count. The report gives each and its ratio to the threads round by round (the host's
load moves from minute to minute; a ratio of runs taken side by side holds better);
``workers.json`` in ``--out`` keeps every sample. Every run writes into a directory of its
own; all are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from .data import build

HERE = os.path.dirname(os.path.abspath(__file__))


def _timed(files: list[str], ref: str, outputs: str, params) -> float:
    from miripersist.engine import resolve, run_request

    # A directory of its own, kept until the benchmark ends: on ext4 without a journal a
    # file creation pays for the inodes freed in the minutes before (docs/benchmarks.md).
    out = tempfile.mkdtemp(dir=outputs, prefix="run-")
    t0 = time.perf_counter()
    run_request(resolve(files, out, [ref], params))
    return time.perf_counter() - t0


def marginal(files: list[str], ref: str, outputs: str, params, small: int, large: int) -> float:
    """Seconds an exposure between ``small`` and ``large`` exposures (fastest of two each).

    Each run writes into a new directory under ``outputs``.
    """
    t_small = min(_timed(files[:small], ref, outputs, params) for _ in range(2))
    t_large = min(_timed(files[:large], ref, outputs, params) for _ in range(2))
    return (t_large - t_small) / (large - small)


@dataclass
class HandStarted:
    """A scheduler and workers started as a batch job starts them: the file, the processes."""

    file: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen]


@contextlib.contextmanager
def hand_started(scheduler_file, n_workers: int, cwd, threads: int = 1):
    """``dask scheduler`` and ``dask worker`` processes as a batch job starts them, in ``cwd``.

    Yields them once ``n_workers`` workers (of ``threads`` threads each) are connected;
    stops them after (those still running).
    """
    from distributed import Client

    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    scheduler_file = str(scheduler_file)
    if os.path.exists(scheduler_file):
        os.unlink(scheduler_file)  # an earlier scheduler's: wait for this one's

    def start(*args):
        command = [sys.executable, "-m", *args]
        procs.append(
            subprocess.Popen(
                command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )

    procs: list[subprocess.Popen] = []
    try:
        start(
            "distributed.cli.dask_scheduler",
            "--host=127.0.0.1",
            "--port=0",
            "--dashboard-address=:0",
            f"--scheduler-file={scheduler_file}",
        )
        deadline = time.monotonic() + 60
        while not os.path.exists(scheduler_file) and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(n_workers):
            start(
                "distributed.cli.dask_worker",
                f"--scheduler-file={scheduler_file}",
                "--nworkers=1",
                f"--nthreads={threads}",
                "--host=127.0.0.1",
                "--no-dashboard",
            )
        with Client(scheduler_file=scheduler_file, timeout="60s") as client:
            if n_workers:  # none: a scheduler alone, as a batch system's before its workers
                client.wait_for_workers(n_workers, timeout=60)
        yield HandStarted(scheduler_file, procs[0], procs[1:])
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


@contextlib.contextmanager
def command_line_cluster(scheduler_file, n_workers: int, cwd, threads: int = 1):
    """:func:`hand_started`'s processes; yields the scheduler file."""
    with hand_started(scheduler_file, n_workers, cwd, threads) as started:
        yield started.file


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
    samples: dict[str, list[float]] = {"threads": [], "processes": [], "scheduler_file": []}

    outputs = tempfile.mkdtemp(dir=args.workdir, prefix="workers-")

    def measured() -> float:
        return marginal(files, program.saturation_ref, outputs, params, args.small, args.large)

    scheduler_dir = tempfile.mkdtemp(dir=args.workdir, prefix="scheduler-")
    try:
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=args.threads_per_worker,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
            ) as cluster,
            command_line_cluster(
                os.path.join(scheduler_dir, "scheduler.json"),
                args.workers,
                scheduler_dir,
                args.threads_per_worker,
            ) as scheduler_file,
        ):
            for _ in range(args.rounds):
                # No client while the threads run: the engine uses dask's local scheduler.
                with dask.config.set(scheduler="threads"):
                    samples["threads"].append(measured())
                with Client(cluster):
                    samples["processes"].append(measured())
                with Client(scheduler_file=scheduler_file):
                    samples["scheduler_file"].append(measured())
    finally:
        shutil.rmtree(scheduler_dir, ignore_errors=True)
        shutil.rmtree(outputs, ignore_errors=True)
    ratios = [p / t for t, p in zip(samples["threads"], samples["processes"], strict=True)]
    apart = [p / t for t, p in zip(samples["threads"], samples["scheduler_file"], strict=True)]
    lines = [
        f"{args.workers} worker processes x {args.threads_per_worker} threads against local "
        f"threads, {os.cpu_count()} cores, full frames of {args.groups} groups, sidecar mode, "
        f"marginal {args.small} -> {args.large}; LocalCluster (scheduler in this process) "
        "and a scheduler-file cluster (scheduler in its own process):"
    ]
    for k, (t, p, s) in enumerate(
        zip(samples["threads"], samples["processes"], samples["scheduler_file"], strict=True)
    ):
        lines.append(
            f"  round {k + 1}: threads {1000 * t:.1f} ms, LocalCluster {1000 * p:.1f} ms "
            f"({p / t:.2f}x), scheduler-file {1000 * s:.1f} ms ({s / t:.2f}x)"
        )
    lines.append(
        f"  median ratio: LocalCluster {statistics.median(ratios):.2f}x, "
        f"scheduler-file {statistics.median(apart):.2f}x"
    )
    report = "\n".join(lines)
    print(report)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "workers.json"), "w") as fh:
        json.dump(
            {
                "samples_s": samples,
                "ratios": ratios,
                "ratios_scheduler_file": apart,
                "cpus": os.cpu_count(),
                "report": report,
            },
            fh,
            indent=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
