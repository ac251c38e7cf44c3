"""The science of persistence sources: pure functions on numpy arrays.

These reproduce the jwst saturation step (``stcal.saturation.flag_saturated_pixels``)
as far as the persistence mask needs it, without file I/O or dask, so that they can
be tested on small arrays and mapped over detector tiles unchanged.

Why only a prefix of the groups is read: the SATURATED flag is sticky (once a pixel
reaches its threshold in group g, groups g+1.. are flagged too), and growth dilates
each group's flags with the same box. So the number of unsaturated groups of a pixel
is the index of the first group in which any pixel of its box saturated, and
"at most N unsaturated groups, and saturated at all" holds exactly when some pixel of
the box reached its threshold within groups 0..N.
"""

from __future__ import annotations

import numpy as np

from .flags import SATURATED_GROUP


def groups_needed(ngroups: int, n_unsat_threshold: int) -> int:
    """How many leading groups decide the source map: ``min(ngroups, n_unsat_threshold + 1)``."""
    return max(0, min(ngroups, n_unsat_threshold + 1))


def saturated_any(groups: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Pixels that reach their threshold (``>=``) in any of the given groups.

    Parameters
    ----------
    groups : ndarray, shape (ngroups, ny, nx)
        Raw ramp values in DN.
    thresholds : ndarray, shape (ny, nx)
        Saturation thresholds; pixels never to be checked hold 65536.

    Returns
    -------
    ndarray of bool, shape (ny, nx)
    """
    if len(groups) == 0:
        return np.zeros(thresholds.shape, dtype=bool)
    # One comparison of the brightest group instead of one per group: the integer max
    # is much cheaper than comparing integers with float thresholds.
    return groups.max(axis=0) >= thresholds


def grow(mask: np.ndarray, n_pix_grow_sat: int, work: np.ndarray | None = None) -> np.ndarray:
    """Dilate by a (2n+1) x (2n+1) box with nothing beyond the array edge (stcal's growth).

    A box is separable, so shifted ORs along rows then columns give exactly
    ``scipy.ndimage.binary_dilation(mask, ones((2n+1, 2n+1)), border_value=0)`` at a
    tenth of its cost on a full frame (the tests check the equality). ``work`` (not
    ``mask``), when given, holds the rows' pass instead of a new array; the result is a
    new array, or ``mask`` itself when there is nothing to grow.
    """
    if n_pix_grow_sat <= 0 or not mask.any():
        return mask
    if work is None:
        rows = mask.copy()
    else:
        rows = work
        np.copyto(rows, mask)
    for d in range(1, n_pix_grow_sat + 1):
        rows[d:] |= mask[:-d]
        rows[:-d] |= mask[d:]
    out = rows.copy()
    for d in range(1, n_pix_grow_sat + 1):
        out[:, d:] |= rows[:, :-d]
        out[:, :-d] |= rows[:, d:]
    return out


def pixels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the set pixels of a 2-D boolean image, as ``np.nonzero``.

    ``np.nonzero`` of a 2-D image costs ten to twenty times the flat search (4 ms against
    0.3 ms on a full frame, numpy 2.4); the indices are the same, in the same order.
    """
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def sources_from_ramp(
    groups: np.ndarray, thresholds: np.ndarray, n_pix_grow_sat: int
) -> np.ndarray:
    """Persistence sources from the leading groups of the first integration.

    ``groups`` must hold exactly the groups that decide (see :func:`groups_needed`).
    """
    return grow(saturated_any(groups, thresholds), n_pix_grow_sat)


def unsaturated_count(groupdq: np.ndarray) -> np.ndarray:
    """Number of groups without the SATURATED bit, per pixel (the notebook's count)."""
    return np.count_nonzero((groupdq & SATURATED_GROUP) == 0, axis=0)


def sources_from_groupdq(groupdq: np.ndarray, n_unsat_threshold: int) -> np.ndarray:
    """Persistence sources from a first integration's GROUPDQ (all its groups).

    A pixel is a source when it has at most ``n_unsat_threshold`` unsaturated groups
    and is saturated in at least one.
    """
    unsat = unsaturated_count(groupdq)
    return (unsat <= n_unsat_threshold) & (unsat < groupdq.shape[0])


#: First saturated group of a pixel that never saturates (larger than any group index).
NEVER = np.iinfo(np.int16).max


def first_crossing(planes, thresholds: np.ndarray) -> np.ndarray:
    """Index of the first group in which each pixel reaches its threshold (``>=``).

    Parameters
    ----------
    planes : iterable of ndarray, shape (ny, nx)
        The groups of one integration, in order (raw values in DN).
    thresholds : ndarray, shape (ny, nx)
        Saturation thresholds; pixels never to be checked hold 65536.

    Returns
    -------
    ndarray of int16, shape (ny, nx)
        :data:`NEVER` where no group reaches the threshold.
    """
    first = np.full(thresholds.shape, NEVER, dtype=np.int16)
    limit = never = None
    for g, plane in enumerate(planes):
        if plane.dtype == np.uint16:
            if limit is None:
                limit, never = uint16_limits(thresholds)
            hit = plane >= limit
        else:
            hit = plane >= thresholds
        hit &= first == NEVER
        first[hit] = g
    if never is not None:
        first[never] = NEVER
    return first


def uint16_limits(thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds for 16-bit data, compared in uint16 (one SIMD pass a group).

    For integer data ``data >= t`` is ``data >= ceil(t)``; a ceiling above 65535 (NaN
    included) can never be reached: those pixels are returned apart.
    """
    ceil = np.ceil(np.nan_to_num(np.asarray(thresholds, dtype=np.float64), nan=65536.0))
    return np.clip(ceil, 0, 65535).astype(np.uint16), ceil > 65535


def grow_first(first: np.ndarray, n_pix_grow_sat: int) -> np.ndarray:
    """First saturated group after growth: the earliest of a (2n+1) x (2n+1) box.

    The saturation step dilates each group's flags and the flags are sticky, so a pixel
    is first flagged in the first group in which any pixel of its box reached its
    threshold: a minimum filter, with nothing beyond the array edge (the box analogue
    of :func:`grow`).
    """
    if n_pix_grow_sat <= 0 or not (first != NEVER).any():
        return first
    rows = first.copy()
    for d in range(1, n_pix_grow_sat + 1):
        np.minimum(rows[d:], first[:-d], out=rows[d:])
        np.minimum(rows[:-d], first[d:], out=rows[:-d])
    out = rows.copy()
    for d in range(1, n_pix_grow_sat + 1):
        np.minimum(out[:, d:], rows[:, :-d], out=out[:, d:])
        np.minimum(out[:, :-d], rows[:, d:], out=out[:, :-d])
    return out
