"""How the options are spelled and read: option names, durations, windows in words."""

from __future__ import annotations

import math


def option_name(field: str) -> str:
    """The command-line option of a :class:`Parameters` field (``window_days``: ``--window``)."""
    return "--" + {"window_days": "window"}.get(field, field).replace("_", "-")


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
