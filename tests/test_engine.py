"""End to end: masks against the pipeline, outputs through dq_init, safety of inputs and outputs."""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits
from conftest import notebook_sources, pipeline_groupdq, sha256

from miripersist import ConfigError, Parameters, registry, run, simulate
from miripersist.inventory import DETECTOR_SHAPE

FLAGS = 1 | 32  # DO_NOT_USE | PERSISTENCE


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """FULL and subarray exposures, one and two integrations, names not in time order."""
    directory = tmp_path_factory.mktemp("program")
    prog = simulate.make_program(
        str(directory / "in"),
        n_exposures=6,
        ngroups=5,
        subarrays=("FULL", "SUB256", "FULL", "SUB64"),
        nints=(1, 2),
        seed=5,
    )
    return prog


@dataclass(frozen=True)
class Frame:
    """An exposure as astropy reads its headers, independently of the engine's reader."""

    path: str
    nints: int
    ysize: int
    xsize: int
    ystart: int
    xstart: int
    mid_mjd: float

    @classmethod
    def read(cls, path: str) -> Frame:
        with fits.open(path) as hdul:
            primary, sci = hdul[0].header, hdul["SCI"]
            nints, _, ny, nx = sci.shape
            mid = sci.header["MJD-AVG"]
            return cls(path, nints, ny, nx, primary["SUBSTRT2"], primary["SUBSTRT1"], mid)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def window(self) -> tuple[slice, slice]:
        """The frame on the detector, from SUBSTRT1/2 (1-indexed)."""
        y0, x0 = self.ystart - 1, self.xstart - 1
        return slice(y0, y0 + self.ysize), slice(x0, x0 + self.xsize)


@pytest.fixture(scope="module")
def expected_masks(program):
    """Per exposure (time order): detector-frame OR of the pipeline's sources of earlier ones."""
    exposures = sorted((Frame.read(p) for p in program.files), key=lambda e: e.mid_mjd)
    sources = []
    for e in exposures:
        gdq = pipeline_groupdq(e.path, program.saturation_ref, program.mask_ref, 1)
        placed = np.zeros(DETECTOR_SHAPE, dtype=bool)
        placed[e.window] = notebook_sources(gdq, 3)
        sources.append(placed)
    masks, seen = [], np.zeros(DETECTOR_SHAPE, dtype=bool)
    for e, src in zip(exposures, sources, strict=True):
        masks.append(seen[e.window].copy())
        seen |= src
    return exposures, sources, masks


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


def test_store_is_self_describing(tmp_path, program):
    store = tmp_path / "elsewhere.zarr"
    run(
        [program.directory],
        str(tmp_path / "out"),
        [program.saturation_ref],
        Parameters(n_unsat_threshold=2, n_pix_grow_sat=0),
        store=str(store),
    )
    ds = xr.open_zarr(store)
    assert dict(ds.sizes) == {"exposure": 6, "y": 1024, "x": 1032}
    for name in ("file", "detector", "filter", "mid_mjd", "start_mjd", "end_mjd", "xstart"):
        assert name in ds.coords
    assert '"n_unsat_threshold": 2' in ds.attrs["parameters"]
    assert "jwst" in ds.attrs["versions"]
    assert not (tmp_path / "out" / "persistence.zarr").exists()


def test_the_tile_is_the_methods_unless_given():
    # The notebook's and snowblind's readers hold a few groups of a tile, the pipeline's
    # every group: its tiles stay smaller. Whatever the tile, the masks are the same
    # (tests/test_oracle.py puts saturated pixels on tile borders).
    notebook, pipeline = Parameters(), Parameters(method="pipeline", window_days=0.01)
    assert notebook.tile == registry.get("notebook").options.tile
    assert pipeline.tile == registry.get("pipeline").options.tile
    assert pipeline.tile[0] < notebook.tile[0] and notebook.tile[1] == DETECTOR_SHAPE[1]
    assert Parameters(tile=[64, 100]).tile == (64, 100)
    assert Parameters(method="pipeline", window_days=0.01, tile=(512, 1032)).tile[0] == 512
    with pytest.raises(ConfigError, match="tile"):
        Parameters(tile=(0, 1032))


def test_detectors_are_scanned_separately(tmp_path, sat_thresholds):
    thr, dq = sat_thresholds
    refs = [
        simulate.write_saturation_reference(str(tmp_path / f"{d}.fits"), thr, dq, d)
        for d in ("MIRIFUSHORT", "MIRIFULONG")
    ]
    inp = tmp_path / "in"
    inp.mkdir()
    xs, ys, nx, ny = simulate.SUBARRAYS["SUB64"]
    data = np.full((1, 4, ny, nx), 100, np.uint16)
    data[:, :, 10, 10] = 65535  # saturates everywhere it can
    for k, det in enumerate(("MIRIFUSHORT", "MIRIFULONG", "MIRIFUSHORT")):
        simulate.write_uncal(
            str(inp / f"e{k}_{det.lower()}_uncal.fits"),
            data,
            start_mjd=60300 + k,
            detector=det,
            subarray="SUB64",
        )
    ds = run([str(inp)], str(tmp_path / "out"), refs, Parameters(n_pix_grow_sat=0))
    assert list(ds["detector"].values) == ["MIRIFULONG", "MIRIFUSHORT", "MIRIFUSHORT"]
    assert ds["n_masked"].values.tolist() == [0, 0, 1], "the first of each detector is clean"


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


def test_a_refusal_names_the_changed_options_as_the_user_gave_them(tmp_path, program):
    mask_a, mask_b = tmp_path / "a.csv", tmp_path / "b.csv"
    mask_a.write_text("x,y\n10,10\n")
    mask_b.write_text("x,y\n20,20\n")
    args = ([program.directory], str(tmp_path / "out"), [program.saturation_ref])
    run(*args, user_mask=str(mask_a))
    with pytest.raises(ConfigError) as info:
        run(*args, Parameters(window_days=1 / 24), user_mask=str(mask_b))
    message = str(info.value)
    assert f"--user-mask {mask_a} -> {mask_b}" in message
    assert "--window inf (a source masks every later exposure) -> 3600 s (1 h)" in message
    assert "sha256" not in message and "window_days" not in message
    mask_a.write_text("x,y\n30,30\n")
    with pytest.raises(ConfigError, match="--user-mask .*a.csv \\(its content changed\\)"):
        run(*args, user_mask=str(mask_a))


def test_a_store_of_other_parameters_is_refused_not_mixed(tmp_path, program):
    run([program.directory], str(tmp_path), [program.saturation_ref])
    with pytest.raises(ConfigError, match="other parameters .*--n-pix-grow-sat 1 -> 2"):
        run(
            [program.directory],
            str(tmp_path),
            [program.saturation_ref],
            Parameters(n_pix_grow_sat=2),
        )
    ds = run(
        [program.directory],
        str(tmp_path),
        [program.saturation_ref],
        Parameters(n_pix_grow_sat=2),
        overwrite=True,
    )
    assert ds.attrs["parameters"]["n_pix_grow_sat"] == 2
    assert not list(tmp_path.glob(".tmp-*")), "no temporary file may be left"


@pytest.mark.parametrize("kind", ["ecsv", "csv", "txt", "fits"])
def test_user_mask_applies_to_every_exposure(tmp_path, program, expected_masks, kind):
    from astropy.table import Table

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


@pytest.mark.parametrize(
    ("batch", "tile"), [(1, None), (2, None), (4, None), (16, (100, 300)), (4, (1024, 1032))]
)
def test_blocks_of_any_size_give_the_same_masks(tmp_path, program, expected_masks, batch, tile):
    # Blocks share two sets of image buffers in turn; blocks of 1 reuse each set every
    # other block while the one before is still being written, and 6 exposures in blocks
    # of 4 end with a shorter block. Tiles of any shape, uneven in both directions or one
    # a frame (the subarrays' too), are put together into the same images. Sources, masks
    # and every output must still be exact.
    x, y = np.array([3, 600]), np.array([900, 40])
    path = tmp_path / "mask.txt"
    path.write_text("x y\n" + "".join(f"{a} {b}\n" for a, b in zip(x, y, strict=True)))
    umask = np.zeros(DETECTOR_SHAPE, bool)
    umask[y - 1, x - 1] = True
    params = Parameters(mode="sidecar", batch=batch, tile=tile)
    ds = run(
        [program.directory],
        str(tmp_path / "out"),
        [program.saturation_ref],
        params,
        user_mask=str(path),
    )
    exposures, sources, masks = expected_masks
    assert [str(f) for f in ds["file"].values] == [e.name for e in exposures]
    np.testing.assert_array_equal(ds["source"].values, np.array(sources))
    for j, (e, mask) in enumerate(zip(exposures, masks, strict=True)):
        np.testing.assert_array_equal(ds["mask"].values[j][e.window], mask)
        side = tmp_path / "out" / e.name.replace("_uncal.fits", "_persistence_dq.fits")
        np.testing.assert_array_equal(
            fits.getdata(side), np.where(mask | umask[e.window], FLAGS, 0)
        )


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


def test_crds_is_asked_when_no_reference_is_given(tmp_path, program, monkeypatch):
    import crds

    asked = []

    def fake(parameters, reftypes, observatory):
        asked.append(parameters)
        return {"saturation": program.saturation_ref}

    monkeypatch.setattr(crds, "getreferences", fake)
    ds = run([program.directory], str(tmp_path / "out"))
    assert len(asked) == 6
    assert asked[0]["META.INSTRUMENT.DETECTOR"] == "MIRIMAGE"
    assert {p["META.INSTRUMENT.FILTER"] for p in asked} == {"F770W", "F1800W"}
    assert set(ds["saturation_ref"].values) == {program.saturation_ref}


def test_wrong_detector_reference_is_refused(tmp_path, program, sat_thresholds):
    thr, dq = sat_thresholds
    other = simulate.write_saturation_reference(str(tmp_path / "long.fits"), thr, dq, "MIRIFULONG")
    with pytest.raises(ConfigError, match="detector MIRIMAGE has no --saturation-ref"):
        run([program.directory], str(tmp_path / "out"), [other])


def test_references_are_chosen_by_detector_and_filter(tmp_path, program, sat_thresholds):
    thr, dq = sat_thresholds
    low = simulate.write_saturation_reference(
        str(tmp_path / "f770w.fits"), np.full_like(thr, 9010.0), dq, filter_name="F770W"
    )
    anyf = simulate.write_saturation_reference(str(tmp_path / "any.fits"), thr, dq)
    ds = run([program.directory], str(tmp_path / "out"), [anyf, low])
    chosen = dict(zip(ds["filter"].values, ds["saturation_ref"].values, strict=False))
    assert chosen == {"F770W": low, "F1800W": anyf}
    f770 = ds["filter"].values == "F770W"
    # With thresholds just above the bias, every F770W pixel saturates at once.
    assert (ds["n_source"].values[f770] > ds["n_source"].values[~f770].max()).all()
    with pytest.raises(ConfigError, match="a second --saturation-ref for detector MIRIMAGE"):
        run([program.directory], str(tmp_path / "out2"), [low, low])
    with pytest.raises(ConfigError, match="no --saturation-ref for filter F1800W"):
        run([program.directory], str(tmp_path / "out3"), [low])


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


def test_python_callers_get_one_line_errors_and_plain_strings_work(tmp_path, program):
    ds = run(program.directory, str(tmp_path / "a"), program.saturation_ref)  # strings
    assert ds.sizes["exposure"] == len(program.files)
    with pytest.raises(ConfigError, match="params must be a miripersist.Parameters, not dict"):
        run(program.directory, str(tmp_path / "b"), program.saturation_ref, {"mode": "sidecar"})
    assert Parameters(window_days="10h").window_days == pytest.approx(10 / 24)
    with pytest.raises(ConfigError, match="window_days: not a duration"):
        Parameters(window_days="ten hours")
    with pytest.raises(ConfigError, match="n_unsat_threshold must be an integer, not '3'"):
        Parameters(n_unsat_threshold="3")


@pytest.mark.parametrize("batch", [1, 4])
def test_each_block_is_stored_before_its_files_are_written(tmp_path, program, batch):
    # The sink's contract seen from a real run, through the stages' own seams: a block's
    # store update (which clears the "written" marks of outputs about to be replaced)
    # arrives before any of its files exists, and outputs are marked written only once
    # every one of their files is in place.
    from miripersist import engine
    from miripersist.blocks import scan_blocks
    from miripersist.planner import make_plan
    from miripersist.store import Writer

    request = engine.resolve(
        [program.directory],
        str(tmp_path / "out"),
        [program.saturation_ref],
        Parameters(mode="sidecar", batch=batch),
    )
    os.makedirs(request.output_dir)
    plan = make_plan(request)

    class Recording:
        """The real store, and what was done to it, in order."""

        def __init__(self) -> None:
            self.writer, self.events = Writer(plan.target), []

        def block(self, start, sources, *rest):
            block = range(start, start + len(sources))
            made = [o for i in block for o in plan.outputs[i] if os.path.exists(o)]
            assert not made, f"{made[0]} written before its block was stored"
            self.writer.block(start, sources, *rest)
            self.events.append(("stored", set(block)))

        def written(self, indices):
            gone = [o for i in indices for o in plan.outputs[i] if not os.path.exists(o)]
            assert not gone, f"{gone[0]} marked written before it was"
            self.writer.written(indices)
            self.events.append(("marked", set(indices)))

    store = Recording()
    counts, stale = scan_blocks(plan, request.params, request.user_mask, store=store)
    assert counts["written"] == len(plan.exposures) and not stale
    stored: set[int] = set()
    for kind, which in store.events:
        if kind == "stored":
            stored |= which
        else:
            assert which <= stored, f"{sorted(which - stored)} marked before they were stored"
    marked = set().union(*(w for k, w in store.events if k == "marked"))
    assert stored == marked == set(range(len(plan.exposures)))
    assert len([k for k, _ in store.events if k == "stored"]) == len(plan.blocks)


def test_a_scheduler_set_in_dask_config_is_used(tmp_path, program, expected_masks):
    # Local runs go to dask's threaded scheduler directly (no expression layer), unless
    # the user's dask configuration names another scheduler: that one runs the tasks.
    import dask

    calls = []

    def scheduler(graph, keys, **kwargs):
        calls.append(keys)
        return dask.get(graph, keys, **kwargs)

    with dask.config.set(scheduler=scheduler):
        ds = run(
            [program.directory],
            str(tmp_path / "out"),
            [program.saturation_ref],
            Parameters(mode="sidecar", batch=4),
        )
    assert calls, "the configured scheduler never ran"
    exposures, sources, masks = expected_masks
    np.testing.assert_array_equal(ds["source"].values, np.array(sources))
    for j, (e, mask) in enumerate(zip(exposures, masks, strict=True)):
        np.testing.assert_array_equal(ds["mask"].values[j][e.window], mask)
