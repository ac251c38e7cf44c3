"""The interface a persistence rule implements: two hooks, three optional, and data.

Like xarray's ``BackendEntrypoint``, a rule is small: it says what a source is
(:meth:`Method.sources`, read lazily, in parallel over every exposure) and how a block of
one detector's consecutive exposures is scanned (:meth:`Method.scan`, serial, in time
order). Optionally it refuses parameters it cannot honour (:meth:`Method.check`), says
what it carries into a run, from ``--history`` or from nothing (:meth:`Method.begin`),
and what it leaves beside the per-exposure outputs (:meth:`Method.finish`). Everything
else it declares as data: its options' defaults (:class:`Options`), whether a rerun may
reuse stored sources and which kinds of output it writes (:class:`Traits`). The engine
reads those, never a rule's name or class.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import ConfigError
from ..inventory import DETECTOR_SHAPE
from ..kinds import Kind

if TYPE_CHECKING:
    import dask.array as da

    from ..inventory import Exposure
    from ..parameters import Parameters
    from ..reads import Reads
    from ..recall import Entry

#: Per ``--mode``, the outputs of each input file of a rule that flags pixels.
PIXEL_OUTPUTS: Mapping[str, tuple[Kind, ...]] = MappingProxyType(
    {"copy": (Kind.PIXELDQ_COPY,), "sidecar": (Kind.DQ_SIDECAR,)}
)


@dataclass(frozen=True)
class Options:
    """A rule's option defaults, and the options it has no use for.

    Attributes
    ----------
    flags : str
        DQ flag names set where masked, unless the user names others.
    window_days : float
        How long a source masks with no ``--window`` (``inf``: for ever; NaN: the user
        must give one).
    tile : tuple of int
        Dask tile (rows, columns) when the user names none. A task holds the tile's rows
        of the groups the rule reads: a few groups, so 512 full-width rows (two tasks a
        full frame; fewer, larger reads ran 13% faster warm and 23% cold than 256).
    ignores : tuple of str
        ``Parameters`` fields the rule has no use for: a value other than the default is
        refused (and so never stamped into outputs it did not shape).
    """

    flags: str = "DO_NOT_USE,PERSISTENCE"
    window_days: float = math.inf
    tile: tuple[int, int] = (512, 1032)
    ignores: tuple[str, ...] = ()


@dataclass(frozen=True)
class Traits:
    """What the engine needs to know of a rule beyond its hooks.

    Attributes
    ----------
    reuses_sources : bool
        Whether a rerun may take an unchanged exposure's sources from the store instead of
        reading it again (a rule whose scan needs more than the stored boolean sources
        reads every exposure on every run).
    writes : mapping of str to tuple of Kind
        Per ``--mode``, the outputs made for each input file (segment), in order.
    remembers : bool
        Whether the detector memory can keep what the rule carries: its sources, pixels
        that mask for a window (:mod:`miripersist.memory`).
    """

    reuses_sources: bool = True
    writes: Mapping[str, tuple[Kind, ...]] = field(default_factory=lambda: PIXEL_OUTPUTS)
    remembers: bool = True


@dataclass
class Block:
    """A block of one detector's consecutive exposures, as :meth:`Method.scan` takes it.

    Attributes
    ----------
    detector : str
    exposures : list of Exposure
        In scan (time) order.
    frames : list
        Per exposure, what :meth:`Method.sources` made of it, computed; None where its
        sources were taken from the store instead (they are in ``sources`` already).
    sources : ndarray of bool, shape (n, 1024, 1032)
        The block's sources in detector coordinates, filled in by the scan where
        ``frames`` are given (:meth:`place`); what the store keeps.
    out : ndarray of bool, shape (n, 1024, 1032)
        A buffer for the masks (its content is overwritten): the engine passes the same
        few buffers block after block, as fresh 16 MB images cost more to fault in than
        the scan of them.
    """

    detector: str
    exposures: list[Exposure]
    frames: list[Any]
    sources: np.ndarray
    out: np.ndarray

    def place(self, k: int, image: np.ndarray) -> None:
        """Put exposure ``k``'s sources, in its own frame, into :attr:`sources`."""
        if image.shape != DETECTOR_SHAPE:
            # A subarray: the rest of the detector is no source. (A full frame covers the
            # whole image: clearing it first would be a wasted pass.)
            self.sources[k].fill(False)
        self.sources[(k, *self.exposures[k].window)] = image


@dataclass
class Scanned:
    """What a rule's scan of a :class:`Block` found.

    Attributes
    ----------
    masks : ndarray of bool, shape (n, 1024, 1032)
        Pixels each exposure gets flagged (for the store, the counts and pixel outputs).
    carry : object
        The state after the block, for the detector's next block.
    digests : list of str
        Per exposure, a digest of what its outputs hold beyond its mask ("" for none).
    payloads : list of tuple
        Per exposure, per input file, what its outputs need beyond the mask (None for
        nothing), passed to the writers of its kinds.
    """

    masks: np.ndarray
    carry: object
    digests: list[str] = field(default_factory=list)
    payloads: list[tuple] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.masks)
        self.digests = self.digests or [""] * n
        self.payloads = self.payloads or [()] * n


@dataclass(frozen=True)
class Past:
    """What a run knows of its detectors' past beyond its own inputs (:meth:`Method.begin`).

    Attributes
    ----------
    history : str or None
        ``--history``: an earlier run's store (or, for a rule with a state of its own, that
        state's file).
    memory : str or None
        ``--memory``: the detector memory's path.
    recalled : mapping of str to tuple of Entry
        Per detector, the memory's entries that mask this run's exposures, in scan order,
        with their pixels (:func:`miripersist.recall.recall`).
    """

    history: str | None = None
    memory: str | None = None
    recalled: Mapping[str, tuple[Entry, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Final:
    """An output a rule leaves beside the per-exposure ones (see :meth:`Method.finish`).

    Attributes
    ----------
    kind : Kind
        :attr:`Kind.STATE_FILE` (``name`` in the output directory) or
        :attr:`Kind.STORE_ARRAY` (``name`` in the run's store).
    name : str
    data : object
        A state file's tree, or a store array's image.
    attrs : mapping
        A store array's attributes.
    """

    kind: Kind
    name: str
    data: Any
    attrs: Mapping[str, Any] = field(default_factory=dict)


class Method(ABC):
    """A persistence rule.

    Attributes
    ----------
    name : str
        What ``--method`` calls it (the name it is registered under).
    options : Options
    traits : Traits
    """

    name: ClassVar[str] = ""
    options: ClassVar[Options] = Options()
    traits: ClassVar[Traits] = Traits()

    @abstractmethod
    def sources(
        self, exposure: Exposure, read: Reads, params: Parameters
    ) -> da.Array | list:  # pragma: no cover - interface
        """What the scan needs of one exposure, lazily (dask arrays, or a list of them).

        Computed in parallel with every other exposure of the block; the scan receives
        the results as :attr:`Block.frames`.
        """

    @abstractmethod
    def scan(
        self, block: Block, carry: object, params: Parameters
    ) -> Scanned:  # pragma: no cover - interface
        """Masks of a block of consecutive exposures, given the state before it.

        An exposure is masked by earlier exposures' sources only. The scan fills in
        :attr:`Block.sources` where the block has frames (:meth:`Block.place`).
        """

    def check(self, params: Parameters) -> None:
        """Refuse parameters this rule cannot honour (raise ConfigError).

        Here: any of ``options.ignores`` given a value other than its default. A rule with
        more to check extends this.
        """
        from ..options import option_name

        defaults = {f.name: f.default for f in fields(params)}
        for name in self.options.ignores:
            if getattr(params, name) != defaults[name]:
                raise ConfigError(f"{option_name(name)} does not apply to --method {self.name}")

    def begin(
        self, exposures: Sequence[Exposure], past: Past, params: Parameters
    ) -> dict[str, object]:
        """Each detector's state before its first exposure, from what the run knows before.

        Here: a rule that carries nothing refuses a history and a memory.
        """
        for given, option in ((past.history, "--history"), (past.memory, "--memory")):
            if given is not None:
                raise ConfigError(f"{option} does not apply to --method {self.name}")
        return {e.detector: None for e in exposures}

    def finish(self, carries: dict[str, object], params: Parameters) -> list[Final]:
        """What a run leaves beside the per-exposure outputs, given each detector's state.

        Here: nothing.
        """
        return []
