"""The base of the rules whose sources are pixels that mask for a window of time.

Such a rule (the notebook's, snowblind's) says only what a source is
(:meth:`Method.sources`) and, as data, which time of its exposure opens a source's window
and whether the window's end is inclusive. The rest is shared here: sources placed in
detector coordinates and grown by ``--dilate``, the scan, ``--history`` from an earlier
run's store and ``--memory``'s entries among the run's own, and the warning for a window
shorter than every gap between exposures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, cast

import numpy as np

from ..inventory import DETECTOR_SHAPE, by_detector
from ..options import window_words
from ..saturation import grow
from ..scan import masked, new_carry, window_scan
from .base import Block, Method, Past, Scanned

if TYPE_CHECKING:
    from ..inventory import Exposure
    from ..parameters import Parameters
    from ..recall import Entry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Carry:
    """A windowed rule's state between blocks.

    Attributes
    ----------
    times : ndarray of float64, shape (1024, 1032)
        Per pixel, the time its latest source recorded (:mod:`miripersist.scan`).
    pending : tuple of Entry
        The memory's entries not yet reached, in scan order.
    """

    times: np.ndarray
    pending: tuple[Entry, ...] = ()


class Windowed(Method):
    """A rule of pixel sources, each masking the exposures that start within its window.

    Attributes
    ----------
    window_from : str
        ``"end"`` or ``"start"``: the time of a source's exposure its window opens at.
    strict : bool
        Whether an exposure that starts exactly a window after is no longer masked
        (:func:`miripersist.scan.masked`).
    """

    window_from: ClassVar[str] = "end"
    strict: ClassVar[bool] = False

    def stamps(self, exposures: Sequence[Exposure]) -> np.ndarray:
        """The time (MJD) each exposure's sources record in the carry."""
        return np.array([getattr(e, f"{self.window_from}_mjd") for e in exposures])

    def scan(self, block: Block, carry: object, params: Parameters) -> Scanned:
        """Place and grow the computed sources; the exclusive scan of the block.

        Entries recalled from the memory are recorded in the carry as the scan reaches
        their place among the block's exposures.
        """
        for k, frame in enumerate(block.frames):
            if frame is None:
                continue  # from the store: placed and grown by the run that made it
            block.place(k, frame)
            if params.dilate:
                block.sources[k] = grow(block.sources[k], params.dilate)
        state = cast(Carry, carry)  # as begin() made it
        times, pending = state.times, list(state.pending)
        exposures, n = block.exposures, len(block.exposures)
        stamps, starts = self.stamps(exposures), np.array([e.start_mjd for e in exposures])
        cut = 0
        for k in range(n + 1):
            due = []
            while (
                k < n and pending and pending[0].order < (exposures[k].mid_mjd, exposures[k].name)
            ):
                due.append(pending.pop(0))
            if k < n and not due:
                continue
            if k > cut:
                run = slice(cut, k)
                _, times = window_scan(
                    block.sources[run],
                    stamps[run],
                    starts[run],
                    times,
                    params.window_days,
                    self.strict,
                    block.out[run],
                )
            if due:
                times = self.recorded(times, due)
            cut = k
        return Scanned(block.out[:n], Carry(times, tuple(pending)))

    def recorded(self, times: np.ndarray, entries: Sequence[Entry]) -> np.ndarray:
        """A copy of ``times`` with the memory's ``entries`` recorded, in order."""
        times = times.copy()
        flat = times.reshape(-1)
        for entry in entries:
            stamp = getattr(entry, f"{self.window_from}_mjd")
            assert entry.pixels is not None  # recalled entries come with their pixels
            flat[entry.pixels] = np.maximum(flat[entry.pixels], stamp)
        return times

    def begin(
        self, exposures: Sequence[Exposure], past: Past, params: Parameters
    ) -> dict[str, object]:
        """Each detector's carry: the ``--history`` stores' sources, the memory's to come."""
        self.warn_if_window_masks_nothing(exposures, params.window_days)
        detectors = sorted({e.detector for e in exposures})
        if past.history is None:
            times = {d: new_carry(DETECTOR_SHAPE) for d in detectors}
        else:
            from ..history import history_carry, open_store_history

            chain = open_store_history(past.history, exposures, params)
            times = {d: history_carry(chain, d, f"{self.window_from}_mjd") for d in detectors}
        return {d: Carry(times[d], tuple(past.recalled.get(d, ()))) for d in detectors}

    def warn_if_window_masks_nothing(
        self, exposures: Sequence[Exposure], window_days: float
    ) -> None:
        """Warn when the window is shorter than every gap between consecutive exposures."""
        if np.isinf(window_days):
            return
        for detector, indices in by_detector(exposures).items():
            if len(indices) < 2:
                continue
            chosen = [exposures[i] for i in indices]
            start, stamps = np.array([e.start_mjd for e in chosen]), self.stamps(chosen)
            shortest = float(np.min(start[1:] - stamps[:-1]))
            if not masked(np.array([stamps[0]]), stamps[0] + shortest, window_days, self.strict)[0]:
                log.warning(
                    "--window %s is shorter than the shortest gap between consecutive %s "
                    "exposures (%s): it can mask nothing there",
                    window_words(window_days),
                    detector,
                    window_words(shortest),
                )
