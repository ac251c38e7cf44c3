"""Small FITS files read whole (references, masks), any failure one line naming the file."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from .errors import ConfigError, brief


@contextlib.contextmanager
def reading(path: str, what: str) -> Iterator[None]:
    """Inside: a failure to read ``path`` is one :class:`ConfigError` naming it as ``what``.

    astropy only warns that a file "may have been truncated", then fails on the data with
    a reshape error that does not say so; here a truncated file is called that, whether
    or not the read failed, and astropy's warnings are not printed beside the error.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except ConfigError:
            raise
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            why = "file is truncated" if _truncated(caught) else brief(exc)
            raise ConfigError(f"{path}: cannot read {what} ({why})") from exc
    if _truncated(caught):
        raise ConfigError(f"{path}: cannot read {what} (file is truncated)")
    for warning in caught:  # anything else astropy said, said again outside
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def _truncated(caught: list[warnings.WarningMessage]) -> bool:
    return any("truncated" in str(w.message) for w in caught)
