"""Outputs: copies and sidecars hold the pipeline's masks, survive dq_init and
calwebb_detector1, and never touch an input or another run's file."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest
from astropy.io import fits
from conftest import FLAGS, sha256

from miripersist import ConfigError, Parameters, run, simulate
from miripersist.inventory import DETECTOR_SHAPE, read_exposure


def test_copy_mode_matches_pipeline_and_survives_dq_init(tmp_path, program, expected_masks):
    from jwst.dq_init import DQInitStep
    from stdatamodels.jwst import datamodels

    exposures, sources, masks = expected_masks
    before = {p: sha256(p) for p in program.files}
    ds = run([program.directory], str(tmp_path / "out"), [program.saturation_ref])
    assert {p: sha256(p) for p in program.files} == before, "inputs must never change"

    assert list(ds["file"].values) == [e.name for e in exposures], "scan order is mid time"
    assert [e.name for e in exposures] != sorted(e.name for e in exposures)
    np.testing.assert_array_equal(ds["source"].values, np.array(sources))
    assert ds["complete"].values.all()
    assert sum(m.sum() for m in masks) > 0
    mask_ref_dq = fits.getdata(program.mask_ref, "DQ")
    for e, mask in zip(exposures, masks, strict=True):
        out = tmp_path / "out" / e.name.replace("_uncal.fits", "_masked_persistence_uncal.fits")
        with datamodels.RampModel(str(out)) as model:
            np.testing.assert_array_equal(model.pixeldq, np.where(mask, FLAGS, 0))
            assert model.data.shape[0] == e.nints
        result = DQInitStep.call(str(out), override_mask=program.mask_ref)
        np.testing.assert_array_equal(
            result.pixeldq, np.where(mask, FLAGS, 0) | mask_ref_dq[e.window]
        )
        assert np.array_equal(fits.getdata(out, "SCI"), fits.getdata(e.path, "SCI"))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a bad CHECKSUM or DATASUM warns
            with fits.open(out, checksum=True) as hdul:
                assert hdul["PIXELDQ"].header["CHECKSUM"]


def test_copies_are_the_same_without_copy_file_range(tmp_path, program, monkeypatch):
    # macOS and Windows have no os.copy_file_range: the plain read/write path must give the
    # same bytes.
    run([program.directory], str(tmp_path / "kernel"), [program.saturation_ref])
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    run([program.directory], str(tmp_path / "plain"), [program.saturation_ref])
    kernel = {p.name: sha256(p) for p in (tmp_path / "kernel").glob("*.fits")}
    assert kernel and kernel == {p.name: sha256(p) for p in (tmp_path / "plain").glob("*.fits")}


def test_sidecars_are_the_same_where_direct_io_is_refused(tmp_path, program, monkeypatch):
    # tmpfs, macOS and some network file systems refuse O_DIRECT: the plain writes must
    # give the same bytes.
    import miripersist.writeback as wb

    params = Parameters(mode="sidecar")
    run([program.directory], str(tmp_path / "direct"), [program.saturation_ref], params)
    monkeypatch.setattr(wb, "_set_direct", lambda fd, on: False)
    run([program.directory], str(tmp_path / "plain"), [program.saturation_ref], params)
    direct = {p.name: sha256(p) for p in (tmp_path / "direct").glob("*.fits")}
    assert direct and direct == {p.name: sha256(p) for p in (tmp_path / "plain").glob("*.fits")}


@pytest.mark.parametrize(
    ("flags", "compress", "dtype"),
    [
        ("DO_NOT_USE,PERSISTENCE", False, np.uint8),
        ("DO_NOT_USE,PERSISTENCE", True, np.uint8),
        ("DO_NOT_USE,PERSISTENCE,HOT", False, np.uint16),
        ("DO_NOT_USE,PERSISTENCE,OTHER_BAD_PIXEL", False, np.uint32),
        ("DO_NOT_USE,PERSISTENCE,OTHER_BAD_PIXEL", True, np.uint32),
    ],
    ids=["uint8", "uint8-compressed", "uint16", "uint32", "uint32-compressed"],
)
def test_sidecar_through_user_supplied_dq_equals_copy(
    tmp_path, program, expected_masks, flags, compress, dtype
):
    from jwst.dq_init import DQInitStep

    exposures, _, masks = expected_masks
    umask = os.umask(0o022)
    os.umask(umask)
    params = Parameters(mode="sidecar", flags=flags, compress=compress)
    run([program.directory], str(tmp_path / "side"), [program.saturation_ref], params)
    for e, mask in zip(exposures, masks, strict=True):
        side = tmp_path / "side" / e.name.replace("_uncal.fits", "_persistence_dq.fits")
        dq = fits.getdata(side)
        assert dq.dtype == np.dtype(dtype) and dq.shape == (e.ysize, e.xsize)
        with fits.open(side) as hdul:
            assert isinstance(hdul[-1], fits.CompImageHDU) is compress
            assert hdul[-1].header["MPNMASK"] == mask.sum()
        if compress and e.xsize == 1032:
            assert side.stat().st_size < 100_000, "a sparse full-frame mask compresses well"
        # Created with the user's umask, like any file they write (not private to them).
        assert side.stat().st_mode & 0o777 == 0o666 & ~umask
        result = DQInitStep.call(e.path, override_mask=program.mask_ref, user_supplied_dq=str(side))
        expected = np.where(mask, params.flags, 0) | fits.getdata(program.mask_ref, "DQ")[e.window]
        np.testing.assert_array_equal(result.pixeldq, expected)


def test_existing_pixeldq_bits_survive(tmp_path, program, expected_masks):
    exposures, sources, _ = expected_masks
    src = tmp_path / "in"
    src.mkdir()
    first, second = exposures[0].path, exposures[2].path  # in time order, one left out
    for p in (first, second):
        shutil.copy(p, src)
    target = src / os.path.basename(second)
    shape = fits.getdata(target, "SCI").shape[-2:]
    old = np.zeros(shape, np.uint32)
    old[:, :] = 2048  # HOT everywhere
    fits.append(target, old, fits.Header([("EXTNAME", "PIXELDQ")]))
    before = sha256(target)
    run([str(src)], str(tmp_path / "out"), [program.saturation_ref])
    assert sha256(target) == before
    out = tmp_path / "out" / target.name.replace("_uncal.fits", "_masked_persistence_uncal.fits")
    with fits.open(out) as hdul:
        assert [h.name for h in hdul].count("PIXELDQ") == 1
        pdq = hdul["PIXELDQ"].data
    # The pipeline's sources of the only earlier exposure, cut to this one's frame.
    mask = sources[0][exposures[2].window]
    assert mask.any()
    np.testing.assert_array_equal(pdq, 2048 | np.where(mask, FLAGS, 0))


def test_keep_names_gives_copies_their_inputs_names(tmp_path, program, expected_masks):
    exposures, _, masks = expected_masks
    out = tmp_path / "masked"
    ds = run([program.directory], str(out), [program.saturation_ref], Parameters(keep_names=True))
    names = sorted(p.name for p in out.glob("*.fits"))
    assert names == sorted(os.path.basename(p) for p in program.files)
    for e, mask in zip(exposures, masks, strict=True):
        np.testing.assert_array_equal(fits.getdata(out / e.name, "PIXELDQ") != 0, mask)
    assert ds.attrs["parameters"]["keep_names"] is True
    # The copies are outputs: a later run that is given their directory leaves them out.
    again = run(
        [program.directory, str(out)],
        str(tmp_path / "again"),
        [program.saturation_ref],
        Parameters(keep_names=True),
    )
    assert again.sizes["exposure"] == len(program.files)
    # An output directory that holds inputs would overwrite them: refused.
    with pytest.raises(ConfigError, match="holds the input"):
        run(
            [program.directory],
            program.directory,
            [program.saturation_ref],
            Parameters(keep_names=True),
        )
    with pytest.raises(ConfigError, match="--keep-names is for --mode copy"):
        Parameters(keep_names=True, mode="sidecar")


def test_own_outputs_are_never_inputs(tmp_path, program):
    inp = tmp_path / "in"
    shutil.copytree(program.directory, inp)
    run([str(inp)], str(inp / "masked"), [program.saturation_ref])
    run([str(inp)], str(inp), [program.saturation_ref], Parameters(mode="sidecar"))
    ds = run([str(inp), str(inp / "masked")], str(inp), [program.saturation_ref], overwrite=True)
    assert ds.sizes["exposure"] == 6
    assert not any("persistence" in f for f in ds["file"].values)


def test_outputs_of_another_run_are_not_overwritten(tmp_path, program):
    run([program.directory], str(tmp_path), [program.saturation_ref])
    out = sorted(tmp_path.glob("*_masked_persistence_uncal.fits"))[0]
    stamp = sha256(out)
    with pytest.raises(ConfigError, match="output exists"):
        run(
            [program.directory],
            str(tmp_path),
            [program.saturation_ref],
            store=str(tmp_path / "other.zarr"),
        )
    assert sha256(out) == stamp
    assert not (tmp_path / "other.zarr").exists()


@pytest.mark.parametrize(("jwst", "warned"), [("1.19.2", True), ("2.0.1", False)])
def test_sidecars_with_a_jwst_whose_dq_init_cannot_read_them_are_warned_of(
    tmp_path, program, monkeypatch, caplog, jwst, warned
):
    from miripersist import store

    monkeypatch.setattr(store, "package_versions", lambda: {"miripersist": "0", "jwst": jwst})
    run([program.directory], str(tmp_path), [program.saturation_ref], Parameters(mode="sidecar"))
    said = [r.getMessage() for r in caplog.records if "user_supplied_dq" in r.getMessage()]
    assert len(said) == int(warned)
    assert all(f"jwst {jwst} (installed here)" in line for line in said)


def test_calwebb_detector1_keeps_the_flags_and_nans_the_rates(tmp_path, mixed_program):
    """The recipe of docs/pipeline.md: detector1 with the steps whose references are at hand."""
    from jwst.pipeline import Detector1Pipeline
    from stdatamodels.jwst import datamodels

    ds = run([mixed_program.directory], str(tmp_path), [mixed_program.saturation_ref])
    i = int(np.argmax(ds["n_masked"].values))
    e = read_exposure(str(ds["path"].values[i]))
    masked = tmp_path / e.name.replace("_uncal.fits", "_masked_persistence_uncal.fits")
    gain = datamodels.GainModel(data=np.full(DETECTOR_SHAPE, 4.0, np.float32))
    noise = datamodels.ReadnoiseModel(data=np.full(DETECTOR_SHAPE, 6.0, np.float32))
    refs = {}
    for name, model in (("gain", gain), ("readnoise", noise)):
        refs[name] = str(tmp_path / f"{name}.fits")
        simulate.reference_meta(model, name.upper()).save(refs[name])
    keep = {"dq_init", "saturation", "ramp_fit"}
    steps = {s: {"skip": True} for s in Detector1Pipeline.step_defs if s not in keep}
    steps["dq_init"] = {"override_mask": mixed_program.mask_ref}
    steps["saturation"] = {
        "override_saturation": mixed_program.saturation_ref,
        "override_superbias": "N/A",
    }
    steps["ramp_fit"] = {"override_gain": refs["gain"], "override_readnoise": refs["readnoise"]}
    rate = Detector1Pipeline.call(
        str(masked), steps=steps, output_dir=str(tmp_path / "rate"), save_results=False
    )
    flagged = (ds["mask"][i].values | ds["user_mask"].values)[e.window]
    assert flagged.any()
    persistence = 32 | 1
    assert ((rate.dq[flagged] & persistence) == persistence).all()
    assert np.isnan(rate.data[flagged]).all()
    assert np.isfinite(rate.data[~flagged & (rate.dq & 1 == 0)]).all()
