"""Digests of everything a run writes, to show that a change of code changed no answer.

``python -m benchmarks.digests OUT.json`` makes two small programs (subarrays, segments,
two integrations, two detectors), runs each method in copy and in sidecar mode, and writes
a sha256 per output file (its bytes) and per store array (its values), keyed by method,
mode and name. Run it on two commits and compare the files::

    python -m benchmarks.digests before.json   # on the commit before
    python -m benchmarks.digests after.json    # on the change
    python -m benchmarks.digests --compare before.json after.json

The programs are made once, in ``--workdir``, and kept for the second commit: their files
record when they were written, so both commits must read the same ones.

The store's attributes are left out (they name versions and the time of the run), and so
are the variables that record the inputs' modification times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile

#: (method, extra parameters) of every run; the pipeline method needs a window.
METHODS = (
    ("notebook", {}),
    ("notebook", {"integrations": "all", "dilate": 1}),
    ("snowblind", {}),
    ("pipeline", {"window_days": 2500.0 / 86400.0}),
)
MODES = ("copy", "sidecar")


def programs(root: str) -> tuple[list[str], list[str]]:
    """Two detectors' programs under ``root``: their input folders and SATURATION references.

    Made once and kept: the files record the time they were written, so the programs of
    two commits must be the same files.
    """
    from miripersist import simulate

    folders = [os.path.join(root, "imager"), os.path.join(root, "long")]
    refs = [os.path.join(folders[0], "mirimage_saturation.fits"),
            os.path.join(folders[1], "mirifulong_saturation.fits")]  # fmt: skip
    if all(os.path.exists(r) for r in refs):
        return folders, refs
    shutil.rmtree(root, ignore_errors=True)
    made = [
        simulate.make_program(
            folders[0],
            n_exposures=8,
            ngroups=6,
            subarrays=("FULL", "SUB256", "FULL", "SUB128"),
            nints=(1, 2, 3),
            segments=2,
            seed=3,
        ),
        simulate.make_program(
            folders[1],
            n_exposures=4,
            ngroups=5,
            detector="MIRIFULONG",
            seed=4,
        ),
    ]
    assert [p.saturation_ref for p in made] == refs
    return folders, refs


def file_digests(directory: str) -> dict[str, str]:
    """sha256 of every file under ``directory`` but the store, by relative path."""
    out = {}
    for base, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.endswith(".zarr"))
        for name in sorted(names):
            path = os.path.join(base, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, directory)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def store_digests(ds) -> dict[str, str]:
    """sha256 of every variable's values (and the exposure order) of a store."""
    import numpy as np

    out = {}
    for name in sorted(set(ds.variables) - {"mtime_ns"}):
        values = np.ascontiguousarray(ds[name].values)
        if values.dtype.kind == "U":
            values = np.char.encode(values, "utf-8")
        out[name] = hashlib.sha256(values.tobytes() + str(values.shape).encode()).hexdigest()
    return out


def digests(root: str) -> dict[str, dict[str, str]]:
    """Run every method and mode on the programs under ``root``; their digests."""
    from miripersist import Parameters, run

    inputs, refs = programs(os.path.join(root, "inputs"))
    root = os.path.join(root, "runs")
    result = {}
    for method, extra in METHODS:
        for mode in MODES:
            key = f"{method}{json.dumps(extra, sort_keys=True) if extra else ''}:{mode}"
            out = os.path.join(root, key.replace(":", "-").replace('"', "").replace(" ", ""))
            params = Parameters(method=method, mode=mode, **extra)
            ds = run(inputs, out, saturation_refs=refs, params=params)
            result[key] = {
                **file_digests(out),
                **{f"store:{k}": v for k, v in store_digests(ds).items()},
            }
    return result


def compare(before: str, after: str) -> int:
    """Print what differs between two digest files; 0 if nothing does."""
    with open(before) as fh:
        old = json.load(fh)
    with open(after) as fh:
        new = json.load(fh)
    differ = 0
    for run_key in sorted(set(old) | set(new)):
        a, b = old.get(run_key, {}), new.get(run_key, {})
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                differ += 1
                was, now = a.get(name, "missing"), b.get(name, "missing")
                print(f"{run_key}: {name}: {was[:12]} -> {now[:12]}")
    total = sum(len(v) for v in new.values())
    print(f"{differ} of {total} digests differ" if differ else f"all {total} digests equal")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    """The command line; the exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.digests", description=__doc__)
    parser.add_argument("out", nargs="?", help="where to write the digests (JSON)")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument(
        "--workdir",
        help="where the programs are made, once, and the runs go (default: a fixed folder "
        "in the temporary directory, kept for the next commit: delete it when done)",
    )
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if not args.out:
        parser.error("give OUT, or --compare BEFORE AFTER")
    root = args.workdir or os.path.join(tempfile.gettempdir(), "miripersist-digests")
    outputs = os.path.join(root, "runs")
    shutil.rmtree(outputs, ignore_errors=True)
    try:
        result = digests(root)
    finally:
        shutil.rmtree(outputs, ignore_errors=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1, sort_keys=True)
    print(f"{sum(len(v) for v in result.values())} digests of {len(result)} runs: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
