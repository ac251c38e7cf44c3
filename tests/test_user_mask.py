"""``--user-mask``: its pixels are flagged in every exposure; pixels off the detector are named."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from conftest import FLAGS

from miripersist import ConfigError, run
from miripersist.inventory import DETECTOR_SHAPE


@pytest.mark.parametrize("kind", ["ecsv", "csv", "txt", "fits"])
def test_user_mask_applies_to_every_exposure(tmp_path, program, expected_masks, kind):

    x = np.array([1, 500, 1032, 700])
    y = np.array([1, 120, 1024, 200])
    path = tmp_path / f"mask.{kind}"
    if kind == "fits":
        image = np.zeros(DETECTOR_SHAPE, np.uint8)
        image[y - 1, x - 1] = 1
        fits.writeto(path, image)
    else:
        fmt = {"ecsv": "ascii.ecsv", "csv": "ascii.csv", "txt": "ascii.basic"}[kind]
        Table({"x": x, "y": y}).write(path, format=fmt)
    ds = run(
        [program.directory], str(tmp_path / "out"), [program.saturation_ref], user_mask=str(path)
    )
    umask = np.zeros(DETECTOR_SHAPE, bool)
    umask[y - 1, x - 1] = True
    np.testing.assert_array_equal(ds["user_mask"].values, umask)
    exposures, _, masks = expected_masks
    assert any((umask[e.window] & ~m).any() for e, m in zip(exposures, masks, strict=True))
    for e, mask in zip(exposures, masks, strict=True):
        out = tmp_path / "out" / e.name.replace("_uncal.fits", "_masked_persistence_uncal.fits")
        pdq = fits.getdata(out, "PIXELDQ")
        np.testing.assert_array_equal(pdq, np.where(mask | umask[e.window], FLAGS, 0))


def test_user_mask_off_detector_is_reported(tmp_path, program):
    path = tmp_path / "mask.csv"
    path.write_text("x,y\n1,1\n1033,5\n0,7\n")
    with pytest.raises(ConfigError, match="2 user mask coordinates lie off"):
        run(
            [program.directory],
            str(tmp_path / "out"),
            [program.saturation_ref],
            user_mask=str(path),
        )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
