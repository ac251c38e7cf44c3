"""Persistence-array files: what asdf itself reads back, and the refusals of --history."""

from __future__ import annotations

import io

import asdf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miripersist.errors import ConfigError
from miripersist.statefile import last_filenames, read_state, state_bytes, state_entry

DETECTORS = st.sampled_from(["MIRIMAGE", "MIRIFULONG", "MIRIFUSHORT"])


@settings(max_examples=60, deadline=None)
@given(
    entries=st.dictionaries(
        DETECTORS,
        st.tuples(
            st.lists(st.floats(1e9, 2e9), max_size=40),
            st.text(max_size=80),
            st.integers(1, 10**7),
        ),
        min_size=1,
        max_size=3,
    ),
    seed=st.integers(0, 2**16),
)
def test_asdf_reads_back_the_tree_written(entries, seed):
    rng = np.random.default_rng(seed)
    tree = {}
    for detector, (vals, name, seconds) in entries.items():
        image = np.zeros((20, 30))
        where = rng.choice(image.size, size=len(vals), replace=False)
        image.flat[where] = vals
        tree[detector] = state_entry(image, name, seconds)
    data = state_bytes(tree)
    assert data == state_bytes(tree)
    with asdf.open(io.BytesIO(data), memmap=False) as af:
        for detector, entry in tree.items():
            got = af[detector]
            assert got["filename"] == entry["filename"]
            assert got["pers_time"] == entry["pers_time"]
            for key in ("rows", "cols", "vals"):
                assert got[key].dtype == entry[key].dtype
                np.testing.assert_array_equal(got[key], entry[key])


def test_entries_list_pixels_as_numpy_nonzero_does():
    image = np.zeros((6, 7))
    image[[0, 2, 2, 5], [6, 0, 3, 1]] = [1.5, 2.5, np.nan, 4.0]
    entry = state_entry(image, "f", 10)
    rows, cols = np.nonzero(image)
    np.testing.assert_array_equal(entry["rows"], rows)
    np.testing.assert_array_equal(entry["cols"], cols)
    np.testing.assert_array_equal(entry["vals"], image[rows, cols])


def test_history_files_are_checked(tmp_path):
    image = np.zeros((1024, 1032))
    image[3, 4] = 1.7e9
    path = tmp_path / "state.asdf"
    path.write_bytes(state_bytes({"MIRIMAGE": state_entry(image, "last_uncal.fits", 300)}))
    states = read_state(str(path), 300, (1024, 1032))
    np.testing.assert_array_equal(states["MIRIMAGE"], image)
    assert last_filenames(str(path)) == {"MIRIMAGE": "last_uncal.fits"}
    with pytest.raises(ConfigError, match="window of 300 s, this run's is 400 s"):
        read_state(str(path), 400, (1024, 1032))
    image[500, 600] = 1.8e9
    small = tmp_path / "sub.asdf"
    small.write_bytes(state_bytes({"MIRIMAGE": state_entry(image, "x", 300)}))
    with pytest.raises(ConfigError, match="not full-frame"):
        read_state(str(small), 300, (64, 72))
    junk = tmp_path / "junk.asdf"
    junk.write_text("not asdf")
    with pytest.raises(ConfigError, match="not a persistence-array ASDF file"):
        read_state(str(junk), 300, (1024, 1032))


def test_a_subarray_state_lands_on_its_detector_pixels(tmp_path):
    """This tool's state files say where their array lies; as --history they are placed."""
    sub = np.zeros((64, 72))
    sub[10, 11] = 1.7e9
    path = tmp_path / "sub_state.asdf"
    path.write_bytes(state_bytes({"MIRIMAGE": state_entry(sub, "s_uncal.fits", 60, (1, 779))}))
    image = read_state(str(path), 60, (1024, 1032))["MIRIMAGE"]
    assert image[778 + 10, 11] == 1.7e9
    assert np.count_nonzero(image) == 1


def test_entry_trees_are_written_lean_and_any_other_tree_by_asdf():
    image = np.zeros((6, 7))
    image[2, 3] = 1.7e9
    entry = state_entry(image, "a_uncal.fits", 300)
    lean = state_bytes({"MIRIMAGE": entry})
    assert b"name: miripersist" in lean.split(b"...")[0]  # the lean writer's own header
    other = {"MIRIMAGE": {**entry, "note": "not the step's"}, "meta": {"x": 1}}
    written = state_bytes(other)
    assert b"name: asdf" in written.split(b"...")[0]
    for data, tree in ((lean, {"MIRIMAGE": entry}), (written, other)):
        with asdf.open(io.BytesIO(data), memmap=False) as af:
            assert af["MIRIMAGE"]["filename"] == "a_uncal.fits"
            np.testing.assert_array_equal(af["MIRIMAGE"]["vals"], entry["vals"])
            assert {k: af[k] for k in tree if k == "meta"} == {
                k: tree[k] for k in tree if k == "meta"
            }
    with asdf.open(io.BytesIO(written), memmap=False) as af:
        assert af["MIRIMAGE"]["note"] == "not the step's"
