"""Group-level persistence windows, opened and closed as jwst's PersistenceStep does.

Pure functions on numpy arrays. The step keeps, per pixel, the end time of an open
window (0 for none) and walks every group of every integration in order
(``process_persistence_flagging`` in ``jwst/persistence/persistence.py``): ends before the
group's time close; the pixel's first SATURATED group of the integration opens a window
ending ``persistence_time`` later; ends beyond ``time + persistence_time`` are reset
("backwards flagging"); the group is flagged where a window is open. Only pixels with an
open window or a saturation take part, so the walk is done on those alone, with the
step's own operations in its own order: the results are bit for bit the step's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .saturation import NEVER


@dataclass(frozen=True)
class GroupFlags:
    """The groups of one file that lie in a persistence window, compactly.

    Attributes
    ----------
    shape : tuple of int
        (nints, ngroups, ny, nx) of the file.
    pixels : ndarray of int64
        Flat indices of the pixels that took part (open window or saturation).
    flagged : ndarray of bool, shape (nints, ngroups, len(pixels))
        Whether each of those pixels' groups is in a window.
    """

    shape: tuple[int, int, int, int]
    pixels: np.ndarray
    flagged: np.ndarray

    def any_group(self) -> np.ndarray:
        """Pixels with at least one flagged group, shape (ny, nx)."""
        out = np.zeros(self.shape[2] * self.shape[3], dtype=bool)
        out[self.pixels] = self.flagged.any(axis=(0, 1))
        return out.reshape(self.shape[2:])

    def cube(self, value: int) -> np.ndarray:
        """The GROUPDQ these flags make: ``value`` in each flagged group, uint8."""
        nints, ngroups, ny, nx = self.shape
        out = np.zeros((nints, ngroups, ny * nx), dtype=np.uint8)
        out[:, :, self.pixels] = self.flagged.astype(np.uint8) * np.uint8(value)
        return out.reshape(self.shape)

    def digest(self) -> str:
        """A digest of exactly what :meth:`cube` holds."""
        h = hashlib.sha256(repr(self.shape).encode())
        h.update(self.pixels.astype("<i8").tobytes())
        h.update(np.packbits(self.flagged).tobytes())
        return h.hexdigest()


def flag_groups(
    before: np.ndarray, first: np.ndarray, times: np.ndarray, pers_time: int
) -> tuple[np.ndarray, GroupFlags]:
    """One file through the step: its flagged groups and the window ends after it.

    Parameters
    ----------
    before : ndarray of float64, shape (ny, nx)
        Window ends (Unix seconds, 0 for none) before the file, in its own frame.
    first : ndarray of int16, shape (nints, ny, nx)
        First SATURATED group per integration (:data:`~miripersist.saturation.NEVER`
        for none).
    times : ndarray of float64, shape (nints, ngroups)
        Group times (:func:`miripersist.grouptimes.group_times`).
    pers_time : int
        The window, in seconds (the step's ``persistence_time``).

    Returns
    -------
    after : ndarray of float64, shape (ny, nx)
    flags : GroupFlags
    """
    nints, ngroups = times.shape
    ny, nx = before.shape
    saturates = (first != NEVER).any(axis=0)
    # Every end the step would touch: a negative one (times before 1970, from a bad
    # INT_TIMES row or history) is closed by the first group, as the step closes it.
    pixels = np.flatnonzero((before != 0.0) | saturates)
    p = before.ravel()[pixels].copy()
    firsts = first.reshape(nints, -1)[:, pixels]
    flagged = np.empty((nints, ngroups, pixels.size), dtype=bool)
    for i in range(nints):
        for g in range(ngroups):
            now = times[i, g]
            p[p < now] = 0.0
            window_end = now + pers_time
            p[firsts[i] == g] = window_end
            start = p - window_end
            start[p == 0.0] = 0.0
            p[start > 0.0] = 0.0
            flagged[i, g] = p > 0.0
    after = before.copy()
    after.ravel()[pixels] = p
    return after, GroupFlags((nints, ngroups, ny, nx), pixels, flagged)


def expire(window_ends: np.ndarray, times: np.ndarray, pers_time: int) -> None:
    """Close, in place, windows that a file's groups close without saturating the pixel.

    For a pixel outside a subarray file's frame, as if the file were full frame: an end
    survives every group exactly when it is no earlier than the last group's time and no
    later than the first group's time plus the window.
    """
    if times.size == 0 or np.isnan(times).all():
        return  # no group time compares: the step closes nothing either
    # A NaN time closes nothing in the step; the groups with times do.
    closed = (window_ends < np.nanmax(times)) | (window_ends > np.nanmin(times) + pers_time)
    window_ends[closed] = 0.0
