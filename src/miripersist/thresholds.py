"""Saturation thresholds from jwst SATURATION reference files (or from CRDS)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from .errors import ConfigError, InputError, brief
from .flags import NO_SAT_CHECK
from .inventory import Exposure
from .saturation import pixels, uint16_limits
from .smallfits import reading

log = logging.getLogger(__name__)

#: stcal sets thresholds it must not check to the 16-bit A/D limit + 1.
NEVER = np.float32(65536.0)


def threshold_map(data: np.ndarray, dq: np.ndarray | None) -> np.ndarray:
    """Thresholds with the saturation step's exceptions applied.

    NaN thresholds, and pixels whose reference DQ carries NO_SAT_CHECK, become
    65536 (the 16-bit A/D limit + 1), exactly as stcal does, so they never saturate.

    Parameters
    ----------
    data : ndarray
        The reference's SCI array (DN).
    dq : ndarray or None
        The reference's DQ array.

    Returns
    -------
    ndarray of float32
    """
    thr = np.array(data, dtype=np.float32, copy=True)
    never = np.isnan(thr)
    if dq is not None:
        never |= (np.asarray(dq).astype(np.uint32) & NO_SAT_CHECK) == NO_SAT_CHECK
    thr[never] = NEVER
    return thr


class Window:
    """Thresholds cut to one exposure's frame, with their 16-bit ceilings made on first use.

    Raw MIRI data are 16-bit integers, compared with the ceilings of the thresholds
    (:func:`~miripersist.saturation.uint16_limits`). A run shares one window among all
    the exposures of a frame and reference, so the ceilings are made once per run, not
    once per exposure or per dask computation.
    """

    __slots__ = ("values", "_limits", "_never_at")

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self._limits: tuple[np.ndarray, np.ndarray] | None = None
        self._never_at: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def limits(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ceiling, never)``: uint16 ceilings and the pixels that can never reach theirs."""
        if self._limits is None:
            self._limits = uint16_limits(self.values)
        return self._limits

    @property
    def never_at(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of the pixels that can never reach their thresholds.

        They are few (reference pixels, NaN thresholds, NO_SAT_CHECK): clearing them one
        by one after a comparison is cheaper than a pass over a whole image for them.
        """
        if self._never_at is None:
            self._never_at = pixels(self.limits[1])
        return self._never_at

    def __dask_tokenize__(self) -> tuple:
        from dask.base import normalize_token

        return ("Window", normalize_token(self.values))

    def __reduce__(self):
        # To a dask worker in another process: the values only; its ceilings are made there.
        return (Window, (self.values,))


@dataclass(frozen=True)
class SaturationReference:
    """A SATURATION reference, its thresholds placed by its subarray keywords."""

    path: str
    detector: str
    filter: str
    xstart: int
    ystart: int
    thresholds: np.ndarray
    sha256: str = ""

    def window_for(self, exposure: Exposure) -> np.ndarray:
        """Cut the thresholds to the exposure's frame (as jwst's get_subarray_model does)."""
        ny, nx = self.thresholds.shape
        y0 = exposure.ystart - self.ystart
        x0 = exposure.xstart - self.xstart
        if y0 < 0 or x0 < 0 or y0 + exposure.ysize > ny or x0 + exposure.xsize > nx:
            raise InputError(
                f"{exposure.path}: saturation reference {self.path} "
                f"(SUBSTRT {self.xstart},{self.ystart}, {nx}x{ny}) does not cover the exposure's "
                f"subarray (SUBSTRT {exposure.xstart},{exposure.ystart}, "
                f"{exposure.xsize}x{exposure.ysize})"
            )
        return self.thresholds[y0 : y0 + exposure.ysize, x0 : x0 + exposure.xsize]


def _selector(value: object) -> str:
    """A reference's FILTER as a selector: empty for none, N/A or ANY (every filter)."""
    text = str(value or "").strip().upper()
    return "" if text in ("", "N/A", "ANY") else text


def load_reference(path: str) -> SaturationReference:
    """Read a SATURATION reference file with astropy (no datamodel validation cost).

    Read once per process while the file is unchanged (size and modification time).

    Raises
    ------
    ConfigError
        If the file is not a readable SATURATION reference.
    """
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read saturation reference ({exc.strerror})") from None
    return _load_reference(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _load_reference(path: str, size: int, mtime_ns: int) -> SaturationReference:
    with reading(path, "saturation reference"):
        # The content, not the path, identifies a reference: a rerun with a corrected file
        # under the same name must recompute, and a moved file need not.
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        with fits.open(path, memmap=False) as hdul:
            primary = hdul[0].header
            reftype = str(primary.get("REFTYPE", "")).strip().upper()
            if reftype and reftype != "SATURATION":
                raise ConfigError(f"{path}: REFTYPE is {reftype}, not a SATURATION reference")
            if "SCI" not in hdul:
                raise ConfigError(f"{path}: no SCI extension, not a SATURATION reference")
            data = hdul["SCI"].data
            dq = hdul["DQ"].data if "DQ" in hdul else None
    if data is None or data.ndim != 2:
        raise ConfigError(f"{path}: SCI is not a 2-D threshold image")
    if dq is not None and dq.shape != data.shape:
        raise ConfigError(f"{path}: DQ shape {dq.shape} differs from SCI {data.shape}")
    return SaturationReference(
        path=str(path),
        detector=str(primary.get("DETECTOR", "")).strip().upper(),
        filter=_selector(primary.get("FILTER", "")),
        xstart=int(primary.get("SUBSTRT1", 1)),
        ystart=int(primary.get("SUBSTRT2", 1)),
        thresholds=threshold_map(data, dq),
        sha256=digest,
    )


@contextlib.contextmanager
def _crds_messages():
    """Hold CRDS's log lines (it logs to the console itself) and yield its error messages."""
    from crds.core import log as crds_log  # the logger exists once this is imported

    logger = logging.getLogger(crds_log.THE_LOGGER.name)
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    saved = logger.handlers[:]
    logger.handlers = [Keep(logging.ERROR)]
    try:
        yield said
    finally:
        logger.handlers = saved


def crds_saturation_reference(exposure: Exposure) -> str:
    """Ask CRDS for the exposure's SATURATION reference; return its local path.

    This is the only place the engine may touch the network. With ``CRDS_MODE=local`` and a
    synced cache in ``CRDS_PATH`` (``CRDS_CONTEXT`` naming its rules, or else the context
    its ``server_config`` names), CRDS selects from the cache and never needs a server.

    Returns
    -------
    str
        Absolute path of the reference in the CRDS cache (also for a relative ``CRDS_PATH``:
        the path is recorded in the store and may be read elsewhere).

    Raises
    ------
    ConfigError
        If CRDS cannot answer.
    """
    parameters = {
        "META.INSTRUMENT.NAME": "MIRI",
        "META.INSTRUMENT.DETECTOR": exposure.detector,
        "META.INSTRUMENT.FILTER": exposure.filter or "N/A",
        "META.INSTRUMENT.BAND": exposure.band or "N/A",
        "META.SUBARRAY.NAME": exposure.subarray or "FULL",
        "META.EXPOSURE.TYPE": exposure.exp_type or "MIR_IMAGE",
        "META.EXPOSURE.READPATT": exposure.readpatt or "FASTR1",
        "META.OBSERVATION.DATE": exposure.date_obs or "2022-07-01",
        "META.OBSERVATION.TIME": exposure.time_obs or "00:00:00",
        "META.TELESCOPE": "JWST",
    }
    with _crds_messages() as said:
        try:
            import crds

            refs = crds.getreferences(parameters, reftypes=["saturation"], observatory="jwst")
            path = refs["saturation"]
        except (Exception, SystemExit) as exc:  # crds exits the interpreter with no server
            # CRDS's own words say more than its exit code; its long log stays unprinted.
            why = said[-1] if said else str(exc)
            raise ConfigError(
                f"{exposure.path}: CRDS could not give a SATURATION reference ({brief(why, 200)}); "
                "give one with --saturation-ref FILE, or set CRDS_PATH and CRDS_SERVER_URL"
            ) from None
    if not path or str(path).upper().startswith("N/A"):
        raise ConfigError(f"{exposure.path}: CRDS has no SATURATION reference for this exposure")
    return os.path.abspath(path)


def assign_references(
    exposures: Sequence[Exposure], given: Sequence[str] = ()
) -> list[SaturationReference | None]:
    """Choose the SATURATION reference of every exposure.

    Exposures that carry GROUPDQ need none (``None``). Given files are matched by their
    DETECTOR and, when they name one, their FILTER (CRDS selects MIRI saturation references
    by both); a reference without DETECTOR or FILTER serves every detector or filter. The
    most specific match wins. With none given, CRDS is asked for each exposure.

    Raises
    ------
    ConfigError
        If two given references have the same detector and filter, or an exposure has none.
    """
    table: dict[tuple[str, str], SaturationReference] = {}
    for path in given:
        ref = load_reference(str(path))
        key = (ref.detector or "*", ref.filter or "*")
        if key in table:
            raise ConfigError(
                f"{path}: a second --saturation-ref for detector {key[0]}, filter {key[1]} "
                f"({table[key].path})"
            )
        table[key] = ref
    chosen: list[SaturationReference | None] = []
    for exp in exposures:
        if exp.groupdq is not None:
            chosen.append(None)
            continue
        if given:
            wanted = [(d, f) for d in (exp.detector, "*") for f in (exp.filter.upper(), "*")]
            match = next((table[k] for k in wanted if k in table), None)
            if match is None:
                have = ", ".join(sorted(f"{d}/{f}" for d, f in table))
                raise ConfigError(
                    f"{exp.path}: detector {exp.detector} has no --saturation-ref "
                    f"for filter {exp.filter or 'N/A'} (given for {have})"
                )
            ref = match
        else:
            ref = load_reference(crds_saturation_reference(exp))
            if ref.detector and ref.detector != exp.detector:
                raise ConfigError(f"{exp.path}: CRDS reference {ref.path} is for {ref.detector}")
        chosen.append(ref)
    return chosen
