"""``--method pipeline`` against jwst's PersistenceStep chained by hand, in one process.

    python -m benchmarks.pipeline_method DATA_DIR [--small 4]

DATA_DIR holds ``in/`` (uncal files) and ``seed/`` (references), as ``benchmarks.data``
builds them. Both are timed inside this process, so that start-up is not counted:
the chain per exposure (DQInit + Saturation + Persistence, state file shared, flagged
ramp written), miripersist as the marginal cost between a run on the first ``--small``
exposures and one on all of them, warm page cache, states-only and copy modes.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import resource
import shutil
import tempfile
import time


def _offline() -> None:
    from .run import offline_env

    os.environ.update(offline_env(tempfile.mkdtemp(prefix="mp-crds-")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline_method")
    parser.add_argument("data")
    parser.add_argument("--small", type=int, default=4)
    parser.add_argument("--window", type=int, default=2500)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each size; the fastest")
    args = parser.parse_args(argv)
    _offline()
    from astropy.io import fits

    from miripersist import Parameters, run

    from .pipeline_chain import main as chain

    files = sorted(glob.glob(os.path.join(args.data, "in", "*_uncal.fits")))
    files.sort(key=lambda f: fits.getheader(f)["EXPSTART"])
    sat = glob.glob(os.path.join(args.data, "seed", "*saturation*.fits"))[0]
    mask = glob.glob(os.path.join(args.data, "seed", "*mask*.fits"))[0]
    work = tempfile.mkdtemp(prefix="mp-pipeline-")
    small = os.path.join(work, "small")
    os.makedirs(small)
    for f in files[: args.small]:
        os.symlink(f, os.path.join(small, os.path.basename(f)))
    ours = {}
    for mode in ("sidecar", "copy"):
        params = Parameters(method="pipeline", window_days=args.window / 86400.0, mode=mode)
        run([small], os.path.join(work, f"warmup-{mode}"), [sat], params=params)  # imports, caches
        best = {}
        for _ in range(args.repeats):  # alternately: a slow minute hits both sizes
            for where in (small, os.path.join(args.data, "in")):
                out = os.path.join(work, f"out-{mode}")
                shutil.rmtree(out, ignore_errors=True)
                t = time.perf_counter()
                run([where], out, [sat], params=params)
                best[where] = min(best.get(where, math.inf), time.perf_counter() - t)
        times = list(best.values())
        ours[mode] = (times[1] - times[0]) / (len(files) - args.small)
    ours_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    chain(os.path.join(args.data, "in"), os.path.join(work, "chain"), sat, mask, args.window)
    per_chain = (time.perf_counter() - t) / len(files)
    shutil.rmtree(work, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(files)} exposures; per exposure: serial chain {per_chain * 1e3:.0f} ms")
    for mode, cost in ours.items():
        print(
            f"  --method pipeline --mode {mode}: {cost * 1e3:.0f} ms "
            f"({per_chain / cost:.0f}x the chain)"
        )
    print(f"peak RSS: after miripersist's runs {ours_peak:.0f} MiB, after the chain {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
