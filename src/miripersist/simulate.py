"""Synthetic MIRI programs: uncal files and SATURATION references written with stdatamodels.

Tests, the demo and the benchmarks use these. Exposures carry full metadata (times,
subarray placement, detector, filter), stars that saturate at different groups and move
between dithers, one or two integrations, FULL and subarray frames, and file names that
do not sort in time order.

By default the uncal files are shaped as the MAST archive delivers them (see
:func:`write_uncal`): besides SCI, a REFOUT cube, GROUP and INT_TIMES tables and the ASDF
extension, a primary header of about 210 cards (the keywords of the jwst datamodel schemas
that a MIRI uncal file carries), FASTR1 timing keywords consistent with the ramp, and, on
request, exposures split into segments (:func:`write_segments`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from .inventory import DETECTOR_SHAPE, archive_name

#: MIRI subarrays: name -> (SUBSTRT1, SUBSTRT2, SUBSIZE1, SUBSIZE2), 1-indexed, x then y.
#: Imager, coronagraph (MASK*) and LRS slitless (SLITLESSPRISM) subarrays, as the PRD's
#: SubarrayFrameTime table places them (ColumnCorner, RowCorner, Columns, Rows; the copy in
#: jwst's test data, ``jwst/lib/tests/data/xml_data_siafxml/prd.db``, PRDOPSSOC-034).
#: Corners derived from the SIAF reference points (XDetRef - XSciRef + 1) differ by 2-4 rows
#: for SUB128 and the MASK subarrays; we use the PRD's.
SUBARRAYS = {
    "FULL": (1, 1, 1032, 1024),
    "BRIGHTSKY": (457, 51, 512, 512),
    "SUB256": (413, 51, 256, 256),
    "SUB128": (1, 889, 136, 128),
    "SUB64": (1, 779, 72, 64),
    "MASK1065": (1, 19, 288, 224),
    "MASK1140": (1, 245, 288, 224),
    "MASK1550": (1, 467, 288, 224),
    "MASKLYOT": (1, 717, 320, 304),
    "SLITLESSPRISM": (1, 529, 72, 416),
}
#: FASTR1 frame times (s), exact: the PRD's FrameReadTime, equal to jwst's
#: ``emicorr.subarray_clocks`` frame clocks times the 10 us MIRI pixel clock.
FRAME_TIME = {
    "FULL": 2.77504,
    "BRIGHTSKY": 0.86528,
    "SUB256": 0.29952,
    "SUB128": 0.11904,
    "SUB64": 0.08512,
    "MASK1065": 0.23968,
    "MASK1140": 0.23968,
    "MASK1550": 0.23968,
    "MASKLYOT": 0.324,
    "SLITLESSPRISM": 0.15904,
}
SECONDS_PER_DAY = 86400.0
#: The detectors :func:`write_uncal` writes, with their sensor chip assembly numbers.
SCA_NUM = {"MIRIMAGE": 493, "MIRIFULONG": 494, "MIRIFUSHORT": 495}
#: FASTR1 (PRD Datamode table): no reset frame before the first integration, one between
#: integrations, no dropped frames; DATAMODE 7.
NRSTSTRT, NRESETS, DATAMODE = 0, 1, 7
#: TT - UTC (s) since 2017 (37 leap seconds + 32.184 s); TDB - TT (< 2 ms) is ignored.
TT_UTC = 69.184

# Observing mode of each subarray on MIRIMAGE: EXP_TYPE, default FILTER, CORONMSK, TEMPLATE.
_MODES = {
    "MASK1065": ("MIR_4QPM", "F1065C", "4QPM_1065", "MIRI Coronagraphic Imaging"),
    "MASK1140": ("MIR_4QPM", "F1140C", "4QPM_1140", "MIRI Coronagraphic Imaging"),
    "MASK1550": ("MIR_4QPM", "F1550C", "4QPM_1550", "MIRI Coronagraphic Imaging"),
    "MASKLYOT": ("MIR_LYOT", "F2300C", "LYOT_2300", "MIRI Coronagraphic Imaging"),
    "SLITLESSPRISM": ("MIR_LRS-SLITLESS", "P750L", None, "MIRI Low Resolution Spectroscopy"),
}
_IMAGING = ("MIR_IMAGE", "F770W", None, "MIRI Imaging")
# SIAF (the copy in jwst's test data): XSciRef, YSciRef, V2Ref, V3Ref of each aperture.
_SIAF = {
    "FULL": (693.5, 512.5, -453.37849, -373.810549),
    "BRIGHTSKY": (256.5, 256.5, -457.463589, -396.460933),
    "SUB256": (128.5, 128.5, -439.670145, -412.090499),
    "SUB128": (70.5, 62.5, -381.067512, -331.00981),
    "SUB64": (38.5, 32.5, -378.788727, -346.931379),
    "MASK1065": (120.0, 112.0, -393.741744, -420.900337),
    "MASK1140": (119.5, 112.5, -391.652301, -396.516128),
    "MASK1550": (119.5, 113.0, -389.696723, -372.143242),
    "MASKLYOT": (142.5, 166.5, -389.524965, -337.768837),
    "SLITLESSPRISM": (38.5, 301.0, -378.630313, -344.895045),
}
_MRS = {  # detector -> CHANNEL, APERNAME, V2Ref, V3Ref
    "MIRIFUSHORT": ("12", "MIRIFU_CHANNEL1A", -503.3182, -319.0277),
    "MIRIFULONG": ("34", "MIRIFU_CHANNEL3A", -503.9659, -319.0071),
}
# Synthetic pointing: the Hubble Ultra Deep Field, V3 at a fixed roll.
_RA, _DEC, _ROLL = 53.1625, -27.7914, 251.3
_MJD0 = datetime(1858, 11, 17)


@dataclass(frozen=True)
class ExposureTimes:
    """FASTR1 timing of one exposure, as the archive's keywords state it.

    Integration ``i`` (0-indexed) starts ``i * (ngroups + 1)`` frame times after EXPSTART
    (``NRESETS = 1`` reset frame between integrations, none before the first) and lasts
    ``ngroups`` frame times; group ``g`` (1-indexed) ends ``g`` frame times after its start.
    So EXPEND - EXPSTART = DURATION = EFFEXPTM + (NINTS - 1) * TFRAME.
    """

    start: float
    frame_time: float
    ngroups: int
    nints: int

    @property
    def integration_time(self) -> float:
        """EFFINTTM (s): NGROUPS * TGROUP, the time from reset to last read."""
        return self.ngroups * self.frame_time

    @property
    def exposure_time(self) -> float:
        """EFFEXPTM (s): TFRAME * NGROUPS * NINTS (NFRAMES = 1, GROUPGAP = 0, no drops)."""
        return self.nints * self.integration_time

    @property
    def duration(self) -> float:
        """DURATION (s): EFFEXPTM + TFRAME * (NRSTSTRT + NRESETS * (NINTS - 1))."""
        return self.exposure_time + self.frame_time * (NRSTSTRT + NRESETS * (self.nints - 1))

    @property
    def end(self) -> float:
        """EXPEND (MJD)."""
        return self.start + self.duration / SECONDS_PER_DAY

    @property
    def mid(self) -> float:
        """EXPMID (MJD)."""
        return self.start + 0.5 * self.duration / SECONDS_PER_DAY

    def int_start(self, i: int | np.ndarray) -> float | np.ndarray:
        """Start (MJD UTC) of integration ``i``, 0-indexed in the whole exposure."""
        step = (self.ngroups + NRESETS) * self.frame_time
        return self.start + np.asarray(i) * step / SECONDS_PER_DAY

    def int_end(self, i: int | np.ndarray) -> float | np.ndarray:
        """End (MJD UTC) of integration ``i``: its last group's read."""
        return self.int_start(i) + self.integration_time / SECONDS_PER_DAY


def exposure_times(
    start_mjd: float, ngroups: int, nints: int, subarray: str = "FULL"
) -> ExposureTimes:
    """The FASTR1 timing of an exposure of ``subarray`` starting at ``start_mjd``."""
    return ExposureTimes(float(start_mjd), FRAME_TIME[subarray], int(ngroups), int(nints))


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
    filter_name: str | None = None,
    subarray: str = "FULL",
    groupdq: np.ndarray | None = None,
    archive: bool = True,
) -> str:
    """Write a MIRI uncal file (``Level1bModel``) with the metadata a real one carries.

    Parameters
    ----------
    path : str
        Output file.
    data : ndarray of uint16, shape (nints, ngroups, ny, nx)
        The ramps.
    start_mjd : float
        Exposure start (EXPSTART); the rest of the timing follows from the FASTR1 frame time
        of the subarray (:class:`ExposureTimes`).
    detector : str
        MIRIMAGE, MIRIFUSHORT or MIRIFULONG. The MRS detectors get EXP_TYPE MIR_MRS, CHANNEL
        and BAND SHORT (any subarray is accepted, although the MRS reads only FULL frames).
    filter_name : str, optional
        FILTER; by default the subarray's usual one: F770W for imaging, the coronagraph's
        filter for the MASK subarrays, P750L for SLITLESSPRISM, N/A for the MRS.
    subarray : str
        A key of :data:`SUBARRAYS`.
    groupdq : ndarray of uint8, optional
        Also write a GROUPDQ extension (as files after the saturation step have).
    archive : bool
        Shape the file as MAST delivers it: REFOUT, GROUP and INT_TIMES extensions, about
        210 primary cards, and CHECKSUM and DATASUM in every HDU. False writes only SCI,
        the ASDF extension and the keywords this project reads (with the same timing): the
        lean files of earlier versions, written in about a third of the time (0.08 s
        instead of 0.2 s for a FULL 10-group frame).

    Returns
    -------
    str
        ``path``.
    """
    data = np.asarray(data, dtype=np.uint16)
    _write(
        path,
        data,
        start_mjd=start_mjd,
        detector=detector,
        filter_name=filter_name,
        subarray=subarray,
        groupdq=groupdq,
        archive=archive,
        nints=data.shape[0],
        first=1,
        segment=None,
    )
    return path


def segment_paths(path_root: str, n_segments: int) -> list[str]:
    """The archive's names of the ``n_segments`` segments of the exposure ``path_root``.

    ``.../jw01234001001_01101_00001_mirimage_uncal.fits`` becomes
    ``.../jw01234001001_01101_00001-seg001_mirimage_uncal.fits``, ``-seg002``, and so on:
    ``-segNNN`` goes before the detector field. A name without that field gets it before
    ``_uncal.fits`` (or ``.fits``).
    """
    directory, base = os.path.split(path_root)
    parts = base.split("_")
    if len(parts) >= 3:
        head, tail = "_".join(parts[:-2]), "_" + "_".join(parts[-2:])
    elif base.endswith("_uncal.fits"):
        head, tail = base[: -len("_uncal.fits")], "_uncal.fits"
    else:
        head, ext = os.path.splitext(base)
        tail = ext
    return [os.path.join(directory, f"{head}-seg{k:03d}{tail}") for k in range(1, n_segments + 1)]


def segment_bounds(nints: int, n_segments: int) -> list[tuple[int, int]]:
    """(INTSTART, INTEND), 1-indexed and inclusive, of each segment of ``nints`` integrations.

    The integrations are shared as evenly as possible, earlier segments taking one more.
    """
    if not 1 <= n_segments <= nints:
        raise ValueError(f"cannot split {nints} integration(s) into {n_segments} segments")
    sizes = [nints // n_segments + (k < nints % n_segments) for k in range(n_segments)]
    ends = np.cumsum(sizes).tolist()
    return [(end - size + 1, end) for size, end in zip(sizes, ends, strict=True)]


def write_segments(path_root: str, data: np.ndarray, n_segments: int, **kwargs) -> list[str]:
    """Write one exposure as the archive does a large one: split into segment files.

    Parameters
    ----------
    path_root : str
        The exposure's unsegmented name; the files are :func:`segment_paths` of it.
    data : ndarray of uint16, shape (nints, ngroups, ny, nx)
        The whole exposure's ramps, split along integrations (:func:`segment_bounds`).
    n_segments : int
        Number of segments, 1 to nints. With 1 the exposure is written unsegmented, under
        ``path_root``, as the archive does an exposure small enough.
    **kwargs
        As for :func:`write_uncal` (``start_mjd`` is the whole exposure's start; a
        ``groupdq`` is split like ``data``).

    Returns
    -------
    list of str
        The files written, in segment order.

    Notes
    -----
    Every segment carries the whole exposure's NINTS, EXPSTART/EXPMID/EXPEND (and
    MJD-BEG/MJD-AVG/MJD-END, EFFEXPTM, DURATION), plus INTSTART/INTEND, the 1-indexed
    integrations it holds, and EXSEGNUM/EXSEGTOT. Its SCI, REFOUT, GROUP and INT_TIMES hold
    only its own integrations (INT_TIMES numbered INTSTART..INTEND), the archive's convention
    as STScI describes it (spacetelescope/mirage#452, after JP-1174): jwst's ``extract_1d``
    and ``tso_photometry`` find a segment's rows by INTSTART, and its ``persistence`` step
    reads row ``i`` of INT_TIMES for integration ``i`` of the file.
    """
    data = np.asarray(data, dtype=np.uint16)
    if n_segments == 1:
        return [write_uncal(path_root, data, **kwargs)]
    bounds = segment_bounds(data.shape[0], n_segments)
    groupdq = kwargs.pop("groupdq", None)
    options = _write_options(kwargs)
    paths = segment_paths(path_root, n_segments)
    for k, ((first, last), path) in enumerate(zip(bounds, paths, strict=True)):
        _write(
            path,
            data[first - 1 : last],
            groupdq=None if groupdq is None else np.asarray(groupdq)[first - 1 : last],
            nints=data.shape[0],
            first=first,
            segment=(k + 1, n_segments),
            **options,
        )
    return paths


def _write_options(kwargs: dict) -> dict:
    options = {"detector": "MIRIMAGE", "filter_name": None, "subarray": "FULL", "archive": True}
    unknown = set(kwargs) - set(options) - {"start_mjd"}
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    if "start_mjd" not in kwargs:
        raise TypeError("missing keyword argument: start_mjd")
    options.update(kwargs)
    return options


def _write(
    path: str,
    data: np.ndarray,
    *,
    start_mjd: float,
    detector: str,
    filter_name: str | None,
    subarray: str,
    groupdq: np.ndarray | None,
    archive: bool,
    nints: int,
    first: int,
    segment: tuple[int, int] | None,
) -> None:
    """Write ``data``, integrations ``first``.. of an exposure of ``nints`` integrations."""
    from stdatamodels.jwst import datamodels

    here, ngroups, ny, nx = data.shape
    xstart, ystart, xsize, ysize = SUBARRAYS[subarray]
    if (ysize, xsize) != (ny, nx):
        raise ValueError(f"{subarray} frames are {xsize}x{ysize}, data are {nx}x{ny}")
    times = exposure_times(start_mjd, ngroups, nints, subarray)
    tree = {"meta": _meta(path, detector, filter_name, subarray, times, first, here, segment)}
    tree["data"] = data
    if archive:
        _archive_meta(tree["meta"], path, detector, subarray, times)
        # FILETYPE is in the keyword dictionary but not in the datamodel schema.
        filetype = ["FILETYPE", "uncalibrated", "Type of data in the file"]
        tree["extra_fits"] = {"PRIMARY": {"header": [filetype]}}
        # MIRI's reference output: one value per 4 pixels, stored as ny/4 rows of nx
        # columns; a cheap pattern (a level drifting by group), not a simulation.
        refout = np.empty((here, ngroups, ny // 4, nx), np.uint16)
        refout[...] = (9000 + 3 * np.arange(ngroups, dtype=np.uint16))[None, :, None, None]
        tree["refout"] = refout
        tree["group"] = _group_table(times, first, here, nx, ny)
        tree["int_times"] = _int_times(times, first, here)
    model = datamodels.Level1bModel(tree)
    model.save(path, checksum=archive)
    model.close()
    if groupdq is not None:
        # Level1bModel has no GROUPDQ; files past the saturation step carry it as an extension.
        from astropy.io import fits

        header = fits.Header([("EXTNAME", "GROUPDQ")])
        fits.append(path, np.asarray(groupdq, dtype=np.uint8), header, checksum=archive)


def _iso(mjd: float, sep: str = "T", digits: int = 3) -> str:
    """UTC date-time of an MJD, to ``digits`` decimals of a second."""
    t = _MJD0 + timedelta(days=float(mjd))
    text = t.strftime(f"%Y-%m-%d{sep}%H:%M:%S.%f")
    return text[: len(text) - 6 + digits] if digits < 6 else text + "0" * (digits - 6)


def _osf_name(mjd: float) -> str:
    """An Observatory Status File name, ``YYYYDDDThhmmssmmm_osf.xml``."""
    t = _MJD0 + timedelta(days=float(mjd))
    return f"{t:%Y%j}T{t:%H%M%S}{t.microsecond // 1000:03d}_osf.xml"


def _bary_delay(mjd: float) -> tuple[float, float]:
    """Barycentric and heliocentric light-time corrections (s): a plausible annual curve."""
    bary = 480.0 * np.cos(2 * np.pi * (mjd - 60300.0) / 365.25)
    return float(bary), float(bary + 0.8)


def _meta(path, detector, filter_name, subarray, times, first, here, segment) -> dict:
    """The keywords every synthetic file carries (the project reads these)."""
    xstart, ystart, xsize, ysize = SUBARRAYS[subarray]
    exp_type, default_filter, _, _ = _MODES.get(subarray, _IMAGING)
    if detector in _MRS:
        exp_type, default_filter = "MIR_MRS", "N/A"
    iso = _iso(times.start)
    exposure = {
        "type": exp_type,
        "readpatt": "FASTR1",
        "nints": times.nints,
        "ngroups": times.ngroups,
        "nframes": 1,
        "groupgap": 0,
        "frame_time": times.frame_time,
        "group_time": times.frame_time,
        "integration_time": times.integration_time,
        "exposure_time": times.exposure_time,
        "duration": times.duration,
        "start_time": times.start,
        "mid_time": times.mid,
        "end_time": times.end,
        "start_time_mjd": times.start,
        "mid_time_mjd": times.mid,
        "end_time_mjd": times.end,
        "integration_start": first,
        "integration_end": first + here - 1,
    }
    if segment is not None:
        exposure["segment_number"], exposure["segment_total"] = segment
    instrument = {
        "name": "MIRI",
        "detector": detector,
        "filter": filter_name or default_filter,
    }
    if detector in _MRS:
        instrument["channel"], instrument["band"] = _MRS[detector][0], "SHORT"
    return {
        "telescope": "JWST",
        "instrument": instrument,
        "exposure": exposure,
        "subarray": {
            "name": subarray,
            "xstart": xstart,
            "ystart": ystart,
            "xsize": xsize,
            "ysize": ysize,
            "fastaxis": 1,
            "slowaxis": 2,
        },
        "observation": {"date": iso[:10], "time": iso[11:23]},
    }


def _ids(path: str) -> dict:
    """Program, observation, visit... from an archive-style file name, or defaults."""
    ids = archive_name(path)
    defaults = {
        "program": "01234",
        "obs": "001",
        "visit": "001",
        "group": "02",
        "seq": "1",
        "act": "01",
        "exp": "00001",
    }
    return {**defaults, **ids}


def _archive_meta(meta: dict, path: str, detector: str, subarray: str, times) -> None:
    """Add what a MAST uncal file carries besides: program, visit, target, pointing, times."""
    ids = _ids(path)
    mrs = _MRS.get(detector)
    _, _, coronagraph, template = _MODES.get(subarray, _IMAGING)
    if mrs:
        template = "MIRI Medium Resolution Spectroscopy"
    expnum = int(ids["exp"])
    bary, helio = _bary_delay(times.start)
    visit_start = times.start - 900.0 * (1.0 / SECONDS_PER_DAY)
    meta.update(
        origin="STSCI",
        time_sys="UTC",
        time_unit="s",
        data_processing_software_version="2024_3",
        prd_software_version="PRDOPSSOC-067",
        oss_software_version="9.3.1",
        guide_star_catalog_version="GSC30",
        calibration_software_version="1.16.1",
        calibration_software_revision="RELEASE",
        hga_move=False,
        pwfseet=times.start - 1.3,
        nwfsest=times.start + 0.9,
        compress=False,
    )
    meta["program"] = dict(_PROGRAM)
    meta["observation"].update(_observation(ids, times, template))
    meta["visit"] = {
        **_VISIT,
        "start_time": _iso(visit_start, sep=" ", digits=7),
        "total_exposures": max(4, expnum),
    }
    meta["target"] = dict(_TARGET)
    meta["instrument"].update(_INSTRUMENT)
    if coronagraph and not mrs:
        meta["instrument"]["coronagraph"] = coronagraph
    tdb = (TT_UTC + bary) / SECONDS_PER_DAY
    meta["exposure"].update(_exposure(times, detector, expnum, tdb))
    meta["dither"] = _dither(expnum, mrs)
    meta["ephemeris"] = {**_EPHEMERIS, "time": times.mid}
    aperture = mrs[1] if mrs else f"MIRIM_{subarray}"
    meta["aperture"] = {"name": aperture, "pps_name": aperture, "position_angle": _ROLL - 5.0}
    meta["velocity_aberration"] = {
        "va_ra_ref": _RA + 2.1e-3,
        "va_dec_ref": _DEC - 1.3e-3,
        "scale_factor": 1.0000412,
    }
    meta["time"] = _time(times, bary, helio)
    meta["guidestar"] = _guidestar(times, visit_start)
    meta["pointing"] = {"ra_v1": _RA - 0.0921, "dec_v1": _DEC + 0.0714, "pa_v3": _ROLL}
    meta["coordinates"] = {"reference_frame": "ICRS"}
    meta["wcsinfo"] = _wcsinfo(subarray, mrs)
    meta["bunit_data"] = "DN"


_PROGRAM = {
    "title": "Synthetic MIRI program (miripersist)",
    "pi_name": "Persistence, Pat",
    "category": "GO",
    "sub_category": "UNKNOWN",
    "science_category": "Galaxies",
    "continuation_id": 0,
}

_VISIT = {
    "engineering_quality": "OK",
    "engdb_pointing_quality": "CALCULATED_FULLVA",
    "type": "PRIME_TARGETED_FIXED",
    "start_time": "",
    "status": "SUCCESSFUL",
    "total_exposures": 4,
    "internal_target": False,
    "too_visit": False,
    "tsovisit": False,
    "exp_only": False,
    "crowded_field": False,
}

_TARGET = {
    "proposer_name": "PERSISTENCE-FIELD",
    "catalog_name": "UDF",
    "type": "FIXED",
    "category": "Galaxy",
    "description": "Deep field; Galaxies",
    "ra": _RA,
    "dec": _DEC,
    "ra_uncertainty": 0.01,
    "dec_uncertainty": 0.01,
    "proper_motion_ra": 0.0,
    "proper_motion_dec": 0.0,
    "proper_motion_epoch": "2000.0",
    "proposer_ra": _RA,
    "proposer_dec": _DEC,
    "source_type_apt": "EXTENDED",
}

_INSTRUMENT = {
    "miri_fpe_side": "A",
    "miri_ice_side": "A",
    "ccc_state": "OPEN",
    "lamp_state": "OFF",
    "lamp_mode": "NONE",
}

_EPHEMERIS = {
    "reference_frame": "EME2000",
    "type": "Definitive",
    "time": 0.0,
    "spatial_x_bary": -1.3e8,
    "spatial_y_bary": 6.9e7,
    "spatial_z_bary": 2.9e7,
    "velocity_x_bary": -14.6,
    "velocity_y_bary": -24.8,
    "velocity_z_bary": -10.9,
    "spatial_x_geo": -1.24e9,
    "spatial_y_geo": 7.3e8,
    "spatial_z_geo": 3.1e8,
    "velocity_x_geo": 420.0,
    "velocity_y_geo": -310.0,
    "velocity_z_geo": -95.0,
}

#: Dither offsets (arcsec) of the four positions of the pattern.
_OFFSETS = {1: (-0.54, 0.37), 2: (0.61, -0.48), 3: (-0.29, -0.73), 4: (0.86, 0.55)}


def _observation(ids: dict, times, template: str) -> dict:
    """The observation's identifiers, dates and template."""
    program, obs, visit = ids["program"], ids["obs"], ids["visit"]
    activity = ids["group"] + ids["seq"] + ids["act"]
    return {
        "date_beg": _iso(times.start),
        "date_end": _iso(times.end),
        "obs_id": f"V{program}{obs}{visit}P00000000{activity}",
        "visit_id": f"{program}{obs}{visit}",
        "program_number": program,
        "observation_number": obs,
        "visit_number": visit,
        "visit_group": ids["group"],
        "sequence_id": ids["seq"],
        "activity_id": ids["act"],
        "exposure_number": str(int(ids["exp"])),
        "bkgdtarg": False,
        "template": template,
        "observation_label": "persistence field",
        "observation_folder": "Observation Folder",
    }


def _exposure(times, detector: str, expnum: int, tdb: float) -> dict:
    """The exposure's counts, TDB times and readout settings beyond those jwst needs."""
    return {
        "count": expnum,
        "prime_parallel": "PRIME",
        "start_time_tdb": times.start + tdb,
        "mid_time_tdb": times.mid + tdb,
        "end_time_tdb": times.end + tdb,
        "miri_fsw_ngroups": times.ngroups,
        "miri_fsw_nframes": 1,
        "frame_divisor": 1,
        "drop_frames1": 0,
        "drop_frames3": 0,
        "nsamples": 1,
        "sample_time": 10.0,
        "effective_exposure_time": times.exposure_time,
        "elapsed_exposure_time": times.duration,
        "nresets_at_start": NRSTSTRT,
        "nresets_between_ints": NRESETS,
        "zero_frame": False,
        "data_problem": False,
        "sca_num": SCA_NUM.get(detector, 493),
        "datamode": DATAMODE,
        "clock_adjust_rate": 0.0,
        "start_time_eng": _iso(times.start),
        "osf_file": _osf_name(times.start - 0.25),
    }


def _dither(expnum: int, mrs) -> dict:
    """The exposure's place in a four-point pattern."""
    position = (expnum - 1) % 4 + 1
    dx, dy = _OFFSETS[position]
    dither = {
        "primary_type": "4-POINT" if mrs else "CYCLING",
        "pattern_start": 1,
        "total_points": 4,
        "position_number": position,
        "pattern_size": "SMALL" if not mrs else "N/A",
        "x_offset": dx,
        "y_offset": dy,
        "dithered_ra": _RA + dx / 3600.0,
        "dithered_dec": _DEC + dy / 3600.0,
        "total_cycling_points": 4,
        "direction": "NONE",
        "optimized_for": "NONE",
        # Written with their defaults for every MIRI mode, as in real files.
        "spectral_position_number": 0,
        "spectral_total_points": 0,
        "spectral_step_size": 0.0,
        "spectral_offset": 0.0,
        "spatial_position_number": 0,
        "spatial_total_points": 0,
        "spatial_step_size": 0.0,
        "spatial_offset": 0.0,
    }
    if mrs:
        dither["primary_channel"] = "ALL"
    return dither


def _time(times, bary: float, helio: float) -> dict:
    """Barycentric and heliocentric corrections and the corrected times."""
    day = 1.0 / SECONDS_PER_DAY
    return {
        "barycentric_correction": bary,
        "barycentric_expstart": times.start + bary * day,
        "barycentric_expmid": times.mid + bary * day,
        "barycentric_expend": times.end + bary * day,
        "heliocentric_correction": helio,
        "heliocentric_expstart": times.start + helio * day,
        "heliocentric_expmid": times.mid + helio * day,
        "heliocentric_expend": times.end + helio * day,
    }


def _guidestar(times, visit_start: float) -> dict:
    """The guide star and its acquisition, timed from the visit's start."""
    day = 1.0 / SECONDS_PER_DAY
    return {
        "gs_order": 1,
        "gs_start_time": _iso(visit_start + 60 * day, sep=" ", digits=7),
        "gs_stop_time": _iso(visit_start + 420 * day, sep=" ", digits=7),
        "gs_id": "S3CJ000123",
        "gs_ra": _RA + 0.0712,
        "gs_dec": _DEC - 0.1134,
        "gs_ura": 0.0001,
        "gs_udec": 0.0001,
        "gs_mag": 16.21,
        "gs_umag": 0.04,
        "gs_pcs_mode": "FINEGUIDE",
        "visit_end_time": _iso(times.end + 600 * day, sep=" ", digits=7),
        "gs_ctd_x": -0.0213,
        "gs_ctd_y": 0.0158,
        "gs_epoch": "2016.0",
        "gs_mura": 0.0,
        "gs_mudec": 0.0,
        "gs_para": 0.0,
        "gs_v3_pa_science": _ROLL,
        "gs_function_start_time": _iso(visit_start + 30 * day, sep=" ", digits=7),
        "gs_function_end_time": _iso(times.end + 590 * day, sep=" ", digits=7),
        "fgs_aperture": "FGS1_FULL_OSS",
        "gs_ideal_x": 12.7134,
        "gs_ideal_y": -7.2216,
        "gs_acq_exec_stat": "SUCCESSFUL",
    }


def _wcsinfo(subarray: str, mrs) -> dict:
    """The frame's WCS keywords: reference point, rotation and footprint (imaging)."""
    if mrs:
        xref, yref, v2, v3 = None, None, mrs[2], mrs[3]
    else:
        xref, yref, v2, v3 = _SIAF[subarray]
    wcs = {
        "v2_ref": v2,
        "v3_ref": v3,
        "vparity": -1,
        "v3yangle": 4.83544897 if not mrs else 0.0,
        "ra_ref": _RA,
        "dec_ref": _DEC,
        "roll_ref": _ROLL - 4.83544897,
    }
    if not mrs:
        scale = 0.11 / 3600.0
        angle = np.radians(_ROLL - 4.83544897)
        wcs.update(
            wcsaxes=2,
            crpix1=xref,
            crpix2=yref,
            crval1=_RA,
            crval2=_DEC,
            ctype1="RA---TAN",
            ctype2="DEC--TAN",
            cunit1="deg",
            cunit2="deg",
            cdelt1=scale,
            cdelt2=scale,
            pc1_1=-float(np.cos(angle)),
            pc1_2=float(np.sin(angle)),
            pc2_1=float(np.sin(angle)),
            pc2_2=float(np.cos(angle)),
            siaf_xref_sci=xref,
            siaf_yref_sci=yref,
        )
        # The frame's footprint on the sky, corners in pixel centres (tangent-plane approx.).
        _, _, nx, ny = SUBARRAYS[subarray]
        dx = np.array([1.0, nx, nx, 1.0]) - xref
        dy = np.array([1.0, 1.0, ny, ny]) - yref
        ra = _RA + scale * (wcs["pc1_1"] * dx + wcs["pc1_2"] * dy) / np.cos(np.radians(_DEC))
        dec = _DEC + scale * (wcs["pc2_1"] * dx + wcs["pc2_2"] * dy)
        corners = " ".join(f"{a:.9f} {d:.9f}" for a, d in zip(ra, dec, strict=True))
        wcs["s_region"] = f"POLYGON ICRS  {corners}"
    return wcs


def _group_table(times: ExposureTimes, first: int, here: int, nx: int, ny: int) -> np.ndarray:
    """GROUP: one row per group of each integration held (the stdatamodels ``group`` table)."""
    dtype = [
        ("integration_number", ">i4"),
        ("group_number", ">i2"),
        ("end_day", ">i2"),
        ("end_milliseconds", ">i4"),
        ("end_submilliseconds", ">i2"),
        ("group_end_time", "S26"),
        ("number_of_columns", ">i2"),
        ("number_of_rows", ">i2"),
        ("number_of_gaps", ">i2"),
        ("completion_code_number", ">i2"),
        ("completion_code_text", "S36"),
        ("bary_end_time", ">f8"),
        ("helio_end_time", ">f8"),
    ]
    ngroups = times.ngroups
    ints = np.repeat(np.arange(first, first + here), ngroups)
    groups = np.tile(np.arange(1, ngroups + 1), here)
    end = times.int_start(ints - 1) + groups * times.frame_time / SECONDS_PER_DAY
    table = np.zeros(ints.size, dtype=dtype)
    table["integration_number"] = ints
    table["group_number"] = groups
    # The time as the telemetry gives it: days since 2000-01-01, ms of that day, and us.
    microseconds = np.round((end - 51544.0) * SECONDS_PER_DAY * 1e6).astype(np.int64)
    days, in_day = np.divmod(microseconds, 86_400_000_000)
    table["end_day"] = days
    table["end_milliseconds"] = in_day // 1000
    table["end_submilliseconds"] = in_day % 1000
    table["group_end_time"] = [_iso(t).encode() for t in end]
    table["number_of_columns"] = nx
    table["number_of_rows"] = ny
    table["completion_code_text"] = b"Normal Completion"
    bary, helio = _bary_delay(times.start)
    table["bary_end_time"] = end + bary / SECONDS_PER_DAY
    table["helio_end_time"] = end + helio / SECONDS_PER_DAY
    return table


def _int_times(times: ExposureTimes, first: int, here: int) -> np.ndarray:
    """INT_TIMES: start, mid and end of each integration held, UTC and (approximate) BJD TDB."""
    dtype = [
        ("integration_number", ">i4"),
        ("int_start_MJD_UTC", ">f8"),
        ("int_mid_MJD_UTC", ">f8"),
        ("int_end_MJD_UTC", ">f8"),
        ("int_start_BJD_TDB", ">f8"),
        ("int_mid_BJD_TDB", ">f8"),
        ("int_end_BJD_TDB", ">f8"),
    ]
    index = np.arange(first - 1, first - 1 + here)
    start, end = times.int_start(index), times.int_end(index)
    table = np.zeros(here, dtype=dtype)
    table["integration_number"] = index + 1
    table["int_start_MJD_UTC"] = start
    table["int_mid_MJD_UTC"] = 0.5 * (start + end)
    table["int_end_MJD_UTC"] = end
    # BJD TDB as an MJD: UTC + (TT - UTC) + the barycentric light time; approximate.
    shift = (TT_UTC + _bary_delay(times.start)[0]) / SECONDS_PER_DAY
    table["int_start_BJD_TDB"] = start + shift
    table["int_mid_BJD_TDB"] = 0.5 * (start + end) + shift
    table["int_end_BJD_TDB"] = end + shift
    return table


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
    segments: int = 1,
    archive: bool = True,
) -> Program:
    """Write a dithered program of ``n_exposures`` uncal files and matching references.

    Exposures cycle through ``subarrays``, ``filters`` and ``nints``; each has a few bright
    stars (a fixed field, shifted by the dither) that saturate within the first groups,
    and fainter ones that saturate late or not at all. File names are numbered in a
    shuffled order, so they do not sort by time. Exposures follow one another 60 s apart.

    With ``segments`` > 1, every exposure of at least ``segments`` integrations is split
    into that many segment files (:func:`write_segments`); ``files`` lists them all, each
    exposure's segments in order. ``archive`` is passed to :func:`write_uncal`.
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
        name = (
            f"jw01234{1 + order[i] // 9:03d}001_02101_{1 + order[i] % 9:05d}"
            f"_{detector.lower()}_uncal.fits"
        )
        options = {
            "start_mjd": start,
            "detector": detector,
            "filter_name": filters[i % len(filters)],
            "subarray": sub,
            "archive": archive,
        }
        path = os.path.join(directory, name)
        n_seg = segments if segments > 1 and data.shape[0] >= segments else 1
        files.extend(write_segments(path, data, n_seg, **options))
        duration = exposure_times(start, ngroups, data.shape[0], sub).duration
        start += (duration + 60.0) / SECONDS_PER_DAY
    return Program(directory, files, sat_ref, mask_ref)


#: The folders of the docs' example program, each with two exposures, in time order ("."
#: is the top folder), and the observation number their file names carry.
EXAMPLE_FOLDERS = {"obs1": 1, "obs2": 2, "visit3": 3, ".": 4}


def example_program(directory: str, ngroups: int = 5, seed: int = 5) -> list[str]:
    """Write the program every example of the README and docs/ runs on; the paths written.

    ``obs1/``, ``obs2/`` and ``visit3/`` (two exposures each, in time order) and two more
    beside them, FULL and SUB256, F770W and F1800W; ``my_asn.json`` (an image2
    association of those two); the SATURATION reference as ``sat.fits`` and
    ``jwst_miri_saturation_0034.fits``; ``mask.fits``, ``gain.fits`` and
    ``readnoise.fits`` for calwebb_detector1's dq_init and ramp_fit.
    """
    import json
    import shutil

    from stdatamodels.jwst import datamodels

    program = make_program(
        os.path.join(directory, ".miripersist-simulate"),
        n_exposures=2 * len(EXAMPLE_FOLDERS),
        ngroups=ngroups,
        subarrays=("FULL", "FULL", "SUB256"),
        filters=("F770W", "F1800W"),
        stars_per_exposure=6,
        seed=seed,
    )
    written = []
    for k, path in enumerate(program.files):  # make_program lists them in time order
        where, number = list(EXAMPLE_FOLDERS.items())[k // 2]
        os.makedirs(os.path.join(directory, where), exist_ok=True)
        name = f"jw01234{number:03d}001_02101_{k % 2 + 1:05d}_mirimage_uncal.fits"
        written.append(os.path.normpath(os.path.join(directory, where, name)))
        os.replace(path, written[-1])
    top = sorted(os.path.basename(p) for p in written if os.path.dirname(p) == directory)
    members = [{"expname": name, "exptype": "science"} for name in top]
    asn = {
        "asn_type": "image2",
        "asn_id": "a3001",
        "products": [{"name": "jw01234004001_02101", "members": members}],
    }
    with open(os.path.join(directory, "my_asn.json"), "w") as fh:
        json.dump(asn, fh, indent=1)
    refs = [os.path.join(directory, n) for n in ("sat.fits", "jwst_miri_saturation_0034.fits")]
    # Each file is made anew, never written through: a name may be a link to another copy.
    for src, dst in ((program.saturation_ref, refs[0]), (program.saturation_ref, refs[1]),
                     (program.mask_ref, os.path.join(directory, "mask.fits"))):  # fmt: skip
        shutil.copyfile(src, dst + ".part")
        os.replace(dst + ".part", dst)
    shutil.rmtree(program.directory)
    gain = datamodels.GainModel(data=np.full(DETECTOR_SHAPE, 4.0, np.float32))
    noise = datamodels.ReadnoiseModel(data=np.full(DETECTOR_SHAPE, 6.0, np.float32))
    for name, model in (("gain", gain), ("readnoise", noise)):
        part = os.path.join(directory, f"{name}.part.fits")
        reference_meta(model, name.upper()).save(part)
        os.replace(part, os.path.join(directory, f"{name}.fits"))
    others = ("my_asn.json", "mask.fits", "gain.fits", "readnoise.fits")
    return [*written, *refs, *(os.path.join(directory, n) for n in others)]


if __name__ == "__main__":  # pragma: no cover
    import sys

    from .cli import main

    sys.exit(main(["simulate", *sys.argv[1:]]))
