"""Segmented exposures (``-segNNN`` files) are one exposure: same masks as unsegmented files."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from astropy.io import fits

import miripersist.reader as reader
from miripersist import Parameters, run, simulate
from miripersist.errors import InputError
from miripersist.inventory import read_exposure, segment_root


def _pair(tmp_path_factory, nints, segments, seed):
    """The same program written whole and in segments."""
    base = tmp_path_factory.mktemp(f"seg-{nints}-{segments}")
    kwargs = dict(n_exposures=4, ngroups=5, nints=(nints,), subarrays=("FULL", "SUB256"), seed=seed)
    whole = simulate.make_program(str(base / "whole"), **kwargs)
    split = simulate.make_program(str(base / "split"), segments=segments, **kwargs)
    return whole, split


@pytest.fixture(
    scope="module", params=[(2, 2), (3, 3), (4, 2), (6, 3)], ids=lambda p: f"{p[0]}i{p[1]}s"
)
def pair(request, tmp_path_factory):
    nints, segments = request.param
    return (*_pair(tmp_path_factory, nints, segments, seed=31), segments)


def _images(directory, suffix):
    """Output DQ images by exposure name (segment names mapped to their exposure)."""
    out: dict[str, list[np.ndarray]] = {}
    for p in sorted(directory.glob(f"*{suffix}")):
        ext = "PIXELDQ" if suffix.endswith("uncal.fits") else 0
        out.setdefault(segment_root(p.name), []).append(fits.getdata(p, ext))
    return out


def test_segment_files_hold_the_whole_exposure(pair):
    whole, split, segments = pair
    assert len(split.files) == segments * len(whole.files)
    for w in whole.files:
        parts = sorted(
            p for p in split.files if segment_root(os.path.basename(p)) == os.path.basename(w)
        )
        assert len(parts) == segments
        np.testing.assert_array_equal(
            np.concatenate([fits.getdata(p, "SCI") for p in parts]), fits.getdata(w, "SCI")
        )


@pytest.mark.parametrize("mode", ["copy", "sidecar"])
@pytest.mark.parametrize("integrations", ["first", "all"])
def test_every_segment_gets_the_mask_of_its_exposure(tmp_path, pair, mode, integrations):
    whole, split, segments = pair
    params = Parameters(mode=mode, integrations=integrations, batch=2)
    a = run([whole.directory], str(tmp_path / "whole"), [whole.saturation_ref], params)
    b = run([split.directory], str(tmp_path / "split"), [split.saturation_ref], params)
    assert b.sizes["exposure"] == a.sizes["exposure"] == len(whole.files)
    np.testing.assert_array_equal(a["source"].values, b["source"].values)
    np.testing.assert_array_equal(a["mask"].values, b["mask"].values)
    assert a["n_masked"].values.sum() > 0, "the program must mask something"
    np.testing.assert_array_equal(b["nints"].values, a["nints"].values)
    for row in b["segment_files"].values.astype(str):
        assert len(row.split(",")) == segments
    suffix = "_masked_persistence_uncal.fits" if mode == "copy" else "_persistence_dq.fits"
    got, want = _images(tmp_path / "split", suffix), _images(tmp_path / "whole", suffix)
    assert got.keys() == want.keys()
    for name, images in got.items():
        assert len(images) == segments
        for image in images:
            np.testing.assert_array_equal(image, want[name][0])
    again = run([split.directory], str(tmp_path / "split"), [split.saturation_ref], params)
    assert again.attrs["last_run"]["computed"] == 0 and again.attrs["last_run"]["written"] == 0


def test_all_integrations_differ_from_the_first_one(tmp_path_factory, tmp_path):
    # Integrations that saturate differently: "all" must read the later segments.
    _, split = _pair(tmp_path_factory, 2, 2, seed=8)
    ref = [split.saturation_ref]
    thr = fits.getdata(split.saturation_ref, "SCI")
    # Make the second integration (second segment) of one exposure saturate a fresh patch.
    seg2 = sorted(p for p in split.files if "-seg002_" in p)[0]
    with fits.open(seg2, mode="update") as hdul:
        frame = hdul["SCI"].data
        y0, x0 = 40, 40
        frame[0, :, y0 : y0 + 5, x0 : x0 + 5] = 65535
    assert np.isfinite(thr[40:45, 40:45]).any()
    first = run([split.directory], str(tmp_path / "f"), ref, Parameters(integrations="first"))
    every = run([split.directory], str(tmp_path / "a"), ref, Parameters(integrations="all"))
    name = os.path.basename(seg2).replace("-seg002_", "-seg001_")
    i = list(every["file"].values.astype(str)).index(name)
    e = read_exposure(str(split_dir_file(split, name)))
    y0, x0 = e.ystart - 1 + 40, e.xstart - 1 + 40
    patch = (slice(y0, y0 + 5), slice(x0, x0 + 5))
    assert every["source"][i].values[patch].any()
    assert not first["source"][i].values[patch].all()


def test_the_first_integration_is_read_from_the_first_segment_only(tmp_path, pair, monkeypatch):
    _, split, _ = pair
    read = set()
    real = reader.brightest_rows

    def recording(path, *args, **kwargs):
        read.add(os.path.basename(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(reader, "brightest_rows", recording)
    run([split.directory], str(tmp_path / "o"), [split.saturation_ref], Parameters(mode="sidecar"))
    assert read and all("-seg001_" in name for name in read)
    assert len(read) == len({segment_root(n) for n in read}) == 4


def split_dir_file(program, name):
    return next(p for p in program.files if os.path.basename(p) == name)


def _copy_without(split, tmp_path, drop):
    d = tmp_path / "in"
    d.mkdir()
    for p in split.files:
        if not any(k in os.path.basename(p) for k in drop):
            shutil.copy2(p, d)
    return d


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (
            ["00002-seg002_"],
            r"00002_mirimage_uncal.fits: segmented exposure is incomplete: "
            r"integrations 3-4 of 6 are missing; 2 of EXSEGTOT=3 segments "
            r"\(found .*-seg001_.*-seg003_",
        ),
        (["00003-seg003_"], r"00003_mirimage_uncal.fits: .*integrations 5-6 of 6 are missing"),
        (["00001-seg001_"], r"00001_mirimage_uncal.fits: .*integrations 1-2 of 6 are missing"),
    ],
)
def test_a_missing_segment_names_the_exposure(tmp_path_factory, tmp_path, drop, message):
    _, split = _pair(tmp_path_factory, 6, 3, seed=31)
    d = _copy_without(split, tmp_path, drop)
    with pytest.raises(InputError, match=message):
        run([str(d)], str(tmp_path / "out"), [split.saturation_ref])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    ds = run([str(d)], str(tmp_path / "out"), [split.saturation_ref], skip_bad=True)
    assert ds.sizes["exposure"] == 3
    assert len(ds.attrs["skipped"]) == 1 and "incomplete" in ds.attrs["skipped"][0]["problem"]


def test_a_segment_given_twice_is_an_error(tmp_path_factory, tmp_path):
    _, split = _pair(tmp_path_factory, 4, 2, seed=31)
    d = _copy_without(split, tmp_path, [])
    other = tmp_path / "again"
    other.mkdir()
    twin = next(p for p in split.files if "00001-seg002_" in p)
    with fits.open(twin) as hdul:
        hdul[0].header["OBSERVTN"] = "999"  # not byte-identical, same integrations
        hdul.writeto(other / os.path.basename(twin).replace("-seg002_", "-seg009_"))
    with pytest.raises(InputError, match="hold the same integrations"):
        run([str(d), str(other)], str(tmp_path / "out"), [split.saturation_ref])
