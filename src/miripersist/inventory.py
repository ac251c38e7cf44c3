"""Find the input exposures and describe them from their FITS headers alone.

No datamodel is opened here: one pass over the HDU headers of each file gives
everything the engine needs, including the byte offsets of the SCI and GROUPDQ
arrays, so that later stages read only the bytes they need.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from .errors import ConfigError, InputError
from .headers import Cards, HeaderError, read_header

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


def association_members(path: str) -> list[str]:
    """Science members of a jwst association (ASN) JSON file, relative to its directory.

    Raises
    ------
    ConfigError
        If the file is not an association with science members.
    """
    try:
        with open(path) as fh:
            asn = json.load(fh)
        members = [m for product in asn["products"] for m in product["members"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a jwst association file ({exc!s:.120})") from None
    base = os.path.dirname(os.path.abspath(path))
    found = [
        os.path.join(base, m["expname"])
        for m in members
        if isinstance(m, dict) and str(m.get("exptype", "")).lower() == "science"
    ]
    if not found:
        raise ConfigError(f"{path}: association has no science members")
    return found


def discover(inputs: Sequence[str]) -> list[str]:
    """Expand directories, files and globs into a list of uncal file paths.

    Parameters
    ----------
    inputs : sequence of str
        Directories (every ``*_uncal.fits`` directly in them), files, glob patterns, or
        jwst association files (``*.json``: their science members).

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
        if p.suffix.lower() == ".json" and p.is_file():
            candidates = [Path(m) for m in association_members(str(p))]
        elif p.is_dir():
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


def _layout(header: Cards, offset: int) -> ArrayLayout:
    naxis = int(header.get("NAXIS", 0))
    shape = tuple(int(header[f"NAXIS{k}"]) for k in range(naxis, 0, -1))
    return ArrayLayout(
        offset=offset,
        shape=shape,
        bitpix=int(header["BITPIX"]),
        bzero=float(header.get("BZERO", 0.0)),
        bscale=float(header.get("BSCALE", 1.0)),
    )


def _mjd(primary: Cards, sci: Cards, path: str) -> tuple[float, float, float]:
    def num(hdr: Cards, key: str) -> float | None:
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


def _data_bytes(header: Cards) -> int:
    """Size of an HDU's data as its header declares it (FITS standard, section 4.4.1)."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    count = int(np.prod([int(header[f"NAXIS{k}"]) for k in range(1, naxis + 1)], dtype=np.int64))
    return (
        abs(int(header["BITPIX"]))
        // 8
        * int(header.get("GCOUNT", 1))
        * (int(header.get("PCOUNT", 0)) + count)
    )


def _scan_hdus(fh, path: str, size: int) -> list[tuple[Cards, int]]:
    """Every HDU's header cards and data offset; check that each HDU's data lies inside the file.

    One header after another, seeking over the data; no HDU objects are made.
    """
    hdus: list[tuple[Cards, int]] = []
    while fh.tell() < size:
        if hdus:
            start = fh.tell()
            kind = fh.read(8)
            fh.seek(start)
            if kind != b"XTENSION":
                break  # padding after the last HDU: ignored, as astropy does
        try:
            header, _ = read_header(fh)
        except HeaderError as exc:
            raise InputError(f"{path}: HDU {len(hdus)} is damaged or truncated ({exc})") from None
        offset = fh.tell()
        nbytes = _data_bytes(header)
        if offset + nbytes > size:
            label = str(header.get("EXTNAME", "")).strip() or "PRIMARY"
            raise InputError(
                f"{path}: file is truncated ({size} bytes, "
                f"but HDU {len(hdus)} {label} needs {offset + nbytes})"
            )
        hdus.append((header, offset))
        fh.seek(offset + nbytes + (-nbytes % 2880))
    return hdus


def _read_exposure(path: str) -> Exposure | None:
    stat = os.stat(path)
    with open(path, "rb") as fh:
        if fh.read(9) != b"SIMPLE  =":
            raise InputError(f"{path}: not a FITS file")
        if stat.st_size % 2880:
            raise InputError(
                f"{path}: file is truncated ({stat.st_size} bytes, not whole 2880-byte FITS blocks)"
            )
        fh.seek(0)
        hdus = _scan_hdus(fh, path, stat.st_size)
        names: dict[str, int] = {}
        for i, (header, _) in enumerate(hdus):
            names.setdefault(str(header.get("EXTNAME", "")).strip().upper(), i)
        primary = hdus[0][0]
        instrument = str(primary.get("INSTRUME", "")).strip().upper()
        if instrument != "MIRI":
            log.warning("%s: skipped, instrument is %r, not MIRI", path, instrument or "unknown")
            return None
        if "SCI" not in names:
            raise InputError(f"{path}: no SCI extension")
        sci_hdr = hdus[names["SCI"]][0]
        sci = _layout(*hdus[names["SCI"]])
        groupdq = _layout(*hdus[names["GROUPDQ"]]) if "GROUPDQ" in names else None
        has_pixeldq = "PIXELDQ" in names
        # The headers before the SCI data identify the exposure's content.
        fh.seek(0)
        digest = hashlib.sha256(fh.read(sci.offset)).hexdigest()
        return _describe(path, stat, primary, sci_hdr, sci, groupdq, has_pixeldq, digest)


def read_exposure(path: str) -> Exposure | None:
    """Describe one uncal file from its headers.

    Returns ``None`` (with a warning) for a file that is not a MIRI exposure.

    Raises
    ------
    InputError
        If the file is not a readable JWST uncal file; the message names the file and
        the problem in one line.
    """
    try:
        with warnings.catch_warnings():
            # astropy warns about damaged cards; the error below says it in one line.
            warnings.simplefilter("ignore", AstropyWarning)
            return _read_exposure(path)
    except InputError:
        raise
    except PermissionError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (or a broken link)") from None
    except Exception as exc:  # astropy raises many kinds on damaged files
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable FITS file ({text[:160]})") from None


def _describe(path, stat, primary, sci_hdr, sci, groupdq, has_pixeldq, digest) -> Exposure:
    if len(sci.shape) != 4:
        raise InputError(f"{path}: SCI has {len(sci.shape)} axes, expected 4 (ints, groups, y, x)")
    if groupdq is None and sci.bitpix != 16:
        raise InputError(
            f"{path}: SCI holds BITPIX={sci.bitpix} data, expected 16-bit integers (raw DN)"
        )
    if groupdq is not None and (groupdq.shape != sci.shape or groupdq.bitpix != 8):
        raise InputError(
            f"{path}: GROUPDQ is {groupdq.shape} BITPIX={groupdq.bitpix}, "
            f"expected {sci.shape} of 8-bit flags"
        )
    nints, ngroups, ny, nx = sci.shape
    if min(sci.shape) < 1:
        raise InputError(f"{path}: SCI is empty (shape {sci.shape})")

    def intkey(key: str, default: int) -> int:
        value = primary.get(key, default)
        # FITS integers come back as int; a bool, a fraction or a string is a damaged header.
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not np.isfinite(value)
            or value != int(value)
        ):
            raise InputError(f"{path}: header keyword {key}={value!r} is not an integer")
        return int(value)

    for key, have in (("NINTS", nints), ("NGROUPS", ngroups)):
        if intkey(key, have) != have:
            raise InputError(f"{path}: {key}={primary[key]} but SCI holds {have}")
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

    def text(key: str, default: str = "") -> str:
        return str(primary.get(key, default) or "").strip()

    return Exposure(
        path=str(path),
        detector=detector,
        filter=text("FILTER"),
        subarray=text("SUBARRAY", "FULL"),
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
        readpatt=text("READPATT"),
        exp_type=text("EXP_TYPE"),
        date_obs=text("DATE-OBS"),
        time_obs=text("TIME-OBS"),
        band=text("BAND"),
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        header_sha256=digest,
    )


def verify_checksums(path: str) -> None:
    """Check the CHECKSUM and DATASUM of every HDU that has them (reads the whole file).

    Raises
    ------
    InputError
        Naming the first HDU whose checksum fails.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstropyWarning)
        try:
            with fits.open(path, checksum=True, memmap=False) as hdul:
                for _ in hdul:
                    pass
        except Exception as exc:  # astropy raises many kinds on damaged files
            raise InputError(f"{path}: not a readable FITS file ({exc!s:.160})") from None
    for w in caught:
        text = str(w.message).strip()
        if "verification failed" in text:
            raise InputError(f"{path}: {text[0].lower()}{text[1:].rstrip('.')}")


def _problems_between(exposures: Sequence[Exposure]) -> list[tuple[Exposure, str]]:
    """Inputs that clash with an earlier one: copies of one exposure, or equal times."""
    problems = []
    by_digest: dict[str, Exposure] = {}
    by_time: dict[tuple[str, float], Exposure] = {}
    for e in sorted(exposures, key=lambda e: e.path):
        first = by_digest.setdefault(e.header_sha256, e)
        if first is not e:
            problems.append((e, f"{e.path}: the same exposure as {first.path} (identical headers)"))
            continue
        first = by_time.setdefault((e.detector, e.mid_mjd), e)
        if first is not e:
            problems.append(
                (e, f"{e.path}: same mid-exposure time on {e.detector} as {first.path}")
            )
    return problems


def inventory(
    paths: Iterable[str], skip_bad: bool = False, checksums: bool = False
) -> tuple[list[Exposure], list[tuple[str, str]]]:
    """Read every file's headers; return MIRI exposures in scan order, and the skipped ones.

    Exposures are sorted by detector, then mid-exposure time (file name breaks ties). Every
    file is checked before anything is written: with ``skip_bad`` False, any bad file stops
    the run with one line per bad file; with it True, bad files are left out and returned
    as ``(path, problem)`` pairs. With ``checksums``, every HDU's CHECKSUM/DATASUM is
    verified too, which reads every byte of every file.

    Raises
    ------
    InputError
        Listing every bad input, unless ``skip_bad``.
    ConfigError
        If no input is a usable MIRI exposure.
    """
    good: list[Exposure] = []
    bad: list[tuple[str, str]] = []
    for p in paths:
        try:
            e = read_exposure(p)
            if e is not None and checksums:
                verify_checksums(p)
        except InputError as exc:
            bad.append((str(p), str(exc)))
            continue
        if e is not None:
            good.append(e)
    for e, problem in _problems_between(good):
        good.remove(e)
        bad.append((e.path, problem))
    if bad and not skip_bad:
        raise InputError.listing([problem for _, problem in bad])
    for _, problem in bad:
        log.warning("skipped: %s; its saturation is not propagated to later exposures", problem)
    if not good:
        raise ConfigError("none of the inputs is a usable MIRI exposure")
    return sorted(good, key=lambda e: (e.detector, e.mid_mjd, e.name)), bad


def by_detector(exposures: Sequence[Exposure]) -> dict[str, list[int]]:
    """Indices of ``exposures`` per detector, each list in scan order."""
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(exposures):
        groups.setdefault(e.detector, []).append(i)
    return groups
