"""The detector memory at scale: its size, the query of a run's lookback, a run's extra cost.

    python -m benchmarks.memory [--entries 100000] [--pixels 1000] [--per-add 100]
        [--exposures 32] [--groups 10] [--rounds 3] [--out DIR]

1. A memory of ``--entries`` entries on three detectors, one exposure every ten minutes on
   each, built as runs would build it: ``--per-add`` entries an add (each a batch, small
   batches merged as they accumulate), every entry ``--pixels`` source pixels at random
   (synthetic sparse sources). Reported: the time to build it, its batches, its size on disk.
2. The query a run makes of it: a fresh :class:`~miripersist.memory.Memory`, the entries in
   the reach of a run of 20 exposures over half an hour with the default 24 h lookback,
   :func:`~miripersist.recall.recall` and the pixels of those taken, at 9 times spread over
   the memory's span; the median and the slowest.
3. A run's cost with the memory against without: the same ``--exposures``-exposure program
   (sidecar, warm), run by the command line in a process of its own, with ``--memory`` and
   without, one after the other in each of ``--rounds`` rounds; the difference per
   exposure, round by round, and the peak RSS of each.

``memory.json`` in ``--out`` keeps every figure. The data are removed at the end.
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

import numpy as np

from miripersist.inventory import DETECTOR_SHAPE
from miripersist.memory import Memory
from miripersist.recall import LOOKBACK_DAYS, Entry, Own, reach, recall

from .data import build
from .measure import measure

DETECTORS = ("MIRIMAGE", "MIRIFUSHORT", "MIRIFULONG")
CADENCE_DAYS = 10.0 / 1440.0
#: The benchmark program's first exposure (benchmarks.data's programs start here).
PROGRAM_MJD = 60300.0


def _entries(first: int, n: int, pixels: int, t0: float, rng) -> list[Entry]:
    out = []
    for k in range(first, first + n):
        detector = DETECTORS[k % len(DETECTORS)]
        start = t0 + (k // len(DETECTORS)) * CADENCE_DAYS
        flat = np.unique(rng.integers(0, DETECTOR_SHAPE[0] * DETECTOR_SHAPE[1], pixels))
        out.append(
            Entry(
                f"jw{k:011d}_02101_00001_{detector.lower()}_uncal.fits",
                detector,
                f"{k:064x}",
                start,
                start + 0.5 * CADENCE_DAYS / 10,
                start + CADENCE_DAYS / 10,
                program=f"{k // 500:05d}",
                key="benchmark",
                pixels=flat.astype(np.int32),
            )
        )
    return out


def build_memory(path: str, n: int, pixels: int, per_add: int, t0: float) -> dict:
    """Fill a memory as runs would; its build time, batches and size."""
    rng = np.random.default_rng(0)
    began = time.perf_counter()
    memory = Memory(path, create=True)
    for first in range(0, n, per_add):
        memory.add(_entries(first, min(per_add, n - first), pixels, t0, rng), {"benchmark": 1})
    seconds = time.perf_counter() - began
    size = sum(
        os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files
    )
    return {
        "entries": n,
        "build_s": seconds,
        "batches": len(memory.names(memory.batches)),
        "size_mb": size / 1e6,
        "bytes_per_entry": size / n,
    }


def query(path: str, when: float) -> tuple[float, int]:
    """One run's query at ``when``: seconds, and entries taken."""
    own = [
        Own(f"own{k}", "MIRIMAGE", when + k * 1.5 / 1440, when + k * 1.5 / 1440) for k in range(20)
    ]
    began = time.perf_counter()
    memory = Memory(path)
    found = memory.entries(reach(own, LOOKBACK_DAYS))
    taken = recall(found, own, "benchmark", {}, LOOKBACK_DAYS)
    pixels = [memory.with_pixels(chosen) for chosen in taken.entries.values()]
    return time.perf_counter() - began, sum(len(p) for p in pixels)


def run_cost(directory: str, memory: str, n: int, groups: int, rounds: int) -> list[dict]:
    """Per round: seconds and peak RSS of the run with the memory and without."""
    program = build(os.path.join(directory, "program"), n, groups)
    samples = []
    for r in range(rounds):
        row = {}
        for side in ("without", "with"):
            out = os.path.join(directory, f"out-{side}-{r}")
            cmd = [sys.executable, "-m", "miripersist", "run", *program.files]
            cmd += ["--output-dir", out, "--saturation-ref", program.saturation_ref]
            cmd += ["--mode", "sidecar", "--quiet"]
            if side == "with":
                cmd += ["--memory", memory]
            got = measure(cmd)
            row[side] = {"wall_s": got["wall_s"], "peak_rss_mib": got["peak_rss_mib"]}
            shutil.rmtree(out, ignore_errors=True)
        row["extra_ms_per_exposure"] = (row["with"]["wall_s"] - row["without"]["wall_s"]) / n * 1e3
        samples.append(row)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--pixels", type=int, default=1000)
    parser.add_argument("--per-add", type=int, default=100)
    parser.add_argument("--exposures", type=int, default=32)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=".")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="miripersist-memory-")
    try:
        path = os.path.join(work, "memory")
        per_detector = args.entries / len(DETECTORS) * CADENCE_DAYS
        t0 = PROGRAM_MJD - per_detector / 2  # the program falls in the memory's middle
        built = build_memory(path, args.entries, args.pixels, args.per_add, t0)
        print(json.dumps(built))
        times = [t0 + per_detector * (k + 1) / 10 for k in range(9)]
        queries = [query(path, when) for when in times]
        seconds = [q[0] for q in queries]
        result = {
            **built,
            "query_s_median": statistics.median(seconds),
            "query_s_max": max(seconds),
            "query_entries_taken": statistics.median(q[1] for q in queries),
            "run": run_cost(work, path, args.exposures, args.groups, args.rounds),
        }
        result["extra_ms_per_exposure_median"] = statistics.median(
            r["extra_ms_per_exposure"] for r in result["run"]
        )
        print(json.dumps(result, indent=2))
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "memory.json"), "w") as fh:
            json.dump(result, fh, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
