"""Find the input exposures and describe them from their FITS headers alone.

No datamodel is opened here: one pass over the HDU headers of each file gives
everything the engine needs, including the byte offsets of the SCI and GROUPDQ
arrays, so that later stages read only the bytes they need.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from .errors import ConfigError, InputError

log = logging.getLogger(__name__)

#: MIRI detectors are 1032 columns by 1024 rows (x by y), reference pixels included.
DETECTOR_SHAPE = (1024, 1032)
MIRI_DETECTORS = ("MIRIMAGE", "MIRIFUSHORT", "MIRIFULONG")

#: Name endings of the files this tool writes; never taken as inputs.
COPY_SUFFIX = "_masked_persistence_uncal.fits"
SIDECAR_SUFFIX = "_persistence_dq.fits"
OUTPUT_SUFFIXES = (COPY_SUFFIX, SIDECAR_SUFFIX)


@dataclass(frozen=True)
class ArrayLayout:
    """Where an image array lies in a FITS file and how to turn its bytes into values."""

    offset: int
    shape: tuple[int, ...]
    bitpix: int
    bzero: float = 0.0
    bscale: float = 1.0

    @property
    def dtype(self) -> np.dtype:
        """Big-endian on-disk dtype of the raw values."""
        return np.dtype(
            {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}[self.bitpix]
        )


@dataclass(frozen=True)
class Exposure:
    """One input exposure as described by its headers."""

    path: str
    detector: str
    filter: str
    subarray: str
    xstart: int
    ystart: int
    xsize: int
    ysize: int
    nints: int
    ngroups: int
    start_mjd: float
    mid_mjd: float
    end_mjd: float
    sci: ArrayLayout
    groupdq: ArrayLayout | None = None
    has_pixeldq: bool = False
    readpatt: str = ""
    exp_type: str = ""
    date_obs: str = ""
    time_obs: str = ""
    band: str = ""
    size: int = 0
    mtime_ns: int = 0
    header_sha256: str = ""

    @property
    def fingerprint(self) -> tuple[str, int, int, str]:
        """What identifies this input's content: path, size, mtime and a digest of its headers."""
        return (os.path.abspath(self.path), self.size, self.mtime_ns, self.header_sha256)

    @property
    def name(self) -> str:
        """File name without directory."""
        return os.path.basename(self.path)

    @property
    def window(self) -> tuple[slice, slice]:
        """The exposure's frame in 0-indexed full-detector coordinates (rows, columns)."""
        y0, x0 = self.ystart - 1, self.xstart - 1
        return slice(y0, y0 + self.ysize), slice(x0, x0 + self.xsize)

    def as_row(self) -> dict:
        """Flat description for tables and the store (no layouts)."""
        row = asdict(self)
        row.pop("sci")
        row.pop("groupdq")
        row["file"] = self.name
        row["path"] = os.path.abspath(self.path)
        return row


def output_name(path: str, mode: str) -> str:
    """Name of the file this tool writes for input ``path`` in ``mode``."""
    base = os.path.basename(path)
    stem = (
        base[: -len("_uncal.fits")] if base.endswith("_uncal.fits") else base.rsplit(".fits", 1)[0]
    )
    return stem + (COPY_SUFFIX if mode == "copy" else SIDECAR_SUFFIX)


def discover(inputs: Sequence[str]) -> list[str]:
    """Expand directories, files and globs into a list of uncal file paths.

    Parameters
    ----------
    inputs : sequence of str
        Directories (every ``*_uncal.fits`` directly in them), files, or glob patterns.

    Returns
    -------
    list of str
        Paths, each file once (by resolved path), in the order found. Files this tool
        writes (by their name endings) are never taken, wherever they are.

    Raises
    ------
    ConfigError
        If an input names nothing, or nothing at all is found.
    """
    found: list[str] = []
    seen: set[str] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            candidates = sorted(p.glob("*_uncal.fits"))
        elif p.is_file():
            candidates = [p]
        else:
            candidates = [Path(m) for m in sorted(glob.glob(item))]
            if not candidates:
                raise ConfigError(f"{item}: no such file or directory, and no file matches it")
            candidates = [c for c in candidates if c.is_file()]
        for c in candidates:
            if c.name.endswith(OUTPUT_SUFFIXES):
                continue
            key = str(c.resolve())
            if key in seen:
                continue
            seen.add(key)
            found.append(str(c))
    if not found:
        raise ConfigError(f"no *_uncal.fits input found in {', '.join(map(str, inputs))}")
    return found


def _layout(hdul: fits.HDUList, index: int) -> ArrayLayout:
    hdr = hdul[index].header
    naxis = int(hdr.get("NAXIS", 0))
    shape = tuple(int(hdr[f"NAXIS{k}"]) for k in range(naxis, 0, -1))
    return ArrayLayout(
        offset=int(hdul.fileinfo(index)["datLoc"]),
        shape=shape,
        bitpix=int(hdr["BITPIX"]),
        bzero=float(hdr.get("BZERO", 0.0)),
        bscale=float(hdr.get("BSCALE", 1.0)),
    )


def _mjd(primary: fits.Header, sci: fits.Header, path: str) -> tuple[float, float, float]:
    def num(hdr: fits.Header, key: str) -> float | None:
        value = hdr.get(key)
        if value is None or isinstance(value, bool):
            return None
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return value if np.isfinite(value) else None

    start = num(primary, "EXPSTART") or num(sci, "MJD-BEG")
    end = num(primary, "EXPEND") or num(sci, "MJD-END")
    mid = num(sci, "MJD-AVG") or num(primary, "EXPMID")
    if mid is None and start is not None and end is not None:
        mid = 0.5 * (start + end)
    if mid is None:
        raise InputError(f"{path}: no exposure time (MJD-AVG, EXPMID, or EXPSTART and EXPEND)")
    return (start if start is not None else mid, mid, end if end is not None else mid)


def read_exposure(path: str) -> Exposure | None:
    """Describe one uncal file from its headers.

    Returns ``None`` (with a warning) for a file that is not a MIRI exposure.

    Raises
    ------
    InputError
        If the file is not a readable JWST uncal file.
    """
    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            primary = hdul[0].header
            instrument = str(primary.get("INSTRUME", "")).strip().upper()
            if instrument != "MIRI":
                log.warning(
                    "%s: skipped, instrument is %r, not MIRI", path, instrument or "unknown"
                )
                return None
            names: dict[str, int] = {}
            for i, hdu in enumerate(hdul):
                names.setdefault(str(hdu.header.get("EXTNAME", "")).strip().upper(), i)
            if "SCI" not in names:
                raise InputError(f"{path}: no SCI extension")
            sci_hdr = hdul[names["SCI"]].header
            sci = _layout(hdul, names["SCI"])
            groupdq = _layout(hdul, names["GROUPDQ"]) if "GROUPDQ" in names else None
            has_pixeldq = "PIXELDQ" in names
    except InputError:
        raise
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise InputError(f"{path}: not a readable FITS file ({exc})") from exc

    if len(sci.shape) != 4:
        raise InputError(f"{path}: SCI has {len(sci.shape)} axes, expected 4 (ints, groups, y, x)")
    if groupdq is not None and groupdq.shape != sci.shape:
        raise InputError(f"{path}: GROUPDQ shape {groupdq.shape} differs from SCI {sci.shape}")
    nints, ngroups, ny, nx = sci.shape

    def intkey(key: str, default: int) -> int:
        value = primary.get(key, default)
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: header keyword {key}={value!r} is not an integer") from exc

    xstart, ystart = intkey("SUBSTRT1", 1), intkey("SUBSTRT2", 1)
    xsize, ysize = intkey("SUBSIZE1", nx), intkey("SUBSIZE2", ny)
    if (ysize, xsize) != (ny, nx):
        raise InputError(f"{path}: SUBSIZE1/2 = {xsize}x{ysize} but SCI frames are {nx}x{ny}")
    if (
        xstart < 1
        or ystart < 1
        or xstart - 1 + xsize > DETECTOR_SHAPE[1]
        or ystart - 1 + ysize > DETECTOR_SHAPE[0]
    ):
        raise InputError(
            f"{path}: subarray SUBSTRT1/2={xstart},{ystart} size {xsize}x{ysize} "
            f"lies off the {DETECTOR_SHAPE[1]}x{DETECTOR_SHAPE[0]} detector"
        )
    detector = str(primary.get("DETECTOR", "")).strip().upper()
    if not detector:
        raise InputError(f"{path}: no DETECTOR keyword")
    start, mid, end = _mjd(primary, sci_hdr, path)
    stat = os.stat(path)
    with open(path, "rb") as fh:
        headers = hashlib.sha256(fh.read(sci.offset)).hexdigest()
    return Exposure(
        path=str(path),
        detector=detector,
        filter=str(primary.get("FILTER", "") or "").strip(),
        subarray=str(primary.get("SUBARRAY", "FULL") or "").strip(),
        xstart=xstart,
        ystart=ystart,
        xsize=xsize,
        ysize=ysize,
        nints=nints,
        ngroups=ngroups,
        start_mjd=start,
        mid_mjd=mid,
        end_mjd=end,
        sci=sci,
        groupdq=groupdq,
        has_pixeldq=has_pixeldq,
        readpatt=str(primary.get("READPATT", "") or "").strip(),
        exp_type=str(primary.get("EXP_TYPE", "") or "").strip(),
        date_obs=str(primary.get("DATE-OBS", "") or "").strip(),
        time_obs=str(primary.get("TIME-OBS", "") or "").strip(),
        band=str(primary.get("BAND", "") or "").strip(),
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        header_sha256=headers,
    )


def inventory(paths: Iterable[str]) -> list[Exposure]:
    """Read every file's headers; return MIRI exposures sorted by detector, then mid time.

    Within a detector, exposures are in mid-exposure time order (file name breaks ties),
    which is the order the scan runs in.
    """
    exposures = [e for e in (read_exposure(p) for p in paths) if e is not None]
    if not exposures:
        raise ConfigError("none of the inputs is a MIRI exposure")
    return sorted(exposures, key=lambda e: (e.detector, e.mid_mjd, e.name))


def by_detector(exposures: Sequence[Exposure]) -> dict[str, list[int]]:
    """Indices of ``exposures`` per detector, each list in scan order."""
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(exposures):
        groups.setdefault(e.detector, []).append(i)
    return groups
