"""Pure functions: prefix read equals the full count; the scan equals the naive loop."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from stcal.saturation.saturation import flag_saturated_pixels
from stdatamodels.jwst.datamodels import dqflags

from miripersist.saturation import (
    groups_needed,
    grow,
    sources_from_groupdq,
    sources_from_ramp,
    unsaturated_count,
)
from miripersist.scan import exclusive_scan, new_carry
from miripersist.thresholds import threshold_map


def naive_masks(sources: np.ndarray) -> np.ndarray:
    """OR every earlier exposure's sources again for each exposure (the notebook's loop)."""
    out = np.zeros_like(sources, dtype=bool)
    for i in range(sources.shape[0]):
        for j in range(i):
            out[i] |= sources[j]
    return out


@st.composite
def ramp_cases(draw):
    ngroups = draw(st.integers(1, 8))
    # stcal's growth fails on frames smaller than its box; MIRI frames are 64 rows or more.
    ny = draw(st.integers(5, 12))
    nx = draw(st.integers(5, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    thr = rng.choice([100.0, 200.0, 300.0, np.nan], size=(ny, nx)).astype(np.float32)
    dq = np.where(rng.random((ny, nx)) < 0.1, dqflags.pixel["NO_SAT_CHECK"], 0).astype(np.uint32)
    data = rng.integers(0, 400, size=(1, ngroups, ny, nx)).astype(np.float32)
    return data, thr, dq, draw(st.integers(0, 6)), draw(st.integers(0, 2))


@settings(max_examples=300, deadline=None)
@given(ramp_cases())
def test_prefix_of_groups_equals_full_count_over_all_groups(case):
    data, thr, dq, n_unsat, n_grow = case
    gdq = np.zeros(data.shape, dtype=np.uint8)
    pdq = np.zeros(thr.shape, dtype=np.uint32)
    gdq, _, _ = flag_saturated_pixels(
        data, gdq, pdq, thr.copy(), dq.copy(), 65535.0, dqflags.pixel, n_pix_grow_sat=n_grow
    )
    full = sources_from_groupdq(gdq[0], n_unsat)  # every group, the notebook's count
    k = groups_needed(data.shape[1], n_unsat)
    prefix = sources_from_ramp(data[0, :k], threshold_map(thr, dq), n_grow)
    np.testing.assert_array_equal(prefix, full)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 3), st.integers(0, 2**32 - 1))
def test_grow_equals_scipy_binary_dilation_with_a_box(ny, nx, n, seed):
    from scipy import ndimage

    mask = np.random.default_rng(seed).random((ny, nx)) < 0.05
    box = np.ones((2 * n + 1, 2 * n + 1), dtype=bool)
    expected = ndimage.binary_dilation(mask, box, border_value=0) if n else mask
    np.testing.assert_array_equal(grow(mask, n), expected)


def test_unsaturated_count_counts_groups_without_the_bit():
    gdq = np.array([[[0]], [[2]], [[2 | 4]], [[4]]], dtype=np.uint8)
    assert unsaturated_count(gdq)[0, 0] == 2


def test_threshold_map_never_checks_nan_and_no_sat_check():
    thr = np.array([[1.0, np.nan, 3.0]], dtype=np.float32)
    dq = np.array([[0, 0, dqflags.pixel["NO_SAT_CHECK"]]], dtype=np.uint32)
    out = threshold_map(thr, dq)
    assert out[0, 0] == 1.0 and out[0, 1] == 65536.0 and out[0, 2] == 65536.0
    assert np.isnan(thr[0, 1]), "the input must not be modified"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(1, 11), max_size=4),
)
def test_scan_in_blocks_equals_naive_or(n, ny, nx, seed, cuts):
    rng = np.random.default_rng(seed)
    sources = rng.random((n, ny, nx)) < 0.2
    times = np.cumsum(rng.uniform(0.01, 1.0, size=n))
    bounds = sorted({0, n, *[c for c in cuts if c < n]})
    carry = new_carry((ny, nx))
    masks = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        block, carry = exclusive_scan(sources[a:b], times[a:b], times[a:b] + 0.005, carry)
        masks.append(block)
    np.testing.assert_array_equal(np.concatenate(masks), naive_masks(sources))


def test_scan_never_masks_an_exposure_with_its_own_sources():
    sources = np.zeros((3, 2, 2), dtype=bool)
    sources[1, 0, 0] = True
    masks, carry = exclusive_scan(sources, np.arange(3.0), np.arange(3.0) + 0.1, new_carry((2, 2)))
    assert not masks[0].any() and not masks[1].any()
    assert masks[2, 0, 0] and masks[2].sum() == 1
    assert carry[0, 0] == 1.1


def test_window_masks_only_exposures_starting_soon_after():
    sources = np.zeros((4, 1, 1), dtype=bool)
    sources[0] = True
    start = np.array([0.0, 0.2, 0.5, 2.0])
    end = start + 0.1
    masks, _ = exclusive_scan(sources, start, end, new_carry((1, 1)), window_days=0.5)
    # ends at 0.1: the exposures starting at 0.2 and 0.5 are within 0.5 d, the one at 2.0 is not
    assert masks[:, 0, 0].tolist() == [False, True, True, False]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10), st.integers(0, 2**32 - 1), st.integers(1, 9))
def test_both_scan_paths_agree_when_the_window_never_closes(n, seed, cut):
    rng = np.random.default_rng(seed)
    sources = rng.random((n, 3, 4)) < 0.3
    start = np.cumsum(rng.uniform(0.01, 1.0, size=n))
    end = start + 0.01
    carry0 = np.where(rng.random((3, 4)) < 0.2, -1.0, -np.inf)
    cut = min(cut, n)
    ma, ca = exclusive_scan(sources[:cut], start[:cut], end[:cut], carry0)
    mb, cb = exclusive_scan(sources[:cut], start[:cut], end[:cut], carry0, window_days=1e9)
    np.testing.assert_array_equal(ma, mb)
    np.testing.assert_array_equal(ca, cb)
    ma2, ca2 = exclusive_scan(sources[cut:], start[cut:], end[cut:], ca)
    mb2, cb2 = exclusive_scan(sources[cut:], start[cut:], end[cut:], cb, window_days=1e9)
    np.testing.assert_array_equal(ma2, mb2)
    np.testing.assert_array_equal(ca2, cb2)
