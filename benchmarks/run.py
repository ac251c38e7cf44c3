"""Benchmark runner: the notebook method, miripersist (sidecar, copy) and the floors.

    python -m benchmarks [--exposures 4,12,40] [--groups 30] [--out benchmarks/results]

Every method runs as its own process on the same files in one run; figures are
reported as per-exposure marginal costs, (T(N) - T(N0)) / (N - N0), so that interpreter
start-up does not hide the engine, and as ratios between methods measured together.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

import numpy as np

from .data import build
from .measure import measure

HERE = os.path.dirname(os.path.abspath(__file__))


def offline_env(workdir: str) -> dict:
    """Environment in which jwst steps run with no network (for the notebook baseline)."""
    crds = os.path.join(workdir, "crds")
    os.makedirs(os.path.join(crds, "config", "jwst"), exist_ok=True)
    with open(os.path.join(crds, "config", "jwst", "server_config"), "w") as fh:
        fh.write(
            "{'observatory': 'jwst', 'operational_context': 'jwst_0000.pmap', "
            "'edit_context': 'jwst_0000.pmap', 'force_remote_mode': False, "
            "'bad_files': '', 'bad_files_list': [], 'last_synced': '2026-01-01 00:00:00', "
            "'crds_version': {'str': '14.0.3'}}"
        )
    env = dict(os.environ)
    env.update(
        CRDS_PATH=crds, CRDS_SERVER_URL="http://127.0.0.1:9", STPIPE_DISABLE_CRDS_STEPPARS="True"
    )
    return env


def miripersist_run(directory: str, saturation_ref: str) -> list[str]:
    """``miripersist run DIRECTORY --saturation-ref REF`` in this interpreter."""
    return [
        sys.executable,
        "-m",
        "miripersist",
        "run",
        directory,
        "--saturation-ref",
        saturation_ref,
    ]


def commands(program, out: str) -> dict[str, list[str]]:
    """The command line of every method, writing under ``out``."""
    py = sys.executable
    mp = [*miripersist_run(program.directory, program.saturation_ref), "--quiet", "--overwrite"]
    return {
        "notebook": [
            py,
            os.path.join(HERE, "notebook.py"),
            program.directory,
            os.path.join(out, "notebook"),
            program.saturation_ref,
            program.mask_ref,
        ],
        "sidecar": [*mp, "--mode", "sidecar", "--output-dir", os.path.join(out, "sidecar")],
        # --method pipeline against the pipeline's own step chained by hand (2500 s windows)
        "pipeline_chain": [
            py,
            os.path.join(HERE, "pipeline_chain.py"),
            program.directory,
            os.path.join(out, "pipeline_chain"),
            program.saturation_ref,
            program.mask_ref,
            "2500",
        ],
        "pipeline_states": [
            *mp,
            *("--method", "pipeline", "--window", "2500", "--mode", "sidecar"),
            *("--output-dir", os.path.join(out, "pipeline_states")),
        ],
        "pipeline_copy": [
            *mp,
            *("--method", "pipeline", "--window", "2500", "--mode", "copy"),
            *("--output-dir", os.path.join(out, "pipeline_copy")),
        ],
        "copy": [*mp, "--mode", "copy", "--output-dir", os.path.join(out, "copy")],
        "floor_sidecar": [
            py,
            os.path.join(HERE, "floor_sidecar.py"),
            program.directory,
            os.path.join(out, "floor"),
            program.saturation_ref,
        ],
        "cp": ["cp", "-r", program.directory, os.path.join(out, "cp")],
        # cp leaves the bytes in the page cache; copy mode fsyncs every file before renaming it,
        # so the fair floor for it also waits for the disk.
        "cp_sync": ["sh", "-c", f'cp -r "{program.directory}" "{out}/cp_sync" && sync'],
    }


def warm(paths: list[str]) -> None:
    """Read every input once, so that each method starts with the same (warm) page cache.

    Without it the order of the methods decides who pays for cold reads: the outputs of one
    method push the inputs of the next out of memory.
    """
    buf = bytearray(1 << 23)
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def run_scale(
    workdir: str, n: int, ngroups: int, subarray: str, methods: list[str], repeats: int, env: dict
) -> dict:
    """Time every method on one data set; median of ``repeats``."""
    program = build(os.path.join(workdir, f"data_{subarray}_{n}x{ngroups}"), n, ngroups, subarray)
    samples: dict[str, list[dict]] = {name: [] for name in methods}
    # Round robin: a slow minute on the shared host hits every method's samples alike,
    # instead of all the samples of whichever method ran then.
    for _ in range(repeats):
        for name in methods:
            warm(program.files)
            out = tempfile.mkdtemp(dir=workdir, prefix="out-")
            try:
                samples[name].append(measure(commands(program, out)[name], env))
            finally:
                shutil.rmtree(out, ignore_errors=True)
    results = {}
    for name in methods:
        best = sorted(samples[name], key=lambda s: s["wall_s"])[len(samples[name]) // 2]
        best["wall_s"] = statistics.median(s["wall_s"] for s in samples[name])
        best["exposures_per_s"] = n / best["wall_s"]
        results[name] = best
        print(
            f"  {subarray} N={n:4d} G={ngroups:3d} {name:14s} {best['wall_s']:8.2f} s  "
            f"{best['peak_rss_mib']:7.0f} MiB  read {best['read_bytes'] / 2**20:8.0f} MiB  "
            f"written {best['written_bytes'] / 2**20:8.0f} MiB",
            flush=True,
        )
    return {"n": n, "ngroups": ngroups, "subarray": subarray, "methods": results}


def marginal(rows: list[dict], method: str) -> float | None:
    """Seconds per exposure: the least-squares slope of wall time against N.

    Start-up varies by a few tenths of a second from run to run; a slope over several N
    (the largest far from the smallest) is what stays stable.
    """
    pts = sorted((r["n"], r["methods"][method]["wall_s"]) for r in rows if method in r["methods"])
    if len({n for n, _ in pts}) < 2:
        return None
    n, t = np.array(pts, dtype=float).T
    return float(np.polyfit(n, t, 1)[0])


METHODS = ("notebook", "sidecar", "copy", "floor_sidecar", "cp", "cp_sync")


def summarize(rows: list[dict]) -> dict:
    """Marginal cost per exposure of every method, ratios, and peak memory, for one series."""
    per = {m: marginal(rows, m) for m in METHODS}
    ratios = {}
    for name, (a, b) in {
        "notebook/sidecar": ("notebook", "sidecar"),
        "notebook/copy": ("notebook", "copy"),
        "sidecar/floor_sidecar": ("sidecar", "floor_sidecar"),
        "copy/cp": ("copy", "cp"),
        "copy/cp_sync": ("copy", "cp_sync"),
    }.items():
        if per[a] and per[b]:
            ratios[name] = per[a] / per[b]
    peaks = {
        m: max(r["methods"][m]["peak_rss_mib"] for r in rows if m in r["methods"])
        for m in METHODS
        if any(m in r["methods"] for r in rows)
    }
    return {"marginal_s": per, "ratios": ratios, "peak_rss_mib": peaks}


def report(series: dict[str, list[dict]]) -> str:
    """A text table of marginal costs and ratios."""
    lines = []
    for label, rows in series.items():
        s = summarize(rows)
        lines.append(f"\n{label}")
        for m, v in s["marginal_s"].items():
            if v is not None:
                lines.append(f"  {m:14s} {1000 * v:9.1f} ms/exposure (marginal)")
        for name, v in s["ratios"].items():
            lines.append(f"  {name:22s} = {v:8.2f}")
        lines.append(
            "  peak RSS (MiB): " + ", ".join(f"{m} {v:.0f}" for m, v in s["peak_rss_mib"].items())
        )
    return "\n".join(lines)


def plot(series: dict[str, list[dict]], path: str) -> None:
    """Wall time per exposure and peak memory against N; marginal cost against groups."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    by_groups: dict[str, list[tuple[int, float]]] = {}
    exposure_series = [rows for label, rows in series.items() if label.startswith("exposures")]
    styles = ["o-", "s--", "^:", "D-."]
    group_style = {rows[0]["ngroups"]: styles[i % 4] for i, rows in enumerate(exposure_series)}
    for rows in series.values():
        for m, v in summarize(rows)["marginal_s"].items():
            if v is not None:
                by_groups.setdefault(m, []).append((rows[0]["ngroups"], 1000 * v))
    for rows in exposure_series:
        style = group_style[rows[0]["ngroups"]]
        for i, m in enumerate(METHODS):
            pts = [(r["n"], r["methods"][m]) for r in rows if m in r["methods"]]
            if pts:
                kw = {"color": f"C{i}"}
                axes[0].plot([n for n, _ in pts], [s["wall_s"] / n for n, s in pts], style, **kw)
                axes[1].plot([n for n, _ in pts], [s["peak_rss_mib"] for _, s in pts], style, **kw)
    # Colour is the method, line style the ramp length.
    handles = [plt.Line2D([], [], color=f"C{i}", label=m) for i, m in enumerate(METHODS)]
    handles += [
        plt.Line2D([], [], color="grey", linestyle=st[1:], marker=st[0], label=f"{g} groups")
        for g, st in group_style.items()
    ]
    for m, pts in by_groups.items():
        pts.sort()
        axes[2].plot(
            [g for g, _ in pts], [v for _, v in pts], "o-", label=m, color=f"C{METHODS.index(m)}"
        )
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="exposures",
        ylabel="wall s / exposure",
        title="Wall time per exposure (start-up included)",
    )
    axes[1].set(
        xscale="log",
        xlabel="exposures",
        ylabel="peak RSS of the process tree (MiB)",
        title="Peak memory",
    )
    axes[2].set(
        xscale="log",
        yscale="log",
        xlabel="groups per integration",
        ylabel="marginal ms / exposure",
        title="Marginal cost against ramp length",
    )
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--exposures", default="4,12,40", help="exposure counts (comma list)")
    parser.add_argument("--groups", type=int, default=30, help="groups for the exposure series")
    parser.add_argument("--group-series", default="", help="group counts (comma list)")
    parser.add_argument(
        "--group-exposures", default="4,12", help="the two exposure counts of each group point"
    )
    parser.add_argument("--subarray", default="FULL")
    parser.add_argument(
        "--notebook-max",
        type=int,
        default=12,
        help="largest N at which the (slow) notebook method runs",
    )
    parser.add_argument("--methods", default="notebook,sidecar,copy,floor_sidecar,cp,cp_sync")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--combine",
        nargs="+",
        metavar="JSON",
        help="no runs: report and plot the series of these results.json files together",
    )
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "miripersist-bench")
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)

    os.makedirs(args.workdir, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    if args.combine:
        return combine(args.combine, args.out)
    env = offline_env(args.workdir)
    methods = args.methods.split(",")
    series: dict[str, list[dict]] = {}

    def scale(n: int, g: int) -> dict:
        use = [m for m in methods if m != "notebook" or n <= args.notebook_max]
        return run_scale(args.workdir, n, g, args.subarray, use, args.repeats, env)

    startup = {
        "cli_help": measure([sys.executable, "-m", "miripersist", "--help"], env)["wall_s"],
        "import_engine": measure([sys.executable, "-c", "import miripersist.engine"], env)[
            "wall_s"
        ],
        "python": measure([sys.executable, "-c", "pass"], env)["wall_s"],
    }
    print("start-up: " + ", ".join(f"{k} {v:.2f} s" for k, v in startup.items()), flush=True)
    label = f"exposures ({args.subarray}, {args.groups} groups)"
    series[label] = [scale(int(n), args.groups) for n in args.exposures.split(",")]
    for g in filter(None, args.group_series.split(",")):
        if int(g) == args.groups:
            continue  # measured in the exposure series
        label = f"groups ({args.subarray}, {g} groups)"
        series[label] = [scale(int(n), int(g)) for n in args.group_exposures.split(",")]
    save(series, startup, args.out)
    return 0


def save(series: dict[str, list[dict]], startup: dict, out: str) -> None:
    """Print the report; write ``results.json`` and ``scaling.png`` into ``out``."""
    text = (
        report(series) + "\nstart-up (s): " + ", ".join(f"{k} {v:.2f}" for k, v in startup.items())
    )
    print(text)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as fh:
        summary = {label: summarize(rows) for label, rows in series.items()}
        json.dump(
            {"series": series, "summary": summary, "startup": startup, "report": text}, fh, indent=1
        )
    plot(series, os.path.join(out, "scaling.png"))


def combine(paths: list[str], out: str) -> int:
    """One report and plot from the series of several runs' ``results.json``."""
    series: dict[str, list[dict]] = {}
    startup: dict = {}
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        series.update(data["series"])
        startup = startup or data["startup"]
    save(series, startup, out)
    return 0
