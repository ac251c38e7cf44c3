"""What a rule reads (:class:`miripersist.reads.Reads`), composed as a run composes it: the
thresholds shared as one dask.delayed object (as :func:`miripersist.execute.shared` makes
them), tiles smaller than the frame, against jwst's DQInitStep + SaturationStep."""

from __future__ import annotations

import dask.threaded
import numpy as np
import pytest
from conftest import notebook_sources, pipeline_groupdq

from miripersist import simulate
from miripersist.execute import shared
from miripersist.flags import SATURATED_GROUP
from miripersist.inventory import read_exposure
from miripersist.reads import Reads
from miripersist.saturation import NEVER
from miripersist.thresholds import Window, load_reference

TILE = (16, 24)  # several tiles, none the frame's shape


@pytest.fixture(scope="module")
def oracle(sub64_two_ints, sat_ref, mask_ref):
    return pipeline_groupdq(sub64_two_ints, sat_ref, mask_ref, 1)


def reads(path: str, sat_ref: str) -> Reads:
    exposure = read_exposure(path)
    window = Window(load_reference(sat_ref).window_for(exposure))
    return Reads(shared(window, distributed=False), 1, TILE)


@pytest.mark.parametrize("n_unsat", [0, 2, 3])
@pytest.mark.parametrize("integrations", ["first", "all", (1,)])
def test_saturated_is_the_notebook_s_count_on_the_pipeline_s_flags(
    sub64_two_ints, sat_ref, oracle, n_unsat, integrations
):
    chosen = {"first": [0], "all": [0, 1]}.get(integrations, integrations)
    expected = np.zeros(oracle.shape[2:], bool)
    for k in chosen:
        expected |= notebook_sources(oracle[k : k + 1], n_unsat)
    got = reads(sub64_two_ints, sat_ref).saturated(
        [read_exposure(sub64_two_ints)], n_unsat, integrations
    )
    assert got.chunksize == TILE
    np.testing.assert_array_equal(got.compute(), expected)


def test_the_integrations_differ_so_the_choice_is_tested(oracle):
    assert (notebook_sources(oracle[1:], 3) & ~notebook_sources(oracle[:1], 3)).any()
    assert (notebook_sources(oracle[:1], 3) & ~notebook_sources(oracle[1:], 3)).any()


def test_saturated_of_several_files_is_their_or(tmp_path, sat_thresholds, sat_ref, mask_ref):
    thr, _ = sat_thresholds
    rng = np.random.default_rng(11)
    paths = []
    for k in range(2):
        xs, ys, nx, ny = simulate.SUBARRAYS["SUB64"]
        window = thr[ys - 1 : ys - 1 + ny, xs - 1 : xs - 1 + nx]
        ramp = np.zeros((1, 5, ny, nx), np.uint16)
        hot = rng.random((ny, nx)) < 0.1
        ramp[0][:, hot] = np.nan_to_num(window[hot] + 100, nan=65535).clip(0, 65535)
        ramp[0, :, ~hot] = 100
        name = str(tmp_path / f"part{k}_uncal.fits")
        paths.append(simulate.write_uncal(name, ramp, start_mjd=60300.0 + k, subarray="SUB64"))
    parts = [notebook_sources(pipeline_groupdq(p, sat_ref, mask_ref, 1), 3) for p in paths]
    assert (parts[0] != parts[1]).any(), "the files saturate in different pixels"
    files = [read_exposure(p) for p in paths]
    got = reads(paths[0], sat_ref).saturated(files, 3).compute()
    np.testing.assert_array_equal(got, parts[0] | parts[1])


def test_first_saturated_is_the_pipeline_s_first_flagged_group(sub64_two_ints, sat_ref, oracle):
    flagged = (oracle & SATURATED_GROUP) != 0
    expected = np.where(flagged.any(axis=1), flagged.argmax(axis=1), NEVER)
    got = reads(sub64_two_ints, sat_ref).first_saturated(read_exposure(sub64_two_ints))
    np.testing.assert_array_equal(got.compute(), expected)


def test_nothing_is_computed_until_asked(sub64_two_ints, sat_ref, monkeypatch):
    read = reads(sub64_two_ints, sat_ref)
    calls = []
    monkeypatch.setattr(dask.threaded, "get", lambda *a, **k: calls.append(a) or [])
    read.saturated([read_exposure(sub64_two_ints)], 3)
    read.first_saturated(read_exposure(sub64_two_ints))
    assert calls == []
