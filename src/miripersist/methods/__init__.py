"""Persistence rules: each a small object the engine's stages call (see :class:`Method`).

A method says what a source is (read lazily from an exposure), what a source records in
the scan's carried state, and which earlier sources mask an exposure. A rule is found by
name through :mod:`miripersist.registry` (the entry-point group ``miripersist.methods``),
so a package outside miripersist adds one without a change here.
"""

from __future__ import annotations

from .base import Method

__all__ = ["Method"]
