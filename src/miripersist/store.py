"""The run's record: sources and masks per exposure, in a zarr store that xarray reads.

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
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError
from .inventory import DETECTOR_SHAPE, Exposure
from .processes import alive

if TYPE_CHECKING:
    import xarray as xr

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


#: Format 2 stores fixed-width strings with a stable spec that every zarr reads: every
#: store is written and opened with these arguments.
FORMAT: dict[str, Any] = {"zarr_format": 2}


def column(values: list, dtype=None) -> np.ndarray:
    """A list as xarray makes a coordinate of it: strings fixed width, one character or more."""
    out = np.array(values, dtype=dtype)
    return out.astype("<U1") if out.dtype.kind == "U" and out.dtype.itemsize == 0 else out


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

    The store is written through zarr in the layout xarray writes and reads (dimension
    names in ``_ARRAY_DIMENSIONS``, non-index coordinates named in each data variable's
    ``coordinates``, NaN fill for floats, consolidated metadata): the same dataset
    ``Dataset.to_zarr`` makes, without importing xarray and pandas into a run (0.4 s) or
    encoding through them (0.3 s).
    """
    n = len(exposures)
    rows = [e.as_row() for e in exposures]
    coords = {key: column([r[key] for r in rows]) for key in EXPOSURE_COORDS}
    coords["saturation_ref"] = column([r[0] for r in references], dtype=str)
    coords["saturation_ref_sha256"] = column([r[1] for r in references], dtype=str)
    listed = " ".join(sorted(coords))
    per_exposure = {
        "n_source": np.zeros(n, dtype=np.int64),
        "n_masked": np.zeros(n, dtype=np.int64),
        "complete": np.zeros(n, dtype=bool),
        "written": np.zeros(n, dtype=bool),
        "result_sha256": np.full(n, "", dtype="<U64"),
    }
    descriptions = {
        "source": "pixels that leave persistence (detector coordinates)",
        "mask": "persistence mask from earlier exposures (exclusive scan)",
    }
    # Built beside its final place and renamed in, so a crash never leaves half a skeleton.
    tmp = sibling(path, "tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # One chunk per per-exposure array: a block updates it with one file write (zarr
    # writes each chunk file atomically), instead of one file per exposure.
    whole = (max(n, 1),)
    arrays: dict[str, dict] = {}
    for name, values in coords.items():
        arrays[name] = array_spec(values, ("exposure",), whole)
    for name, values in per_exposure.items():
        arrays[name] = array_spec(values, ("exposure",), whole, coordinates=listed)
    arrays["user_mask"] = array_spec(user_mask.astype(bool), ("y", "x"), "auto")
    for name, text in descriptions.items():
        # No chunk is written: an unwritten chunk reads as False until its block is stored.
        arrays[name] = {
            "shape": (n, *DETECTOR_SHAPE),
            "dtype": bool,
            "chunks": (max(1, min(chunk_exposures, n)), *DETECTOR_SHAPE),
            "fill_value": None,
            "attributes": {
                "description": text,
                "coordinates": listed,
                "_ARRAY_DIMENSIONS": list(DIMS3),
            },
        }
    attributes = {
        key: (json.dumps(v) if isinstance(v, dict | list) else v) for key, v in attrs.items()
    }
    _uninterrupted(write_group, tmp, attributes, arrays)
    replace(tmp, path)


def array_spec(data: np.ndarray, dims: tuple[str, ...], chunks, **attributes) -> dict:
    """:func:`write_group`'s arguments for an array, encoded as xarray encodes a variable.

    NaN fill for floats, the dimension names in the attributes.
    """
    return {
        "data": data,
        "chunks": chunks,
        "fill_value": np.nan if data.dtype.kind == "f" else None,
        "attributes": {**attributes, "_ARRAY_DIMENSIONS": list(dims)},
    }


def write_group(path: str, attributes: dict, arrays: dict[str, dict]) -> None:
    """Write a group with ``attributes`` and ``arrays`` (name: create_array's arguments).

    The arrays are created from a few threads at once: each is a few small files, and a
    file's creation waits on the file system (on a network file system, on its metadata
    server), so one after another they add up.
    """
    import zarr

    group = zarr.open_group(path, mode="w", **FORMAT)
    group.update_attributes(attributes)
    with ThreadPoolExecutor(8, thread_name_prefix="miripersist-zarr") as pool:
        list(pool.map(lambda item: group.create_array(item[0], **item[1]), arrays.items()))
    zarr.consolidate_metadata(path, **FORMAT)


def _uninterrupted(function, *args):
    """``function(*args)`` to its end, then any interrupt (Ctrl-C) that came meanwhile.

    The work (a fraction of a second) runs in a thread of its own: interrupted in the
    calling thread, zarr would leave its event loop's tasks running, to be torn down with
    the interpreter in a screenful of asyncio's complaints.
    """
    interrupted = False
    with ThreadPoolExecutor(1, thread_name_prefix="miripersist-zarr") as pool:
        future = pool.submit(function, *args)
        while True:
            try:
                result = future.result()
                break
            except KeyboardInterrupt:
                interrupted = True
    if interrupted:
        raise KeyboardInterrupt
    return result


def is_store(path: str) -> bool:
    """Whether ``path`` is a store this tool made: its group attributes name miripersist.

    Read from the group's ``.zattrs`` alone (no zarr), so that any other file or
    directory a user names as the store is told apart before anything replaces it.
    """
    try:
        with open(os.path.join(path, ".zattrs"), encoding="utf-8") as fh:
            versions = json.loads(json.load(fh)["versions"])
        return "miripersist" in versions
    except (OSError, ValueError, KeyError, TypeError):
        return False


#: The store's name in the output directory, unless ``--store`` names another path.
DEFAULT_NAME = "persistence.zarr"


def find_store(path: str) -> str:
    """The store ``path`` names: itself, or the default store of the output directory ``path``.

    A user who ran ``miripersist run --output-dir masked/`` may name ``masked/`` where a
    store is asked for; its ``persistence.zarr`` is meant. Anything else is returned as
    given, for the caller to say what it is not.
    """
    inside = os.path.join(path, DEFAULT_NAME)
    if os.path.isdir(path) and not is_store(path) and is_store(inside):
        return inside
    return path


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
        if alive(int(pid)):
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


@dataclass(frozen=True)
class StoreUpdate:
    """Consecutive exposures' results, as the store keeps them (:meth:`Writer.block`).

    Attributes
    ----------
    start : int
        Store index of the first exposure.
    sources, masks : numpy.ndarray
        (exposure, y, x) bool: each exposure's sources and its mask.
    n_source, n_masked : numpy.ndarray
        Per exposure: the pixels that are sources, and those masked in its output.
    unwritten : list of int
        Store indices whose outputs are about to be rewritten.
    digests : list of str
        What the outputs hold beyond the masks (a method's group-level results), per
        exposure; empty when the method has none.
    """

    start: int
    sources: np.ndarray
    masks: np.ndarray
    n_source: np.ndarray
    n_masked: np.ndarray
    unwritten: Sequence[int] = ()
    digests: Sequence[str] = field(default_factory=list)


class Writer:
    """Region writes into a store made by :func:`create`, straight through zarr.

    xarray reads the store; per-block updates go to the zarr arrays directly, which costs
    a fraction of a ``to_zarr(region=...)`` call per block. The per-exposure columns
    (counts, digests, ``complete``, ``written``) are one chunk each: the writer keeps them
    in memory (a run owns its store, under the run's lock) and replaces the whole chunk
    on each update, instead of reading, decoding and re-encoding it every time.
    """

    _COLUMNS = ("n_source", "n_masked", "complete", "written", "result_sha256")

    def __init__(self, path: str) -> None:
        import zarr

        self.path = path
        group = zarr.open_group(path, mode="r+", **FORMAT)
        # Array handles opened once: each group lookup reads the array's metadata file.
        # Chunks are written even when all False: zarr's test for an empty chunk compares
        # every byte, which cost more than compressing and writing the chunk. (An array
        # takes the setting when it is opened; ``Array.with_config`` is zarr 3.1.6 and up.)
        with zarr.config.set({"array.write_empty_chunks": True}):
            self.arrays = {
                name: group[name]
                for name in ("source", "mask", *self._COLUMNS)
                if name in group  # a store of an earlier version has no result digests
            }
        self.columns = {
            name: np.asarray(self.arrays[name][...])
            for name in self._COLUMNS
            if name in self.arrays
        }
        # block() runs in a dask task while the main thread marks files as written.
        self._lock = threading.Lock()

    def _put(self, name: str) -> None:
        self.arrays[name][...] = self.columns[name]

    def _set(self, name: str, where, values) -> None:
        """Set ``where`` of a column to ``values``; write its chunk only if that changed it.

        Each chunk write costs 1.5-4 ms of zarr's machinery, and many updates of a fresh
        run change nothing (no earlier marks to clear, no digests, counts that stay zero).
        """
        column = self.columns[name]
        if not np.all(column[where] == values):
            column[where] = values
            self._put(name)

    def block(self, update: StoreUpdate) -> None:
        """Write a block's arrays (:class:`StoreUpdate`), then mark its exposures complete.

        The update's ``unwritten`` exposures lose their ``written`` mark first, so that a
        run killed after this update but before their files are in place rewrites them
        when resumed.
        """
        start = update.start
        stop = start + len(update.sources)
        with self._lock:
            if len(update.unwritten):
                self._set("written", np.asarray(update.unwritten), False)
            self.arrays["source"][start:stop] = update.sources
            self.arrays["mask"][start:stop] = update.masks
            self._set("n_source", slice(start, stop), update.n_source)
            self._set("n_masked", slice(start, stop), update.n_masked)
            if len(update.digests) and "result_sha256" in self.columns:
                self._set("result_sha256", slice(start, stop), np.asarray(update.digests))
            # Only after the arrays: a crash in between leaves the exposures incomplete.
            self._set("complete", slice(start, stop), True)

    def written(self, indices: Sequence[int]) -> None:
        """Record that the outputs of these exposures are in place."""
        if not len(indices):
            return
        with self._lock:
            self._set("written", np.asarray(list(indices)), True)


def put_image(path: str, name: str, image: np.ndarray, attrs: dict) -> None:
    """Write ``image`` as the (y, x) array ``name`` of the store at ``path``, replacing any.

    The store's metadata is consolidated by the run's last :func:`update_attrs`.
    """
    import zarr

    group = zarr.open_group(path, mode="r+", **FORMAT)
    array = group.create_array(
        name,
        shape=image.shape,
        dtype=image.dtype,
        chunks=image.shape,
        fill_value=0,
        overwrite=True,
    )
    array[...] = image
    array.attrs.update(attrs)


def update_attrs(path: str, attrs: dict) -> None:
    """Add attributes to a store (JSON for dicts and lists) and consolidate its metadata."""
    import zarr

    group = zarr.open_group(path, mode="r+", **FORMAT)
    group.attrs.update(
        {k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in attrs.items()}
    )
    zarr.consolidate_metadata(path, **FORMAT)


def _decoded(attrs) -> dict:
    out = dict(attrs)
    for key in (
        "parameters",
        "versions",
        "last_run",
        "skipped",
        "detector_shape",
        "claimed_outputs",
    ):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def open_store(path: str) -> xr.Dataset:
    """Open a store lazily (``xarray.open_zarr``), for a person to use.

    The images stay lazy; the per-exposure coordinates (a few bytes an exposure) are read,
    so that selections by value work (``ds.isel(exposure=ds.detector == "MIRIMAGE")``), and
    the exposure dimension is indexed by file name (``ds.sel(exposure=NAME)``,
    ``ds["n_masked"].to_series()``). Parameters come back as a dict attribute.

    Raises
    ------
    ConfigError
        ``PATH: no such store``, or ``PATH: not a store (a file, not a zarr directory)``.
    """
    import xarray as xr

    if not os.path.isdir(path):
        if os.path.exists(path):
            raise ConfigError(f"{path}: not a store (a file, not a zarr directory)")
        raise ConfigError(f"{path}: no such store")
    ds = xr.open_zarr(path, **FORMAT)
    ds.attrs = _decoded(ds.attrs)
    per_exposure = [n for n, c in ds.coords.items() if c.dims == ("exposure",)]
    # Read here, in this process: a few bytes are no work to send to a cluster.
    ds = ds.assign_coords({n: ds[n].load(scheduler="synchronous") for n in per_exposure})
    if "file" in ds.coords:
        ds = ds.assign_coords(exposure=ds["file"].values.astype(str))
    return ds


class Stored:
    """A store read straight through zarr: what a run needs of an earlier run's store.

    The run reads per-exposure columns, a few exposures' images and the attributes; going
    through zarr alone keeps xarray and pandas out of the command line's process (their
    import is a quarter of a one-exposure run). Columns and attributes read as they do
    through :func:`open_store`.
    """

    def __init__(self, path: str) -> None:
        import zarr

        self.path = path
        self.group = zarr.open_group(path, mode="r", **FORMAT)
        self.attrs = _decoded(self.group.attrs.asdict())

    def __contains__(self, name: str) -> bool:
        return name in self.group

    def __len__(self) -> int:
        return int(self.group["complete"].shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        """A per-exposure column (or any array) in full."""
        return np.asarray(self.group[name][...])

    def images(self, name: str, indices: Sequence[int]) -> np.ndarray:
        """Images of a (exposure, y, x) array for these exposures, each chunk read once."""
        array = self.group[name]
        if not len(indices):
            return np.zeros((0, *array.shape[1:]), dtype=array.dtype)
        order = np.asarray(indices)
        unique, back = np.unique(order, return_inverse=True)
        return array.get_orthogonal_selection((unique,))[back]
