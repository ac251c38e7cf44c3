"""The scaling figure of docs/benchmarks.md, from the harness's results files.

    python -m benchmarks.scaling_figure RESULTS.json ... --out docs/images/benchmark_scaling.png

Left: each method's marginal cost an exposure, a group of bars per ramp length (log
scale: the notebook is a hundred times the rest). Right: peak memory against the number
of exposures at the ramp length of the first file, for the tool and the notebook.
"""

from __future__ import annotations

import argparse
import json
import sys

from .run import METHODS, summarize


def main(argv: list[str] | None = None) -> int:
    """Draw the figure from ``python -m benchmarks`` results files."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling_figure")
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [rows for path in args.results for rows in json.load(open(path))["series"].values()]
    runs.sort(key=lambda rows: rows[0]["ngroups"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=(3, 2))
    width = 0.8 / len(runs)
    for k, rows in enumerate(runs):
        marginal = summarize(rows)["marginal_s"]
        shown = [m for m in METHODS if marginal.get(m)]
        xs = [METHODS.index(m) + (k - (len(runs) - 1) / 2) * width for m in shown]
        left.bar(
            xs, [1000 * marginal[m] for m in shown], width, label=f"{rows[0]['ngroups']} groups"
        )
    left.set_xticks(range(len(METHODS)), METHODS, rotation=20)
    left.set(yscale="log", ylabel="ms an exposure (marginal)", title="Cost of one more exposure")
    left.legend(frameon=False)
    thirty = [r for r in runs if r[0]["ngroups"] == 30]
    rows = thirty[0] if thirty else runs[0]
    for method, style in (("sidecar", "o-"), ("copy", "s-"), ("notebook", "^--")):
        pts = [
            (r["n"], r["methods"][method]["peak_rss_mib"]) for r in rows if method in r["methods"]
        ]
        right.plot([n for n, _ in pts], [v for _, v in pts], style, label=method)
    right.set(
        xscale="log",
        ylim=(0, None),
        xlabel="exposures in the run",
        ylabel="peak RSS (MiB)",
        title=f"Peak memory, {rows[0]['ngroups']} groups",
    )
    right.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
