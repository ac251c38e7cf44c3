"""Cold page cache: the sidecar job against the bare reads of the bytes it needs.

    python -m benchmarks.cold [--exposures 8,40] [--groups 30] [--repeats 3]

Each method runs in its own process (peak RSS of that process), imports what it needs, does
one untimed pass over the smallest program (imports, thread pools, allocator), then times
itself on the first N0 and the first N exposures, with the inputs dropped from the page
cache (``posix_fadvise(DONTNEED)`` on every input file) or read once (warm) just before
each timed pass. The per-exposure marginal cost is (T(N) - T(N0)) / (N - N0), timed inside
the process, so that neither interpreter start-up nor a run's fixed cost hides it. Samples
are taken round robin over the methods and states; the median of each point is kept.

Every pass writes into a directory of its own, and the outputs are removed only once every
method has run (the notebook's, 100 MB an exposure at 30 groups, after each of its passes).
On ext4 without a journal, creating a file skips, with one inode-table lookup each, every
inode of its block group freed in the last one to six minutes: removing a pass's outputs
just before the next pass made each file that pass created pay for the harness's own
deletions (2-4 ms of CPU an exposure here, seen with ``perf``). Start a run some minutes
after deleting many files.

| method | what it is |
| --- | --- |
| `sidecar` | ``miripersist.run(..., Parameters(mode="sidecar"))`` on the files |
| `floor_sidecar` | ``benchmarks/floor_sidecar.py``'s serial numpy/astropy script |
| `bare_reads` | serial ``pread``s of the deciding groups of the first integration of each |
|              | file, one group at a time into one buffer (headers parsed before timing) |
| `notebook` | ``benchmarks/notebook.py``'s method (jwst's steps on every file), offline; |
|            | not run unless named: it costs a second or two an exposure |

Each method's figure is also given over the notebook's of the same round, when it ran.

``--versions before=DIR1,after=DIR2`` adds ``sidecar@before`` and ``sidecar@after``: the
engine imported from those source trees (each a copy of ``src``), to compare two versions
of the code in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

from .measure import measure

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = ("sidecar", "floor_sidecar", "bare_reads", "notebook")
DEFAULT_METHODS = ("sidecar", "floor_sidecar", "bare_reads")
STATES = ("cold", "warm")


def drop(paths: list[str]) -> None:
    """Drop the files' pages from the page cache (clean pages only: inputs are never written)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(paths: list[str]) -> None:
    """Read every file once, so that all its pages are in the page cache."""
    buf = bytearray(1 << 23)
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def _job(method: str, ref: str, mask_ref: str = "", n_unsat: int = 3):
    """A function of a list of files and an output directory that does ``method``'s work."""
    if method == "notebook":
        sys.path.insert(0, HERE)
        from notebook import notebook

        return lambda files, out: notebook(files, out, ref, mask_ref, n_unsat)
    if method == "sidecar":
        from miripersist import Parameters, run

        def sidecar(files: list[str], out: str) -> None:
            run(files, out, [ref], Parameters(mode="sidecar"), overwrite=True)

        return sidecar
    if method == "floor_sidecar":
        sys.path.insert(0, HERE)
        from floor_sidecar import sidecars

        return lambda files, out: sidecars(files, out, ref)
    if method == "bare_reads":
        import numpy as np

        from miripersist.inventory import read_exposure
        from miripersist.saturation import groups_needed

        spans = {}

        def bare(files: list[str]) -> list[tuple]:
            todo = []
            for path in files:
                if path not in spans:  # headers parsed outside the timed reads
                    lay = read_exposure(path).sci
                    _, ngroups, ny, nx = lay.shape
                    frame = ny * nx * lay.dtype.itemsize
                    spans[path] = (lay.offset, frame, groups_needed(ngroups, n_unsat))
                todo.append((path, *spans[path]))
            return todo

        buf = np.empty(4 << 20, dtype=np.uint8)

        def reads(todo, _out: str) -> None:
            for path, offset, frame, groups in todo:
                fd = os.open(path, os.O_RDONLY)
                try:
                    for g in range(groups):
                        os.preadv(fd, [memoryview(buf[:frame])], offset + g * frame)
                finally:
                    os.close(fd)

        reads.prepare = bare
        return reads
    raise ValueError(method)


def child(args: argparse.Namespace) -> int:
    """One method, one state: time it on N0 and N exposures; write the times as JSON."""
    if args.src:
        sys.path.insert(0, args.src)  # before the installed package
        args.child = args.child.split("@")[0]
    files = args.files.split(os.pathsep)
    ns = [int(n) for n in args.exposures.split(",")]
    job = _job(args.child, args.ref, args.mask_ref)
    if args.src and not sys.modules["miripersist"].__file__.startswith(args.src):
        raise RuntimeError(f"miripersist imported from elsewhere than {args.src}")
    prepare = getattr(job, "prepare", lambda fs: fs)

    def one_pass(work: list[str]) -> str:
        out = tempfile.mkdtemp(dir=args.outputs, prefix=f"{args.child}-")
        job(work, out)
        return out

    def done_with(out: str) -> None:
        if args.child == "notebook":  # whole ramps: too big to keep to the end
            shutil.rmtree(out)

    done_with(one_pass(prepare(files[: ns[0]])))  # untimed: imports, threads, allocator
    times = {}
    for n in ns:
        work = prepare(files[:n])
        if args.state == "cold":
            drop(files)
        else:
            warm(files[:n])
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        out = one_pass(work)
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        done_with(out)
        cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
        times[n] = [t1 - t0, cpu]
    with open(args.result, "w") as fh:
        json.dump(times, fh)
    return 0


def _marginal(times: dict, ns: list[int], k: int) -> float:
    """Seconds per exposure between the two sizes (k: 0 wall time, 1 CPU time)."""
    return (times[ns[1]][k] - times[ns[0]][k]) / (ns[1] - ns[0])


def _paired(runs: list[dict], base: list[dict]) -> list[float]:
    """Marginal cost of ``runs`` over that of ``base``, round by round."""
    return [r["marginal_s"] / b["marginal_s"] for r, b in zip(runs, base, strict=True)]


def summarize(samples: dict, ns: list[int], groups: int, repeats: int) -> dict:
    """Median marginal costs, peak RSS, and ratios to the bare reads paired by round.

    Sample k of every method was taken in round k, minutes apart at most: the ratio of two
    methods' samples of one round is steadier on a shared host than the ratio of medians.
    """
    summary: dict = {"exposures": ns, "groups": groups, "repeats": repeats, "rows": {}}
    lines = [f"\nFULL, {groups} groups, N = {ns[0]} and {ns[1]}, median of {repeats}"]
    for (method, state), runs in samples.items():
        row = {
            "marginal_s": statistics.median(r["marginal_s"] for r in runs),
            "marginal_cpu_s": statistics.median(r["marginal_cpu_s"] for r in runs),
            "marginal_samples_s": [r["marginal_s"] for r in runs],
            "t_s": {n: statistics.median(r["times"][n][0] for r in runs) for n in ns},
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        }
        base = samples.get(("bare_reads", state))
        if base and method != "bare_reads":
            paired = _paired(runs, base)
            row["over_bare_reads"] = statistics.median(paired)
            row["over_bare_reads_samples"] = paired
        slow = samples.get(("notebook", state))
        if slow and method != "notebook":
            paired = _paired(slow, runs)
            row["notebook_over"] = statistics.median(paired)
            row["notebook_over_samples"] = paired
        summary["rows"][f"{method} {state}"] = row
        lines.append(
            f"  {method:14s} {state:4s} {1000 * row['marginal_s']:7.1f} ms/exposure "
            f"(CPU {1000 * row['marginal_cpu_s']:5.1f} ms)  peak RSS {row['peak_rss_mib']:5.0f} MiB"
            + (
                f"  / bare reads {row['over_bare_reads']:5.2f} "
                f"({', '.join(f'{x:.2f}' for x in row['over_bare_reads_samples'])})"
                if "over_bare_reads" in row
                else ""
            )
            + (
                f"  notebook / this {row['notebook_over']:5.0f}x "
                f"({', '.join(f'{x:.0f}' for x in row['notebook_over_samples'])})"
                if "notebook_over" in row
                else ""
            )
        )
    summary["report"] = "\n".join(lines)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cold",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--exposures", default="8,40", help="N0,N (the two program sizes)")
    parser.add_argument("--groups", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help=f"of {', '.join(METHODS)}"
    )
    parser.add_argument("--states", default=",".join(STATES))
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "miripersist-bench")
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results", "cold.json"))
    parser.add_argument(
        "--versions", default="", help="NAME=SRC_DIR,...: also time the engine of these trees"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    parser.add_argument("--ref", help=argparse.SUPPRESS)
    parser.add_argument("--mask-ref", default="", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--outputs", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    if args.child:
        return child(args)

    from .data import build  # not at the top: a child may import another miripersist
    from .run import offline_env

    ns = [int(n) for n in args.exposures.split(",")]
    if len(ns) != 2 or not 0 < ns[0] < ns[1]:
        parser.error("--exposures takes two sizes, N0 < N")
    n, g = ns[1], args.groups
    program = build(os.path.join(args.workdir, f"data_FULL_{n}x{g}"), n, g, "FULL")
    files = sorted(program.files)[:n]
    methods, states = args.methods.split(","), args.states.split(",")
    versions = dict(v.split("=", 1) for v in filter(None, args.versions.split(",")))
    methods += [f"sidecar@{name}" for name in versions]
    samples: dict[tuple[str, str], list[dict]] = {(m, s): [] for s in states for m in methods}
    env = offline_env(args.workdir)  # the notebook's jwst steps, with no network
    outputs = tempfile.mkdtemp(dir=args.workdir, prefix="cold-outputs-")
    try:
        for _ in range(args.repeats):
            for state in states:
                for method in methods:
                    fd, result = tempfile.mkstemp(dir=args.workdir, suffix=".json")
                    os.close(fd)
                    cmd = [
                        *(sys.executable, "-m", "benchmarks.cold", "--child", method),
                        *("--state", state, "--exposures", args.exposures),
                        *("--files", os.pathsep.join(files), "--ref", program.saturation_ref),
                        *("--mask-ref", program.mask_ref),
                        *("--workdir", args.workdir, "--result", result),
                        *("--outputs", outputs),
                    ]
                    if "@" in method:
                        cmd += ["--src", os.path.abspath(versions[method.split("@")[1]])]
                    stats = measure(cmd, dict(env, PYTHONPATH=os.path.dirname(HERE)))
                    with open(result) as fh:
                        stats["times"] = {int(k): v for k, v in json.load(fh).items()}
                    os.unlink(result)
                    stats["marginal_s"] = _marginal(stats["times"], ns, 0)
                    stats["marginal_cpu_s"] = _marginal(stats["times"], ns, 1)
                    samples[(method, state)].append(stats)
                    print(
                        f"  {state:4s} {method:14s} T({ns[0]}) {stats['times'][ns[0]][0]:6.2f} s  "
                        f"T({n}) {stats['times'][n][0]:6.2f} s  "
                        f"{1000 * stats['marginal_s']:7.1f} ms/exposure  "
                        f"(CPU {1000 * stats['marginal_cpu_s']:5.1f} ms)  "
                        f"peak {stats['peak_rss_mib']:5.0f} MiB",
                        flush=True,
                    )
    finally:
        shutil.rmtree(outputs, ignore_errors=True)
    summary = summarize(samples, ns, g, args.repeats)
    print(summary["report"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(summary, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
