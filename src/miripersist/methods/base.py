"""The interface a persistence rule implements."""

from __future__ import annotations

import functools
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..inventory import DETECTOR_SHAPE, output_name
from ..scan import new_carry, scan

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
    default_tile : tuple of int
        Dask tile (rows, columns) when the user names none. A task holds the tile's rows
        of the groups the method reads: a few groups here, so 512 full-width rows (two
        tasks a full frame; fewer, larger reads ran 13% faster warm and 23% cold than 256).
    """

    name: str = ""
    default_flags: str = "DO_NOT_USE,PERSISTENCE"
    default_window_days: float = np.inf
    default_tile: tuple[int, int] = (512, 1032)
    #: Whether a rerun may take an unchanged exposure's sources from the store instead of
    #: reading it again (a method whose results hang on every earlier exposure's timing
    #: reads them all).
    reuses_sources: bool = True
    #: Whether a user mask (pixel flags for every exposure) fits the method's outputs.
    accepts_user_mask: bool = True
    #: Whether a source also flags later groups of its own exposure (then no window is
    #: too short to flag anything).
    flags_own_exposure: bool = False
    #: Whether ``--mode sidecar`` writes DQ images for dq_init's ``user_supplied_dq``.
    writes_dq_sidecars: bool = True
    #: Options the rule has no use for, by their ``Parameters`` field; a value other than
    #: the default is refused (and so never stamped into outputs it did not shape).
    ignores: tuple[str, ...] = ()

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
        out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Masks of consecutive exposures of one detector, and the carry after them.

        An exposure is masked by earlier sources only, never by its own (exclusive scan).
        The masks go into ``out`` when it is given.
        """
        return scan(
            sources, self.stamp(start_mjd, end_mjd), start_mjd, carry, window_days, self, out
        )

    def check(self, params) -> None:
        """Refuse parameters this method cannot honour (raise ConfigError).

        Here: any of :attr:`ignores` given a value other than its default. A method with
        more to check extends this.
        """
        from dataclasses import fields

        from ..errors import ConfigError
        from ..options import option_name

        defaults = {f.name: f.default for f in fields(params)}
        for name in self.ignores:
            if getattr(params, name) != defaults[name]:
                raise ConfigError(f"{option_name(name)} does not apply to --method {self.name}")

    def combine(self, parts: list):
        """One exposure's lazy parts (one per file read) as the scan takes them."""
        return functools.reduce(operator.or_, parts)

    def source_image(self, frame) -> np.ndarray:
        """The boolean sources of a computed exposure, in its own frame (for the store)."""
        return frame

    def scan_block(self, sources, frames, exposures, carry, params, out=None):
        """Scan a block of one detector's consecutive exposures.

        Parameters
        ----------
        sources : ndarray of bool, shape (n, ny, nx)
            Sources in detector coordinates (stored or computed).
        frames : list
            Per exposure, what :meth:`combine` made of its computed parts (None when its
            sources came from the store).
        exposures : list of Exposure
        carry : ndarray
            The carried state before the block.
        params : Parameters
        out : ndarray of bool, shape (n, ny, nx), optional
            A buffer the masks may be put in (its content is overwritten); the engine
            passes the same few buffers block after block.

        Returns
        -------
        masks : ndarray of bool, shape (n, ny, nx)
            Pixels each exposure gets flagged (for the store and the counts).
        carry : ndarray
            The state after the block.
        digests : list of str
            Per exposure, a digest of what its outputs hold beyond its mask ("" for none).
        payloads : list
            Per exposure, what :meth:`writes` needs beyond the mask.
        """
        start = np.array([e.start_mjd for e in exposures])
        end = np.array([e.end_mjd for e in exposures])
        masks, carry = self.scan(sources, start, end, carry, params.window_days, out)
        return masks, carry, [""] * len(exposures), [None] * len(exposures)

    def output_names(self, path: str, mode: str, keep_names: bool) -> tuple[str, ...]:
        """Names of the files written for input file ``path``."""
        return (output_name(path, mode, keep_names),)

    def writes(
        self,
        exposure: Exposure,
        outputs: Sequence[str],
        payload,
        applied: np.ndarray,
        n_masked: int,
        params,
        write_mask: Callable,
    ) -> list[Callable[[], str]]:
        """The writes of one exposure's outputs, as calls without arguments.

        ``write_mask(file, applied, n_masked, output, params)`` writes a pixel mask the
        way ``--mode`` says (passed in, as ``reader`` is to :meth:`lazy_sources`).
        """
        return [
            functools.partial(write_mask, f, applied, n_masked, out, params)
            for f, out in zip(exposure.files, outputs, strict=True)
        ]

    def open_history(self, path: str, exposures, params):
        """The state ``--history`` names, checked against this run's exposures."""
        from ..history import open_store_history

        return open_store_history(path, exposures, params)

    def initial_carry(self, past, detector: str) -> np.ndarray:
        """The carry before a detector's first exposure: from the history, or empty."""
        if past is None:
            return new_carry(DETECTOR_SHAPE)
        from ..history import history_carry

        return history_carry(past, detector, self)

    def finish(  # noqa: B027 - most methods leave nothing more
        self, output_dir: str, store: str, carries: dict, params, past
    ) -> None:
        """Write what a run leaves beside the per-exposure outputs (nothing by default).

        ``store`` is the directory of the store being written (it takes the place of the
        run's store once the run ends).
        """
