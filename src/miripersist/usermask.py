"""The user's own mask: a table of 1-indexed detector x, y, or a FITS image."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from astropy.io import fits

from .errors import ConfigError, brief
from .inventory import DETECTOR_SHAPE
from .smallfits import reading

if TYPE_CHECKING:
    from astropy.table import Table


def _is_fits(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(9) == b"SIMPLE  ="
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read user mask ({exc.strerror})") from exc


def _from_fits(path: str) -> np.ndarray:
    with reading(path, "user mask"), fits.open(path, memmap=False) as hdul:
        image = next((h.data for h in hdul if h.data is not None and h.data.ndim == 2), None)
    if image is None:
        raise ConfigError(f"{path}: user mask FITS has no 2-D image")
    if image.shape != DETECTOR_SHAPE:
        raise ConfigError(
            f"{path}: user mask image is {image.shape[1]}x{image.shape[0]}, "
            f"the detector is {DETECTOR_SHAPE[1]}x{DETECTOR_SHAPE[0]} (x by y)"
        )
    return np.asarray(image != 0)


def _column(table: Table, name: str, path: str) -> np.ndarray:
    cols = {c.lower(): c for c in table.colnames}
    if name not in cols:
        raise ConfigError(f"{path}: user mask has no {name!r} column (columns: {table.colnames})")
    values = np.asarray(table[cols[name]])
    if values.dtype.kind not in "iu":
        as_float = np.asarray(values, dtype=float) if values.dtype.kind == "f" else None
        if as_float is None or not np.all(np.isfinite(as_float)) or np.any(as_float % 1):
            raise ConfigError(f"{path}: user mask column {name!r} holds non-integer values")
        values = as_float.astype(np.int64)
    return values.astype(np.int64)


def _from_table(path: str) -> np.ndarray:
    from astropy.table import Table  # 0.3 s: only for a table mask, not on every run

    try:
        with open(path, "rb") as fh:
            blank = not fh.read(1 << 16).strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read user mask ({exc.strerror})") from exc
    if blank:
        raise ConfigError(f"{path}: user mask table is empty (expected columns x and y)")
    try:
        table = Table.read(path, format="ascii")
    except Exception as exc:  # astropy's readers raise many kinds on bad text
        raise ConfigError(f"{path}: cannot read user mask table ({brief(exc, 200)})") from exc
    x = _column(table, "x", path)
    y = _column(table, "y", path)
    off = (x < 1) | (x > DETECTOR_SHAPE[1]) | (y < 1) | (y > DETECTOR_SHAPE[0])
    if off.any():
        examples = ", ".join(f"({a}, {b})" for a, b in zip(x[off][:5], y[off][:5], strict=True))
        raise ConfigError(
            f"{path}: {int(off.sum())} user mask coordinates lie off the "
            f"{DETECTOR_SHAPE[1]}x{DETECTOR_SHAPE[0]} detector (1-indexed), e.g. {examples}"
        )
    mask = np.zeros(DETECTOR_SHAPE, dtype=bool)
    mask[y - 1, x - 1] = True
    return mask


def read_user_mask(path: str | None) -> np.ndarray:
    """Read the user mask into a full-detector boolean image (all False when ``path`` is None).

    Parameters
    ----------
    path : str or None
        A text, CSV or ECSV table with integer columns ``x`` and ``y`` (1-indexed detector
        coordinates), or a FITS file whose first 2-D image is the detector shape
        (nonzero = masked).

    Raises
    ------
    ConfigError
        If the file cannot be read, lacks the columns, or has coordinates off the detector.
    """
    if path is None:
        return np.zeros(DETECTOR_SHAPE, dtype=bool)
    if _is_fits(path):
        return _from_fits(path)
    if path.lower().endswith(_FITS_SUFFIXES):
        raise ConfigError(f"{path}: user mask is not a FITS file (it does not start with SIMPLE)")
    return _from_table(path)


_FITS_SUFFIXES = (".fits", ".fit", ".fts")
