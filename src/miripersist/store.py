"""The run's record: sources and masks per exposure, in a zarr store written through xarray.

Layout (see docs/store.md): dims ``exposure``, ``y``, ``x``; per-exposure coordinates
(file, path, detector, filter, subarray placement, times, reference); variables
``source`` and ``mask`` (exposure, y, x) in full-detector coordinates, ``user_mask``
(y, x), per-exposure counts, and ``complete``, set only after an exposure's arrays are
written. Parameters and package versions are in the attributes.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import dask.array as da
import numpy as np
import xarray as xr

from .inventory import DETECTOR_SHAPE, Exposure

DIMS3 = ("exposure", "y", "x")
#: Per-exposure coordinates taken from the inventory (besides the reference's).
EXPOSURE_COORDS = (
    "size",
    "mtime_ns",
    "header_sha256",
    "file",
    "path",
    "detector",
    "filter",
    "subarray",
    "xstart",
    "ystart",
    "xsize",
    "ysize",
    "nints",
    "ngroups",
    "start_mjd",
    "mid_mjd",
    "end_mjd",
    "segment_files",
)
PACKAGES = (
    "miripersist",
    "jwst",
    "stcal",
    "stdatamodels",
    "numpy",
    "dask",
    "xarray",
    "zarr",
    "astropy",
    "scipy",
)


@functools.cache
def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the result (read once per process)."""
    out: dict[str, str] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def _zarr_kwargs() -> dict:
    import zarr

    major = int(zarr.__version__.split(".")[0])
    # Format 2 stores fixed-width strings with a stable spec that every zarr reads.
    return {"zarr_format": 2} if major >= 3 else {}


def create(
    path: str,
    exposures: Sequence[Exposure],
    references: Sequence[tuple[str, str]],
    user_mask: np.ndarray,
    attrs: dict,
    chunk_exposures: int = 1,
) -> None:
    """Create the store: coordinates, user mask and attributes now, arrays as empty chunks.

    ``references`` are each exposure's SATURATION reference as (path, content sha256),
    empty for none. An existing store at ``path`` is replaced. ``source`` and ``mask`` are chunked
    ``chunk_exposures`` exposures by the whole detector: the engine's block size, so that
    a block is stored with one chunk write per array.
    """
    n = len(exposures)
    rows = [e.as_row() for e in exposures]

    def column(key: str) -> np.ndarray:
        return np.array([r[key] for r in rows])

    coords = {key: ("exposure", column(key)) for key in EXPOSURE_COORDS}
    coords["saturation_ref"] = ("exposure", np.array([r[0] for r in references], dtype=str))
    coords["saturation_ref_sha256"] = (
        "exposure",
        np.array([r[1] for r in references], dtype=str),
    )
    chunks3 = (max(1, min(chunk_exposures, n)), *DETECTOR_SHAPE)
    ds = xr.Dataset(
        {
            "source": (DIMS3, da.zeros((n, *DETECTOR_SHAPE), dtype=bool, chunks=chunks3)),
            "mask": (DIMS3, da.zeros((n, *DETECTOR_SHAPE), dtype=bool, chunks=chunks3)),
            "n_source": ("exposure", np.zeros(n, dtype=np.int64)),
            "n_masked": ("exposure", np.zeros(n, dtype=np.int64)),
            "complete": ("exposure", np.zeros(n, dtype=bool)),
            "written": ("exposure", np.zeros(n, dtype=bool)),
            "result_sha256": ("exposure", np.full(n, "", dtype="<U64")),
            "user_mask": (("y", "x"), user_mask.astype(bool)),
        },
        coords=coords,
        attrs={
            key: (json.dumps(v) if isinstance(v, dict | list) else v) for key, v in attrs.items()
        },
    )
    ds["source"].attrs["description"] = "pixels that leave persistence (detector coordinates)"
    ds["mask"].attrs["description"] = "persistence mask from earlier exposures (exclusive scan)"
    # One chunk per small per-exposure variable: a block updates it with one file write
    # (zarr writes each chunk file atomically), instead of one file per exposure.
    encoding = {
        name: {"chunks": (max(n, 1),)}
        for name in ("n_source", "n_masked", "complete", "written", "result_sha256")
    }
    # Built beside its final place and renamed in, so a crash never leaves half a skeleton.
    tmp = sibling(path, "tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ds.to_zarr(tmp, mode="w", compute=False, encoding=encoding, **_zarr_kwargs())
    replace(tmp, path)


def sibling(path: str, kind: str) -> str:
    """A temporary name beside the store ``path`` that says which host and process own it.

    ``kind`` is ``tmp`` (a skeleton being built), ``new`` (a whole new store being
    written) or ``old`` (the store being replaced). The base is always the store's own
    name, so that a sweep recognises every kind.
    """
    return f"{path}.{kind}-{socket.gethostname()}-{os.getpid()}"


def _siblings(path: str) -> dict[tuple[str, str], str]:
    """Temporaries of ``path`` that dead processes of this host left: {(kind, pid): path}."""
    parent, base = os.path.split(os.path.abspath(path))
    if not os.path.isdir(parent):
        return {}
    host = socket.gethostname()
    found = {}
    for name in os.listdir(parent):
        if not name.startswith(base + "."):
            continue
        kind, _, rest = name[len(base) + 1 :].partition("-")
        owner, _, pid = rest.rpartition("-")
        if kind not in ("tmp", "new", "old") or owner != host or not pid.isdigit():
            continue  # another host's (it may be alive: a shared file system), or not ours
        try:
            os.kill(int(pid), 0)
            continue
        except ProcessLookupError:
            pass
        except PermissionError:  # alive, another user's
            continue
        found[(kind, pid)] = os.path.join(parent, name)
    return found


def remove_stale(path: str) -> list[str]:
    """Recover from a run on this host that died, then remove its temporaries.

    A run that died between the two renames of :func:`replace` left the store only as
    ``old`` (and the finished ``new``): the store is put back, the new one if it is there.
    Temporaries of live processes, or of other hosts, are never touched.

    Returns
    -------
    list of str
        What was removed or restored, for the log.
    """
    done = []
    found = _siblings(path)
    if not os.path.exists(path):
        for (kind, pid), old in sorted(found.items()):
            if kind != "old":
                continue
            new = found.get(("new", pid))
            # ``new`` is renamed to ``old``'s place only once it is whole (see replace).
            os.rename(new if new is not None else old, path)
            done.append(f"restored {new or old}")
            found.pop(("new", pid), None)
            if new is None:
                found.pop((kind, pid))
            break
    for leftover in found.values():
        shutil.rmtree(leftover, ignore_errors=True)
        done.append(f"removed {leftover}")
    return done


def replace(new: str, path: str) -> None:
    """Put the whole store ``new`` in the place of ``path`` (whether or not one is there).

    Two renames: a process killed between them leaves ``path.old-HOST-PID`` and ``new``,
    from which :func:`remove_stale` restores the store.
    """
    if os.path.exists(path):
        old = sibling(path, "old")
        os.rename(path, old)
        os.rename(new, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(new, path)


class Writer:
    """Region writes into a store made by :func:`create`, straight through zarr.

    xarray made the store and reads it; per-block updates go to the zarr arrays directly,
    which costs a fraction of a ``to_zarr(region=...)`` call per block.
    """

    def __init__(self, path: str) -> None:
        import zarr

        self.path = path
        group = zarr.open_group(path, mode="r+", **_zarr_kwargs())
        # Array handles opened once: each group lookup reads the array's metadata file.
        self.arrays = {
            name: group[name]
            for name in (
                "source",
                "mask",
                "n_source",
                "n_masked",
                "complete",
                "written",
                "result_sha256",
            )
            if name in group  # a store of an earlier version has no result digests
        }

    def block(
        self,
        start: int,
        sources: np.ndarray,
        masks: np.ndarray,
        n_source: np.ndarray,
        n_masked: np.ndarray,
        unwritten: Sequence[int] = (),
        digests: Sequence[str] = (),
    ) -> None:
        """Write consecutive exposures' arrays, then mark them complete.

        ``unwritten`` (store indices) are the exposures whose outputs are about to be
        rewritten: they lose their ``written`` mark first, so that a run killed after this
        update but before the files are in place rewrites them when resumed. ``digests``
        say what the outputs hold beyond the masks (a method's group-level results).
        """
        stop = start + len(sources)
        if len(unwritten):
            written = self.arrays["written"][start:stop]
            written[np.asarray(unwritten) - start] = False
            self.arrays["written"][start:stop] = written
        self.arrays["source"][start:stop] = sources
        self.arrays["mask"][start:stop] = masks
        self.arrays["n_source"][start:stop] = n_source.astype(np.int64)
        self.arrays["n_masked"][start:stop] = n_masked.astype(np.int64)
        if len(digests) and "result_sha256" in self.arrays:
            self.arrays["result_sha256"][start:stop] = np.array(digests, dtype="<U64")
        # Only after the arrays: a crash in between leaves the exposures incomplete.
        self.arrays["complete"][start:stop] = True

    def written(self, indices: Sequence[int]) -> None:
        """Record that the outputs of these exposures are in place."""
        idx = sorted(indices)
        runs = np.split(np.asarray(idx), np.flatnonzero(np.diff(idx) != 1) + 1) if idx else []
        for run in runs:
            self.arrays["written"][run[0] : run[-1] + 1] = True


def update_attrs(path: str, attrs: dict) -> None:
    """Add attributes to a store (JSON for dicts and lists) and consolidate its metadata."""
    import zarr

    group = zarr.open_group(path, mode="r+", **_zarr_kwargs())
    group.attrs.update(
        {k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in attrs.items()}
    )
    zarr.consolidate_metadata(path, **_zarr_kwargs())


def open_store(path: str) -> xr.Dataset:
    """Open a store lazily (``xarray.open_zarr``); parameters come back as a dict attribute."""
    ds = xr.open_zarr(path, **_zarr_kwargs())
    if isinstance(ds.attrs.get("parameters"), str):
        ds.attrs["parameters"] = json.loads(ds.attrs["parameters"])
    for key in ("versions", "last_run", "skipped", "detector_shape"):
        if isinstance(ds.attrs.get(key), str):
            ds.attrs[key] = json.loads(ds.attrs[key])
    return ds
