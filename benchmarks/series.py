"""A large program in one run: is the cost of an exposure flat from 100 to 1,000?

    python -m benchmarks.series [--exposures 100,1000] [--groups 10] [--compress]

Builds (once) a full-frame program of the largest size (time-shifted byte clones; 10
groups keep 1,000 exposures near 21 GB, and the engine reads the same 4 groups at any
ramp length), then runs ``miripersist run --mode sidecar`` as its own process on the
first N exposures of it for each N, and reports per N: wall time, per-exposure cost,
the marginal cost between consecutive N, peak RSS of the process tree and bytes written
(outputs and store; ``/proc/PID/io`` wchar). The page cache is left as it is: a program
this large does not stay in it, so the reads are partly cold, as on a shared file system.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

from .data import build
from .measure import measure
from .run import miripersist_run


def _du(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.series",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--exposures", default="100,1000")
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--compress", action="store_true")
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "miripersist-bench")
    )
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.exposures.split(",")]
    program = build(
        os.path.join(args.workdir, f"data_FULL_{max(sizes)}x{args.groups}"),
        max(sizes),
        args.groups,
    )
    files = sorted(program.files)
    rows = []
    for n in sizes:
        subset = tempfile.mkdtemp(dir=args.workdir, prefix=f"series-{n}-")
        for f in files[:n]:
            os.symlink(f, os.path.join(subset, os.path.basename(f)))
        out = os.path.join(subset, "out")
        cmd = [*miripersist_run(subset, program.saturation_ref), "--output-dir", out]
        cmd += ["--mode", "sidecar", "--quiet"]
        cmd += ["--compress"] if args.compress else []
        m = measure(cmd)
        m.update(n=n, on_disk_bytes=_du(out))
        rows.append(m)
        shutil.rmtree(subset, ignore_errors=True)
        print(
            f"N={n:5d}: {m['wall_s']:7.1f} s, {1e3 * m['wall_s'] / n:6.1f} ms/exposure, "
            f"peak RSS {m['peak_rss_mib']:5.0f} MiB, written {m['written_bytes'] / 1e6:7.1f} MB, "
            f"outputs and store on disk {m['on_disk_bytes'] / 1e6:7.1f} MB",
            flush=True,
        )
    for a, b in zip(rows, rows[1:], strict=False):
        marginal = (b["wall_s"] - a["wall_s"]) / (b["n"] - a["n"])
        print(f"marginal {a['n']} -> {b['n']}: {1e3 * marginal:.1f} ms/exposure")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
