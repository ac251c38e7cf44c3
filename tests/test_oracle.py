"""The jwst pipeline is the oracle: engine sources equal DQInit + Saturation + notebook count."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import notebook_sources, pipeline_groupdq

from miripersist import simulate
from miripersist.inventory import read_exposure
from miripersist.reader import lazy_sources
from miripersist.thresholds import load_reference

GROW = (0, 1, 2)
THRESHOLDS = range(0, 6)


def engine_sources(path, sat_ref, n_unsat, n_grow, tile):
    exposure = read_exposure(path)
    thr = load_reference(sat_ref).window_for(exposure)
    return lazy_sources(exposure, thr, n_unsat, n_grow, tile).compute()


@pytest.mark.parametrize("n_grow", GROW)
def test_subarray_two_integrations_match_pipeline(sub64_two_ints, sat_ref, mask_ref, n_grow):
    gdq = pipeline_groupdq(sub64_two_ints, sat_ref, mask_ref, n_grow)
    seen_any = False
    for n_unsat in THRESHOLDS:
        expected = notebook_sources(gdq, n_unsat)
        got = engine_sources(sub64_two_ints, sat_ref, n_unsat, n_grow, tile=(16, 20))
        np.testing.assert_array_equal(got, expected, err_msg=f"n_unsat={n_unsat}")
        seen_any |= bool(expected.any()) and not expected.all()
    assert seen_any, "the synthetic data must make some, not all, pixels sources"


@pytest.fixture(scope="module")
def full_frame_borders(tmp_path_factory, sat_thresholds):
    """A full-frame exposure whose saturated pixels sit on and beside tile borders."""
    thr, _ = sat_thresholds
    finite = np.where(np.isfinite(thr), thr, 40000.0)
    data = np.repeat((finite * 0.5).astype(np.uint16)[None, None], 5, axis=1)
    rng = np.random.default_rng(11)
    spots = [(99, 299), (100, 300), (199, 3), (511, 1031), (0, 600), (1023, 0), (700, 599)]
    spots += [tuple(p) for p in rng.integers(0, (1024, 1032), size=(60, 2))]
    for k, (y, x) in enumerate(spots):
        data[0, k % 5 :, y, x] = 65535
    path = tmp_path_factory.mktemp("oracle") / "full_uncal.fits"
    return simulate.write_uncal(str(path), data, start_mjd=60300.0, subarray="FULL")


@pytest.mark.parametrize("n_grow", GROW)
def test_full_frame_tile_borders_match_pipeline(full_frame_borders, sat_ref, mask_ref, n_grow):
    gdq = pipeline_groupdq(full_frame_borders, sat_ref, mask_ref, n_grow)
    for n_unsat in (0, 2, 3):
        expected = notebook_sources(gdq, n_unsat)
        got = engine_sources(full_frame_borders, sat_ref, n_unsat, n_grow, tile=(100, 300))
        np.testing.assert_array_equal(got, expected, err_msg=f"n_unsat={n_unsat}")
        assert expected[99:101, 299:301].any() or n_unsat < 1


def test_groupdq_input_is_counted_from_groupdq(tmp_path, sub64_two_ints, sat_ref, mask_ref):
    """A file that already went through the saturation step is read from its GROUPDQ."""
    from astropy.io import fits

    gdq = pipeline_groupdq(sub64_two_ints, sat_ref, mask_ref, 1)
    data = fits.getdata(sub64_two_ints, "SCI")
    # Scramble SCI: only GROUPDQ may decide.
    path = simulate.write_uncal(
        str(tmp_path / "after_sat_uncal.fits"),
        np.zeros_like(data) + 5,
        start_mjd=60300.0,
        subarray="SUB64",
        groupdq=gdq,
    )
    exposure = read_exposure(path)
    assert exposure.groupdq is not None
    for n_unsat in THRESHOLDS:
        got = lazy_sources(exposure, None, n_unsat, 1, (16, 20)).compute()
        np.testing.assert_array_equal(got, notebook_sources(gdq, n_unsat))
