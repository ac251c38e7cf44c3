"""How the options are spelled and read: one table of them, durations, windows in words.

:data:`OPTIONS` lists every option of a run once: the command line's parser
(:func:`miripersist.cli.build_parser`), the stpipe step's spec
(:class:`miripersist.step.PersistenceMaskStep`) and the checks of
:class:`~miripersist.parameters.Parameters` are made from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import rulenames
from .errors import ConfigError
from .flags import parse_flags

#: What an option takes, and how each front end reads it.
KINDS = ("int", "bool", "choice", "duration", "rule", "flags", "path", "paths")


@dataclass(frozen=True)
class Option:
    """One option of a run, as the command line, the stpipe step and Python spell it.

    Attributes
    ----------
    name : str
        The Python keyword: a :class:`~miripersist.parameters.Parameters` field when
        ``parameter``, else a keyword of :func:`miripersist.run`.
    kind : str
        One of :data:`KINDS`: a whole number (``minimum`` or more), a switch, one of
        ``choices``, a duration (``10h``), a rule's name, pixel DQ flags, a path, or paths
        (the option repeated on the command line, comma-separated for the step).
    help : str
        What it does, for ``--help`` and the step's spec.
    default : object
        Its value when not given (None: decided by the method, or none).
    default_words : str or None
        The default as the help says it, when not the value itself.
    parameter : bool
        A field of :class:`~miripersist.parameters.Parameters` (it shapes the masks).
    choices : tuple of str
        For ``choice``.
    minimum : int or None
        For ``int``.
    flag : str or None
        The command-line option, when not ``--name`` with dashes.
    metavar : str or None
        The value's name in ``--help``.
    """

    name: str
    kind: str
    help: str
    default: object = None
    default_words: str | None = None
    parameter: bool = True
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    flag: str | None = None
    metavar: str | None = None

    @property
    def cli(self) -> str:
        """The command-line option, ``--n-unsat-threshold``."""
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def key(self) -> str:
        """The stpipe step's parameter: the command-line option with underscores."""
        return self.cli[2:].replace("-", "_")

    def described(self) -> str:
        """The help with the default said at its end."""
        if self.default_words is not None:
            return f"{self.help} (default: {self.default_words})"
        if self.default is None or self.default is False or self.default == ():
            return self.help
        return f"{self.help} (default {self.default})"


OPTIONS: tuple[Option, ...] = (
    Option(
        "method",
        "rule",
        f"the persistence rule: {', '.join(rulenames.BUILTIN)} or one a package registers "
        f"(entry points {rulenames.GROUP}); 'miripersist methods' lists every rule "
        "installed, with its defaults",
        default=rulenames.DEFAULT,
        metavar="RULE",
    ),
    Option(
        "saturation_refs",
        "paths",
        "jwst SATURATION reference; once per detector, or per detector and filter",
        default=(),
        default_words="ask CRDS",
        parameter=False,
        flag="--saturation-ref",
        metavar="FILE",
    ),
    Option(
        "n_unsat_threshold",
        "int",
        "source: at most this many unsaturated groups",
        default=3,
        minimum=0,
        metavar="N",
    ),
    Option(
        "n_pix_grow_sat",
        "int",
        "grow saturation by this many pixels, as jwst's saturation step",
        default=1,
        minimum=0,
        metavar="N",
    ),
    Option(
        "user_mask",
        "path",
        "text/CSV/ECSV with 1-indexed x, y columns, or a FITS image: pixels flagged in "
        "every exposure",
        parameter=False,
        metavar="FILE",
    ),
    Option(
        "mode",
        "choice",
        "copy: masked uncal copies; sidecar: DQ files for --steps.dq_init.user_supplied_dq",
        default="copy",
        choices=("copy", "sidecar"),
    ),
    Option(
        "compress",
        "bool",
        "sidecars tile-compressed (tens of kB instead of 1 MB; dq_init reads them as is)",
        default=False,
    ),
    Option(
        "keep_names",
        "bool",
        "copies keep their inputs' file names (the output directory must hold no input), "
        "so the pipeline's products match level-2 associations",
        default=False,
    ),
    Option(
        "store",
        "path",
        "zarr store of the run",
        default_words="OUTPUT_DIR/persistence.zarr",
        parameter=False,
    ),
    Option(
        "flags",
        "flags",
        "jwst pixel DQ flag names to set, comma-separated, or their sum as a number",
        default_words="DO_NOT_USE,PERSISTENCE; PERSISTENCE for --method pipeline",
        metavar="NAMES",
    ),
    Option(
        "window_days",
        "duration",
        "how long a source masks: e.g. 2500s, 30m, 10h, 2d, inf; a bare number is seconds",
        default_words="notebook inf, after the source's exposure ends; snowblind 2500s, "
        "start to start; pipeline: required, whole seconds, from the first saturated group",
        flag="--window",
        metavar="DURATION",
    ),
    Option(
        "integrations",
        "choice",
        "first: the first integration decides (the notebook's rule); all: saturation in "
        "any integration makes a source",
        default="first",
        choices=("first", "all"),
    ),
    Option(
        "dilate",
        "int",
        "grow the persistence mask N pixels beyond the saturated core",
        default=0,
        minimum=0,
        metavar="N",
    ),
    Option(
        "history",
        "paths",
        "store of an earlier run whose sources count as saturation before this run's first "
        "exposure (--method pipeline: such a store, or a persistence-array ASDF file such as "
        "an earlier run's persistence_state.asdf)",
        parameter=False,
        metavar="STORE",
    ),
    Option(
        "memory",
        "path",
        "detector memory (a directory, made when missing): its exposures on this run's "
        "detectors mask this run's too, those before it within the lookback and those "
        "between its own; this run's exposures join it",
        parameter=False,
        metavar="PATH",
    ),
    Option(
        "lookback",
        "duration",
        "with --memory: how long before a detector's first exposure here the memory's "
        "exposures may have ended and still mask it",
        default_words="24h, or the window when it is finite and longer",
        parameter=False,
        metavar="DURATION",
    ),
    Option(
        "verify_checksums",
        "bool",
        "verify CHECKSUM/DATASUM of every input first (reads every byte)",
        default=False,
        parameter=False,
    ),
    Option(
        "skip_bad",
        "bool",
        "leave out inputs that cannot be used instead of stopping (their saturation is then "
        "not propagated)",
        default=False,
        parameter=False,
    ),
    Option(
        "overwrite",
        "bool",
        "start afresh: replace the store and existing outputs",
        default=False,
        parameter=False,
    ),
    Option(
        "batch",
        "int",
        "exposures per block; bounds memory",
        default=16,
        minimum=1,
        metavar="N",
    ),
)

BY_NAME = {option.name: option for option in OPTIONS}
#: The defaults of :class:`~miripersist.parameters.Parameters`' fields in the table.
DEFAULTS: dict[str, Any] = {option.name: option.default for option in OPTIONS if option.parameter}


def option_name(field: str) -> str:
    """The command-line option of a :class:`Parameters` field (``window_days``: ``--window``)."""
    known = BY_NAME.get(field)
    return known.cli if known is not None else "--" + field.replace("_", "-")


def split(values: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """Options by name as (the :class:`Parameters` fields, the keywords of :func:`run`)."""
    fields = {k: v for k, v in values.items() if BY_NAME[k].parameter}
    return fields, {k: v for k, v in values.items() if not BY_NAME[k].parameter}


def checked(option: Option, value: object) -> object:
    """``value`` of ``option`` given from Python, checked; a duration or flags text read.

    Raises
    ------
    ConfigError
        One line naming the option, for a value of the wrong type or out of range.
    """
    if option.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{option.name} must be an integer, not {value!r}")
        if option.minimum is not None and value < option.minimum:
            raise ConfigError(f"{option.cli} must be {option.minimum} or more, not {value}")
    elif option.kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f"{option.name} must be True or False, not {value!r}")
    elif option.kind == "choice" and value not in option.choices:
        choices = ", ".join(option.choices)
        raise ConfigError(f"{option.cli} must be one of {choices}, not {value!r}")
    elif option.kind == "duration":
        return _duration(option, value)
    elif option.kind == "flags":
        return _flags(value)
    return value


def _duration(option: Option, value: object) -> float | None:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{option.name}: {exc}") from None
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigError(
            f"{option.name} must be a number of days or a duration such as '10h', not {value!r}"
        )
    return value


def _flags(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_flags(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"flags must be jwst flag names or a positive integer, not {value!r}")
    return value


def parse_duration(text: str) -> float:
    """``2500s``, ``30m``, ``10h``, ``2d``, a bare number (seconds) or ``inf``, in days.

    Raises
    ------
    ValueError
        If ``text`` is none of these, or not positive.
    """
    text = text.strip().lower()
    if not text:
        raise ValueError("empty duration (e.g. 2500s, 10h, inf)")
    if text in ("inf", "infinite", "none"):
        return math.inf
    units = {"s": 1 / 86400, "m": 1 / 1440, "h": 1 / 24, "d": 1.0}
    unit = text[-1] if text[-1] in units else "s"
    number = text[:-1] if text[-1] in units else text
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (e.g. 2500s, 10h, inf)") from None
    if not value > 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return value


def window_words(window_days: float) -> str:
    """A window as a person reads it: ``inf (for ever)``, ``2500 s (41.7 min)``."""
    if math.isinf(window_days):
        return "inf (a source masks every later exposure)"
    seconds = window_days * 86400.0
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds:.6g} s ({seconds / size:.3g} {unit})"
    return f"{seconds:.6g} s"
