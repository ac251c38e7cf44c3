"""What bounds a cluster: the client's serial cost an exposure, and the scheduler's.

    python -m benchmarks.client_cost [--small 8] [--large 40] [--groups 10] [--rounds 3]

The client scans each detector's exposures in order, in one process: however many workers
read the ramps, a run goes no faster than the client gets through its exposures. This runs
the sidecar job on a full-frame program with the scheduler (``dask scheduler``) and the
workers (``dask worker``, 2 processes of one thread) in processes of their own, as a batch
job starts them, so that each process's CPU time is its own: the client's (scan, store
update, placing tiles, building graphs, bookkeeping: everything of this process), the
scheduler's and the workers'. Each figure is a marginal cost an exposure,
(X(large) - X(small)) / (large - small), at the median of ``--rounds`` rounds, so that
start-up and the first block's fill and drain do not count; the same for the bytes each
process read and wrote through its sockets and files (``/proc/PID/io``) and the tasks the
scheduler ran. From them, a model of the throughput at 10, 100 and 1,000 workers goes to
``client_cost.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

import psutil

from .data import build
from .workers import HandStarted, hand_started

#: Worker counts of the model.
SCALES = (10, 100, 1000)


def _usage(procs: list[psutil.Process]) -> dict[str, float]:
    """CPU seconds and bytes read and written (files and sockets) of processes, summed."""
    cpu = read = written = 0.0
    for p in procs:
        t, io = p.cpu_times(), p.io_counters()
        cpu += t.user + t.system
        read += io.read_chars
        written += io.write_chars
    return {"cpu_s": cpu, "read_bytes": read, "written_bytes": written}


def _everyone(started: HandStarted) -> dict[str, list]:
    """This process (the client), the scheduler's, and every worker's with its children."""
    workers = [psutil.Process(w.pid) for w in started.workers]
    return {
        "client": [psutil.Process()],
        "scheduler": [psutil.Process(started.scheduler.pid)],
        "workers": [p for w in workers for p in (w, *w.children(recursive=True))],
    }


#: The client's parts, timed (CPU of the thread that runs them): the scan of a block and
#: what goes with it (``Loop.block``), the store update (``Writer.block``), and the tiles
#: put together as they arrive (``Tiles.assemble``).
PARTS = {
    "scan": ("miripersist.blocks", "Loop", "block"),
    "store_update": ("miripersist.store", "Writer", "block"),
    "assemble": ("miripersist.execute", "Tiles", "assemble"),
}


@contextlib.contextmanager
def timing(spent: dict[str, float]):
    """Add each of :data:`PARTS`'s thread CPU seconds to ``spent`` while it runs."""
    import importlib

    real = {}
    for part, (module, cls, name) in PARTS.items():
        owner = getattr(importlib.import_module(module), cls)
        real[part] = (owner, name, getattr(owner, name))

        def timed(*a, _f=real[part][2], _part=part, **k):
            t0 = time.thread_time()
            try:
                return _f(*a, **k)
            finally:
                spent[_part] += time.thread_time() - t0

        setattr(owner, name, timed)
    try:
        yield
    finally:
        for owner, name, f in real.values():
            setattr(owner, name, f)


def _loopback() -> float:
    """Bytes sent over loopback by every process: between client, scheduler and workers."""
    nic = psutil.net_io_counters(pernic=True).get("lo")
    return float(nic.bytes_sent) if nic else float("nan")


def one_run(files: list[str], ref: str, out: str, started: HandStarted, client) -> dict:
    """One run's wall time, its processes' usage, and the tasks the scheduler ran."""
    from distributed import get_task_stream

    from miripersist.engine import Parameters, resolve, run_request

    procs = _everyone(started)
    before = {k: _usage(v) for k, v in procs.items()}
    spent = dict.fromkeys(PARTS, 0.0)
    lo = _loopback()
    t0 = time.perf_counter()
    with get_task_stream(client) as stream, timing(spent):
        run_request(resolve(files, out, [ref], Parameters(mode="sidecar")))
    wall = time.perf_counter() - t0
    after = {k: _usage(v) for k, v in procs.items()}
    used = {k: {m: after[k][m] - before[k][m] for m in after[k]} for k in after}
    used["client"].update({f"{part}_cpu_s": s for part, s in spent.items()})
    return {"wall_s": wall, "tasks": len(stream.data), "loopback_bytes": _loopback() - lo, **used}


def marginal(small: dict, large: dict, n: int) -> dict:
    """Per exposure, between a run of ``small`` and one of ``large`` (``n`` more exposures)."""
    out = {"wall_s": (large["wall_s"] - small["wall_s"]) / n}
    out["tasks"] = (large["tasks"] - small["tasks"]) / n
    out["loopback_bytes"] = (large["loopback_bytes"] - small["loopback_bytes"]) / n
    for who in ("client", "scheduler", "workers"):
        out[who] = {m: (large[who][m] - small[who][m]) / n for m in large[who]}
    return out


def model(per: dict, workers_used: int, worker_mb_per_s: float) -> dict:
    """Exposures a second at each of :data:`SCALES` workers, and the ceilings, from ``per``.

    W workers get through W / t exposures a second, t a worker's time an exposure: its CPU
    here (the page cache warm), or, reading cold at ``worker_mb_per_s`` each, the longer of
    that and its reads. The client and the scheduler each do their share of every exposure
    in one process: 1 / (its CPU an exposure) is a ceiling no number of workers lifts.
    """
    cpu = per["workers"]["cpu_s"]
    read = per["workers"]["read_bytes"]
    ceilings = {who: _rate(per[who]["cpu_s"]) for who in ("client", "scheduler")}
    top = min(ceilings.values())
    out: dict = {
        "measured_with_workers": workers_used,
        "ceilings_exposures_per_s": ceilings,
        "bound_by_at_the_ceiling": min(ceilings, key=ceilings.__getitem__),
        "file_system_MB_per_s_at_the_ceiling": top * read / 1e6,
    }
    for case, t in (("warm", cpu), ("cold", max(cpu, read / (worker_mb_per_s * 1e6)))):
        out[case] = {
            "worker_s_per_exposure": t,
            "workers_to_reach_the_ceiling": t * top,
            "exposures_per_s": {str(w): min(w / t, top) for w in SCALES},
        }
    out["cold"]["worker_MB_per_s"] = worker_mb_per_s
    return out


def measure_rounds(prog, workers_n: int, small: int, large: int, rounds_n: int) -> list[dict]:
    """``rounds_n`` rounds of a run of ``small`` exposures and one of ``large``: marginals."""
    from distributed import Client

    work = tempfile.mkdtemp(prefix="mp-client-cost-runs-")
    rounds = []
    try:
        with (
            hand_started(os.path.join(work, "scheduler.json"), workers_n, work) as started,
            Client(scheduler_file=started.file) as client,
        ):

            def timed(n: int, name: str) -> dict:
                out = os.path.join(work, name)
                return one_run(prog.files[:n], prog.saturation_ref, out, started, client)

            timed(2, "warm")
            for r in range(rounds_n):
                runs = {n: timed(n, f"{r}-{n}") for n in (small, large)}
                rounds.append(marginal(runs[small], runs[large], large - small))
                print(json.dumps(rounds[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=8)
    parser.add_argument("--large", type=int, default=40)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--worker-mb-per-s",
        type=float,
        default=100.0,
        help="the model's cold case: what one worker reads a second from the file system",
    )
    parser.add_argument("--data", default=None, help="where the program is made, or reused")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args(argv)
    data = args.data or os.path.join(
        tempfile.gettempdir(), f"mp-client-cost-{args.large}x{args.groups}"
    )
    prog = build(data, args.large, args.groups)
    assert len(prog.files) >= args.large, f"{data} holds a smaller program: remove it"
    rounds = measure_rounds(prog, args.workers, args.small, args.large, args.rounds)
    per = _median(rounds)
    result = {
        "command": "python -m benchmarks.client_cost " + " ".join(argv or sys.argv[1:]),
        "groups": args.groups,
        "small": args.small,
        "large": args.large,
        "rounds": rounds,
        "per_exposure_median": per,
        "model": model(per, args.workers, args.worker_mb_per_s),
        "client_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "client_cost.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    print(json.dumps(result["per_exposure_median"], indent=2))
    print(json.dumps(result["model"], indent=2))


def _rate(seconds: float) -> float:
    """Exposures a second at ``seconds`` each (too few to measure: no bound)."""
    return 1.0 / seconds if seconds > 0 else math.inf


def _median(rounds: list[dict]) -> dict:
    """Each figure's median over the rounds."""
    out: dict = {}
    for key, value in rounds[0].items():
        if isinstance(value, dict):
            out[key] = {m: statistics.median(r[key][m] for r in rounds) for m in value}
        else:
            out[key] = statistics.median(r[key] for r in rounds)
    return out


if __name__ == "__main__":
    main()
