"""Synthetic MIRI programs: uncal files and SATURATION references written with stdatamodels.

Tests, the demo and the benchmarks use these. Exposures carry full metadata (times,
subarray placement, detector, filter), stars that saturate at different groups and move
between dithers, one or two integrations, FULL and subarray frames, and file names that
do not sort in time order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .inventory import DETECTOR_SHAPE

#: MIRI imager subarrays: name -> (SUBSTRT1, SUBSTRT2, SUBSIZE1, SUBSIZE2), 1-indexed.
SUBARRAYS = {
    "FULL": (1, 1, 1032, 1024),
    "BRIGHTSKY": (457, 51, 512, 512),
    "SUB256": (413, 51, 256, 256),
    "SUB128": (1, 889, 136, 128),
    "SUB64": (1, 779, 72, 64),
}
FRAME_TIME = {"FULL": 2.775, "BRIGHTSKY": 0.865, "SUB256": 0.300, "SUB128": 0.119, "SUB64": 0.085}
SECONDS_PER_DAY = 86400.0


def reference_meta(model, reftype: str, detector: str = "MIRIMAGE", subarray: str = "FULL"):
    """Fill the metadata a jwst reference file needs (instrument, subarray, pedigree...)."""
    xstart, ystart, xsize, ysize = SUBARRAYS[subarray]
    model.meta.instrument.name = "MIRI"
    model.meta.instrument.detector = detector
    model.meta.subarray.name = subarray
    model.meta.subarray.xstart, model.meta.subarray.ystart = xstart, ystart
    model.meta.subarray.xsize, model.meta.subarray.ysize = xsize, ysize
    model.meta.subarray.fastaxis, model.meta.subarray.slowaxis = 1, 2
    model.meta.reftype = reftype
    model.meta.author = "miripersist.simulate"
    model.meta.pedigree = "DUMMY"
    model.meta.description = f"Synthetic {reftype.lower()} reference"
    model.meta.useafter = "2022-01-01T00:00:00"
    return model


def write_saturation_reference(
    path: str,
    thresholds: np.ndarray,
    dq: np.ndarray | None = None,
    detector: str = "MIRIMAGE",
    subarray: str = "FULL",
    filter_name: str | None = None,
) -> str:
    """Write a jwst SATURATION reference file (``SaturationModel``), for one filter or all."""
    from stdatamodels.jwst import datamodels

    model = datamodels.SaturationModel(
        data=np.asarray(thresholds, dtype=np.float32),
        dq=np.zeros(thresholds.shape, np.uint32) if dq is None else np.asarray(dq, np.uint32),
    )
    reference_meta(model, "SATURATION", detector, subarray).save(path)
    model.close()
    if filter_name:
        # The reference schema has no place for a filter; CRDS files carry the keyword.
        from astropy.io import fits

        fits.setval(path, "FILTER", value=filter_name)
    return path


def write_mask_reference(
    path: str, dq: np.ndarray | None = None, detector: str = "MIRIMAGE"
) -> str:
    """Write a jwst MASK reference (for running dq_init offline in tests and benchmarks)."""
    from stdatamodels.jwst import datamodels

    dq = np.zeros(DETECTOR_SHAPE, np.uint32) if dq is None else np.asarray(dq, np.uint32)
    model = datamodels.MaskModel(dq=dq)
    reference_meta(model, "MASK", detector).save(path)
    model.close()
    return path


def write_uncal(
    path: str,
    data: np.ndarray,
    *,
    start_mjd: float,
    detector: str = "MIRIMAGE",
    filter_name: str = "F770W",
    subarray: str = "FULL",
    groupdq: np.ndarray | None = None,
) -> str:
    """Write a MIRI uncal file (``Level1bModel``) with the metadata a real one carries.

    Parameters
    ----------
    path : str
        Output file.
    data : ndarray of uint16, shape (nints, ngroups, ny, nx)
        The ramps.
    start_mjd : float
        Exposure start; mid and end follow from the frame time of the subarray.
    detector, filter_name, subarray : str
        Instrument configuration; ``subarray`` is a key of :data:`SUBARRAYS`.
    groupdq : ndarray of uint8, optional
        Also write a GROUPDQ extension (as files after the saturation step have).
    """
    from stdatamodels.jwst import datamodels

    nints, ngroups, ny, nx = data.shape
    xstart, ystart, xsize, ysize = SUBARRAYS[subarray]
    if (ysize, xsize) != (ny, nx):
        raise ValueError(f"{subarray} frames are {xsize}x{ysize}, data are {nx}x{ny}")
    duration = nints * ngroups * FRAME_TIME[subarray] / SECONDS_PER_DAY
    model = datamodels.Level1bModel(data=np.asarray(data, dtype=np.uint16))
    meta = model.meta
    meta.telescope = "JWST"
    meta.instrument.name = "MIRI"
    meta.instrument.detector = detector
    meta.instrument.filter = filter_name
    meta.exposure.type = "MIR_IMAGE"
    meta.exposure.readpatt = "FASTR1"
    meta.exposure.nints, meta.exposure.ngroups = nints, ngroups
    meta.exposure.nframes, meta.exposure.groupgap = 1, 0
    meta.exposure.frame_time = FRAME_TIME[subarray]
    meta.exposure.group_time = FRAME_TIME[subarray]
    meta.exposure.start_time = start_mjd
    meta.exposure.mid_time = start_mjd + duration / 2
    meta.exposure.end_time = start_mjd + duration
    meta.exposure.start_time_mjd = start_mjd
    meta.exposure.mid_time_mjd = start_mjd + duration / 2
    meta.exposure.end_time_mjd = start_mjd + duration
    meta.subarray.name = subarray
    meta.subarray.xstart, meta.subarray.ystart = xstart, ystart
    meta.subarray.xsize, meta.subarray.ysize = xsize, ysize
    meta.subarray.fastaxis, meta.subarray.slowaxis = 1, 2
    from astropy.time import Time

    iso = Time(start_mjd, format="mjd").isot
    meta.observation.date, meta.observation.time = iso[:10], iso[11:23]
    model.save(path)
    model.close()
    if groupdq is not None:
        # Level1bModel has no GROUPDQ; files past the saturation step carry it as an extension.
        from astropy.io import fits

        header = fits.Header([("EXTNAME", "GROUPDQ")])
        fits.append(path, np.asarray(groupdq, dtype=np.uint8), header)
    return path


def ramps(
    rates: np.ndarray,
    ngroups: int,
    nints: int = 1,
    bias: float | np.ndarray = 9000.0,
    noise: float = 3.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Linear ramps (DN) clipped to the 16-bit range, shape (nints, ngroups, ny, nx)."""
    rng = rng or np.random.default_rng(0)
    g = np.arange(1, ngroups + 1, dtype=np.float32)[:, None, None]
    one = bias + rates[None].astype(np.float32) * g
    out = np.empty((nints, ngroups, *rates.shape), dtype=np.uint16)
    for i in range(nints):
        noisy = one + rng.normal(0.0, noise, size=one.shape).astype(np.float32)
        out[i] = np.clip(noisy, 1, 65535).astype(np.uint16)
    return out


def star_rates(
    shape: tuple[int, int],
    stars: Sequence[tuple[float, float, float]],
    sky: float = 40.0,
    fwhm: float = 2.5,
) -> np.ndarray:
    """Count-rate image (DN/group) of point sources ``(y, x, peak)`` on a flat sky."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    rate = np.full(shape, sky, dtype=np.float32)
    sigma2 = (fwhm / 2.3548) ** 2
    for y, x, peak in stars:
        r = 4 * fwhm
        ys = slice(max(0, int(y - r)), min(shape[0], int(y + r) + 1))
        xs = slice(max(0, int(x - r)), min(shape[1], int(x + r) + 1))
        d2 = (yy[ys, xs] - y) ** 2 + (xx[ys, xs] - x) ** 2
        rate[ys, xs] += peak * np.exp(-0.5 * d2 / sigma2)
    return rate


def thresholds(rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Full-frame thresholds near 60000 DN, with NaN and NO_SAT_CHECK pixels, and their DQ."""
    from .flags import NO_SAT_CHECK

    rng = rng or np.random.default_rng(1)
    thr = rng.normal(60000.0, 800.0, size=DETECTOR_SHAPE).astype(np.float32)
    dq = np.zeros(DETECTOR_SHAPE, np.uint32)
    dq[:, :4] |= NO_SAT_CHECK  # reference pixel columns
    dq[:, -4:] |= NO_SAT_CHECK
    bad = rng.random(DETECTOR_SHAPE) < 1e-3
    thr[bad] = np.nan
    return thr, dq


@dataclass(frozen=True)
class Program:
    """A synthetic program on disk."""

    directory: str
    files: list[str]
    saturation_ref: str
    mask_ref: str


def make_program(
    directory: str,
    n_exposures: int = 12,
    ngroups: int = 10,
    subarrays: Sequence[str] = ("FULL",),
    filters: Sequence[str] = ("F770W", "F1800W"),
    nints: Sequence[int] = (1,),
    stars_per_exposure: int = 6,
    seed: int = 0,
    detector: str = "MIRIMAGE",
) -> Program:
    """Write a dithered program of ``n_exposures`` uncal files and matching references.

    Exposures cycle through ``subarrays``, ``filters`` and ``nints``; each has a few bright
    stars (a fixed field, shifted by the dither) that saturate within the first groups,
    and fainter ones that saturate late or not at all. File names are numbered in a
    shuffled order, so they do not sort by time.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    thr, thr_dq = thresholds(np.random.default_rng(seed + 1))
    sat_ref = write_saturation_reference(
        os.path.join(directory, f"{detector.lower()}_saturation.fits"), thr, thr_dq, detector
    )
    mask_ref = write_mask_reference(
        os.path.join(directory, f"{detector.lower()}_mask.fits"), detector=detector
    )
    field = [
        (
            rng.uniform(20, DETECTOR_SHAPE[0] - 20),
            rng.uniform(20, DETECTOR_SHAPE[1] - 20),
            rng.choice([30000.0, 12000.0, 5000.0, 800.0]),
        )
        for _ in range(stars_per_exposure * 3)
    ]
    order = rng.permutation(n_exposures)
    start = 60300.0
    files = []
    for i in range(n_exposures):
        sub = subarrays[i % len(subarrays)]
        xstart, ystart, xsize, ysize = SUBARRAYS[sub]
        dy, dx = rng.uniform(-40, 40, size=2)
        stars = [
            (y + dy - (ystart - 1), x + dx - (xstart - 1), peak)
            for y, x, peak in field[: stars_per_exposure * 2]
        ]
        # Put a star in every subarray so small frames saturate too.
        stars.append((ysize / 2 + dy / 4, xsize / 2 + dx / 4, 20000.0))
        rate = star_rates((ysize, xsize), stars)
        data = ramps(rate, ngroups, nints[i % len(nints)], rng=rng)
        name = f"jw01234{1 + order[i] // 9:03d}001_02101_{1 + order[i] % 9:05d}_mirimage_uncal.fits"
        path = os.path.join(directory, name)
        write_uncal(
            path,
            data,
            start_mjd=start,
            detector=detector,
            filter_name=filters[i % len(filters)],
            subarray=sub,
        )
        files.append(path)
        duration = data.shape[0] * ngroups * FRAME_TIME[sub] / SECONDS_PER_DAY
        start += duration + 60.0 / SECONDS_PER_DAY
    return Program(directory, files, sat_ref, mask_ref)
