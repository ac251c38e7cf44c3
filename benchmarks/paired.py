"""Two versions of the engine, job by job, in the same rounds: the guard of a change.

    python -m benchmarks.paired --versions before=DIR1,after=DIR2 [--exposures 10,40]
        [--groups 30] [--rounds 3] [--jobs sidecar,copy,pipeline,workers]

Each version is a source tree (a copy of ``src``, e.g. ``git worktree add``). For every
round, every job and every version, a process of its own imports miripersist from that
tree, runs the job once untimed on the first N0 exposures (imports, threads, allocator),
then times it on the first N0 and the first N, inputs warm, and the marginal cost
(T(N) - T(N0)) / (N - N0) is kept with the peak RSS of its process tree. The versions of a
job run one after the other within a round, so their ratio, taken round by round, is
steadier on a shared host than a ratio of medians: the median of those ratios is what
the summary gives.

| job | what it runs |
| --- | --- |
| `sidecar` | ``run(..., Parameters(mode="sidecar"))`` |
| `copy` | ``run(..., Parameters(mode="copy"))`` (the copies flushed to disk) |
| `pipeline` | ``run(..., Parameters(method="pipeline", mode="sidecar", window_days=2500 s))`` |
| `workers` | the sidecar job on a ``LocalCluster`` of 2 worker processes x 2 threads |
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

from .measure import measure

HERE = os.path.dirname(os.path.abspath(__file__))
JOBS = ("sidecar", "copy", "pipeline", "workers")


def _parameters(job: str):
    from miripersist import Parameters

    if job == "copy":
        return Parameters(mode="copy")
    if job == "pipeline":
        return Parameters(method="pipeline", mode="sidecar", window_days=2500.0 / 86400.0)
    return Parameters(mode="sidecar")


def child(args: argparse.Namespace) -> int:
    """One job, one version: time it on N0 and N exposures; write the times as JSON."""
    sys.path.insert(0, args.src)  # before the installed package
    import miripersist

    if not miripersist.__file__.startswith(args.src):
        raise RuntimeError(f"miripersist imported from elsewhere than {args.src}")
    files = args.files.split(os.pathsep)
    ns = [int(n) for n in args.exposures.split(",")]
    params, client = _parameters(args.child), None
    if args.child == "workers":
        from distributed import Client, LocalCluster

        client = Client(LocalCluster(n_workers=2, threads_per_worker=2, processes=True))

    def one_pass(n: int) -> float:
        out = tempfile.mkdtemp(dir=args.outputs, prefix=f"{args.child}-")
        for path in files[:n]:
            with open(path, "rb") as fh:
                while fh.read(1 << 24):
                    pass
        t0 = time.perf_counter()
        miripersist.run(files[:n], out, [args.ref], params)
        elapsed = time.perf_counter() - t0
        shutil.rmtree(out)
        return elapsed

    one_pass(ns[0])
    times = {n: one_pass(n) for n in ns}
    if client is not None:
        client.close()
    with open(args.result, "w") as fh:
        json.dump(times, fh)
    return 0


def summarize(samples: dict, versions: list[str], ns: list[int]) -> dict:
    """Per job: each version's median marginal cost and peak RSS, and their paired ratios."""
    out: dict = {"exposures": ns, "jobs": {}}
    lines = []
    base = versions[0]
    for job, by_version in samples.items():
        row: dict = {}
        for version, runs in by_version.items():
            row[version] = {
                "marginal_ms": [1000 * r["marginal_s"] for r in runs],
                "median_ms": 1000 * statistics.median(r["marginal_s"] for r in runs),
                "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs),
            }
        for version in versions[1:]:
            ratios = [
                a["marginal_s"] / b["marginal_s"]
                for a, b in zip(by_version[version], by_version[base], strict=True)
            ]
            row[version]["ratios"] = ratios
            row[version]["median_ratio"] = statistics.median(ratios)
        out["jobs"][job] = row
        text = ", ".join(
            f"{v} {row[v]['median_ms']:.1f} ms ({row[v]['peak_rss_mib']:.0f} MiB)" for v in versions
        )
        ratio = ", ".join(
            f"{v}/{base} {row[v]['median_ratio']:.2f} "
            f"({' '.join(f'{r:.2f}' for r in row[v]['ratios'])})"
            for v in versions[1:]
        )
        lines.append(f"{job:9s} {text}; {ratio}")
    out["report"] = "\n".join(lines)
    return out


def main(argv: list[str] | None = None) -> int:
    """Time every job of every version, round robin; print and save the summary."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__)
    parser.add_argument("--versions", required=False, help="NAME=SRC_DIR,... (first: the base)")
    parser.add_argument("--exposures", default="10,40", help="N0,N")
    parser.add_argument("--groups", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "miripersist-bench")
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results", "paired.json"))
    for hidden in ("--child", "--src", "--files", "--ref", "--result", "--outputs"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if not args.versions:
        parser.error("--versions NAME=SRC_DIR,... is needed")
    from .data import build

    ns = [int(n) for n in args.exposures.split(",")]
    program = build(
        os.path.join(args.workdir, f"data_FULL_{ns[1]}x{args.groups}"), ns[1], args.groups
    )
    files = sorted(program.files)[: ns[1]]
    versions = dict(v.split("=", 1) for v in args.versions.split(","))
    jobs = args.jobs.split(",")
    samples = {job: {v: [] for v in versions} for job in jobs}
    outputs = tempfile.mkdtemp(dir=args.workdir, prefix="paired-outputs-")
    try:
        for _ in range(args.rounds):
            for job in jobs:
                for version, src in versions.items():
                    samples[job][version].append(
                        _sample(job, os.path.abspath(src), files, program, ns, args, outputs)
                    )
    finally:
        shutil.rmtree(outputs, ignore_errors=True)
    summary = summarize(samples, list(versions), ns)
    print(summary["report"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(summary, fh, indent=1)
    return 0


def _sample(job, src, files, program, ns, args, outputs) -> dict:
    fd, result = tempfile.mkstemp(dir=args.workdir, suffix=".json")
    os.close(fd)
    cmd = [
        *(sys.executable, "-m", "benchmarks.paired", "--child", job, "--src", src),
        *("--files", os.pathsep.join(files), "--ref", program.saturation_ref),
        *("--exposures", args.exposures, "--result", result, "--outputs", outputs),
    ]
    stats = measure(cmd, dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
    with open(result) as fh:
        times = {int(k): v for k, v in json.load(fh).items()}
    os.unlink(result)
    stats["marginal_s"] = (times[ns[1]] - times[ns[0]]) / (ns[1] - ns[0])
    print(
        f"  {job:9s} {os.path.basename(src.rstrip('/'))[:20]:20s} "
        f"{1000 * stats['marginal_s']:7.1f} ms/exposure  peak {stats['peak_rss_mib']:5.0f} MiB",
        flush=True,
    )
    return stats


if __name__ == "__main__":
    sys.exit(main())
