"""Find the input exposures and describe them from their FITS headers alone.

No datamodel is opened here: one pass over the HDU headers of each file gives
everything the engine needs, including the byte offsets of the SCI, GROUPDQ and
PIXELDQ arrays, so that later stages read only the bytes they need. Every array a
later stage reads or replaces is checked here, from its header, so that a bad input
stops the run before anything is written.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from .errors import ConfigError, InputError, brief
from .headers import BLOCK, Cards, HeaderError, read_header

log = logging.getLogger(__name__)

#: MIRI detectors are 1032 columns by 1024 rows (x by y), reference pixels included.
DETECTOR_SHAPE = (1024, 1032)
MIRI_DETECTORS = ("MIRIMAGE", "MIRIFUSHORT", "MIRIFULONG")

#: Name endings of the files this tool writes; never taken as inputs.
COPY_SUFFIX = "_masked_persistence_uncal.fits"
SIDECAR_SUFFIX = "_persistence_dq.fits"
OUTPUT_SUFFIXES = (COPY_SUFFIX, SIDECAR_SUFFIX)

#: Integer PIXELDQ storage the write-back can OR flags into: BITPIX and the BZERO values
#: that keep integers integers (0; -128 for int8, 32768 for uint16, 2**31 for uint32, as
#: astropy and stdatamodels write them). BSCALE must be 1.
PIXELDQ_BZERO = {8: (0.0, -128.0), 16: (0.0, 32768.0), 32: (0.0, 2147483648.0)}


#: An archive file name's parts: jw01234001001_02101_00001_mirimage_uncal.fits is program
#: 01234, observation 001, visit 001, visit group 02, sequence 1, activity 01, exposure 00001.
ARCHIVE_NAME = re.compile(
    r"jw(?P<program>\d{5})(?P<obs>\d{3})(?P<visit>\d{3})_(?P<group>\d{2})(?P<seq>\d)"
    r"(?P<act>[0-9a-z]{2})_(?P<exp>\d{5})"
)


def archive_name(path: str) -> dict[str, str]:
    """The parts of an archive-style file name (:data:`ARCHIVE_NAME`); empty when it is not one."""
    found = ARCHIVE_NAME.match(os.path.basename(path))
    return found.groupdict() if found else {}


@dataclass(frozen=True)
class ArrayLayout:
    """Where an image array lies in a FITS file and how to turn its bytes into values."""

    offset: int
    shape: tuple[int, ...]
    bitpix: int
    bzero: float = 0.0
    bscale: float = 1.0
    #: Where the array's HDU (its header) starts in the file.
    header_offset: int | None = None

    @property
    def dtype(self) -> np.dtype:
        """Big-endian on-disk dtype of the raw values."""
        return np.dtype(
            {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}[self.bitpix]
        )

    @property
    def nbytes(self) -> int:
        """Size of the raw values in the file, padding excluded."""
        return abs(self.bitpix) // 8 * int(np.prod(self.shape, dtype=np.int64))

    @property
    def end(self) -> int:
        """Where the array's HDU ends: the end of its data padded to a whole FITS block."""
        nbytes = self.nbytes
        return self.offset + nbytes + (-nbytes % BLOCK)


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
    pixeldq: ArrayLayout | None = None
    readpatt: str = ""
    exp_type: str = ""
    date_obs: str = ""
    time_obs: str = ""
    band: str = ""
    program: str = ""
    observation: str = ""
    visit: str = ""
    size: int = 0
    mtime_ns: int = 0
    header_sha256: str = ""
    total_nints: int = 0
    intstart: int = 1
    segment: int = 0
    n_segments: int = 0
    segments: tuple[Exposure, ...] = ()

    @property
    def files(self) -> tuple[Exposure, ...]:
        """The files that hold the exposure: its segments in order, or itself."""
        return self.segments or (self,)

    @property
    def fingerprint(self) -> tuple[str, int, int, str]:
        """What identifies this input's content: path, size, mtime and a digest of its headers."""
        return (os.path.abspath(self.path), self.size, self.mtime_ns, self.header_sha256)

    @property
    def has_pixeldq(self) -> bool:
        """Whether the input has a PIXELDQ extension (checked to match the SCI frames)."""
        return self.pixeldq is not None

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
        """Flat description for tables and the store (no layouts).

        A segmented exposure is one row: its first segment's file and path, the whole
        exposure's integrations and times, and ``segment_files``, its files' names joined
        by commas (empty for an exposure in one file).
        """
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("sci", "groupdq", "pixeldq", "segments", "intstart", "segment", "total_nints"):
            row.pop(key)
        row["has_pixeldq"] = self.has_pixeldq
        row["file"] = self.name
        row["path"] = os.path.abspath(self.path)
        row["segment_files"] = ",".join(s.name for s in self.segments)
        return row


def output_name(path: str, mode: str, keep_names: bool = False) -> str:
    """Name of the file this tool writes for input ``path`` in ``mode``.

    With ``keep_names`` (copy mode) a copy keeps the input's own file name, so that the
    pipeline's products and level-2 associations keep the archive's names.
    """
    base = os.path.basename(path)
    if keep_names:
        return base
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
        raise ConfigError(f"{path}: not a jwst association file ({brief(exc, 120)})") from None
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


def _layout(header: Cards, offset: int, header_offset: int | None = None) -> ArrayLayout:
    naxis = int(header.get("NAXIS", 0))
    shape = tuple(int(header[f"NAXIS{k}"]) for k in range(naxis, 0, -1))
    return ArrayLayout(
        offset=offset,
        shape=shape,
        bitpix=int(header["BITPIX"]),
        bzero=float(header.get("BZERO", 0.0)),
        bscale=float(header.get("BSCALE", 1.0)),
        header_offset=header_offset,
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
        return value if math.isfinite(value) else None

    def first(*values: float | None) -> float | None:
        return next((v for v in values if v is not None), None)

    start = first(num(primary, "EXPSTART"), num(sci, "MJD-BEG"))
    end = first(num(primary, "EXPEND"), num(sci, "MJD-END"))
    mid = first(num(sci, "MJD-AVG"), num(primary, "EXPMID"))
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
    count = math.prod(int(header[f"NAXIS{k}"]) for k in range(1, naxis + 1))
    return (
        abs(int(header["BITPIX"]))
        // 8
        * int(header.get("GCOUNT", 1))
        * (int(header.get("PCOUNT", 0)) + count)
    )


def _scan_hdus(fh, path: str, size: int) -> list[tuple[Cards, int, int]]:
    """Every HDU's header cards, data offset and header offset; check their data lie in the file.

    One header after another, seeking over the data; no HDU objects are made.
    """
    hdus: list[tuple[Cards, int, int]] = []
    while fh.tell() < size:
        start = fh.tell()
        if hdus:
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
        hdus.append((header, offset, start))
        fh.seek(offset + nbytes + (-nbytes % BLOCK))
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
        pixeldq: list[int] = []
        for i, (header, _, _) in enumerate(hdus):
            extname = str(header.get("EXTNAME", "")).strip().upper()
            names.setdefault(extname, i)
            if extname == "PIXELDQ":
                pixeldq.append(i)
        primary = hdus[0][0]
        instrument = str(primary.get("INSTRUME", "")).strip().upper()
        if instrument != "MIRI":
            log.warning("%s: skipped, instrument is %r, not MIRI", path, instrument or "unknown")
            return None
        if any(str(h.get("MPTOOL", "")).strip() == "miripersist" for h, *_ in hdus[1:]):
            # A masked copy kept under its input's name (--keep-names) is an output.
            log.warning("%s: skipped, a masked copy written by miripersist", path)
            return None
        if "SCI" not in names:
            raise InputError(f"{path}: no SCI extension")
        sci_hdr = hdus[names["SCI"]][0]
        sci = _layout(*hdus[names["SCI"]])
        groupdq = _layout(*hdus[names["GROUPDQ"]]) if "GROUPDQ" in names else None
        # The headers before the SCI data identify the exposure's content.
        fh.seek(0)
        digest = hashlib.sha256(fh.read(sci.offset)).hexdigest()
        pixeldq_hdus = [(i, *hdus[i]) for i in pixeldq]
        return _describe(path, stat, primary, sci_hdr, sci, groupdq, pixeldq_hdus, digest)


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


def _pixeldq_layout(
    path: str, found: Sequence[tuple[int, Cards, int, int]], frame: tuple[int, int]
) -> ArrayLayout | None:
    """Check the input's PIXELDQ, if any, from its header: a copy ORs flags into it.

    ``found`` holds every HDU named PIXELDQ as (index, cards, data offset, header offset);
    ``frame`` is the SCI frame shape (ny, nx). It must be one 2-D image extension of that
    shape holding unscaled integers of at most 32 bits (:data:`PIXELDQ_BZERO`).
    """
    if not found:
        return None
    if len(found) > 1:
        where = ", ".join(str(i) for i, *_ in found)
        raise InputError(
            f"{path}: {len(found)} PIXELDQ extensions (HDUs {where}), expected at most one"
        )
    index, header, offset, start = found[0]
    if index == 0:
        raise InputError(f"{path}: PIXELDQ is the primary HDU, expected an image extension")
    kind = str(header.get("XTENSION", "")).strip().upper()
    if kind != "IMAGE":
        raise InputError(f"{path}: PIXELDQ is a {kind} extension, expected an image")
    layout = _layout(header, offset, start)
    if len(layout.shape) != 2:
        raise InputError(f"{path}: PIXELDQ has {len(layout.shape)} axes, expected 2 (y, x)")
    if layout.shape != tuple(frame):
        (ny, nx), (fy, fx) = layout.shape, frame
        raise InputError(f"{path}: PIXELDQ is {nx}x{ny}, expected the SCI frame shape {fx}x{fy}")
    if layout.bitpix not in PIXELDQ_BZERO:
        raise InputError(
            f"{path}: PIXELDQ holds BITPIX={layout.bitpix} data, "
            "expected integer flags (BITPIX 8, 16 or 32)"
        )
    if layout.bscale != 1 or layout.bzero not in PIXELDQ_BZERO[layout.bitpix]:
        raise InputError(
            f"{path}: PIXELDQ is scaled (BZERO={layout.bzero:.15g}, BSCALE={layout.bscale:.15g}), "
            "expected integer flags"
        )
    return layout


class _Cards:
    """A primary header's cards as an exposure is described from them, checked."""

    def __init__(self, path: str, primary) -> None:
        self.path, self.primary = path, primary

    def integer(self, key: str, default: int) -> int:
        value = self.primary.get(key, default)
        # FITS integers come back as int; a bool, a fraction or a string is a damaged header.
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value != int(value)
        ):
            raise InputError(f"{self.path}: header keyword {key}={value!r} is not an integer")
        return int(value)

    def text(self, key: str, default: str = "") -> str:
        return str(self.primary.get(key, default) or "").strip()


def _check_arrays(path: str, sci, groupdq) -> None:
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
    if min(sci.shape) < 1:
        raise InputError(f"{path}: SCI is empty (shape {sci.shape})")


def _integrations(cards: _Cards, nints: int, ngroups: int) -> tuple[int, int, int]:
    """The file's first integration (1-indexed), the exposure's count, its segments."""
    path, primary = cards.path, cards.primary
    if cards.integer("NGROUPS", ngroups) != ngroups:
        raise InputError(f"{path}: NGROUPS={primary['NGROUPS']} but SCI holds {ngroups}")
    total = cards.integer("NINTS", nints)
    n_segments = cards.integer("EXSEGTOT", 1)
    if n_segments <= 1:
        if total != nints:
            raise InputError(f"{path}: NINTS={primary['NINTS']} but SCI holds {nints}")
        return 1, total, n_segments
    # A segment of a larger exposure: NINTS is the whole exposure's.
    intstart = cards.integer("INTSTART", 1)
    intend = cards.integer("INTEND", intstart + nints - 1)
    if intend - intstart + 1 != nints:
        raise InputError(
            f"{path}: INTSTART/INTEND = {intstart}-{intend} but SCI holds {nints} integrations"
        )
    if intstart < 1 or intend > total:
        raise InputError(f"{path}: INTSTART/INTEND = {intstart}-{intend} but NINTS={total}")
    return intstart, total, n_segments


def _frame(cards: _Cards, ny: int, nx: int) -> tuple[int, int, int, int]:
    """SUBSTRT1/2 and SUBSIZE1/2, checked against the data and the detector."""
    path = cards.path
    xstart, ystart = cards.integer("SUBSTRT1", 1), cards.integer("SUBSTRT2", 1)
    xsize, ysize = cards.integer("SUBSIZE1", nx), cards.integer("SUBSIZE2", ny)
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
    return xstart, ystart, xsize, ysize


def _describe(path, stat, primary, sci_hdr, sci, groupdq, pixeldq_hdus, digest) -> Exposure:
    _check_arrays(path, sci, groupdq)
    nints, ngroups, ny, nx = sci.shape
    pixeldq = _pixeldq_layout(path, pixeldq_hdus, (ny, nx))
    cards = _Cards(path, primary)
    intstart, total, n_segments = _integrations(cards, nints, ngroups)
    xstart, ystart, xsize, ysize = _frame(cards, ny, nx)
    detector = cards.text("DETECTOR").upper()
    if not detector:
        raise InputError(f"{path}: no DETECTOR keyword")
    start, mid, end = _mjd(primary, sci_hdr, path)
    text, intkey = cards.text, cards.integer

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
        pixeldq=pixeldq,
        readpatt=text("READPATT"),
        exp_type=text("EXP_TYPE"),
        date_obs=text("DATE-OBS"),
        time_obs=text("TIME-OBS"),
        band=text("BAND"),
        program=text("PROGRAM"),
        observation=text("OBSERVTN"),
        visit=text("VISIT"),
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        header_sha256=digest,
        intstart=intstart,
        segment=intkey("EXSEGNUM", 0),
        n_segments=n_segments,
        total_nints=total,
    )


def verify_checksums(path: str) -> bool:
    """Check the CHECKSUM and DATASUM of every HDU that has them (reads the whole file).

    Returns
    -------
    bool
        Whether any HDU had them (False: nothing could be verified).

    Raises
    ------
    InputError
        Naming the first HDU whose checksum fails.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstropyWarning)
        try:
            with fits.open(path, checksum=True, memmap=False) as hdul:
                carried = False
                for hdu in hdul:
                    carried |= "CHECKSUM" in hdu.header or "DATASUM" in hdu.header
        except Exception as exc:  # astropy raises many kinds on damaged files
            raise InputError(f"{path}: not a readable FITS file ({brief(exc)})") from None
    for w in caught:
        text = str(w.message).strip()
        if "verification failed" in text:
            raise InputError(f"{path}: {text[0].lower()}{text[1:].rstrip('.')}")
    return carried


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


_SEGMENT = re.compile(r"-seg\d{3}(?=_)")


def segment_root(name: str) -> str:
    """An exposure's file name without the ``-segNNN`` of its segments."""
    return _SEGMENT.sub("", name, count=1)


def _is_segment(e: Exposure) -> bool:
    return e.intstart != 1 or bool(e.total_nints and e.nints != e.total_nints) or e.n_segments > 1


def combine_segments(parts: Sequence[Exposure]) -> Exposure:
    """One exposure from the files of its segments (any order).

    The exposure is read, placed and named as its first segment (INTSTART = 1); it holds
    the whole exposure's integrations, spans its segments' times, and its identity (size,
    modification time, header digest) covers every segment.

    Raises
    ------
    InputError
        Naming the exposure, if its segments disagree, overlap, or do not cover every
        integration (a segment is missing).
    """
    parts = sorted(parts, key=lambda e: (e.intstart, e.name))
    first = parts[0]
    label = os.path.join(os.path.dirname(first.path), segment_root(first.name))
    for p in parts[1:]:
        for key in ("total_nints", "ngroups", "xstart", "ystart", "xsize", "ysize", "detector"):
            if getattr(p, key) != getattr(first, key):
                raise InputError(
                    f"{label}: segments disagree on {key} ({first.name}: {getattr(first, key)}, "
                    f"{p.name}: {getattr(p, key)})"
                )
    missing, expected = [], 1
    for before, p in zip([None, *parts], parts, strict=False):
        if p.intstart < expected:
            raise InputError(
                f"{label}: segments {before.name} and {p.name} hold the same integrations"
            )
        if p.intstart > expected:
            missing.append((expected, p.intstart - 1))
        expected = p.intstart + p.nints
    if expected <= first.total_nints:
        missing.append((expected, first.total_nints))
    declared = max(p.n_segments for p in parts)
    if missing or len(parts) < declared:
        what = ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in missing)
        raise InputError(
            f"{label}: segmented exposure is incomplete: "
            + (f"integrations {what} of {first.total_nints} are missing" if missing else "")
            + ("; " if missing and len(parts) < declared else "")
            + (f"{len(parts)} of EXSEGTOT={declared} segments" if len(parts) < declared else "")
            + f" (found {', '.join(p.name for p in parts)})"
        )
    start, end = min(p.start_mjd for p in parts), max(p.end_mjd for p in parts)
    mids = {p.mid_mjd for p in parts}
    return replace(
        first,
        nints=first.total_nints,
        start_mjd=start,
        end_mjd=end,
        mid_mjd=mids.pop() if len(mids) == 1 else 0.5 * (start + end),
        size=sum(p.size for p in parts),
        mtime_ns=max(p.mtime_ns for p in parts),
        header_sha256=hashlib.sha256("".join(p.header_sha256 for p in parts).encode()).hexdigest(),
        segments=tuple(parts),
    )


def group_segments(
    files: Sequence[Exposure],
) -> tuple[list[Exposure], list[tuple[str, str]]]:
    """Whole exposures from input files: the segments of an exposure become one.

    Segments belong together when their detector and file name without ``-segNNN`` agree.

    Returns
    -------
    exposures : list of Exposure
    bad : list of (path, problem)
        Exposures whose segments cannot be put together (named by the first segment found).
    """
    whole: list[Exposure] = []
    groups: dict[tuple[str, str], list[Exposure]] = {}
    for e in files:
        if _is_segment(e):
            groups.setdefault((e.detector, segment_root(e.name)), []).append(e)
        else:
            whole.append(e)
    bad = []
    for parts in groups.values():
        try:
            whole.append(combine_segments(parts))
        except InputError as exc:
            bad.append((min(p.path for p in parts), str(exc)))
    return whole, bad


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
    unverified: list[str] = []
    for p in paths:
        try:
            e = read_exposure(p)
            if e is not None and checksums and not verify_checksums(p):
                unverified.append(str(p))
        except InputError as exc:
            bad.append((str(p), str(exc)))
            continue
        if e is not None:
            good.append(e)
    if unverified:
        log.warning(
            "warning: %d of the inputs carry no CHECKSUM or DATASUM, so they were not "
            "verified (%s%s)",
            len(unverified),
            unverified[0],
            " and others" if len(unverified) > 1 else "",
        )
    good, broken = group_segments(good)
    bad += broken
    for e, problem in _problems_between(good):
        good.remove(e)
        bad.append((e.path, problem))
    if bad and not skip_bad:
        raise InputError.listing([problem for _, problem in bad])
    for _, problem in bad:
        log.warning(
            "warning: skipped %s; its saturation is not propagated to later exposures", problem
        )
    if not good:
        raise ConfigError("none of the inputs is a usable MIRI exposure")
    return sorted(good, key=lambda e: (e.detector, e.mid_mjd, e.name)), bad


def by_detector(exposures: Sequence[Exposure]) -> dict[str, list[int]]:
    """Indices of ``exposures`` per detector, each list in scan order."""
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(exposures):
        groups.setdefault(e.detector, []).append(i)
    return groups
