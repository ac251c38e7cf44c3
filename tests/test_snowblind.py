"""``--method snowblind`` against snowblind's own PersistenceFlagStep, pixel for pixel.

snowblind reads the SATURATED flags of the last group of the last integration from the
``_jump`` files of a program and flags DO_NOT_USE | PERSISTENCE in the DQ of later
``_rate`` images of the same detector that started less than ``time`` seconds after. Here
its inputs are made by the real jwst steps (DQInitStep + SaturationStep; the steps between
saturation and jump set no SATURATED flag) from the same uncal files miripersist reads.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from miripersist import Parameters, run, simulate
from miripersist.inventory import read_exposure

snowblind = pytest.importorskip("snowblind.persist")

FLAGS = 1 | 32  # DO_NOT_USE | PERSISTENCE
LAST_ONLY, FIRST_ONLY = (300, 300), (600, 700)  # patches (y, x) saturated in one integration


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """FULL frames (snowblind stacks masks of one shape per detector), two integrations.

    The first exposure saturates a patch in its last integration only, the second one
    another patch in its first integration only: snowblind's rule sees the first, not the
    second.
    """
    prog = simulate.make_program(
        str(tmp_path_factory.mktemp("snow") / "in"), n_exposures=6, ngroups=5, nints=(2,), seed=4
    )
    first, second = sorted(prog.files, key=lambda p: read_exposure(p).mid_mjd)[:2]
    for path, integration, (y, x) in ((first, 1, LAST_ONLY), (second, 0, FIRST_ONLY)):
        with fits.open(path, mode="update") as hdul:
            hdul["SCI"].data[integration, 1:, y : y + 6, x : x + 6] = 65535
    return prog


@pytest.fixture(scope="module")
def snowblind_inputs(tmp_path_factory, program):
    """The ``_jump`` files and ``_rate`` images snowblind expects, from the jwst steps."""
    from jwst.dq_init import DQInitStep
    from jwst.saturation import SaturationStep
    from stdatamodels.jwst import datamodels

    d = tmp_path_factory.mktemp("snowblind_inputs")
    rates = []
    for path in program.files:
        ramp = DQInitStep.call(path, override_mask=program.mask_ref)
        ramp = SaturationStep.call(
            ramp, override_saturation=program.saturation_ref, override_superbias="N/A"
        )
        root = os.path.basename(path).replace("_uncal.fits", "")
        ramp.save(str(d / f"{root}_jump.fits"))
        image = datamodels.ImageModel(
            data=np.zeros(ramp.data.shape[-2:], np.float32),
            dq=np.zeros(ramp.data.shape[-2:], np.uint32),
        )
        image.update(ramp)
        image.meta.filename = f"{root}_rate.fits"
        rates.append(image)
        ramp.close()
    return d, rates


def snowblind_flags(snowblind_inputs, seconds):
    """snowblind's DQ per input file name, with a window of ``seconds``."""
    from jwst.datamodels import ModelContainer

    d, rates = snowblind_inputs
    images = ModelContainer([r.copy() for r in rates])
    result = snowblind.PersistenceFlagStep.call(images, input_dir=str(d), time=seconds)
    return {m.meta.filename.replace("_rate.fits", "_uncal.fits"): np.asarray(m.dq) for m in result}


def start_gaps(program):
    starts = sorted(read_exposure(p).start_mjd for p in program.files)
    return np.diff(starts) * 86400.0


@pytest.mark.parametrize("where", ["below", "one", "two", "default"])
def test_snowblind_rule_equals_snowblind(tmp_path, program, snowblind_inputs, where):
    gaps = start_gaps(program)
    # Windows on both sides of the start-to-start gaps (every gap is about a minute).
    seconds = {
        "below": gaps.min() - 1.0,
        "one": gaps.max() + 1.0,
        "two": 2 * gaps.max() + 1.0,
        "default": 2500.0,
    }[where]
    assert gaps.max() + 1.0 < 2 * gaps.min() - 1.0, "the windows must fall between gaps"
    expected = snowblind_flags(snowblind_inputs, seconds)
    window = None if where == "default" else seconds / 86400.0
    ds = run(
        [program.directory],
        str(tmp_path),
        [program.saturation_ref],
        Parameters(method="snowblind", mode="sidecar", window_days=window),
    )
    total = 0
    for name in ds["file"].values.astype(str):
        sidecar = tmp_path / name.replace("_uncal.fits", "_persistence_dq.fits")
        got = fits.getdata(sidecar)
        want = expected[name] & FLAGS
        np.testing.assert_array_equal(got, want, err_msg=name)
        total += np.count_nonzero(want)
    if where == "below":
        assert total == 0
    else:
        assert total > 0, "snowblind must flag something here"


def test_snowblind_sources_are_the_last_integration_not_the_first(tmp_path, program):
    ds = run(
        [program.directory],
        str(tmp_path / "s"),
        [program.saturation_ref],
        Parameters(method="snowblind", mode="sidecar"),
    )
    last = (slice(LAST_ONLY[0] + 1, LAST_ONLY[0] + 5), slice(LAST_ONLY[1] + 1, LAST_ONLY[1] + 5))
    first = (
        slice(FIRST_ONLY[0] + 1, FIRST_ONLY[0] + 5),
        slice(FIRST_ONLY[1] + 1, FIRST_ONLY[1] + 5),
    )
    sources = ds["source"].values
    assert sources[0][last].all() and not sources[1][first].any()
    assert ds.attrs["parameters"]["method"] == "snowblind"
    name = str(ds["file"].values[1]).replace("_uncal.fits", "_persistence_dq.fits")
    header = fits.getheader(tmp_path / "s" / name)
    assert header["MPMETHOD"] == "snowblind" and header["MPWINDOW"] == "2500"
