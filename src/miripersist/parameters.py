"""What decides the masks, and how the work is cut: :class:`Parameters`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from . import registry
from .errors import ConfigError
from .flags import flag_names, parse_flags
from .options import DEFAULTS, OPTIONS, checked

if TYPE_CHECKING:
    from .methods import Method


@dataclass(frozen=True)
class Parameters:
    """What decides the masks and how the work is cut.

    Attributes
    ----------
    method : str
        The persistence rule: ``"notebook"`` (the STScI notebook's, default),
        ``"pipeline"`` (jwst's PersistenceStep chained over the program; group flags and
        persistence-array files) or ``"snowblind"`` (snowblind's PersistenceFlagStep); see
        :mod:`miripersist.methods`.
    n_unsat_threshold : int
        A pixel is a source when its first integration has at most this many
        unsaturated groups (and saturated at all). Notebook method.
    n_pix_grow_sat : int
        Growth of saturated pixels, as jwst's saturation step parameter.
    flags : int or str, optional
        Pixel DQ bits set where masked, as a number or as jwst flag names
        (``"DO_NOT_USE,PERSISTENCE"``); default: the method's.
    mode : str
        ``"copy"`` (masked copies of the uncal files) or ``"sidecar"`` (DQ images for
        dq_init's ``user_supplied_dq``).
    window_days : float, optional
        How long a source keeps masking (``inf`` for ever); default: the method's
        (notebook: ``inf``, after the end of the source's exposure; snowblind: 2500 s,
        start to start; pipeline: none, a whole number of seconds must be given).
    integrations : str
        ``"first"`` (the notebook's rule) or ``"all"``: saturation in any integration
        makes a source. Notebook method.
    dilate : int
        Grow the persistence sources by this many pixels beyond the saturated core
        (in detector coordinates), for the halos bright cores leave.
    tile : tuple of int, optional
        Dask tile shape (rows, columns) over the detector; default: the method's (512
        full-width rows; 256 for pipeline, which reads every group of a tile).
    batch : int
        Exposures per block; bounds memory.
    compress : bool
        Sidecars tile-compressed (RICE): tens of kilobytes instead of a megabyte.
    keep_names : bool
        Copies keep their input's file name (in an output directory that holds no input),
        so that calwebb_detector1's products match standard level-2 associations.
    """

    # flags, window_days and tile are typed as they are once made: None (the method's
    # default) and flag names or a duration as text are accepted, and replaced here.
    n_unsat_threshold: int = DEFAULTS["n_unsat_threshold"]
    n_pix_grow_sat: int = DEFAULTS["n_pix_grow_sat"]
    flags: int = DEFAULTS["flags"]
    mode: str = DEFAULTS["mode"]
    window_days: float = DEFAULTS["window_days"]
    integrations: str = DEFAULTS["integrations"]
    dilate: int = DEFAULTS["dilate"]
    tile: tuple[int, int] = None  # type: ignore[assignment]
    batch: int = DEFAULTS["batch"]
    method: str = DEFAULTS["method"]
    compress: bool = DEFAULTS["compress"]
    keep_names: bool = DEFAULTS["keep_names"]

    def __post_init__(self) -> None:
        # Frozen: values are checked (durations and flag names read), then the method's
        # defaults filled in, once, here.
        for option in OPTIONS:
            if option.parameter:
                object.__setattr__(self, option.name, checked(option, getattr(self, option.name)))
        rule = registry.get(self.method)
        if self.flags is None:
            object.__setattr__(self, "flags", parse_flags(rule.options.flags))
        if self.window_days is None:
            object.__setattr__(self, "window_days", rule.options.window_days)
        object.__setattr__(
            self, "tile", tuple(rule.options.tile if self.tile is None else self.tile)
        )
        self._check_together()
        rule.check(self)

    def _check_together(self) -> None:
        """The checks of options given together, and of the tile (Python only)."""
        # NaN: the method has no default window; its check() says what it needs.
        if not (self.window_days > 0 or math.isnan(self.window_days)):
            raise ConfigError("--window must be positive")
        if self.keep_names and self.mode != "copy":
            raise ConfigError("--keep-names is for --mode copy (sidecars have their own names)")
        if self.compress and self.mode != "sidecar":
            raise ConfigError("--compress is for --mode sidecar (copies stay byte copies)")
        if len(self.tile) != 2 or min(self.tile) < 1:
            raise ConfigError(f"tile sizes must be two positive numbers, not {self.tile}")

    @property
    def rule(self) -> Method:
        """The method object."""
        return registry.get(self.method)

    def record(self) -> dict:
        """JSON-ready description for the store's attributes."""
        out = asdict(self)
        out["flags_names"] = flag_names(self.flags)
        out["window_days"] = "inf" if math.isinf(self.window_days) else self.window_days
        out["tile"] = list(self.tile)
        return out

    def header_cards(self, n_masked: int, version: str) -> dict[str, object]:
        """Provenance keywords of an output file: each a (value, comment) pair."""
        window = "inf" if math.isinf(self.window_days) else f"{self.window_days * 86400.0:.10g}"
        return {
            "MPTOOL": ("miripersist", "persistence flags made by this tool"),
            "MPVERS": (version, "miripersist version"),
            "MPMETHOD": (self.method, "persistence rule (--method)"),
            "MPNUNSAT": (self.n_unsat_threshold, "source: at most this many unsaturated groups"),
            "MPNGROW": (self.n_pix_grow_sat, "saturation growth (n_pix_grow_sat)"),
            "MPFLAGS": (self.flags, "pixel DQ bits set where masked"),
            "MPWINDOW": (window, "how long a source masks (s)"),
            "MPINTEG": (self.integrations, "integrations that make sources"),
            "MPDILATE": (self.dilate, "sources grown by this many pixels"),
            "MPNMASK": (n_masked, "pixels flagged in this exposure"),
        }
