"""Bad input and faults: every failure is named in one line, and nothing is lost."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil

import numpy as np
import pytest
import zarr
from astropy.io import fits
from conftest import sha256

from miripersist import ConfigError, InputError, MiripersistError, Parameters, run, simulate
from miripersist.cli import main
from miripersist.inventory import read_exposure, verify_checksums


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    return simulate.make_program(
        str(tmp_path_factory.mktemp("bad") / "in"),
        n_exposures=4,
        ngroups=4,
        subarrays=("SUB256", "SUB64"),
        seed=2,
    )


@pytest.fixture
def inputs(tmp_path, prog):
    """A private copy of the program, to damage."""
    d = tmp_path / "in"
    d.mkdir()
    for f in prog.files:
        shutil.copy2(f, d)
    return d


def one(inputs):
    return sorted(inputs.glob("*_uncal.fits"))[0]


def expect_input_error(path, *words):
    with pytest.raises(InputError) as info:
        read_exposure(str(path))
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    for word in words:
        assert word in message
    return message


def test_not_fits(tmp_path):
    path = tmp_path / "notes_uncal.fits"
    path.write_text("this is not a FITS file\n")
    expect_input_error(path, "not a FITS file")


@pytest.mark.parametrize("where", ["header", "after_primary", "sci", "last_byte", "extension"])
def test_truncated_anywhere(inputs, where):
    path = one(inputs)
    size = path.stat().st_size
    with fits.open(path) as hdul:
        sci = hdul.fileinfo(1)
        last = hdul.fileinfo(len(hdul) - 1)
    cut = {
        "header": 1000,
        "after_primary": hdul_primary_end(path),
        "sci": sci["datLoc"] + 5000,
        "last_byte": size - 1,
        "extension": last["hdrLoc"] + 100,
    }[where]
    with open(path, "r+b") as fh:
        fh.truncate(cut)
    expect_input_error(path)


def hdul_primary_end(path):
    with fits.open(path) as hdul:
        return hdul.fileinfo(1)["hdrLoc"]


@pytest.mark.modifies_inputs
def test_bad_checksum_is_named_when_asked(inputs, prog):
    path = one(inputs)
    with fits.open(path) as hdul:
        hdul.writeto(path, overwrite=True, checksum=True)
    assert verify_checksums(str(path))  # intact, and verified
    other = sorted(inputs.glob("*_uncal.fits"))[1]

    def unsummed(hdul):
        for hdu in hdul:
            for key in ("CHECKSUM", "DATASUM"):
                hdu.header.remove(key, ignore_missing=True)
        return hdul

    _rewrite(other, unsummed)
    assert not verify_checksums(str(other))  # none to verify
    with fits.open(path) as hdul:
        offset = hdul.fileinfo(1)["datLoc"] + 10
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(InputError, match="verification failed for HDU .*SCI"):
        verify_checksums(str(path))
    with pytest.raises(InputError, match="verification failed"):
        run([str(inputs)], str(inputs.parent / "out"), [prog.saturation_ref], verify_checksums=True)


def test_checksums_asked_of_files_without_them_is_said(tmp_path, caplog):
    lean = simulate.make_program(
        str(tmp_path / "in"), n_exposures=3, ngroups=3, subarrays=("SUB64",), archive=False
    )
    args = ([lean.directory], str(tmp_path / "out"), [lean.saturation_ref])
    ds = run(*args, verify_checksums=True)
    assert ds.attrs["last_run"]["computed"] == 3
    said = [r.getMessage() for r in caplog.records if "CHECKSUM" in r.getMessage()]
    assert len(said) == 1 and "3 of the inputs carry no CHECKSUM" in said[0]


def test_archive_shaped_inputs_and_their_copies_verify(tmp_path, prog, caplog):
    ds = run([prog.directory], str(tmp_path / "out"), [prog.saturation_ref], verify_checksums=True)
    assert not [r for r in caplog.records if "CHECKSUM" in r.getMessage()]
    copies = sorted((tmp_path / "out").glob("*_masked_persistence_uncal.fits"))
    assert len(copies) == ds.sizes["exposure"] > 0
    for copy in copies:  # byte copies plus a PIXELDQ with its own checksums
        assert verify_checksums(str(copy))


def _rewrite(path, edit):
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    out = edit(fits.HDUList(hdus))
    out.writeto(path, overwrite=True)


def test_no_sci(inputs):
    path = one(inputs)
    _rewrite(path, lambda h: fits.HDUList([h[0], h["ASDF"]]))
    expect_input_error(path, "no SCI extension")


def test_sci_of_wrong_rank(inputs):
    path = one(inputs)

    def edit(h):
        h["SCI"].data = h["SCI"].data[0]
        return h

    _rewrite(path, edit)
    expect_input_error(path, "SCI has 3 axes")


def test_sci_of_wrong_dtype(inputs):
    path = one(inputs)

    def edit(h):
        h["SCI"].data = h["SCI"].data.astype(np.float32)
        return h

    _rewrite(path, edit)
    expect_input_error(path, "BITPIX=-32", "16-bit")


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("NGROUPS", 9, ("NGROUPS=9", "SCI holds 4")),
        ("NINTS", 3, ("NINTS=3",)),
        ("SUBSTRT1", 1000, ("lies off",)),
        ("SUBSTRT2", -5, ("lies off",)),
        ("SUBSIZE1", 12, ("SUBSIZE1/2",)),
        ("SUBSTRT1", "abc", ("not an integer",)),
        ("SUBSTRT1", 3.5, ("not an integer",)),
        ("NGROUPS", True, ("not an integer",)),
        ("DETECTOR", "", ("no DETECTOR",)),
    ],
)
def test_header_disagreements(inputs, key, value, words):
    path = one(inputs)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header[key] = value
    expect_input_error(path, *words)


def test_no_time_at_all(inputs):
    path = one(inputs)
    with fits.open(path, mode="update") as hdul:
        for k in ("EXPSTART", "EXPMID", "EXPEND"):
            hdul[0].header.remove(k, ignore_missing=True)
        for k in ("MJD-AVG", "MJD-BEG", "MJD-END"):
            hdul["SCI"].header.remove(k, ignore_missing=True)
        hdul["SCI"].header["MJD-AVG"] = "yesterday"
    expect_input_error(path, "no exposure time")


def test_every_bad_file_is_listed_and_nothing_written(tmp_path, inputs, prog):
    files = sorted(inputs.glob("*_uncal.fits"))
    files[0].write_text("garbage")
    with open(files[1], "r+b") as fh:
        fh.truncate(3000)
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        run([str(inputs)], str(out), [prog.saturation_ref])
    lines = str(info.value).splitlines()
    assert lines[0] == "2 inputs cannot be used:"
    assert {ln.split(":")[0] for ln in lines[1:]} == {str(files[0]), str(files[1])}
    assert not out.exists() or not any(out.iterdir())


def test_skip_bad_goes_on_and_records_what_it_left_out(tmp_path, inputs, prog, capsys):
    files = sorted(inputs.glob("*_uncal.fits"))
    files[0].write_text("garbage")
    good = inputs.parent / "good"
    good.mkdir()
    for f in files[1:]:
        shutil.copy2(f, good)
    code = main(
        [
            "run",
            str(inputs),
            "--output-dir",
            str(tmp_path / "out"),
            "--saturation-ref",
            prog.saturation_ref,
            "--skip-bad",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "its saturation is not propagated" in captured.err
    assert captured.err.count(str(files[0])) == 1, "named once on stderr"
    assert f"{files[0]}: not a FITS file" in captured.out.split("left out")[1]
    assert captured.out.count(str(files[0])) == 1, "and once in the summary"
    ds = run([str(good)], str(tmp_path / "ref"), [prog.saturation_ref])
    got = zarr.open_group(str(tmp_path / "out" / "persistence.zarr"), mode="r")
    skipped = json.loads(got.attrs["skipped"])
    assert [s["path"] for s in skipped] == [str(files[0])]
    np.testing.assert_array_equal(got["mask"][:], ds["mask"].values)


@pytest.mark.modifies_inputs
def test_same_exposure_twice_and_equal_times(tmp_path, inputs, prog):
    f = one(inputs)
    other = tmp_path / "copy"
    other.mkdir()
    shutil.copy2(f, other / f.name)
    with pytest.raises(InputError, match="the same exposure as"):
        run([str(inputs), str(other)], str(tmp_path / "out"), [prog.saturation_ref])
    os.symlink(f, inputs / ("link_" + f.name))  # the same file by another path: taken once
    ds = run([str(inputs)], str(tmp_path / "out2"), [prog.saturation_ref])
    assert ds.sizes["exposure"] == 4
    files = sorted(inputs.glob("jw*_uncal.fits"))
    mid = fits.getval(files[0], "MJD-AVG", "SCI")
    with fits.open(files[1], mode="update") as hdul:
        hdul["SCI"].header["MJD-AVG"] = mid
        hdul[0].header["DETECTOR"] = fits.getval(files[0], "DETECTOR")
    with pytest.raises(InputError, match="same mid-exposure time"):
        run([str(inputs)], str(tmp_path / "out3"), [prog.saturation_ref])


def test_empty_and_unreadable_inputs(tmp_path, prog):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no \\*_uncal.fits input found"):
        run([str(empty)], str(tmp_path / "out"), [prog.saturation_ref])
    os.symlink(tmp_path / "gone_uncal.fits", empty / "dangling_uncal.fits")
    with pytest.raises(InputError, match="dangling_uncal.fits: no such file"):
        run([str(empty)], str(tmp_path / "out"), [prog.saturation_ref])


def test_output_directory_that_cannot_be_made(tmp_path, prog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(
        [
            "run",
            prog.directory,
            "--output-dir",
            str(blocker / "out"),
            "--saturation-ref",
            prog.saturation_ref,
        ]
    )
    assert code == 2


@pytest.mark.parametrize("what", ["inputs", "directory", "file", "output_dir", "parent"])
def test_store_path_that_is_not_a_store_is_never_replaced(tmp_path, inputs, prog, capsys, what):
    out = tmp_path / "out"
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    target = {
        "inputs": inputs,
        "directory": precious,
        "file": precious / "notes.txt",
        "output_dir": out,
        "parent": tmp_path,
    }[what]
    before = {p: sha256(p) for p in tmp_path.rglob("*") if p.is_file()}
    argv = ["run", str(inputs), "--output-dir", str(out), "--saturation-ref", prog.saturation_ref]
    code = main([*argv, "--store", str(target), "--overwrite"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(target) in err
    assert {p: sha256(p) for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not out.exists(), "a refused run makes nothing"


def test_a_refused_run_leaves_no_output_directory_behind(tmp_path, prog):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="--history store cannot be read"):
        run([prog.directory], str(out), [prog.saturation_ref], history=str(tmp_path / "no.zarr"))
    assert not out.exists()
    out.mkdir()  # the user's own directory stays
    with pytest.raises(ConfigError):
        run([prog.directory], str(out), [prog.saturation_ref], history=str(tmp_path / "no.zarr"))
    assert out.is_dir()


def test_a_store_in_a_directory_that_is_not_writable_is_refused(tmp_path, prog, monkeypatch):
    locked = tmp_path / "locked"  # as a read-only file system is, even to root
    locked.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(locked) and access(p, mode))
    with pytest.raises(ConfigError, match=f"{locked} is not writable"):
        run(
            [prog.directory],
            str(tmp_path / "out"),
            [prog.saturation_ref],
            store=str(locked / "s.zarr"),
        )
    assert not list(locked.iterdir()) and not (tmp_path / "out").exists()


def test_store_path_that_is_an_empty_directory_or_a_store_is_used(tmp_path, prog):
    place = tmp_path / "store.zarr"
    place.mkdir()
    args = ([prog.directory], str(tmp_path / "out"), [prog.saturation_ref])
    ds = run(*args, store=str(place))
    assert ds.attrs["last_run"]["computed"] == len(prog.files)
    again = run(*args, store=str(place), overwrite=True)
    assert again.attrs["last_run"]["computed"] == len(prog.files)


def test_reference_that_is_not_saturation_or_does_not_cover(tmp_path, prog):
    with pytest.raises(ConfigError, match="REFTYPE is MASK"):
        run([prog.directory], str(tmp_path / "o1"), [prog.mask_ref])
    small = simulate.write_saturation_reference(
        str(tmp_path / "sub64_sat.fits"), np.full((64, 72), 60000, np.float32), subarray="SUB64"
    )
    with pytest.raises(InputError, match="does not cover the exposure"):
        run([prog.directory], str(tmp_path / "o2"), [small])


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("x,y\n1.5,2\n", "non-integer"),
        ("x,y\n-3,2\n", "lie off"),
        ("col1,col2\n1,2\n", "no 'x' column"),
        ("x\n1\n", "no 'y' column"),
        ("", "user mask table is empty"),
        ("\n  \n", "user mask table is empty"),
    ],
)
def test_bad_user_mask_tables(tmp_path, prog, text, words):
    path = tmp_path / "mask.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        run([prog.directory], str(tmp_path / "out"), [prog.saturation_ref], user_mask=str(path))


def test_user_mask_named_fits_that_is_not_fits(tmp_path, prog):
    path = tmp_path / "mask.fits"
    path.write_bytes(b"garbage\x00\x01 not a header")
    with pytest.raises(ConfigError, match="user mask is not a FITS file"):
        run([prog.directory], str(tmp_path / "out"), [prog.saturation_ref], user_mask=str(path))


@pytest.mark.parametrize("what", ["reference", "user_mask"])
def test_truncated_small_fits_is_named_truncated_in_one_line(tmp_path, prog, capsys, what):
    whole = tmp_path / "whole.fits"
    if what == "reference":
        shutil.copy(prog.saturation_ref, whole)
    else:
        fits.writeto(whole, np.zeros((1024, 1032), np.uint8))
    cut = tmp_path / "cut.fits"
    cut.write_bytes(whole.read_bytes()[:20000])
    argv = ["run", prog.directory, "--output-dir", str(tmp_path / "out")]
    if what == "reference":
        argv += ["--saturation-ref", str(cut)]
    else:
        argv += ["--saturation-ref", prog.saturation_ref, "--user-mask", str(cut)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err], "one line, no astropy warnings beside it"
    assert str(cut) in err and "file is truncated" in err


def test_user_mask_image_of_wrong_shape(tmp_path, prog):
    path = tmp_path / "mask.fits"
    fits.writeto(path, np.zeros((256, 256), np.uint8))
    with pytest.raises(ConfigError, match="user mask image is 256x256"):
        run([prog.directory], str(tmp_path / "out"), [prog.saturation_ref], user_mask=str(path))


@pytest.mark.parametrize("mode", ["copy", "sidecar"])
def test_full_disk_leaves_nothing_partial_and_a_rerun_finishes(tmp_path, prog, monkeypatch, mode):
    import miripersist.writeback as wb

    clean = tmp_path / "clean"
    run([prog.directory], str(clean), [prog.saturation_ref], Parameters(mode=mode))
    calls = {"n": 0}
    real = wb.atomic_output

    @contextlib.contextmanager
    def failing(final):
        calls["n"] += 1
        with real(final) as fd:
            yield fd
            if calls["n"] == 3:  # the third file's bytes are in its temporary: disk full
                raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wb, "atomic_output", failing)
    out = tmp_path / "out"
    with pytest.raises(MiripersistError, match="No space left on device") as info:
        run([prog.directory], str(out), [prog.saturation_ref], Parameters(mode=mode, batch=1))
    assert str(info.value).startswith(str(out))
    assert not list(out.glob(".tmp-*"))
    monkeypatch.setattr(wb, "atomic_output", real)
    missing = int((~zarr.open_group(str(out / "persistence.zarr"), mode="r")["complete"][:]).sum())
    assert missing < 4
    ds = run([prog.directory], str(out), [prog.saturation_ref], Parameters(mode=mode, batch=1))
    # Tasks already running when the error came may still finish: never more than missing.
    assert ds.attrs["last_run"]["computed"] <= missing
    assert {p.name: sha256(p) for p in out.glob("*.fits")} == {
        p.name: sha256(p) for p in clean.glob("*.fits")
    }


def test_store_holds_no_pickled_or_object_data(tmp_path, prog):
    run([prog.directory], str(tmp_path), [prog.saturation_ref])
    store = tmp_path / "persistence.zarr"
    for meta in store.rglob(".zarray"):
        spec = json.loads(meta.read_text())
        assert "O" not in spec["dtype"] and "|O" != spec["dtype"], meta
        assert not spec.get("filters"), meta
        assert "pickle" not in meta.read_text().lower()
    for f in tmp_path.glob("*.fits"):
        with fits.open(f) as hdul:
            for hdu in hdul:
                if hdu.data is not None and hasattr(hdu.data, "dtype"):
                    assert hdu.data.dtype.kind != "O"


@pytest.mark.parametrize("reader_name", ["brightest_rows", "read_rows"])
def test_input_shrunk_after_the_inventory_is_an_error_not_a_crash(inputs, reader_name):
    from miripersist import reader

    path = one(inputs)
    exposure = read_exposure(str(path))
    rows = slice(0, exposure.ysize)
    read = getattr(reader, reader_name)
    expected = read(str(path), exposure.sci, 0, exposure.ngroups, rows)
    # Another process cuts the file between the inventory and the read.
    os.truncate(path, exposure.sci.offset + 2880)
    with pytest.raises(InputError) as info:
        read(str(path), exposure.sci, 0, exposure.ngroups, rows)
    assert str(info.value).startswith(str(path)) and "truncated" in str(info.value)
    assert expected.shape[-2:] == (exposure.ysize, exposure.xsize)


FLAGS = 1 | 32  # DO_NOT_USE | PERSISTENCE, the default --flags


def _append_pixeldq(path, hdu):
    hdu.header["EXTNAME"] = "PIXELDQ"
    with fits.open(path, mode="append") as hdul:
        hdul.append(hdu)


def _frame(path):
    return fits.getdata(path, "SCI").shape[-2:]


def _bad_pixeldq(path, kind):
    ny, nx = _frame(path)
    if kind == "wrong_shape":
        _append_pixeldq(path, fits.ImageHDU(np.zeros((5, 7), np.uint32)))
        return f"PIXELDQ is 7x5, expected the SCI frame shape {nx}x{ny}"
    if kind == "three_axes":
        _append_pixeldq(path, fits.ImageHDU(np.zeros((2, ny, nx), np.uint32)))
        return "PIXELDQ has 3 axes, expected 2 (y, x)"
    if kind == "float":
        _append_pixeldq(path, fits.ImageHDU(np.zeros((ny, nx), np.float32)))
        return "PIXELDQ holds BITPIX=-32 data, expected integer flags (BITPIX 8, 16 or 32)"
    if kind == "int64":
        _append_pixeldq(path, fits.ImageHDU(np.zeros((ny, nx), np.int64)))
        return "PIXELDQ holds BITPIX=64 data, expected integer flags (BITPIX 8, 16 or 32)"
    if kind == "scaled":
        _append_pixeldq(path, fits.ImageHDU(np.zeros((ny, nx), np.int16)))
        with fits.open(path, mode="update", do_not_scale_image_data=True) as hdul:
            hdul["PIXELDQ"].header["BSCALE"] = 2.0
        return "PIXELDQ is scaled (BZERO=0, BSCALE=2), expected integer flags"
    if kind == "table":
        table = fits.BinTableHDU.from_columns([fits.Column("DQ", "J", array=np.zeros(3))])
        _append_pixeldq(path, table)
        return "PIXELDQ is a BINTABLE extension, expected an image"
    if kind == "twice":
        with fits.open(path) as hdul:
            n = len(hdul)
        for _ in range(2):
            _append_pixeldq(path, fits.ImageHDU(np.zeros((ny, nx), np.uint32)))
        return f"2 PIXELDQ extensions (HDUs {n}, {n + 1}), expected at most one"
    raise AssertionError(kind)


PIXELDQ_FAULTS = ["wrong_shape", "three_axes", "float", "int64", "scaled", "table", "twice"]


def run_args(prog, inputs, out, *more):
    return [
        "run",
        str(inputs),
        "--output-dir",
        str(out),
        "--saturation-ref",
        prog.saturation_ref,
        "--quiet",
        *more,
    ]


@pytest.mark.parametrize("kind", PIXELDQ_FAULTS)
def test_pixeldq_the_write_back_cannot_use_stops_before_anything_is_written(
    tmp_path, inputs, prog, capsys, kind
):
    path = one(inputs)
    problem = _bad_pixeldq(path, kind)
    assert expect_input_error(path) == f"{path}: {problem}"
    out = tmp_path / "out"
    assert main(run_args(prog, inputs, out)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"miripersist: error: {path}: {problem}"]
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("kind", ["wrong_shape", "three_axes", "float"])
def test_skip_bad_leaves_out_an_input_with_a_bad_pixeldq(tmp_path, inputs, prog, capsys, kind):
    path = one(inputs)
    problem = _bad_pixeldq(path, kind)
    out = tmp_path / "out"
    assert main(run_args(prog, inputs, out, "--skip-bad")) == 0
    assert f"skipped {path}: {problem}" in capsys.readouterr().err
    written = sorted(p.name for p in out.glob("*.fits"))
    expected = sorted(
        p.name.replace("_uncal.fits", "_masked_persistence_uncal.fits")
        for p in inputs.glob("*_uncal.fits")
        if p != path
    )
    assert written == expected and len(written) == 3


@pytest.mark.parametrize("dtype", [np.uint32, np.int32, np.uint16, np.int16, np.uint8, np.int8])
def test_existing_pixeldq_of_any_integer_storage_is_ored_into(tmp_path, inputs, prog, dtype):
    files = sorted(inputs.glob("*_uncal.fits"), key=lambda p: read_exposure(str(p)).mid_mjd)
    path = files[-1]  # the last exposure: every earlier one can mask it
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    old = np.random.default_rng(5).integers(lo, hi, _frame(path), endpoint=True).astype(dtype)
    old[0, 0] = lo  # negative values of signed storage wrap, as numpy casts them
    _append_pixeldq(path, fits.ImageHDU(old))
    # A trailing extension after PIXELDQ is kept in place, PIXELDQ moves to the end.
    fits.append(path, np.arange(6, dtype=np.float32).reshape(2, 3), fits.Header([("EXTNAME", "X")]))
    exposure = read_exposure(str(path))
    with fits.open(path) as hdul:
        info = hdul.fileinfo(hdul.index_of("PIXELDQ"))
        assert exposure.has_pixeldq and exposure.pixeldq.shape == old.shape
        assert (exposure.pixeldq.header_offset, exposure.pixeldq.offset) == (
            info["hdrLoc"],
            info["datLoc"],
        )
        assert exposure.pixeldq.end == info["datLoc"] + info["datSpan"]
        names = [h.name for h in hdul]
        before = np.asarray(hdul["PIXELDQ"].data, dtype=np.uint32)
    ds = run([str(inputs)], str(tmp_path / "out"), [prog.saturation_ref])
    mask = ds["mask"][-1].values[exposure.window]
    assert mask.any() and str(ds["file"][-1].values) == path.name
    copy = tmp_path / "out" / path.name.replace("_uncal.fits", "_masked_persistence_uncal.fits")
    with fits.open(copy, checksum=True) as hdul:
        assert [h.name for h in hdul] == [n for n in names if n != "PIXELDQ"] + ["PIXELDQ"]
        np.testing.assert_array_equal(hdul["PIXELDQ"].data, before | np.where(mask, FLAGS, 0))
        np.testing.assert_array_equal(hdul["X"].data, np.arange(6).reshape(2, 3))


def test_pixeldq_beside_groupdq_is_ored_into_and_groupdq_kept(tmp_path, prog):
    """A file past the saturation step has GROUPDQ (its sources) and PIXELDQ (dq_init's)."""
    src = tmp_path / "in"
    src.mkdir()
    data = np.full((1, 4, 64, 72), 1000, np.uint16)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 1:, 10:20, 30:40] = 2  # SATURATED from the second group: a persistence source
    paths = [
        simulate.write_uncal(
            str(src / f"{name}_uncal.fits"), data, start_mjd=mjd, subarray="SUB64", groupdq=gdq
        )
        for name, mjd in (("first", 60300.0), ("second", 60300.1))
    ]
    old = np.zeros((64, 72), np.uint32)
    old[:, :5] = 2048  # HOT
    fits.append(paths[1], old, fits.Header([("EXTNAME", "PIXELDQ")]))
    exposures = [read_exposure(p) for p in paths]
    assert [e.groupdq is not None for e in exposures] == [True, True]
    assert [e.has_pixeldq for e in exposures] == [False, True]
    run([str(src)], str(tmp_path / "out"), [prog.saturation_ref])
    expected = np.zeros((64, 72), np.uint32)
    expected[10:20, 30:40] = FLAGS
    for path, pixeldq in zip(paths, (0 * expected, expected | old), strict=True):
        copy = (
            tmp_path / "out" / os.path.basename(path).replace("_uncal", "_masked_persistence_uncal")
        )
        with fits.open(copy, checksum=True) as out, fits.open(path) as inp:
            assert [h.name for h in out].count("PIXELDQ") == 1
            np.testing.assert_array_equal(out["GROUPDQ"].data, inp["GROUPDQ"].data)
            np.testing.assert_array_equal(out["PIXELDQ"].data, pixeldq)


def test_pixeldq_changed_after_the_inventory_is_named(tmp_path, inputs):
    from miripersist.writeback import write_copy

    path = one(inputs)
    _append_pixeldq(path, fits.ImageHDU(np.zeros(_frame(path), np.uint32)))
    exposure = read_exposure(str(path))
    fits.append(path, np.zeros((2, 2), np.float32))  # another process adds an extension
    dq = np.zeros(exposure.pixeldq.shape, np.uint32)
    final = tmp_path / "out.fits"
    with pytest.raises(InputError, match="file changed during the run"):
        write_copy(exposure, dq, str(final), {})
    assert not final.exists() and not list(tmp_path.glob(".tmp-*"))


def _failing_run(*args, **kwargs):
    raise RuntimeError("boom")


UNEXPECTED = "miripersist: error: unexpected error in 'miripersist run': RuntimeError: boom"
HINT = " (run again with --debug for the traceback)"


def test_an_unexpected_exception_is_one_line_not_a_traceback(tmp_path, prog, capsys, monkeypatch):
    import miripersist.engine as engine

    monkeypatch.setattr(engine, "run_request", _failing_run)
    assert main(run_args(prog, prog.directory, tmp_path / "out")) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [UNEXPECTED + HINT]


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_prints_the_traceback(tmp_path, prog, capsys, monkeypatch, where):
    import miripersist.engine as engine

    monkeypatch.setattr(engine, "run_request", _failing_run)
    args = run_args(prog, prog.directory, tmp_path / "out")
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    assert main(args) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "in _failing_run" in "\n".join(lines) and "RuntimeError: boom" in lines
    assert lines[-1] == UNEXPECTED


def test_an_unexpected_exception_deep_in_the_write_back_names_the_file(
    tmp_path, inputs, prog, capsys, monkeypatch
):
    import miripersist.writeback as wb

    path = one(inputs)
    _append_pixeldq(path, fits.ImageHDU(np.zeros(_frame(path), np.uint32)))

    def broken(src, name, layout):
        raise ValueError(f"{name}: PIXELDQ cannot be read\nsecond line")

    monkeypatch.setattr(wb, "_existing_pixeldq", broken)
    out = tmp_path / "out"
    assert main(run_args(prog, inputs, out)) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"miripersist: error: {path}: unexpected error in 'miripersist run': "
        f"ValueError: PIXELDQ cannot be read{HINT}"
    ]


def test_an_os_error_names_its_file(tmp_path, prog, capsys, monkeypatch):
    import miripersist.engine as engine

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/x_uncal.fits")

    monkeypatch.setattr(engine, "run_request", denied)
    assert main(run_args(prog, prog.directory, tmp_path / "out")) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["miripersist: error: /somewhere/x_uncal.fits: Permission denied"]
