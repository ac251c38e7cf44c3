"""Persistence rules: each a small object the engine's stages call (see :class:`Method`).

A method says what a source is (read lazily from an exposure), what a source records in
the scan's carried state, and which earlier sources mask an exposure. Adding a rule is a
new module here that defines a :class:`Method` and registers it in :data:`METHODS`.
"""

from __future__ import annotations

from .base import Method
from .notebook import Notebook
from .pipeline import Pipeline
from .snowblind import Snowblind

#: The methods by name, as ``--method`` accepts them.
METHODS: dict[str, Method] = {m.name: m for m in (Notebook(), Pipeline(), Snowblind())}


def get(name: str) -> Method:
    """The method called ``name``.

    Raises
    ------
    KeyError
        If there is none.
    """
    return METHODS[name]


__all__ = ["METHODS", "Method", "get"]
