"""The jwst pipeline is the oracle: engine sources equal DQInit + Saturation + notebook count.

Every comparison runs on archive-shaped files (REFOUT, GROUP, INT_TIMES, ~200 primary cards,
as MAST delivers them) and on the lean files ``simulate.write_uncal(archive=False)`` writes.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import notebook_sources, pipeline_groupdq, tricky_ramps

from miripersist import simulate
from miripersist.inventory import read_exposure
from miripersist.reader import lazy_sources
from miripersist.thresholds import load_reference

GROW = (0, 1, 2)
THRESHOLDS = range(0, 6)
SHAPES = pytest.mark.parametrize("archive", [True, False], ids=["archive", "lean"])


def engine_sources(path, sat_ref, n_unsat, n_grow, tile):
    exposure = read_exposure(path)
    thr = load_reference(sat_ref).window_for(exposure)
    return lazy_sources(exposure, thr, n_unsat, n_grow, tile).compute()


@pytest.fixture(scope="module", params=[True, False], ids=["archive", "lean"])
def sub64_two_ints(request, tmp_path_factory, sat_thresholds):
    """A SUB64 exposure, two integrations that saturate differently, full-frame reference."""
    thr, _ = sat_thresholds
    xs, ys, nx, ny = simulate.SUBARRAYS["SUB64"]
    window = thr[ys - 1 : ys - 1 + ny, xs - 1 : xs - 1 + nx]
    data = tricky_ramps(window, ngroups=7, nints=2, rng=np.random.default_rng(3))
    path = tmp_path_factory.mktemp("oracle") / "jw01234001001_02101_00001_mirimage_uncal.fits"
    return simulate.write_uncal(
        str(path), data, start_mjd=60300.0, subarray="SUB64", archive=request.param
    )


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


@pytest.fixture(scope="module", params=[True, False], ids=["archive", "lean"])
def full_frame_borders(request, tmp_path_factory, sat_thresholds):
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
    return simulate.write_uncal(
        str(path), data, start_mjd=60300.0, subarray="FULL", archive=request.param
    )


@pytest.mark.parametrize("n_grow", GROW)
def test_full_frame_tile_borders_match_pipeline(full_frame_borders, sat_ref, mask_ref, n_grow):
    gdq = pipeline_groupdq(full_frame_borders, sat_ref, mask_ref, n_grow)
    for n_unsat in (0, 2, 3):
        expected = notebook_sources(gdq, n_unsat)
        got = engine_sources(full_frame_borders, sat_ref, n_unsat, n_grow, tile=(100, 300))
        np.testing.assert_array_equal(got, expected, err_msg=f"n_unsat={n_unsat}")
        assert expected[99:101, 299:301].any() or n_unsat < 1


@SHAPES
@pytest.mark.parametrize("subarray", ["MASK1065", "MASKLYOT", "SLITLESSPRISM"])
def test_coronagraph_and_lrs_subarrays_match_pipeline(
    tmp_path, sat_thresholds, sat_ref, mask_ref, subarray, archive
):
    """The pipeline cuts the full-frame reference at the new subarrays' SUBSTRT1/2 as we do."""
    thr, _ = sat_thresholds
    xs, ys, nx, ny = simulate.SUBARRAYS[subarray]
    window = thr[ys - 1 : ys - 1 + ny, xs - 1 : xs - 1 + nx]
    data = tricky_ramps(window, ngroups=5, nints=1, rng=np.random.default_rng(5))
    path = simulate.write_uncal(
        str(tmp_path / "jw01234001001_02101_00003_mirimage_uncal.fits"),
        data,
        start_mjd=60300.0,
        subarray=subarray,
        archive=archive,
    )
    gdq = pipeline_groupdq(path, sat_ref, mask_ref, 1)
    for n_unsat in (0, 2):
        expected = notebook_sources(gdq, n_unsat)
        got = engine_sources(path, sat_ref, n_unsat, 1, tile=(64, 40))
        np.testing.assert_array_equal(got, expected, err_msg=f"n_unsat={n_unsat}")
        assert expected.any() and not expected.all()


@SHAPES
def test_groupdq_input_is_counted_from_groupdq(
    tmp_path, sub64_two_ints, sat_ref, mask_ref, archive
):
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
        archive=archive,
    )
    exposure = read_exposure(path)
    assert exposure.groupdq is not None
    for n_unsat in THRESHOLDS:
        got = lazy_sources(exposure, None, n_unsat, 1, (16, 20)).compute()
        np.testing.assert_array_equal(got, notebook_sources(gdq, n_unsat))
