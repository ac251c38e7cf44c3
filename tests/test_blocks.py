"""How the work is cut (tiles, detectors, blocks, the scheduler) changes no mask, and each
block is stored before its files are written."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits
from conftest import FLAGS

from miripersist import ConfigError, Parameters, registry, run, simulate
from miripersist.inventory import DETECTOR_SHAPE


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

        def block(self, update):
            block = range(update.start, update.start + len(update.sources))
            made = [o for i in block for o in plan.outputs[i] if os.path.exists(o)]
            assert not made, f"{made[0]} written before its block was stored"
            self.writer.block(update)
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
