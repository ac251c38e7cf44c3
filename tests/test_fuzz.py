"""Fuzzing the header parsing: the engine gives the oracle's answer or a clean error.

The budget here is small enough for every test run; docs/reliability.md tells how to run
longer campaigns (``HYPOTHESIS_PROFILE=fuzz``).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from stcal.saturation.saturation import flag_saturated_pixels
from stdatamodels.jwst.datamodels import dqflags

from miripersist import InputError, simulate
from miripersist.inventory import read_exposure
from miripersist.reader import lazy_sources
from miripersist.saturation import sources_from_groupdq
from miripersist.thresholds import threshold_map

settings.register_profile("fuzz", max_examples=5000, deadline=None)
BUDGET = int(os.environ.get("MIRIPERSIST_FUZZ_EXAMPLES", "60"))

PRIMARY_KEYS = [
    "INSTRUME",
    "DETECTOR",
    "SUBSTRT1",
    "SUBSTRT2",
    "SUBSIZE1",
    "SUBSIZE2",
    "NGROUPS",
    "NINTS",
    "EXPSTART",
    "EXPEND",
    "EXPMID",
    "FILTER",
    "SUBARRAY",
]
SCI_KEYS = ["MJD-AVG", "MJD-BEG", "MJD-END"]
VALUES = st.one_of(
    st.sampled_from(["", "garbage", "MIRI", "MIRIMAGE", "NIRCAM", "FULL", " "]),
    st.integers(-5, 2000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.booleans(),
)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(4)
    thr = rng.uniform(200, 400, size=(1024, 1032)).astype(np.float32)
    thr[rng.random(thr.shape) < 0.05] = np.nan
    rates = rng.uniform(0, 120, size=(64, 72)).astype(np.float32)
    data = simulate.ramps(rates, ngroups=5, bias=50.0, rng=rng)
    path = simulate.write_uncal(
        str(d / "base_uncal.fits"), data, start_mjd=60300.0, subarray="SUB64"
    )
    return path, thr


# What decides an exposure's sources and its place in the scan.
FIELDS = ("detector", "xstart", "ystart", "xsize", "ysize", "nints", "ngroups")
FIELDS += ("start_mjd", "mid_mjd", "end_mjd")


def _time(header: fits.Header, key: str) -> float | None:
    """A time keyword's value if it is a number (not a logical) and finite, else None."""
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _first_time(*candidates: tuple[fits.Header, str]) -> float | None:
    # One after another: a later keyword is looked at only when the ones before are unusable.
    for header, key in candidates:
        value = _time(header, key)
        if value is not None:
            return value
    return None


def _integer(header: fits.Header, key: str, default: int) -> int:
    value = header.get(key, default)
    assert not isinstance(value, bool) and float(value).is_integer(), f"{key}={value!r} taken"
    return int(value)


def astropy_view(path: str) -> dict:
    """What astropy's own header parser reads from the file's bytes, independently of ours.

    Every HDU's header in turn (``Header.fromfile``), its data skipped by the size the header
    declares; then the fields that decide an exposure's sources and scan order (by the rules
    of docs/how-it-works.md: mid from MJD-AVG, else EXPMID, else the mean of start and end),
    and the first integration of SCI read by numpy from where that header ends.
    """
    raw = open(path, "rb").read()
    hdus = []
    with open(path, "rb") as fh:
        while fh.tell() < len(raw):
            if hdus and raw[fh.tell() : fh.tell() + 8] != b"XTENSION":
                break  # padding after the last HDU
            header = fits.Header.fromfile(fh)
            offset = fh.tell()
            axes = [header[f"NAXIS{k}"] for k in range(1, header.get("NAXIS", 0) + 1)]
            nbytes = abs(header["BITPIX"]) // 8 * math.prod(axes) if axes else 0
            hdus.append((header, offset))
            fh.seek(offset + nbytes + (-nbytes % 2880))
    primary = hdus[0][0]
    view = {"instrument": str(primary.get("INSTRUME", "")).strip().upper()}
    if view["instrument"] != "MIRI":
        return view
    sci, offset = next(
        (h, o) for h, o in hdus if str(h.get("EXTNAME", "")).strip().upper() == "SCI"
    )
    shape = tuple(sci[f"NAXIS{k}"] for k in range(sci["NAXIS"], 0, -1))
    bitpix, bzero, bscale = sci["BITPIX"], sci.get("BZERO", 0.0), sci.get("BSCALE", 1.0)
    start = _first_time((primary, "EXPSTART"), (sci, "MJD-BEG"))
    end = _first_time((primary, "EXPEND"), (sci, "MJD-END"))
    mid = _first_time((sci, "MJD-AVG"), (primary, "EXPMID"))
    if mid is None:
        mid = 0.5 * (start + end)
    dtype = {8: "u1", 16: ">i2", 32: ">i4", -32: ">f4", -64: ">f8"}[bitpix]
    first = np.frombuffer(raw, dtype=dtype, count=math.prod(shape[1:]), offset=offset)
    view.update(
        detector=str(primary["DETECTOR"]).strip().upper(),
        xstart=_integer(primary, "SUBSTRT1", 1),
        ystart=_integer(primary, "SUBSTRT2", 1),
        xsize=_integer(primary, "SUBSIZE1", shape[3]),
        ysize=_integer(primary, "SUBSIZE2", shape[2]),
        nints=shape[0],
        ngroups=shape[1],
        start_mjd=mid if start is None else start,
        mid_mjd=mid,
        end_mjd=mid if end is None else end,
        sci=(offset, bitpix, bzero, bscale),
        first_integration=first.reshape(shape[1:]).astype(np.float64) * bscale + bzero,
    )
    return view


def oracle(view: dict, thr: np.ndarray) -> np.ndarray:
    """stcal's flags on the first integration astropy reads, with the reference cut at the
    subarray astropy reads (as jwst cuts it)."""
    data = view["first_integration"].astype(np.float32)[None]
    y0, x0 = view["ystart"] - 1, view["xstart"] - 1
    window = thr[y0 : y0 + view["ysize"], x0 : x0 + view["xsize"]]
    gdq = np.zeros(data.shape, np.uint8)
    flag_saturated_pixels(
        data,
        gdq,
        np.zeros(window.shape, np.uint32),
        window.copy(),
        np.zeros(window.shape, np.uint32),
        65535.0,
        dqflags.pixel,
        n_pix_grow_sat=1,
    )
    return sources_from_groupdq(gdq[0], 3)


def check_harmless(path: str, thr: np.ndarray, exposure) -> None:
    """The exposure read is what astropy reads from the same bytes, and so are its sources."""
    view = astropy_view(path)
    if exposure is None:  # skipped as not MIRI: astropy must agree
        assert view["instrument"] != "MIRI"
        return
    sci = exposure.sci
    ours = {k: getattr(exposure, k) for k in FIELDS}
    ours |= {"instrument": "MIRI", "sci": (sci.offset, sci.bitpix, sci.bzero, sci.bscale)}
    theirs = {k: v for k, v in view.items() if k != "first_integration"}
    assert ours == theirs
    got = lazy_sources(
        exposure, threshold_map(thr[exposure.window], None), 3, 1, (16, 24)
    ).compute()
    np.testing.assert_array_equal(got, oracle(view, thr))


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyWarning")
@settings(max_examples=BUDGET, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(PRIMARY_KEYS + SCI_KEYS), st.one_of(st.none(), VALUES)),
        min_size=1,
        max_size=5,
    )
)
# A time of 0 is a number like any other: it must not be taken for a missing keyword.
@example(edits=[("EXPSTART", 0)])
@example(edits=[("MJD-AVG", 0.0)])
@example(edits=[("SUBSTRT2", 5)])
def test_random_header_edits_give_the_oracle_or_a_clean_error(base, edits):
    path, thr = base
    with tempfile.TemporaryDirectory() as d:
        target = os.path.join(d, "f_uncal.fits")
        shutil.copy(path, target)
        with fits.open(target, mode="update") as hdul:
            for key, value in edits:
                hdr = hdul["SCI"].header if key in SCI_KEYS else hdul[0].header
                if value is None:
                    hdr.remove(key, ignore_missing=True)
                else:
                    hdr[key] = value
        try:
            exposure = read_exposure(target)
        except InputError as exc:
            assert str(exc).startswith(target) and "\n" not in str(exc)
            return
        check_harmless(target, thr, exposure)


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyWarning")
@settings(max_examples=BUDGET, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=8)
)
def test_random_byte_damage_in_headers_is_a_clean_error_or_harmless(base, flips):
    path, thr = base
    with fits.open(path) as hdul:
        header_end = hdul.fileinfo(1)["datLoc"]
    with tempfile.TemporaryDirectory() as d:
        target = os.path.join(d, "f_uncal.fits")
        raw = bytearray(open(path, "rb").read())
        for pos, mask in flips:
            raw[pos % header_end] ^= mask
        with open(target, "wb") as fh:
            fh.write(raw)
        try:
            exposure = read_exposure(target)
        except InputError as exc:
            assert str(exc).startswith(target) and "\n" not in str(exc)
            return
        check_harmless(target, thr, exposure)


@pytest.mark.parametrize("bitpix", [16, -32])
def test_brightest_rows_is_the_maximum_astropy_reads_in_any_thread(tmp_path, bitpix):
    """Any rows, groups and integration, read through one buffer per thread, sizes mixed."""
    from concurrent.futures import ThreadPoolExecutor

    from miripersist.inventory import ArrayLayout
    from miripersist.reader import brightest_rows

    rng = np.random.default_rng(bitpix + 100)
    shape = (2, 6, 37, 29)
    if bitpix == 16:
        data = rng.integers(0, 65536, size=shape, dtype=np.uint32).astype(np.uint16)
        data.flat[:4] = [0, 32767, 32768, 65535]  # both ends, and either side of the sign bit
    else:
        data = rng.normal(0, 1e4, size=shape).astype(np.float32)
    path = str(tmp_path / "ramp.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, name="SCI", uint=True)]).writeto(path)
    with fits.open(path, do_not_scale_image_data=True) as hdul:
        header = hdul["SCI"].header
        offset = hdul.fileinfo(1)["datLoc"]
        truth = fits.getdata(path, "SCI")  # physical values, as astropy scales them
    layout = ArrayLayout(
        offset, shape, header["BITPIX"], header.get("BZERO", 0.0), header.get("BSCALE", 1.0)
    )
    assert (layout.bitpix, layout.bzero) == ((16, 32768.0) if bitpix == 16 else (-32, 0.0))
    cases = []
    for _ in range(200):
        a = int(rng.integers(0, shape[2]))
        cases.append(
            (
                int(rng.integers(0, 2)),
                int(rng.integers(1, 7)),
                slice(a, int(rng.integers(a + 1, 38))),
            )
        )

    def one(case):
        integration, groups, rows = case
        return brightest_rows(path, layout, integration, groups, rows)

    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(one, cases))
    for (integration, groups, rows), peak in zip(cases, got, strict=True):
        want = truth[integration, :groups, rows].max(axis=0)
        assert peak.dtype == (np.uint16 if bitpix == 16 else np.float64)
        np.testing.assert_array_equal(peak, want)
