"""The options that shape a rule's masks: ``--integrations all``, ``--dilate``, ``--window``."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from conftest import notebook_sources, pipeline_groupdq

from miripersist import Parameters, run
from miripersist.inventory import DETECTOR_SHAPE, read_exposure
from miripersist.reader import lazy_sources
from miripersist.saturation import grow
from miripersist.thresholds import load_reference


@pytest.mark.parametrize("n_unsat", [0, 2, 3])
def test_all_integrations_match_the_pipeline_per_integration(
    sub64_two_ints, sat_ref, mask_ref, n_unsat
):
    gdq = pipeline_groupdq(sub64_two_ints, sat_ref, mask_ref, 1)
    expected = notebook_sources(gdq[:1], n_unsat) | notebook_sources(gdq[1:], n_unsat)
    assert (expected & ~notebook_sources(gdq[:1], n_unsat)).any()
    e = read_exposure(sub64_two_ints)
    thr = load_reference(sat_ref).window_for(e)
    got = lazy_sources(e, thr, n_unsat, 1, (16, 24), all_integrations=True).compute()
    np.testing.assert_array_equal(got, expected)


def test_dilate_grows_sources_in_detector_coordinates(tmp_path, mixed_program):
    plain = run([mixed_program.directory], str(tmp_path / "a"), [mixed_program.saturation_ref])
    wide = run(
        [mixed_program.directory],
        str(tmp_path / "b"),
        [mixed_program.saturation_ref],
        Parameters(dilate=2),
    )
    for i in range(plain.sizes["exposure"]):
        np.testing.assert_array_equal(wide["source"][i].values, grow(plain["source"][i].values, 2))
    assert (wide["n_masked"].values >= plain["n_masked"].values).all()
    assert wide["n_masked"].values.sum() > plain["n_masked"].values.sum()
    out = sorted((tmp_path / "b").glob("*.fits"))[-1]
    header = fits.getheader(out, "PIXELDQ")
    assert header["MPDILATE"] == 2 and header["MPINTEG"] == "first"
    assert any("DO_NOT_USE,PERSISTENCE" in h for h in header["HISTORY"])


def test_window_masks_only_recent_saturation(tmp_path, mixed_program):
    window_s = 150.0
    ds = run(
        [mixed_program.directory],
        str(tmp_path),
        [mixed_program.saturation_ref],
        Parameters(window_days=window_s / 86400),
    )
    src = ds["source"].values
    start, end = ds["start_mjd"].values, ds["end_mjd"].values
    for i in range(len(start)):
        expected = np.zeros(DETECTOR_SHAPE, dtype=bool)
        for j in range(i):
            if (start[i] - end[j]) * 86400 <= window_s:
                expected |= src[j]
        np.testing.assert_array_equal(ds["mask"][i].values, expected, err_msg=str(i))
    infinite = run([mixed_program.directory], str(tmp_path / "inf"), [mixed_program.saturation_ref])
    assert ds["n_masked"].values.sum() < infinite["n_masked"].values.sum()
    assert fits.getheader(sorted(tmp_path.glob("*.fits"))[0], "PIXELDQ")["MPWINDOW"] != "inf"
