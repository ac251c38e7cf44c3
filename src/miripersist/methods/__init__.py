"""Persistence rules: each a small object the engine's stages call (see :class:`Method`).

A method says what a source is (read lazily from an exposure) and how a block of one
detector's exposures is scanned; the rest it declares as data. A rule is found by name
through :mod:`miripersist.registry` (the entry-point group ``miripersist.methods``), so a
package outside miripersist adds one without a change here.
"""

from __future__ import annotations

from .base import Block, Final, Method, Options, Past, Scanned, Traits
from .windowed import Windowed

__all__ = ["Block", "Final", "Method", "Options", "Past", "Scanned", "Traits", "Windowed"]
