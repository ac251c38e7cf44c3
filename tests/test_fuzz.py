"""Fuzzing the header parsing: the engine gives the oracle's answer or a clean error.

The budget here is small enough for every test run; docs/reliability.md tells how to run
longer campaigns (``HYPOTHESIS_PROFILE=fuzz``).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stcal.saturation.saturation import flag_saturated_pixels
from stdatamodels.jwst.datamodels import dqflags

from miripersist import InputError, simulate
from miripersist.inventory import read_exposure
from miripersist.reader import lazy_sources
from miripersist.saturation import groups_needed, sources_from_groupdq
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


def oracle(path: str, thr: np.ndarray, exposure) -> np.ndarray:
    """stcal's flags on the file's own first integration, cut as jwst cuts the reference."""
    data = fits.getdata(path, "SCI").astype(np.float32)[:1]
    window = thr[exposure.window]
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


@settings(max_examples=BUDGET, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(PRIMARY_KEYS + SCI_KEYS), st.one_of(st.none(), VALUES)),
        min_size=1,
        max_size=5,
    )
)
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
        if exposure is None:  # not MIRI: skipped with a warning
            return
        got = lazy_sources(
            exposure, threshold_map(thr[exposure.window], None), 3, 1, (16, 24)
        ).compute()
        np.testing.assert_array_equal(got, oracle(target, thr, exposure))
        assert groups_needed(exposure.ngroups, 3) == 4


@settings(max_examples=BUDGET, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=8)
)
def test_random_byte_damage_in_headers_is_a_clean_error_or_harmless(base, flips):
    path, _ = base
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
            read_exposure(target)
        except InputError as exc:
            assert str(exc).startswith(target) and "\n" not in str(exc)
