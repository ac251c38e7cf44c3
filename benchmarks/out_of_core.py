"""Out of core: a data set larger than a memory limit completes with identical results.

    python -m benchmarks.out_of_core [--exposures 160] [--groups 30] [--limit-mib 2048]

The engine runs twice on the same files in sidecar mode: once without a limit, once in a
process whose address space is capped (RLIMIT_AS, which also bounds what it can map or
allocate). The data set is several times the cap. The sidecar files and the store's
masks must be identical.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import sys
import tempfile

import numpy as np
import xarray as xr

from .data import build
from .measure import measure
from .run import commands


def _digest(directory: str) -> dict[str, str]:
    out = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith("_persistence_dq.fits"):
            with open(os.path.join(directory, name), "rb") as fh:
                out[name] = hashlib.sha256(fh.read()).hexdigest()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.out_of_core",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--exposures", type=int, default=160)
    parser.add_argument("--groups", type=int, default=30)
    parser.add_argument("--limit-mib", type=int, default=2048)
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "miripersist-bench")
    )
    args = parser.parse_args(argv)

    n, g = args.exposures, args.groups
    program = build(os.path.join(args.workdir, f"data_FULL_{n}x{g}"), n, g, "FULL")
    size = sum(os.path.getsize(f) for f in program.files)
    limit = args.limit_mib * 2**20
    free = tempfile.mkdtemp(dir=args.workdir)
    capped = tempfile.mkdtemp(dir=args.workdir)
    try:
        a = measure(commands(program, free)["sidecar"])
        env = dict(os.environ, MALLOC_ARENA_MAX="2")

        def cap() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        b = measure(commands(program, capped)["sidecar"], env, preexec=cap)
        da, db = _digest(os.path.join(free, "sidecar")), _digest(os.path.join(capped, "sidecar"))
        same_files = da == db and len(da) == n
        ma = xr.open_zarr(os.path.join(free, "sidecar", "persistence.zarr"))["mask"].values
        mb = xr.open_zarr(os.path.join(capped, "sidecar", "persistence.zarr"))["mask"].values
        same_store = bool(np.array_equal(ma, mb))
    finally:
        shutil.rmtree(free, ignore_errors=True)
        shutil.rmtree(capped, ignore_errors=True)
    print(f"data set: {n} exposures x {g} groups, {size / 2**30:.1f} GiB on disk")
    print(f"no limit:            {a['wall_s']:.1f} s, peak RSS {a['peak_rss_mib']:.0f} MiB")
    print(
        f"address space {args.limit_mib} MiB: {b['wall_s']:.1f} s, "
        f"peak RSS {b['peak_rss_mib']:.0f} MiB"
    )
    print(f"identical sidecar files: {same_files}; identical store masks: {same_store}")
    return 0 if same_files and same_store else 1


if __name__ == "__main__":
    sys.exit(main())
