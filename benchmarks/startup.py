"""Start-up: what the command line costs on one exposure, beside the interpreter's floor.

    python -m benchmarks.startup [--repeats 7] [--groups 10] [--out benchmarks/results]

Every row is a fresh process, timed from outside (``benchmarks.measure``); the rows are
sampled round robin (so that a slow moment of a shared host hits them all) and the median
of ``--repeats`` is kept, with the smallest and largest sample:

| row | command |
| --- | --- |
| `python` | ``python -c pass`` |
| `numpy_fits` | ``python -c "import numpy, astropy.io.fits"``: the floor of any FITS tool |
| `help` | ``miripersist --help`` |
| `import_engine` | ``python -c "import miripersist.engine"`` |
| `run_one` | ``miripersist run`` on one full-frame exposure: copy mode, summary printed |
| `run_one_quiet` | the same with ``--quiet`` (no summary table) |

The runs write into a fresh output directory each time (a first run, not a resume), with
the input read once just before (warm page cache). ``--versions before=DIR1,after=DIR2``
adds the two run rows for each of those source trees (each a copy of ``src``, imported
through ``PYTHONPATH``), sampled in the same rounds: ``run_one@before`` and so on. The
report gives each row in seconds and as a ratio to ``numpy_fits``; ``startup.json`` (or
``--name``) in ``--out`` keeps every sample.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

from .data import build
from .measure import measure
from .run import miripersist_run

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = ("python", "numpy_fits", "help", "import_engine", "run_one", "run_one_quiet")


def commands(program, out: str) -> dict[str, list[str]]:
    """The command line of every row; runs write under ``out``."""
    py = sys.executable
    run = miripersist_run(program.directory, program.saturation_ref)
    return {
        "python": [py, "-c", "pass"],
        "numpy_fits": [py, "-c", "import numpy, astropy.io.fits"],
        "help": [py, "-m", "miripersist", "--help"],
        "import_engine": [py, "-c", "import miripersist.engine"],
        "run_one": [*run, "--output-dir", os.path.join(out, "run_one")],
        "run_one_quiet": [*run, "--output-dir", os.path.join(out, "run_one_quiet"), "--quiet"],
    }


def _warm(paths: list[str]) -> None:
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while fh.read(1 << 23):
                pass


def sample(
    program, workdir: str, rows: list[str], repeats: int, versions: dict[str, str] | None = None
) -> dict[str, list[float]]:
    """Wall seconds of every row, ``repeats`` samples each, taken round robin.

    A row ``ROW@NAME`` runs ``ROW`` with the package imported from ``versions[NAME]``.
    """
    versions = versions or {}
    walls: dict[str, list[float]] = {row: [] for row in rows}
    for _ in range(repeats):
        for row in rows:
            base, _, name = row.partition("@")
            env = dict(os.environ, PYTHONPATH=os.path.abspath(versions[name])) if name else None
            out = tempfile.mkdtemp(dir=workdir, prefix="startup-")
            try:
                if base.startswith("run"):
                    _warm([*program.files, program.saturation_ref])
                walls[row].append(measure(commands(program, out)[base], env)["wall_s"])
            finally:
                shutil.rmtree(out, ignore_errors=True)
    return walls


def report(walls: dict[str, list[float]]) -> str:
    """Median, smallest and largest sample of every row, and the median over numpy_fits'."""
    floor = statistics.median(walls["numpy_fits"]) if walls.get("numpy_fits") else None
    lines = [f"{'row':14s} {'median':>8s} {'min':>7s} {'max':>7s}  / numpy_fits"]
    for row, values in walls.items():
        median = statistics.median(values)
        ratio = f"{median / floor:8.2f}" if floor else ""
        lines.append(f"{row:14s} {median:7.2f}s {min(values):6.2f}s {max(values):6.2f}s  {ratio}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.startup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=7, help="samples of each row")
    parser.add_argument("--groups", type=int, default=10, help="groups of the exposure")
    parser.add_argument("--rows", default=",".join(ROWS), help="rows to time (comma list)")
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "miripersist-bench")
    )
    parser.add_argument(
        "--versions", default="", help="NAME=SRC_DIR,...: also time the runs of these trees"
    )
    parser.add_argument("--name", default="startup.json", help="results file in --out")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)

    rows = args.rows.split(",")
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        parser.error(f"unknown rows: {', '.join(unknown)} (known: {', '.join(ROWS)})")
    versions = dict(v.split("=", 1) for v in filter(None, args.versions.split(",")))
    rows += [f"{row}@{name}" for name in versions for row in rows if row.startswith("run")]
    os.makedirs(args.workdir, exist_ok=True)
    program = build(os.path.join(args.workdir, f"data_FULL_1x{args.groups}"), 1, args.groups)
    walls = sample(program, args.workdir, rows, args.repeats, versions)
    text = report(walls)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, args.name), "w") as fh:
        json.dump(
            {
                "samples_s": walls,
                "median_s": {row: statistics.median(v) for row, v in walls.items()},
                "cpus": os.cpu_count(),
                "report": text,
            },
            fh,
            indent=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
