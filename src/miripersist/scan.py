"""The exclusive scan over time: which earlier sources mask each exposure.

The carried state is, per detector pixel, the time (MJD) its latest earlier source
recorded: the end of that source's exposure, or its start, as the rule says (``-inf``
for never). Exposure ``i`` is masked where that time exists and lies within the window
before its start. With an infinite window (the notebook's rule) this is the plain
cumulative OR. The scan is linear in the number of exposures and holds only one carry
image per detector.
"""

from __future__ import annotations

import math

import numpy as np

NEVER_SATURATED = -np.inf


def new_carry(shape: tuple[int, int]) -> np.ndarray:
    """A carry image for a detector that has seen no saturation."""
    return np.full(shape, NEVER_SATURATED, dtype=np.float64)


def masked(
    carry: np.ndarray, start_mjd: float, window_days: float, strict: bool = False
) -> np.ndarray:
    """Pixels of an exposure starting at ``start_mjd`` that the carried times mask.

    Masked where a time is carried no more than ``window_days`` before the start (less
    than, with ``strict``: snowblind's comparison).
    """
    seen = carry > NEVER_SATURATED
    if math.isinf(window_days):
        return seen
    if strict:
        return seen & (start_mjd - carry < window_days)
    return seen & (carry >= start_mjd - window_days)


def window_scan(
    sources: np.ndarray,
    stamps: np.ndarray,
    start_mjd: np.ndarray,
    carry: np.ndarray,
    window_days: float = np.inf,
    strict: bool = False,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Masks of a block of consecutive exposures, and the carry after them.

    Parameters
    ----------
    sources : ndarray of bool, shape (n, ny, nx)
        Persistence sources of n consecutive exposures, in scan order.
    stamps : ndarray, shape (n,)
        What each exposure's sources record in the carry (MJD).
    start_mjd : ndarray, shape (n,)
        Exposure start times.
    carry : ndarray of float64, shape (ny, nx)
        State after the exposures before this block (not modified).
    window_days : float
        How long a source keeps masking; ``inf`` for ever.
    strict : bool
        As :func:`masked`.
    out : ndarray of bool, shape (n, ny, nx), optional
        Where to put the masks. A caller that scans block after block passes the same
        buffers again: fresh images of this size cost more to fault in (and, where numpy
        asks for huge pages, to compact memory for) than the scan itself.

    Returns
    -------
    masks : ndarray of bool, shape (n, ny, nx)
        ``masks[i]`` covers the sources of exposures before ``i``, never ``i`` itself.
    carry : ndarray of float64, shape (ny, nx)
        State after the block.
    """
    masks = np.empty(sources.shape, dtype=bool) if out is None else out
    last = carry.copy()
    if not math.isinf(window_days):
        for i in range(sources.shape[0]):
            masks[i] = masked(last, start_mjd[i], window_days, strict)
            last[sources[i]] = stamps[i]
        return masks, last
    # Without a window only "ever a source" matters: each mask is what was seen before the
    # block OR'ed with the block's earlier sources (one cumulative OR over the block), and
    # the carry is updated once, at the few pixels the block's sources touch.
    if len(sources):
        np.greater(last, NEVER_SATURATED, out=masks[0])
        # A loop of whole-image ORs: ``np.logical_or.accumulate`` along the first axis
        # is two hundred times slower.
        for i in range(1, len(sources)):
            np.logical_or(masks[i - 1], sources[i - 1], out=masks[i])
        _record_latest(sources, np.asarray(stamps), last)
    return masks, last


def exclusive_scan(
    sources: np.ndarray,
    start_mjd: np.ndarray,
    end_mjd: np.ndarray,
    carry: np.ndarray,
    window_days: float = np.inf,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's scan: a source masks from the end of its exposure (:func:`window_scan`)."""
    return window_scan(sources, end_mjd, start_mjd, carry, window_days, False, out)


def _record_latest(sources: np.ndarray, stamps: np.ndarray, carry: np.ndarray) -> None:
    """Set ``carry`` (C-contiguous, in place) to the stamp of each pixel's last source.

    Sources are sparse: the pixels that are a source in any of the block's exposures are
    found with one OR over the block, and only their columns are searched for the last.
    """
    n = len(sources)
    flat = sources.reshape(n, -1)
    hit = np.flatnonzero(np.logical_or.reduce(flat, axis=0))
    if hit.size:
        latest = n - 1 - np.argmax(flat[::-1, hit], axis=0)
        carry.reshape(-1)[hit] = stamps[latest]
