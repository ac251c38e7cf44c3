"""The detector's memory: one zarr directory where every run leaves its exposures' sources.

Layout (zarr format 2, as xarray writes it, so that ``xarray.open_datatree(PATH,
engine="zarr")`` shows it)::

    PATH/                     the group: attrs name it a miripersist memory
    PATH/batches/NAME/        one batch of entries: a group of columns along ``entry``
                              and the sources' flat pixel indices along ``pixel``
    PATH/runs/NAME/           one run's record (:class:`~miripersist.recall.RunRecord`)

Many runs write at once, on one machine or across a cluster's shared file system, and
none waits for another: a batch or a record is written beside its place under a name
of its own and renamed in, so a reader sees it whole or not at all, and a killed writer
leaves only a hidden temporary, removed by the next writer on its host. The same
exposure added twice is two copies of one entry: readers take the first
(:func:`miripersist.recall.dedupe`). A run's record is known by its store; a newer one
replaces the older.
"""

from __future__ import annotations

import bisect
import datetime
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import store as store_mod
from .errors import ConfigError, brief
from .recall import Entry, RunRecord, dedupe
from .writeback import remove_stale_temporaries

#: The memory's group attribute that says what it is, and its layout's version.
MARK = "miripersist_memory"
VERSION = 1

#: The text columns of a batch, and the float ones (per entry, in :class:`Entry` order).
TEXT = (
    "file",
    "detector",
    "header_sha256",
    "program",
    "observation",
    "visit",
    "key",
    "reference_sha256",
)
TIMES = ("start_mjd", "mid_mjd", "end_mjd")

#: Pixels a chunk of a batch's ``pixels``: a few exposures' sources a read.
PIXEL_CHUNK = 1 << 20

#: Batch sizes (entries) below which batches are merged, tier by tier, and how many of a
#: tier make a merge: a memory of 100,000 entries is then a few dozen batches.
TIERS = (64, 512, 4096)
MERGE = 8

#: How often a reader lists the batches again when one vanished under it (merged).
RETRIES = 5

#: Pixels between two entries' below which they are read as one slice (256 kB of int32).
GAP = 65536


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _temporary(directory: str) -> str:
    # Hidden, and named for its writer, so that a writer that died is known by its pid.
    return os.path.join(directory, f".tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}")


class Memory:
    """A memory on disk: its entries, their sources, and the runs that used them.

    Parameters
    ----------
    path : str
        The memory's directory.
    create : bool
        Make it when it is not there (default: a missing memory is an error).

    Raises
    ------
    ConfigError
        ``PATH: no such memory``, or ``PATH: not a miripersist memory``.
    """

    def __init__(self, path: str, create: bool = False) -> None:
        import zarr

        self.path = path
        self.batches = os.path.join(path, "batches")
        self.records = os.path.join(path, "runs")
        if not os.path.exists(path) and create:
            _make(path)
        if not os.path.isdir(path):
            raise ConfigError(f"{path}: no such memory")
        try:
            attrs = zarr.open_group(path, mode="r", **store_mod.FORMAT).attrs.asdict()
        except Exception:  # zarr raises many kinds on what is not a group
            attrs = {}
        if attrs.get(MARK) is None:
            raise ConfigError(f"{path}: not a miripersist memory (no {MARK} attribute)")
        self._where: dict[str, tuple[str, int, int]] = {}
        #: Per detector, the start (MJD) of the earliest exposure held, as the last call of
        #: :meth:`entries` found it (every batch's attributes are read, whatever the reach).
        self.since: dict[str, float] = {}

    def names(self, directory: str) -> list[str]:
        """The finished batches or records, oldest first (their names start with a time)."""
        if not os.path.isdir(directory):
            return []
        return sorted(n for n in os.listdir(directory) if not n.startswith("."))

    def entries(self, reach: Mapping[str, tuple[float, float]] | None = None) -> list[Entry]:
        """The entries, each identity once (the oldest copy), without their pixels.

        ``reach``: per detector ``(end, mid)``, only entries on those detectors that end
        at or after ``end`` and whose mid time is before ``mid`` (default: every entry).
        A batch none of whose entries can be in reach is not read beyond its attributes.
        """
        for _ in range(RETRIES):
            self.since = {}
            try:
                found: list[Entry] = []
                for name in self.names(self.batches):
                    found += self._read_batch(os.path.join(self.batches, name), reach)
                return dedupe(found)
            except FileNotFoundError:
                # A batch merged into another and removed since it was listed: list again,
                # to find the merged one.
                continue
        raise ConfigError(f"{self.path}: its batches kept changing while being read")

    def _read_batch(self, path: str, reach: Mapping[str, tuple[float, float]] | None) -> list:
        import zarr

        try:
            group = zarr.open_group(path, mode="r", **store_mod.FORMAT)
            spans = json.loads(str(group.attrs.get("spans", "{}")))
            for detector, (_, _, start) in spans.items():
                self.since[detector] = min(self.since.get(detector, np.inf), start)
            if reach is not None and not _overlaps(spans, reach):
                return []
            columns = {n: _read(group, n) for n in (*TEXT, *TIMES, "n_pixels")}
            _still_there(path)
        except FileNotFoundError:
            raise
        except Exception as exc:  # a damaged batch is named, not skipped in silence
            raise ConfigError(f"{path}: memory batch cannot be read ({brief(exc, 120)})") from None
        ends = np.cumsum(columns["n_pixels"])
        out = []
        for k in np.flatnonzero(_within(columns, reach)):
            values: dict[str, Any] = {n: str(columns[n][k]) for n in TEXT}
            values.update({n: float(columns[n][k]) for n in TIMES})
            entry = Entry(**values)
            start = int(ends[k] - columns["n_pixels"][k])
            self._where.setdefault(entry.identity, (path, start, int(ends[k])))
            out.append(entry)
        return out

    def with_pixels(self, entries: Sequence[Entry]) -> list[Entry]:
        """``entries`` (as :meth:`entries` listed them) with their source pixels read."""
        for _ in range(RETRIES):
            try:
                return self._pixels(entries)
            except FileNotFoundError:
                # Merged into another batch since they were listed: find them there.
                self._where.clear()
                self.entries(span(entries))
        raise ConfigError(f"{self.path}: its batches kept changing while being read")

    def _pixels(self, entries: Sequence[Entry]) -> list[Entry]:
        import zarr

        wanted: dict[str, list[tuple[int, int]]] = {}
        for e in entries:
            path, start, stop = self._where[e.identity]
            wanted.setdefault(path, []).append((start, stop))
        pieces: dict[tuple[str, int, int], np.ndarray] = {}
        for path, ranges in wanted.items():
            pixels: Any = zarr.open_group(path, mode="r", **store_mod.FORMAT)["pixels"]
            reads = coalesced(ranges, GAP)
            firsts = [first for first, _ in reads]
            read = [np.asarray(pixels[first:last], dtype=np.int32) for first, last in reads]
            for start, stop in ranges:
                k = bisect.bisect_right(firsts, start) - 1
                pieces[path, start, stop] = read[k][start - firsts[k] : stop - firsts[k]]
            _still_there(path)
        return [_with(e, pieces[self._where[e.identity]]) for e in entries]

    def add(self, entries: Sequence[Entry], made_by: dict) -> int:
        """Add entries (with their pixels) as one batch; how many were not there yet.

        ``made_by`` (the command, the store, the output directory) is kept with the batch.
        """
        known = {e.identity for e in self.entries(span(entries))}
        new = [e for e in dedupe(entries) if e.identity not in known]
        if new:
            self._publish(self.batches, _batch_arrays(new), _batch_attrs(new, made_by))
            self.compact()
        return len(new)

    def compact(self) -> int:
        """Merge small batches, so that a query opens few; how many batches were merged.

        Batches are sorted into tiers by size (under 64 entries, under 512, under 4,096;
        larger ones stay as they are); a tier of :data:`MERGE` batches or more becomes one
        batch. The merged batch is in place before its parts are removed, and a merge
        whose part another writer removed meanwhile is given up: no entry is ever lost.
        """
        tiers: dict[int, list[str]] = {}
        for name in self.names(self.batches):
            try:
                n = _entries_in(os.path.join(self.batches, name))
            except FileNotFoundError:
                continue
            if n < TIERS[-1]:
                tiers.setdefault(next(t for t, top in enumerate(TIERS) if n < top), []).append(name)
        merged = 0
        for names in tiers.values():
            if len(names) >= MERGE and self._merge(names):
                merged += len(names)
        return merged

    def _merge(self, names: Sequence[str]) -> bool:
        paths = [os.path.join(self.batches, n) for n in names]
        try:
            parts = [self._read_batch(p, None) for p in paths]
            entries = self._pixels(dedupe([e for part in parts for e in part]))
        except FileNotFoundError:
            return False  # another writer merged some of them first
        self._publish(
            self.batches, _batch_arrays(entries), _batch_attrs(entries, {"merged": len(paths)})
        )
        for path in paths:
            _remove(path)
        self._where.clear()
        return True

    def record(self, record: RunRecord) -> None:
        """Keep ``record`` as its store's latest, replacing the older ones."""
        prefix = _store_digest(record.store)
        older = [n for n in self.names(self.records) if n.rsplit("-", 1)[-1] == prefix]
        self._publish(self.records, {}, {"record": json.dumps(record.as_json())}, prefix)
        for name in older:
            _remove(os.path.join(self.records, name))

    def runs(self) -> list[RunRecord]:
        """Each store's latest run record."""
        import zarr

        latest: dict[str, RunRecord] = {}
        for name in self.names(self.records):
            try:
                attrs = zarr.open_group(
                    os.path.join(self.records, name), mode="r", **store_mod.FORMAT
                ).attrs.asdict()
            except FileNotFoundError:
                continue  # replaced by a newer record since it was listed
            record = RunRecord.from_json(json.loads(str(attrs["record"])))
            latest[record.store] = record
        return list(latest.values())

    def _publish(self, directory: str, arrays: dict, attrs: dict, suffix: str = "") -> str:
        """Write a group beside its place, then rename it in: whole, or not at all."""
        os.makedirs(directory, exist_ok=True)
        remove_stale_temporaries(directory, suffix="")
        tmp = _temporary(directory)
        store_mod.write_group(tmp, attrs, arrays)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        final = os.path.join(directory, f"{name}-{suffix}" if suffix else name)
        os.rename(tmp, final)
        return final


def _make(path: str) -> None:
    """A new empty memory at ``path`` (made beside and renamed in, as everything here)."""
    import zarr

    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = _temporary(parent)
    group = zarr.open_group(tmp, mode="w", **store_mod.FORMAT)
    group.update_attributes({MARK: VERSION})
    # Groups, so that xarray's open_datatree walks into them; no consolidated metadata
    # here, where batches come and go.
    for child in ("batches", "runs"):
        group.create_group(child)
    try:
        os.rename(tmp, path)
    except OSError:
        # Another run made it first: theirs is as good.
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isdir(path):
            raise


def span(entries: Sequence[Entry]) -> dict[str, tuple[float, float]]:
    """The reach (as :meth:`Memory.entries` takes it) that holds every one of ``entries``."""
    out: dict[str, tuple[float, float]] = {}
    for e in entries:
        lo, hi = out.get(e.detector, (e.end_mjd, e.mid_mjd))
        out[e.detector] = (min(lo, e.end_mjd), max(hi, np.nextafter(e.mid_mjd, np.inf)))
    return out


def _batch_attrs(entries: Sequence[Entry], made_by: dict) -> dict:
    """A batch's attributes: who made it, and per detector the span of its entries."""
    spans: dict[str, list[float]] = {}
    for e in entries:
        end, mid, start = spans.get(e.detector, [e.end_mjd, e.mid_mjd, e.start_mjd])
        spans[e.detector] = [max(end, e.end_mjd), min(mid, e.mid_mjd), min(start, e.start_mjd)]
    return {
        "made_by": json.dumps(made_by),
        "entries": len(entries),
        # Per detector: the latest end and the earliest mid time, what a query's reach is
        # compared with (an entry in reach ends after its start and is mid before its end),
        # and the earliest start, what the memory covers.
        "spans": json.dumps(spans),
    }


def coalesced(ranges: Sequence[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges joined where less than ``gap`` lies between them, in order.

    Each joined range is one read: a zarr read of a slice costs a fixed overhead (about a
    millisecond) far above the bytes of an entry's pixels.
    """
    out: list[tuple[int, int]] = []
    for start, stop in sorted(ranges):
        if out and start - out[-1][1] < gap:
            out[-1] = (out[-1][0], max(out[-1][1], stop))
        else:
            out.append((start, stop))
    return out


def _overlaps(spans: dict, reach: Mapping[str, tuple[float, float]]) -> bool:
    """Whether a batch of these spans can hold an entry in ``reach``."""
    return any(
        d in spans and spans[d][0] >= lo and spans[d][1] < hi for d, (lo, hi) in reach.items()
    )


def _within(columns: dict, reach: Mapping[str, tuple[float, float]] | None) -> np.ndarray:
    """Rows of a batch's columns in ``reach``, as a boolean array."""
    n = len(columns["n_pixels"])
    if reach is None:
        return np.ones(n, bool)
    keep = np.zeros(n, bool)
    for detector, (lo, hi) in reach.items():
        keep |= (
            (columns["detector"] == detector)
            & (columns["end_mjd"] >= lo)
            & (columns["mid_mjd"] < hi)
        )
    return keep


def _entries_in(path: str) -> int:
    import zarr

    attrs = zarr.open_group(path, mode="r", **store_mod.FORMAT).attrs
    return int(str(attrs.get("entries", 0)))


def _still_there(path: str) -> None:
    """Raise FileNotFoundError if the batch at ``path`` was removed while it was read.

    zarr reads a missing chunk as the fill value: a batch removed under a reader would
    read as empty columns instead of failing. A batch is removed by renaming it away
    first (:func:`_remove`), so a reader that finds it in place after reading read it whole.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(path)


def _remove(path: str) -> None:
    """Remove a batch or record: renamed to a hidden name first (atomic), then deleted."""
    hidden = _temporary(os.path.dirname(path))
    try:
        os.rename(path, hidden)
    except FileNotFoundError:
        return  # removed by another writer
    shutil.rmtree(hidden, ignore_errors=True)


def _read(group: Any, name: str) -> np.ndarray:
    """A whole array of a zarr group."""
    return np.asarray(group[name][...])


def _with(entry: Entry, pixels: np.ndarray) -> Entry:
    fields = {name: getattr(entry, name) for name in (*TEXT, *TIMES)}
    return Entry(**fields, pixels=pixels)


def _store_digest(path: str) -> str:
    return hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:16]


def _batch_arrays(entries: Sequence[Entry]) -> dict[str, dict]:
    """A batch's arrays (:func:`miripersist.store.write_group`'s arguments)."""
    n = len(entries)
    whole = (max(n, 1),)
    arrays = {
        name: store_mod.array_spec(
            store_mod.column([getattr(e, name) for e in entries]), ("entry",), whole
        )
        for name in TEXT
    }
    for name in TIMES:
        values = np.array([getattr(e, name) for e in entries], dtype=np.float64)
        arrays[name] = store_mod.array_spec(values, ("entry",), whole)
    pixels = [np.asarray(e.pixels, dtype=np.int32) for e in entries]
    counts = np.array([p.size for p in pixels], dtype=np.int64)
    arrays["n_pixels"] = store_mod.array_spec(counts, ("entry",), whole)
    flat = np.concatenate(pixels) if pixels else np.zeros(0, np.int32)
    arrays["pixels"] = store_mod.array_spec(
        flat, ("pixel",), (max(1, min(PIXEL_CHUNK, flat.size)),), description=PIXELS
    )
    return arrays


#: What a batch's ``pixels`` are, in its attributes.
PIXELS = "source pixels of each entry in turn (n_pixels each): y * 1032 + x, detector frame"
