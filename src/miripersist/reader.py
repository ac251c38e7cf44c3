"""Lazy source maps: dask arrays over detector tiles, reading only the bytes needed.

Each tile task maps, at the array's byte offset, the rows of the leading groups of the
first integration that the tile and its growth halo cover, reduces them to their
brightest value where they lie, and applies the pure functions of
:mod:`miripersist.saturation`. Reading the halo (the
reach of ``n_pix_grow_sat``) from disk makes tile seams invisible with no exchange
between tasks, as ``map_overlap`` would need.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Sequence

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from .errors import InputError
from .inventory import ArrayLayout, Exposure
from .saturation import groups_needed, sources_from_groupdq, sources_from_ramp


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
    _, ngroups, ny, nx = layout.shape
    dtype = layout.dtype
    nrows = rows.stop - rows.start
    row_bytes = nx * dtype.itemsize
    buf = np.empty((groups, nrows * row_bytes), dtype=np.uint8)
    fd = os.open(path, os.O_RDONLY)
    try:
        for g in range(groups):
            first_row = (integration * ngroups + g) * ny + rows.start
            want = nrows * row_bytes
            got = os.preadv(fd, [memoryview(buf[g])], layout.offset + first_row * row_bytes)
            if got != want:
                raise InputError(f"{path}: file is truncated (array data ends early)")
    finally:
        os.close(fd)
    raw = buf.view(dtype).reshape(groups, nrows, nx)
    if layout.bitpix == 16 and layout.bzero == 32768 and layout.bscale == 1:
        # Two's complement plus 32768 is the sign bit flipped: no arithmetic needed.
        return raw.view(">u2") ^ np.uint16(0x8000)
    if layout.bitpix == 8 and layout.bzero == 0 and layout.bscale == 1:
        return raw
    return raw.astype(np.float64) * layout.bscale + layout.bzero


def brightest_rows(
    path: str, layout: ArrayLayout, integration: int, groups: int, rows: slice
) -> np.ndarray:
    """The brightest of the leading groups of one integration, per pixel of whole rows.

    For the usual raw data (16-bit integers, BZERO 32768) the groups are memory-mapped and
    reduced where they lie: the stored order is the physical order, so only the one
    brightest plane is converted, and nothing is copied first. Other encodings go
    through :func:`read_rows`.

    Returns
    -------
    ndarray, shape (nrows, nx)
        Physical values (uint16 for the usual data).
    """
    if groups < 1:
        raise ValueError("at least one group is needed")
    if not (layout.bitpix == 16 and layout.bzero == 32768 and layout.bscale == 1):
        return read_rows(path, layout, integration, groups, rows).max(axis=0)
    _, ngroups, ny, nx = layout.shape
    row_bytes = nx * 2
    frame_bytes = ny * row_bytes
    first = layout.offset + (integration * ngroups * ny + rows.start) * row_bytes
    end = first + (groups - 1) * frame_bytes + (rows.stop - rows.start) * row_bytes
    base = first - first % mmap.ALLOCATIONGRANULARITY
    with open(path, "rb") as fh:
        # The inventory checked the size; check again just before mapping, since reading
        # a mapping past the end of a file that shrank since would kill the process.
        if os.fstat(fh.fileno()).st_size < end:
            raise InputError(f"{path}: file is truncated (array data ends early)")
        mapped = mmap.mmap(fh.fileno(), end - base, offset=base, access=mmap.ACCESS_READ)
    ramp = None
    try:
        ramp = np.ndarray(
            (groups, rows.stop - rows.start, nx),
            dtype=">i2",
            buffer=mapped,
            offset=first - base,
            strides=(frame_bytes, row_bytes, 2),
        )
        peak = np.maximum.reduce(ramp, axis=0).astype(np.int16, copy=False)
    finally:
        ramp = None  # the mapping cannot close while an array still points into it
        mapped.close()
    # Two's complement plus 32768 is the sign bit flipped.
    return peak.view(np.uint16) ^ np.uint16(0x8000)


def _tile_from_ramp(
    path: str,
    layout: ArrayLayout,
    thresholds: np.ndarray,
    groups: int,
    grow_by: int,
    ys: slice,
    xs: slice,
    integrations: Sequence[int] = (0,),
) -> np.ndarray:
    ny, nx = thresholds.shape
    hy = slice(max(0, ys.start - grow_by), min(ny, ys.stop + grow_by))
    hx = slice(max(0, xs.start - grow_by), min(nx, xs.stop + grow_by))
    src = np.zeros((hy.stop - hy.start, hx.stop - hx.start), dtype=bool)
    for i in integrations:
        # A pixel saturates within the groups exactly when their brightest value does.
        peak = brightest_rows(path, layout, i, groups, hy)[np.newaxis, :, hx]
        src |= sources_from_ramp(peak, thresholds[hy, hx], grow_by)
    return src[ys.start - hy.start : ys.stop - hy.start, xs.start - hx.start : xs.stop - hx.start]


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
    thresholds: np.ndarray | Delayed | None,
    n_unsat_threshold: int,
    n_pix_grow_sat: int,
    tile: Sequence[int] = (256, 1032),
    all_integrations: bool = False,
    integrations: Sequence[int] | None = None,
) -> da.Array:
    """Persistence sources of one exposure, in its own frame, as a lazy dask array.

    Parameters
    ----------
    exposure : Exposure
        The exposure (its headers and byte layout).
    thresholds : ndarray, dask Delayed or None
        Thresholds cut to the exposure's frame (a ``dask.delayed`` lets many exposures
        share one copy in the graph); ``None`` when the exposure carries GROUPDQ.
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
    ny, nx = exposure.ysize, exposure.xsize
    if exposure.groupdq is None and thresholds is None:
        raise ValueError(f"{exposure.path}: thresholds are needed for an exposure without GROUPDQ")
    if isinstance(thresholds, np.ndarray):
        thresholds = dask.delayed(thresholds, pure=True)
    groups = groups_needed(exposure.ngroups, n_unsat_threshold)
    # Naming the tasks from what decides them is much cheaper than hashing every argument,
    # and raw tasks avoid dask.delayed's walk through the dataclass arguments.
    name = (
        "sources-"
        + hashlib.sha1(
            repr(
                (
                    exposure.fingerprint,
                    exposure.path,
                    n_unsat_threshold,
                    n_pix_grow_sat,
                    tuple(tile),
                    getattr(thresholds, "key", None),
                    all_integrations,
                    integrations,
                )
            ).encode()
        ).hexdigest()
    )
    row_edges, col_edges = _edges(ny, tile[0]), _edges(nx, tile[1])
    which = tuple(
        integrations
        if integrations is not None
        else range(exposure.nints if all_integrations else 1)
    )
    dsk = {}
    for r, ys in enumerate(row_edges):
        for c, xs in enumerate(col_edges):
            if exposure.groupdq is not None:
                task = (
                    _tile_from_groupdq,
                    exposure.path,
                    exposure.groupdq,
                    n_unsat_threshold,
                    ys,
                    xs,
                    which,
                )
            else:
                task = (
                    _tile_from_ramp,
                    exposure.path,
                    exposure.sci,
                    thresholds.key,
                    groups,
                    n_pix_grow_sat,
                    ys,
                    xs,
                    which,
                )
            dsk[(name, r, c)] = task
    deps = [thresholds] if exposure.groupdq is None else []
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=deps)
    chunks = (
        tuple(e.stop - e.start for e in row_edges),
        tuple(e.stop - e.start for e in col_edges),
    )
    return da.Array(graph, name, chunks, dtype=bool)
