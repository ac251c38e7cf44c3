"""The pure functions of the group-level method against independent formulations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from miripersist.grouptimes import group_times
from miripersist.saturation import NEVER, first_crossing, grow, grow_first, saturated_any
from miripersist.windows import expire, flag_groups


@settings(max_examples=60, deadline=None)
@given(
    ramp=arrays(np.uint16, st.tuples(st.integers(1, 6), st.integers(1, 9), st.integers(1, 9))),
    n=st.integers(0, 3),
    data=st.data(),
)
def test_first_saturated_group_is_the_first_flagged_by_the_grown_prefix(ramp, n, data):
    """The earliest group whose grown, sticky SATURATED flags reach a pixel."""
    ny, nx = ramp.shape[1:]
    thr = data.draw(
        arrays(
            np.float32,
            (ny, nx),
            elements=st.sampled_from([0.0, 5.5, 100.0, 40000.0, 65535.0, 65536.0, np.nan]),
        )
    )
    got = grow_first(first_crossing(list(ramp), thr), n)
    want = np.full((ny, nx), NEVER, dtype=np.int16)
    for g in range(ramp.shape[0] - 1, -1, -1):
        flagged = grow(saturated_any(ramp[: g + 1], np.where(np.isnan(thr), 65536.0, thr)), n)
        want[flagged] = g
    np.testing.assert_array_equal(got, want)


def test_grow_first_is_a_minimum_filter():
    rng = np.random.default_rng(1)
    first = np.where(rng.random((40, 50)) < 0.05, rng.integers(0, 9, (40, 50)), NEVER).astype(
        np.int16
    )
    want = ndimage.minimum_filter(first, size=5, mode="constant", cval=NEVER)
    np.testing.assert_array_equal(grow_first(first, 2), want)


def _step(before, first, times, seconds):
    """The step's loop over whole planes, as jwst writes it (persistence.py)."""
    p = before.copy()
    nints, ngroups = times.shape
    flags = np.zeros((nints, ngroups, *before.shape), dtype=bool)
    for i in range(nints):
        count = np.zeros(before.shape, dtype=np.uint32)
        for g in range(ngroups):
            now = times[i, g]
            p[p < now] = 0.0
            end = now + seconds
            count[first[i] <= g] += 1  # sticky flags from the first saturated group on
            p[count == 1] = end
            start = p - end
            start[p == 0.0] = 0.0
            p[start > 0.0] = 0.0
            flags[i, g] = p > 0.0
    return p, flags


@pytest.mark.parametrize("seconds", [1, 7, 40, 10_000])
def test_flag_groups_equals_the_steps_loop_on_whole_planes(seconds):
    rng = np.random.default_rng(seconds)
    ny, nx, nints, ngroups = 30, 40, 3, 8
    times = group_times(
        60300.0, 30.0, 2.775, np.array([60300.0, 60300.0 + 31 / 86400]), nints, ngroups
    )
    t0 = times[0, 0]
    before = np.where(rng.random((ny, nx)) < 0.2, t0 + rng.uniform(-20, 60, (ny, nx)), 0.0)
    first = np.where(
        rng.random((nints, ny, nx)) < 0.1, rng.integers(0, ngroups, (nints, ny, nx)), NEVER
    ).astype(np.int16)
    after, flags = flag_groups(before, first, times, seconds)
    want_after, want_flags = _step(before, first, times, seconds)
    np.testing.assert_array_equal(after, want_after)
    np.testing.assert_array_equal(flags.cube(32) > 0, want_flags)
    np.testing.assert_array_equal(flags.any_group(), want_flags.any(axis=(0, 1)))


def test_expire_is_the_step_on_pixels_that_never_saturate():
    rng = np.random.default_rng(0)
    times = group_times(60300.0, 30.0, 2.775, np.zeros(0), 2, 5)
    ends = np.where(rng.random((20, 20)) < 0.5, times[0, 0] + rng.uniform(-40, 80, (20, 20)), 0.0)
    want, _ = _step(ends, np.full((2, 20, 20), NEVER, dtype=np.int16), times, 30)
    got = ends.copy()
    expire(got, times, 30)
    np.testing.assert_array_equal(got, want)


def test_group_times_add_tgroup_one_group_at_a_time():
    """TGROUP is added once per group, as the step does (not multiplied: rounding differs)."""
    t = group_times(60300.123456, 100.0, 2.775, np.zeros(0), 2, 40)
    now = (60300.123456 - 40587.0) * 86400.0 + 100.0
    for g in range(40):
        now = now + 2.775
        assert t[1, g] == now


@pytest.mark.parametrize("n_grow", [0, 1, 2])
def test_tile_reader_equals_the_pure_first_crossing(tmp_path, n_grow):
    """Tiles with halos, read sparsely from the file, agree with the whole-array function."""
    from miripersist import simulate
    from miripersist.inventory import read_exposure
    from miripersist.reader import lazy_first_saturated, read_rows

    rng = np.random.default_rng(n_grow)
    xs, ys, nx, ny = simulate.SUBARRAYS["SUB128"]
    thr = rng.uniform(20000, 40000, (ny, nx)).astype(np.float32)
    thr[rng.random((ny, nx)) < 0.05] = np.nan
    thr[rng.random((ny, nx)) < 0.05] = 65536.0
    ramp = rng.integers(0, 30000, (2, 7, ny, nx), dtype=np.uint16)
    ramp[rng.random(ramp.shape) < 0.002] = 65535  # sparse hits at random groups
    path = simulate.write_uncal(
        str(tmp_path / "t_uncal.fits"), ramp, start_mjd=60300.0, subarray="SUB128"
    )
    e = read_exposure(path)
    got = lazy_first_saturated(e, thr, n_grow, tile=(37, 50)).compute()
    for i in range(2):
        planes = read_rows(path, e.sci, i, 7, slice(0, ny))
        np.testing.assert_array_equal(planes, ramp[i])
        want = grow_first(first_crossing(list(planes), thr), n_grow)
        np.testing.assert_array_equal(got[i], want)
    assert (got != NEVER).any() and (got == NEVER).any()


def test_negative_ends_and_missing_times_as_the_step_treats_them():
    """Ends before the first group close at once; a NaN time closes nothing, others do."""
    times = group_times(60300.0, 30.0, 2.775, np.array([np.nan, 60300.0]), 2, 4)
    assert np.isnan(times[0]).all() and not np.isnan(times[1]).any()
    before = np.array([[-3.0, 0.0, times[1, 0] + 5.0, times[1, -1] + 500.0]])
    first = np.full((2, 1, 4), NEVER, dtype=np.int16)
    after, _ = flag_groups(before, first, times, 20)
    want, _ = _step(before, first, times, 20)
    np.testing.assert_array_equal(after, want)
    ends = before.copy()
    expire(ends, times, 20)
    np.testing.assert_array_equal(ends, want)
