"""The interface a persistence rule implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

from ..scan import scan

if TYPE_CHECKING:
    import dask.array as da

    from ..inventory import Exposure


class Method(ABC):
    """A persistence rule, in the three parts the engine needs.

    Attributes
    ----------
    name : str
        What ``--method`` calls it.
    default_flags : str
        Pixel DQ flag names set where masked, unless the user names others.
    default_window_days : float
        How long a source masks when the user gives no ``--window`` (``inf``: for ever).
    """

    name: str = ""
    default_flags: str = "DO_NOT_USE,PERSISTENCE"
    default_window_days: float = np.inf

    @abstractmethod
    def lazy_sources(
        self, exposure: Exposure, thresholds, params, reader
    ) -> da.Array:  # pragma: no cover - interface
        """The exposure's sources in its own frame, as a lazy boolean dask array.

        ``reader`` is :func:`miripersist.reader.lazy_sources` (passed in, so that a method
        stays free of file I/O and can be tested with a fake).
        """

    @abstractmethod
    def stamp(self, start_mjd: np.ndarray, end_mjd: np.ndarray) -> np.ndarray:
        """The time a source records in the carry, per exposure (MJD)."""

    @abstractmethod
    def masked(self, carry: np.ndarray, start_mjd: float, window_days: float) -> np.ndarray:
        """Pixels of an exposure starting at ``start_mjd`` that the carried stamps mask.

        ``carry`` holds, per pixel, the latest stamp of an earlier source (``-inf`` for
        none).
        """

    def scan(
        self,
        sources: np.ndarray,
        start_mjd: np.ndarray,
        end_mjd: np.ndarray,
        carry: np.ndarray,
        window_days: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Masks of consecutive exposures of one detector, and the carry after them.

        An exposure is masked by earlier sources only, never by its own (exclusive scan).
        """
        return scan(sources, self.stamp(start_mjd, end_mjd), start_mjd, carry, window_days, self)

    def check(self, params) -> None:  # noqa: B027 - most methods accept every parameter
        """Refuse parameters this method cannot honour (raise ConfigError)."""
