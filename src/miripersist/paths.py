"""Paths a user gives: local (or shared file-system) paths, made absolute once; URLs refused.

Dask workers resolve paths in their own working directory and the store records them, so
every path is made absolute on the client before it is used. A URL (``s3://...``,
``https://...``) is not a path: taken as one, it would name a local folder ``s3:/...``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from .errors import ConfigError

#: ``scheme://`` at the start, as RFC 3986 spells a scheme.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(text: str | os.PathLike) -> bool:
    """Whether ``text`` starts with a URL scheme (``s3://``, ``https://``, ``file://``)."""
    return bool(_URL.match(os.fspath(text)))


def refuse_url(text: str | os.PathLike, what: str) -> None:
    """Raise a one-line :class:`ConfigError` when ``text`` is a URL.

    Parameters
    ----------
    text : str or path-like
        What the user gave.
    what : str
        What it was given as (``--output-dir``, ``an input``), for the message.
    """
    if is_url(text):
        raise ConfigError(
            f"{os.fspath(text)}: {what} is a URL; miripersist reads and writes files on a "
            "local or shared file system only (download the files, or mount the bucket)"
        )


def local_path(text: str | os.PathLike, what: str) -> str:
    """``text`` as an absolute path; a URL is refused (:func:`refuse_url`)."""
    refuse_url(text, what)
    return os.path.abspath(os.fspath(text))


def local_paths(texts: Sequence[str | os.PathLike], what: str) -> list[str]:
    """:func:`local_path` of each; a glob pattern stays a pattern (abspath keeps wildcards)."""
    return [local_path(t, what) for t in texts]


def optional_path(text: str | os.PathLike | None, what: str) -> str | None:
    """:func:`local_path`, or None for None or an empty string."""
    return local_path(text, what) if text else None
