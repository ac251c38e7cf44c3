"""The persistence rules by name: the entry-point group ``miripersist.methods``.

A package adds a rule by declaring, in its own ``pyproject.toml``::

    [project.entry-points."miripersist.methods"]
    myrule = "mypackage.rules:MyRule"

where ``MyRule`` is a :class:`miripersist.methods.Method` subclass whose ``name`` is
``"myrule"``. ``--method``, the stpipe step's ``method`` and :class:`Parameters` accept every
name registered. miripersist's own rules are registered the same way, and are also known
without it (a source tree used without being installed).

Names are read without importing any rule (``--help`` stays fast); a rule is imported when
it is first asked for.
"""

from __future__ import annotations

import functools
import math
from importlib import import_module
from typing import TYPE_CHECKING

from .errors import ConfigError
from .rulenames import BUILTIN, GROUP

if TYPE_CHECKING:
    from .methods.base import Method


@functools.cache
def targets() -> dict[str, str]:
    """Every rule's name and ``module:Class``: the built-in ones first, then the others."""
    from importlib.metadata import entry_points  # 40 ms: not for --help

    found = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    return {**BUILTIN, **{k: v for k, v in sorted(found.items()) if k not in BUILTIN}}


def names() -> tuple[str, ...]:
    """The names ``--method`` accepts."""
    return tuple(targets())


def get(name: str) -> Method:
    """The rule called ``name``, imported and made on first use.

    Raises
    ------
    ConfigError
        If no rule has that name, or what is registered under it is not a rule.
    """
    known = targets()
    if not isinstance(name, str) or name not in known:
        raise ConfigError(f"--method must be one of {', '.join(known)}, not {name!r}")
    return made(name)


@functools.cache
def made(name: str) -> Method:
    """The one instance of the registered rule ``name`` (see :func:`get`)."""
    from .methods.base import Method

    target = targets()[name]
    module, _, attribute = target.partition(":")
    try:
        cls = getattr(import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--method {name}: cannot load {target} ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"--method {name}: {target} is not a miripersist Method")
    rule = cls()
    if rule.name != name:
        raise ConfigError(f"--method {name}: {target} calls itself {rule.name!r}")
    return rule


def describe() -> list[dict[str, str]]:
    """Every rule installed as a row: name, what it is, its defaults and what it writes.

    What ``miripersist methods`` prints and the docs' table of rules shows.
    """
    from .flags import flag_names, parse_flags
    from .options import window_words

    rows = []
    for name, target in targets().items():
        rule = made(name)
        window = rule.options.window_days
        rows.append(
            {
                "rule": name,
                "what": (type(rule).__doc__ or "").strip().splitlines()[0],
                "window": "required" if math.isnan(window) else window_words(window),
                "flags": flag_names(parse_flags(rule.options.flags)),
                **{
                    f"--mode {mode}": ", ".join(kind.value for kind in kinds)
                    for mode, kinds in rule.traits.writes.items()
                },
                "from": target,
            }
        )
    return rows


def table(rows: list[dict[str, str]]) -> str:
    """``rows`` as a plain-text table, a rule a paragraph."""
    width = max(len(key) for row in rows for key in row)
    return "\n\n".join(
        "\n".join(f"{key:<{width}}  {value}" for key, value in row.items()) for row in rows
    )
