"""The store is written through zarr alone; xarray's own writer is the oracle of its layout."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from miripersist import simulate, store
from miripersist.inventory import DETECTOR_SHAPE, discover, inventory


def _xarray_made(exposures, references, user_mask, attrs, chunk: int) -> xr.Dataset:
    """The dataset docs/store.md describes, built and encoded by xarray."""
    rows = [e.as_row() for e in exposures]
    n = len(rows)
    coords = {k: ("exposure", np.array([r[k] for r in rows])) for k in store.EXPOSURE_COORDS}
    coords["saturation_ref"] = ("exposure", np.array([r[0] for r in references], dtype=str))
    coords["saturation_ref_sha256"] = ("exposure", np.array([r[1] for r in references], dtype=str))
    chunks3 = (max(1, min(chunk, n)), *DETECTOR_SHAPE)
    ds = xr.Dataset(
        {
            "source": (store.DIMS3, da.zeros((n, *DETECTOR_SHAPE), dtype=bool, chunks=chunks3)),
            "mask": (store.DIMS3, da.zeros((n, *DETECTOR_SHAPE), dtype=bool, chunks=chunks3)),
            "n_source": ("exposure", np.zeros(n, dtype=np.int64)),
            "n_masked": ("exposure", np.zeros(n, dtype=np.int64)),
            "complete": ("exposure", np.zeros(n, dtype=bool)),
            "written": ("exposure", np.zeros(n, dtype=bool)),
            "result_sha256": ("exposure", np.full(n, "", dtype="<U64")),
            "user_mask": (("y", "x"), user_mask),
        },
        coords=coords,
        attrs={k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in attrs.items()},
    )
    ds["source"].attrs["description"] = "pixels that leave persistence (detector coordinates)"
    ds["mask"].attrs["description"] = "persistence mask from earlier exposures (exclusive scan)"
    return ds


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    # Two detectors, a subarray and a segmented exposure: every kind of coordinate value.
    root = tmp_path_factory.mktemp("store")
    data = np.zeros((1, 3, 64, 72), dtype=np.uint16)  # SUB64: 72 columns with REFOUT
    simulate.write_uncal(
        str(root / "a_mirimage_uncal.fits"), data, start_mjd=60300.0, subarray="SUB64"
    )
    simulate.write_segments(
        str(root / "jw01234001001_02101_00001_mirifulong_uncal.fits"),
        np.zeros((4, 3, 1024, 1032), dtype=np.uint16),
        2,
        start_mjd=60300.1,
        detector="MIRIFULONG",
    )
    found, skipped = inventory(discover([str(root)]), False, False)
    assert not skipped and len(found) == 2
    return root, found


@pytest.mark.parametrize("chunk", [1, 16])
def test_store_reads_in_xarray_as_xarray_writes_it(program, tmp_path, chunk):
    root, exposures = program
    refs = [(str(root / "ref.fits"), "ab" * 32), ("", "")]
    umask = np.zeros(DETECTOR_SHAPE, dtype=bool)
    umask[3, 5] = True
    attrs = {"parameters": {"method": "notebook", "flags": 33}, "history": "", "skipped": []}

    ours = str(tmp_path / "ours.zarr")
    store.create(ours, exposures, refs, umask, attrs, chunk_exposures=chunk)
    theirs = str(tmp_path / "theirs.zarr")
    _xarray_made(exposures, refs, umask, attrs, chunk).to_zarr(
        theirs, mode="w", compute=False, zarr_format=2
    )

    a = xr.open_zarr(ours, zarr_format=2)
    b = xr.open_zarr(theirs, zarr_format=2)
    xr.testing.assert_identical(a.load(), b.load())
    assert set(a.coords) == set(b.coords) and set(a.data_vars) == set(b.data_vars)
    for name in b.variables:
        assert a[name].encoding.get("_FillValue") is b[name].encoding.get("_FillValue") or (
            np.isnan(a[name].encoding["_FillValue"]) and np.isnan(b[name].encoding["_FillValue"])
        ), name
        assert a[name].encoding["dtype"] == b[name].encoding["dtype"], name
    assert a["source"].encoding["chunks"] == b["source"].encoding["chunks"]
    # Arrays written later through zarr land where xarray reads them.
    writer = store.Writer(ours)
    sources = np.zeros((1, *DETECTOR_SHAPE), dtype=bool)
    sources[0, 7, 9] = True
    writer.block(
        store.StoreUpdate(1, sources, sources, np.array([1]), np.array([1]), digests=["x" * 64])
    )
    again = store.open_store(ours)
    assert again["source"][1, 7, 9] and int(again["source"].sum()) == 1
    assert again["complete"].values.tolist() == [False, True]
    assert again.attrs["parameters"] == attrs["parameters"]


def test_stored_view_reads_what_xarray_reads(program, tmp_path):
    root, exposures = program
    path = str(tmp_path / "s.zarr")
    umask = np.zeros(DETECTOR_SHAPE, dtype=bool)
    store.create(path, exposures, [("", "")] * 2, umask, {"last_run": {"computed": 2}}, 1)
    masks = np.zeros((2, *DETECTOR_SHAPE), dtype=bool)
    masks[1, 100, 200] = True
    store.Writer(path).block(store.StoreUpdate(0, masks, masks, np.array([0, 1]), np.array([0, 1])))

    view = store.Stored(path)
    ds = store.open_store(path)
    assert view.attrs == ds.attrs
    assert len(view) == ds.sizes["exposure"] == 2
    for name in ds.variables:
        if ds[name].dims == ("exposure",) and name != "exposure":  # the index: file names
            np.testing.assert_array_equal(view[name], ds[name].values, err_msg=name)
    assert "segment_files" in view and "nothing" not in view
    np.testing.assert_array_equal(view.images("mask", [1, 0]), ds["mask"].values[[1, 0]])


def test_an_interrupt_lets_the_stores_zarr_work_finish_first():
    """Ctrl-C while the skeleton is written: the work finishes, then the interrupt is raised."""
    import signal
    import threading
    import time

    finished = []

    def work(seconds):
        time.sleep(seconds)
        finished.append(seconds)
        return seconds

    # To the main thread, as a terminal's Ctrl-C reaches a process blocked there.
    main = threading.main_thread().ident
    timer = threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        store._uninterrupted(work, 0.5)
    assert finished == [0.5]
    assert store._uninterrupted(work, 0.0) == 0.0


def test_open_store_indexes_exposures_by_file_and_selects_by_value(program, tmp_path):
    root, exposures = program
    path = str(tmp_path / "s.zarr")
    umask = np.zeros(DETECTOR_SHAPE, dtype=bool)
    store.create(path, exposures, [("", "")] * 2, umask, {}, 1)
    empty = np.zeros((2, *DETECTOR_SHAPE), bool)
    store.Writer(path).block(
        store.StoreUpdate(0, empty, empty, np.array([3, 5]), np.array([7, 11]))
    )
    ds = store.open_store(path)
    names = [e.name for e in exposures]
    assert ds["n_masked"].to_series().to_dict() == dict(zip(names, [7, 11], strict=True))
    assert int(ds["n_source"].sel(exposure=names[1])) == 5
    # Per-exposure coordinates are in memory, so a selection by value needs no .values;
    # the images stay lazy.
    fulong = ds.isel(exposure=ds.detector == "MIRIFULONG")
    assert list(fulong["file"].values) == [e.name for e in exposures if e.detector == "MIRIFULONG"]
    assert isinstance(fulong["mask"].data, da.Array)


def test_open_store_names_a_path_that_is_no_store(tmp_path):
    from miripersist.errors import ConfigError

    with pytest.raises(ConfigError, match=r"nothing\.zarr: no such store$"):
        store.open_store(str(tmp_path / "nothing.zarr"))
    (tmp_path / "file.zarr").write_text("")
    with pytest.raises(ConfigError, match=r"file\.zarr: not a store \(a file"):
        store.open_store(str(tmp_path / "file.zarr"))
