"""What decides the masks, and how the work is cut: :class:`Parameters`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from . import registry
from .errors import ConfigError
from .flags import flag_names, parse_flags
from .options import parse_duration

if TYPE_CHECKING:
    from .methods import Method

MODES = ("copy", "sidecar")


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

    n_unsat_threshold: int = 3
    n_pix_grow_sat: int = 1
    flags: int | str | None = None
    mode: str = "copy"
    window_days: float | None = None
    integrations: str = "first"
    dilate: int = 0
    tile: tuple[int, int] | None = None
    batch: int = 16
    method: str = "notebook"
    compress: bool = False
    keep_names: bool = False

    def __post_init__(self) -> None:  # noqa: C901
        self._check_types()
        rule = registry.get(self.method)
        # Frozen: the method's defaults are filled in once, here.
        if self.flags is None or isinstance(self.flags, str):
            text = rule.options.flags if self.flags is None else self.flags
            object.__setattr__(self, "flags", parse_flags(text))
        elif isinstance(self.flags, bool) or not isinstance(self.flags, int) or self.flags <= 0:
            raise ConfigError(
                f"flags must be jwst flag names or a positive integer, not {self.flags!r}"
            )
        if self.window_days is None:
            object.__setattr__(self, "window_days", rule.options.window_days)
        object.__setattr__(
            self, "tile", tuple(rule.options.tile if self.tile is None else self.tile)
        )
        if self.n_unsat_threshold < 0:
            raise ConfigError("--n-unsat-threshold must be 0 or more")
        if self.n_pix_grow_sat < 0:
            raise ConfigError("--n-pix-grow-sat must be 0 or more")
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.integrations not in ("first", "all"):
            raise ConfigError(f"--integrations must be first or all, not {self.integrations!r}")
        if self.dilate < 0:
            raise ConfigError("--dilate must be 0 or more")
        # NaN: the method has no default window; its check() says what it needs.
        if not (self.window_days > 0 or math.isnan(self.window_days)):
            raise ConfigError("--window must be positive")
        if self.keep_names and self.mode != "copy":
            raise ConfigError("--keep-names is for --mode copy (sidecars have their own names)")
        if self.compress and self.mode != "sidecar":
            raise ConfigError("--compress is for --mode sidecar (copies stay byte copies)")
        if self.batch < 1:
            raise ConfigError(f"--batch must be 1 or more, not {self.batch}")
        if min(self.tile) < 1:
            raise ConfigError(f"tile sizes must be positive, not {self.tile}")
        rule.check(self)

    def _check_types(self) -> None:
        # From Python, not argparse: a wrong type is said in one line, not as a TypeError
        # deep inside; a duration may be given as the command line takes it ("10h").
        if isinstance(self.window_days, str):
            try:
                object.__setattr__(self, "window_days", parse_duration(self.window_days))
            except ValueError as exc:
                raise ConfigError(f"window_days: {exc}") from None
        for name in ("n_unsat_threshold", "n_pix_grow_sat", "dilate", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, not {value!r}")
        window = self.window_days
        if window is not None and (isinstance(window, bool) or not isinstance(window, int | float)):
            raise ConfigError(
                f"window_days must be a number of days or a duration such as '10h', not {window!r}"
            )

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

    def header_cards(self, n_masked: int, version: str) -> dict[str, tuple[object, str]]:
        """Provenance keywords of an output file."""
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
