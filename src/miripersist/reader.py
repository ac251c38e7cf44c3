"""Lazy source maps: dask arrays over detector tiles, reading only the bytes needed.

Each tile task reads, from the array's byte offset, the rows of the leading groups of
the first integration that the tile and its growth halo cover (one ``pread`` a group,
all of them hinted to the kernel first), reduces them to their brightest value in the
stored byte order, and applies the pure functions of :mod:`miripersist.saturation`.
Reading the halo (the reach of ``n_pix_grow_sat``) from disk makes tile seams invisible
with no exchange between tasks, as ``map_overlap`` would need.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Callable, Sequence

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from .errors import InputError
from .inventory import ArrayLayout, Exposure
from .saturation import (
    NEVER,
    first_crossing,
    groups_needed,
    grow,
    grow_first,
    pixels,
    sources_from_groupdq,
)
from .thresholds import Window


def _stored_rows(
    path: str, layout: ArrayLayout, integration: int, rows: slice, groups: int, buffer
) -> np.ndarray:
    """The leading groups of whole rows of one integration, as stored (``layout.dtype``).

    Every group's rows are requested from the kernel at once (``posix_fadvise(WILLNEED)``:
    on a cold cache the reads go to the disk together instead of one group after another),
    then read with one ``pread`` a group into ``buffer(nbytes)``'s bytes.
    """
    _, ngroups, ny, nx = layout.shape
    nrows = rows.stop - rows.start
    span = nrows * nx * layout.dtype.itemsize
    frame_bytes = ny * nx * layout.dtype.itemsize
    first = layout.offset + (integration * ngroups * ny + rows.start) * nx * layout.dtype.itemsize
    buf = buffer(groups * span)
    fd = os.open(path, os.O_RDONLY)
    try:
        _willneed(fd, first, span, frame_bytes, groups)
        for g in range(groups):
            _pread_exactly(fd, path, buf[g * span : (g + 1) * span], first + g * frame_bytes)
    finally:
        os.close(fd)
    return buf.view(layout.dtype).reshape(groups, nrows, nx)


def read_rows(
    path: str, layout: ArrayLayout, integration: int, groups: int, rows: slice
) -> np.ndarray:
    """Read whole rows of the leading groups of one integration; return physical values.

    Parameters
    ----------
    path : str
        FITS file.
    layout : ArrayLayout
        Where the 4-D array lies in the file.
    integration : int
        Integration index.
    groups : int
        Number of leading groups to read.
    rows : slice
        Rows (y) to read, ``start`` and ``stop`` set.

    Returns
    -------
    ndarray, shape (groups, nrows, nx)
        uint16 for the usual BZERO=32768 int16 data, uint8 for 8-bit data, else float64.
    """
    raw = _stored_rows(path, layout, integration, rows, groups, lambda n: np.empty(n, np.uint8))
    if layout.bitpix == 16 and layout.bzero == 32768 and layout.bscale == 1:
        # Two's complement plus 32768 is the sign bit flipped: no arithmetic needed.
        return raw.view(">u2") ^ np.uint16(0x8000)
    if layout.bitpix == 8 and layout.bzero == 0 and layout.bscale == 1:
        return raw
    return raw.astype(np.float64) * layout.bscale + layout.bzero


def brightest_rows(
    path: str,
    layout: ArrayLayout,
    integration: int,
    groups: int,
    rows: slice,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The brightest of the leading groups of one integration, per pixel of whole rows.

    For the usual raw data (16-bit integers, BZERO 32768) the rows of every group are
    requested from the kernel at once (``posix_fadvise(WILLNEED)``, so that a cold disk
    gets all the reads together), then read with one ``pread`` a group into a buffer kept
    per thread, and reduced in the stored order: it is the physical order, so only the
    one brightest plane is converted. Other encodings go through :func:`read_rows`.

    Parameters
    ----------
    out : ndarray of int16, shape (nrows, nx), optional
        Where the usual data's result is made (other encodings ignore it).

    Returns
    -------
    ndarray, shape (nrows, nx)
        Physical values (uint16 for the usual data).
    """
    if groups < 1:
        raise ValueError("at least one group is needed")
    if not (layout.bitpix == 16 and layout.bzero == 32768 and layout.bscale == 1):
        return read_rows(path, layout, integration, groups, rows).max(axis=0)
    return _brightest_stored(_raw_groups(path, layout, integration, rows, groups), out)


def _brightest_stored(ramp: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The brightest of stored 16-bit groups (BZERO 32768), as physical uint16 values.

    Reduced in the stored order, which is the physical order, so only the one brightest
    plane is converted. ``out`` (int16, one plane's shape) receives it when given.
    """
    if len(ramp) == 1:
        peak = np.empty(ramp.shape[1:], np.int16) if out is None else out
        np.copyto(peak, ramp[0])
    else:
        # Pairwise in place: faster than np.maximum.reduce on big-endian values.
        peak = np.maximum(ramp[0], ramp[1], out=out)
        for plane in ramp[2:]:
            np.maximum(peak, plane, out=peak)
    # Two's complement plus 32768 is the sign bit flipped.
    peak = peak.view(np.uint16)
    np.bitwise_xor(peak, np.uint16(0x8000), out=peak)
    return peak


#: Largest scratch buffer kept per thread and use (a tile of 4 full-frame groups is 2 MB);
#: a larger one is made afresh, so that idle threads never hold much memory.
_KEEP_BYTES = 16 << 20
_buffers = threading.local()


def _thread_buffer(nbytes: int, use: str = "read") -> np.ndarray:
    """A scratch byte buffer of this thread for ``use``, valid until its next call for it.

    Its pages stay mapped from one tile to the next. That matters most in dask's worker
    processes: the nanny sets ``MALLOC_TRIM_THRESHOLD_``, which fixes glibc's mmap
    threshold at 128 KiB, so every fresh tile-sized array there is new pages from the
    kernel, faulted in and zeroed, and returned when freed.
    """
    if nbytes > _KEEP_BYTES:
        return np.empty(nbytes, dtype=np.uint8)
    kept = getattr(_buffers, "kept", None)
    if kept is None:
        kept = _buffers.kept = {}
    buf = kept.get(use)
    if buf is None or buf.size < nbytes:
        buf = kept[use] = np.empty(-(-nbytes // (256 << 10)) * (256 << 10), dtype=np.uint8)
    return buf[:nbytes]


def _scratch(use: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """An array of this thread's scratch buffer for ``use`` (content undefined)."""
    dtype = np.dtype(dtype)
    return _thread_buffer(math.prod(shape) * dtype.itemsize, use).view(dtype).reshape(shape)


def _willneed(fd: int, first: int, span: int, stride: int, groups: int) -> None:
    """Ask the kernel to read ``groups`` spans of ``span`` bytes, ``stride`` apart, now.

    Advice only: where it cannot be given (a file system without it), the reads still work.
    """
    try:
        if span == stride:
            os.posix_fadvise(fd, first, span * groups, os.POSIX_FADV_WILLNEED)
            return
        for g in range(groups):
            os.posix_fadvise(fd, first + g * stride, span, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass


def _pread_exactly(fd: int, path: str, out: np.ndarray, offset: int) -> None:
    """Fill ``out`` from ``offset``; an end of file first is a truncated input."""
    view = memoryview(out)
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise InputError(f"{path}: file is truncated (array data ends early)")
        done += got


def _window(thresholds: np.ndarray | Window) -> Window:
    # A caller's own threshold array (not the engine's shared window): ceilings made here.
    return thresholds if isinstance(thresholds, Window) else Window(thresholds)


def _tile_from_ramp(
    path: str,
    layout: ArrayLayout,
    thresholds: np.ndarray | Window,
    groups: int,
    grow_by: int,
    ys: slice,
    xs: slice,
    integrations: Sequence[int] = (0,),
) -> np.ndarray:
    window = _window(thresholds)
    ny, nx = window.values.shape
    hy = slice(max(0, ys.start - grow_by), min(ny, ys.stop + grow_by))
    hx = slice(max(0, xs.start - grow_by), min(nx, xs.stop + grow_by))
    halo = (hy.stop - hy.start, hx.stop - hx.start)
    # The intermediate images are this thread's scratch; only the growth's result, which
    # the tile's result is part of, is made afresh.
    src = None
    for i in integrations:
        # A pixel saturates within the groups exactly when their brightest value does.
        peak = brightest_rows(
            path, layout, i, groups, hy, out=_scratch("peak", (halo[0], layout.shape[3]), np.int16)
        )[:, hx]
        scratch = _scratch("hit", halo, bool)
        if peak.dtype == np.uint16:
            hit = _reached(peak, window, hy, hx, out=scratch)
        else:
            hit = peak >= window.values[hy, hx]
        hit = grow(hit, grow_by, work=_scratch("rows", halo, bool))
        if hit is scratch:  # nothing grew
            hit = hit.copy()
        if src is None:
            src = hit
        else:
            src |= hit
    if src is None:
        src = np.zeros(halo, dtype=bool)
    return src[ys.start - hy.start : ys.stop - hy.start, xs.start - hx.start : xs.stop - hx.start]


def _reached(
    peak: np.ndarray, window: Window, ys: slice, xs: slice, out: np.ndarray | None = None
) -> np.ndarray:
    """Pixels of 16-bit values ``peak`` (the part ``ys, xs`` of ``window``) at their thresholds.

    Integers against the thresholds' ceilings: one SIMD pass, no float conversion. The
    few pixels that are never checked (their ceiling clipped to 65535) are then cleared
    by index, which is cheaper than a second pass over the tile for them. ``out``
    receives the result when given.
    """
    hit = np.greater_equal(peak, window.limits[0][ys, xs], out=out)
    rows, cols = window.never_at
    inside = (rows >= ys.start) & (rows < ys.stop) & (cols >= xs.start) & (cols < xs.stop)
    hit[rows[inside] - ys.start, cols[inside] - xs.start] = False
    return hit


def _tile_from_groupdq(
    path: str,
    layout: ArrayLayout,
    n_unsat_threshold: int,
    ys: slice,
    xs: slice,
    integrations: Sequence[int] = (0,),
) -> np.ndarray:
    src = np.zeros((ys.stop - ys.start, xs.stop - xs.start), dtype=bool)
    for i in integrations:
        gdq = read_rows(path, layout, i, layout.shape[1], ys)[:, :, xs]
        src |= sources_from_groupdq(np.asarray(gdq, dtype=np.uint32), n_unsat_threshold)
    return src


def _edges(size: int, step: int) -> list[slice]:
    return [slice(a, min(a + step, size)) for a in range(0, size, step)]


def lazy_sources(
    exposure: Exposure,
    thresholds: np.ndarray | Window | Delayed | None,
    n_unsat_threshold: int,
    n_pix_grow_sat: int,
    tile: Sequence[int],
    all_integrations: bool = False,
    integrations: Sequence[int] | None = None,
) -> da.Array:
    """Persistence sources of one exposure, in its own frame, as a lazy dask array.

    Parameters
    ----------
    exposure : Exposure
        The exposure (its headers and byte layout).
    thresholds : ndarray, Window, dask Delayed of either, or None
        Thresholds cut to the exposure's frame (a ``dask.delayed``
        :class:`~miripersist.thresholds.Window` lets many exposures share one copy in the
        graph, and its 16-bit ceilings); ``None`` when the exposure carries GROUPDQ.
    n_unsat_threshold : int
        A pixel is a source with at most this many unsaturated groups.
    n_pix_grow_sat : int
        Growth of the saturated pixels, as the saturation step's parameter.
    tile : (int, int)
        Tile shape (rows, columns); chunks of the result.
    all_integrations : bool
        A pixel that is a source in any integration is a source (default: the first
        integration decides, as in the notebook).
    integrations : sequence of int, optional
        The integrations (0-indexed, in this file) that decide, overriding
        ``all_integrations``.

    Returns
    -------
    dask.array.Array of bool, shape (ysize, xsize)
    """
    if exposure.groupdq is None and thresholds is None:
        raise ValueError(f"{exposure.path}: thresholds are needed for an exposure without GROUPDQ")
    if isinstance(thresholds, np.ndarray | Window):
        thresholds = dask.delayed(_window(thresholds), pure=True)
    which = tuple(
        integrations
        if integrations is not None
        else range(exposure.nints if all_integrations else 1)
    )
    path = exposure.path
    if exposure.groupdq is not None:
        groupdq = exposure.groupdq

        def task(ys: slice, xs: slice) -> tuple:
            return (_tile_from_groupdq, path, groupdq, n_unsat_threshold, ys, xs, which)

        dependency = None
    else:
        groups = groups_needed(exposure.ngroups, n_unsat_threshold)
        key = thresholds.key  # type: ignore[union-attr]

        def task(ys: slice, xs: slice) -> tuple:
            return (_tile_from_ramp, path, exposure.sci, key, groups, n_pix_grow_sat, ys, xs, which)

        dependency = thresholds
    decided_by = (
        exposure.fingerprint,
        path,
        n_unsat_threshold,
        n_pix_grow_sat,
        tuple(tile),
        getattr(thresholds, "key", None),
        all_integrations,
        integrations,
    )
    return _tiled("sources-", decided_by, exposure, tile, task, dependency, bool)


def _tiled(
    prefix: str,
    decided_by: tuple,
    exposure: Exposure,
    tile: Sequence[int],
    task: Callable[[slice, slice], tuple],
    dependency: Delayed | None,
    dtype: type,
    leading: tuple[int, ...] = (),
) -> da.Array:
    """A dask array of one raw task a detector tile, ``task(rows, columns)``.

    Naming the tasks from what decides them (``decided_by``) is much cheaper than hashing
    every argument, and raw tasks avoid dask.delayed's walk through the dataclass
    arguments. ``leading`` are the sizes of unchunked axes before (y, x).
    """
    name = prefix + hashlib.sha1(repr(decided_by).encode()).hexdigest()
    row_edges, col_edges = _edges(exposure.ysize, tile[0]), _edges(exposure.xsize, tile[1])
    zeros = (0,) * len(leading)
    dsk = {
        (name, *zeros, r, c): task(ys, xs)
        for r, ys in enumerate(row_edges)
        for c, xs in enumerate(col_edges)
    }
    deps = [dependency] if dependency is not None else []
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=deps)
    chunks = (
        *((n,) for n in leading),
        tuple(e.stop - e.start for e in row_edges),
        tuple(e.stop - e.start for e in col_edges),
    )
    return da.Array(graph, name, chunks, dtype=dtype)


def _raw_groups(
    path: str, layout: ArrayLayout, integration: int, rows: slice, groups: int | None = None
) -> np.ndarray:
    """The leading groups (all by default) of whole rows of one integration, as stored.

    The usual encoding only (big-endian int16, BZERO 32768). Every group's rows are
    requested from the kernel at once (``posix_fadvise(WILLNEED)``, so that a cold disk
    gets all the reads together), then read with one ``pread`` a group into this
    thread's buffer: the array is valid until the thread's next read.
    """
    groups = layout.shape[1] if groups is None else groups
    return _stored_rows(path, layout, integration, rows, groups, _thread_buffer)


def _first_crossing_raw(raw: np.ndarray, window: Window, hy: slice, hx: slice) -> np.ndarray:
    """:func:`~miripersist.saturation.first_crossing` of stored 16-bit groups, sparsely.

    ``raw`` holds the part ``hy, hx`` of ``window``. A pixel saturates in some group
    exactly when its brightest group does, and few pixels do: the brightest value is
    found for every pixel (one pass, in the stored order), the first group only for
    those that reach their threshold.
    """
    ys, xs = pixels(_reached(_brightest_stored(raw), window, hy, hx))
    limit = window.limits[0][hy, hx]
    first = np.full(limit.shape, NEVER, dtype=np.int16)
    if ys.size:
        # Gathered values keep the stored byte order: to native first, then flip the sign.
        values = raw[:, ys, xs].astype(np.int16).view(np.uint16) ^ np.uint16(0x8000)
        first[ys, xs] = np.argmax(values >= limit[ys, xs], axis=0)
    return first


def _first_saturated_tile(
    path: str,
    layout: ArrayLayout,
    thresholds: np.ndarray | Window,
    grow_by: int,
    ys: slice,
    xs: slice,
) -> np.ndarray:
    window = _window(thresholds)
    ny, nx = window.values.shape
    nints, ngroups = layout.shape[:2]
    hy = slice(max(0, ys.start - grow_by), min(ny, ys.stop + grow_by))
    hx = slice(max(0, xs.start - grow_by), min(nx, xs.stop + grow_by))
    standard = layout.bitpix == 16 and layout.bzero == 32768 and layout.bscale == 1
    out = np.empty((nints, ys.stop - ys.start, xs.stop - xs.start), dtype=np.int16)
    for i in range(nints):
        if standard:
            raw = _raw_groups(path, layout, i, hy)[:, :, hx]
            first = _first_crossing_raw(raw, window, hy, hx)
        else:
            planes = read_rows(path, layout, i, ngroups, hy)[:, :, hx]
            first = first_crossing(planes, window.values[hy, hx])
        first = grow_first(first, grow_by)
        out[i] = first[
            ys.start - hy.start : ys.stop - hy.start, xs.start - hx.start : xs.stop - hx.start
        ]
    return out


def lazy_first_saturated(
    exposure: Exposure,
    thresholds: np.ndarray | Window | Delayed | None,
    n_pix_grow_sat: int,
    tile: Sequence[int],
) -> da.Array:
    """Each pixel's first SATURATED group per integration of one file, lazily.

    As the saturation step flags them (threshold, sticky flags, growth), from every group
    of every integration, read in tiles with their growth halo.

    Returns
    -------
    dask.array.Array of int16, shape (nints, ysize, xsize)
        :data:`miripersist.saturation.NEVER` where a pixel never saturates.
    """
    if exposure.groupdq is not None or thresholds is None:
        raise InputError(
            f"{exposure.path}: carries GROUPDQ; --method pipeline computes saturation from "
            "the ramp of uncal files"
        )
    if isinstance(thresholds, np.ndarray | Window):
        thresholds = dask.delayed(_window(thresholds), pure=True)
    path, key = exposure.path, thresholds.key

    def task(ys: slice, xs: slice) -> tuple:
        return (_first_saturated_tile, path, exposure.sci, key, n_pix_grow_sat, ys, xs)

    decided_by = (exposure.fingerprint, path, n_pix_grow_sat, tuple(tile), key)
    leading = (exposure.sci.shape[0],)
    return _tiled(
        "first-saturated-", decided_by, exposure, tile, task, thresholds, np.int16, leading
    )
