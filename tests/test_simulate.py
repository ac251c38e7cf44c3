"""The synthetic files are shaped as the MAST archive delivers MIRI uncal files."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from miripersist import simulate
from miripersist.inventory import read_exposure

DAY = 86400.0
NAME = "jw01234005001_02101_00003_mirimage_uncal.fits"

# The PRD's SubarrayFrameTime table (PRDOPSSOC-034), as jwst's test data carry it:
# name -> (ColumnCorner, RowCorner, Columns, Rows, FrameReadTime).
PRD = {
    "FULL": (1, 1, 1032, 1024, 2.77504),
    "BRIGHTSKY": (457, 51, 512, 512, 0.86528),
    "SUB256": (413, 51, 256, 256, 0.29952),
    "SUB128": (1, 889, 136, 128, 0.11904),
    "SUB64": (1, 779, 72, 64, 0.08512),
    "MASK1065": (1, 19, 288, 224, 0.23968),
    "MASK1140": (1, 245, 288, 224, 0.23968),
    "MASK1550": (1, 467, 288, 224, 0.23968),
    "MASKLYOT": (1, 717, 320, 304, 0.324),
    "SLITLESSPRISM": (1, 529, 72, 416, 0.15904),
}
GROUP_COLUMNS = {
    "integration_number": "i4",
    "group_number": "i2",
    "end_day": "i2",
    "end_milliseconds": "i4",
    "end_submilliseconds": "i2",
    "group_end_time": "S26",
    "number_of_columns": "i2",
    "number_of_rows": "i2",
    "number_of_gaps": "i2",
    "completion_code_number": "i2",
    "completion_code_text": "S36",
    "bary_end_time": "f8",
    "helio_end_time": "f8",
}
INT_TIMES_COLUMNS = (
    "integration_number",
    "int_start_MJD_UTC",
    "int_mid_MJD_UTC",
    "int_end_MJD_UTC",
    "int_start_BJD_TDB",
    "int_mid_BJD_TDB",
    "int_end_BJD_TDB",
)
# Keywords every archive uncal file carries (primary header), beyond the basic FITS ones.
PRIMARY_KEYWORDS = """
DATE ORIGIN TIMESYS TIMEUNIT FILENAME FILETYPE SDP_VER PRD_VER OSS_VER GSC_VER CAL_VER
DATAMODL TELESCOP HGA_MOVE PWFSEET NWFSEST TITLE PI_NAME CATEGORY SCICAT DATE-OBS TIME-OBS
DATE-BEG DATE-END OBS_ID VISIT_ID PROGRAM OBSERVTN VISIT VISITGRP SEQ_ID ACT_ID EXPOSURE
TEMPLATE ENG_QUAL VISITYPE VSTSTART VISITSTA NEXPOSUR TSOVISIT TARGPROP TARGNAME TARGTYPE
TARG_RA TARG_DEC PROP_RA PROP_DEC INSTRUME DETECTOR FILTER CCCSTATE EXPCOUNT EXPRIPAR EXP_TYPE
EXPSTART EXPMID EXPEND READPATT NINTS INTSTART INTEND NGROUPS NFRAMES GROUPGAP NSAMPLES TSAMPLE
TFRAME TGROUP EFFINTTM EFFEXPTM DURATION NRSTSTRT NRESETS ZEROFRAM DATAPROB SCA_NUM DATAMODE
SUBARRAY SUBSTRT1 SUBSTRT2 SUBSIZE1 SUBSIZE2 FASTAXIS SLOWAXIS PATTTYPE PATT_NUM NUMDTHPT
XOFFSET YOFFSET APERNAME PPS_APER VA_RA VA_DEC BARTDELT BSTRTIME BENDTIME BMIDTIME GS_ORDER
GDSTARID GS_RA GS_DEC PCS_MODE VISITEND
""".split()
SCI_KEYWORDS = """
MJD-BEG MJD-AVG MJD-END TDB-BEG TDB-MID TDB-END XPOSURE TELAPSE BUNIT RADESYS RA_V1 DEC_V1 PA_V3
CRPIX1 CRPIX2 CRVAL1 CRVAL2 CTYPE1 CTYPE2 V2_REF V3_REF RA_REF DEC_REF ROLL_REF S_REGION
""".split()


def ramps(nints, ngroups, subarray="SUB64", seed=0):
    _, _, nx, ny = simulate.SUBARRAYS[subarray]
    rng = np.random.default_rng(seed)
    return rng.integers(1, 60000, size=(nints, ngroups, ny, nx), dtype=np.uint16)


@pytest.fixture(scope="module")
def archive_file(tmp_path_factory):
    data = ramps(3, 4, "FULL")
    path = str(tmp_path_factory.mktemp("sim") / NAME)
    simulate.write_uncal(path, data, start_mjd=60321.25, subarray="FULL")
    return path, data


def test_archive_file_has_the_archive_extensions(archive_file):
    path, data = archive_file
    nints, ngroups, ny, nx = data.shape
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "REFOUT", "GROUP", "INT_TIMES", "ASDF"]
        sci, refout = hdul["SCI"], hdul["REFOUT"]
        assert sci.data.dtype == np.uint16 and sci.header["BZERO"] == 32768
        np.testing.assert_array_equal(sci.data, data)
        # MIRI's reference output: (nints, ngroups, ny/4, nx), uint16 (BZERO-scaled int16).
        assert refout.data.shape == (nints, ngroups, ny // 4, nx)
        assert refout.data.dtype == np.uint16
        group = hdul["GROUP"].data
        assert list(group.names) == list(GROUP_COLUMNS)
        for name, kind in GROUP_COLUMNS.items():
            assert group.dtype[name].kind + str(group.dtype[name].itemsize) == kind[0] + kind[1:]
        assert len(group) == nints * ngroups
        assert group["integration_number"].tolist() == np.repeat([1, 2, 3], ngroups).tolist()
        assert group["group_number"].tolist() == list(range(1, ngroups + 1)) * nints
        assert set(group["number_of_columns"]) == {nx} and set(group["number_of_rows"]) == {ny}
        assert set(group["completion_code_text"]) == {"Normal Completion"}
        times = hdul["INT_TIMES"].data
        assert list(times.names) == list(INT_TIMES_COLUMNS)
        assert times["integration_number"].tolist() == [1, 2, 3]
        assert hdul["ASDF"].data.names == ["ASDF_METADATA"]


def test_primary_header_is_archive_like(archive_file):
    path, _ = archive_file
    primary = fits.getheader(path)
    sci = fits.getheader(path, "SCI")
    # Real MIRI uncal primary headers run to a few hundred cards (section titles included).
    assert 200 <= len(primary) <= 400
    assert [k for k in PRIMARY_KEYWORDS if k not in primary] == []
    assert [k for k in SCI_KEYWORDS if k not in sci] == []
    titles = {str(c.value).strip() for c in primary.cards if c.keyword == ""}
    assert {"Program information", "Exposure parameters", "Subarray parameters"} <= titles
    # Identifiers agree with the file name: jw<ppppp><ooo><vvv>_<gg><s><aa>_<eeeee>_...
    assert (primary["PROGRAM"], primary["OBSERVTN"], primary["VISIT"]) == ("01234", "005", "001")
    assert (primary["VISITGRP"], primary["SEQ_ID"], primary["ACT_ID"]) == ("02", "1", "01")
    assert primary["EXPOSURE"] == "3" and primary["VISIT_ID"] == "01234005001"
    assert primary["OBS_ID"] == "V01234005001P0000000002101"
    assert primary["FILENAME"] == NAME
    assert (primary["INSTRUME"], primary["DETECTOR"], primary["SCA_NUM"]) == (
        "MIRI",
        "MIRIMAGE",
        493,
    )
    assert (primary["EXP_TYPE"], primary["FILTER"], primary["READPATT"]) == (
        "MIR_IMAGE",
        "F770W",
        "FASTR1",
    )
    assert primary["APERNAME"] == "MIRIM_FULL"
    assert "EXSEGNUM" not in primary, "unsegmented files carry no segment number"
    assert (primary["INTSTART"], primary["INTEND"]) == (1, 3)


@pytest.mark.parametrize("subarray", list(simulate.SUBARRAYS))
def test_time_keywords_are_consistent(tmp_path, subarray):
    """EXPEND - EXPSTART = DURATION = EFFEXPTM + (NINTS - 1) * NRESETS * TFRAME (FASTR1)."""
    nints, ngroups = 3, 4
    data = ramps(nints, ngroups, subarray)
    path = simulate.write_uncal(
        str(tmp_path / NAME), data, start_mjd=60400.123456789, subarray=subarray
    )
    h, sci = fits.getheader(path), fits.getheader(path, "SCI")
    tframe = simulate.FRAME_TIME[subarray]
    assert h["TFRAME"] == h["TGROUP"] == tframe
    assert (h["NFRAMES"], h["GROUPGAP"], h["NRSTSTRT"], h["NRESETS"]) == (1, 0, 0, 1)
    assert h["EFFINTTM"] == pytest.approx(ngroups * tframe)
    assert h["EFFEXPTM"] == pytest.approx(nints * ngroups * tframe)
    assert h["DURATION"] == pytest.approx(h["EFFEXPTM"] + (nints - 1) * tframe)
    assert (h["EXPEND"] - h["EXPSTART"]) * DAY == pytest.approx(h["DURATION"], abs=1e-4)
    assert h["EXPMID"] == pytest.approx(0.5 * (h["EXPSTART"] + h["EXPEND"]), abs=1e-10)
    assert sci["MJD-BEG"] == h["EXPSTART"]
    assert sci["MJD-AVG"] == h["EXPMID"]
    assert sci["MJD-END"] == h["EXPEND"]
    assert sci["XPOSURE"] == h["EFFEXPTM"] and sci["TELAPSE"] == h["DURATION"]
    assert h["DATE-OBS"] + "T" + h["TIME-OBS"] == h["DATE-BEG"]
    # INT_TIMES: the first integration starts at EXPSTART, the last ends at EXPEND, one
    # reset frame between integrations.
    t = fits.getdata(path, "INT_TIMES")
    assert t["int_start_MJD_UTC"][0] == pytest.approx(h["EXPSTART"], abs=1e-10)
    assert t["int_end_MJD_UTC"][-1] == pytest.approx(h["EXPEND"], abs=1e-10)
    np.testing.assert_allclose(
        (t["int_end_MJD_UTC"] - t["int_start_MJD_UTC"]) * DAY, h["EFFINTTM"], atol=1e-4
    )
    np.testing.assert_allclose(
        np.diff(t["int_start_MJD_UTC"]) * DAY, (ngroups + 1) * tframe, atol=1e-4
    )
    np.testing.assert_allclose(
        t["int_mid_MJD_UTC"], 0.5 * (t["int_start_MJD_UTC"] + t["int_end_MJD_UTC"]), atol=1e-10
    )
    tdb = (t["int_start_BJD_TDB"] - t["int_start_MJD_UTC"]) * DAY
    np.testing.assert_allclose(tdb, simulate.TT_UTC + h["BARTDELT"], atol=1e-3)
    # GROUP: group g of an integration ends g frame times after its start.
    g = fits.getdata(path, "GROUP")
    start = t["int_start_MJD_UTC"][g["integration_number"] - 1]
    end = start + g["group_number"] * tframe / DAY
    micro = g["end_day"] * DAY + g["end_milliseconds"] / 1e3 + g["end_submilliseconds"] / 1e6
    np.testing.assert_allclose(micro, (end - 51544.0) * DAY, atol=2e-6)
    last = g["group_number"] == ngroups
    np.testing.assert_allclose(end[last], t["int_end_MJD_UTC"], atol=1e-10)
    assert g["group_end_time"][-1] == simulate._iso(h["EXPEND"])


@pytest.mark.parametrize("subarray", list(simulate.SUBARRAYS))
def test_subarray_placements(tmp_path, subarray):
    xs, ys, nx, ny, tframe = PRD[subarray]
    assert simulate.SUBARRAYS[subarray] == (xs, ys, nx, ny)
    assert simulate.FRAME_TIME[subarray] == tframe
    path = simulate.write_uncal(
        str(tmp_path / NAME), ramps(1, 2, subarray), start_mjd=60300.0, subarray=subarray
    )
    h = fits.getheader(path)
    assert (h["SUBARRAY"], h["SUBSTRT1"], h["SUBSTRT2"], h["SUBSIZE1"], h["SUBSIZE2"]) == (
        subarray,
        xs,
        ys,
        nx,
        ny,
    )
    exposure = read_exposure(path)
    assert exposure.window == (slice(ys - 1, ys - 1 + ny), slice(xs - 1, xs - 1 + nx))
    coronagraph = {"MASK1065": "4QPM_1065", "MASK1140": "4QPM_1140", "MASK1550": "4QPM_1550"}
    coronagraph["MASKLYOT"] = "LYOT_2300"
    assert h.get("CORONMSK") == coronagraph.get(subarray)
    assert h["APERNAME"] == f"MIRIM_{subarray}"


def test_frame_times_agree_with_jwst_emicorr_clocks():
    """An independent source: jwst's EMI correction knows each subarray's frame clocks."""
    from jwst.emicorr.emicorr import subarray_clocks

    for name, clocks in subarray_clocks.items():
        name = "FULL" if name == "FULL_FAST" else name
        if name in simulate.FRAME_TIME:
            assert simulate.FRAME_TIME[name] == pytest.approx(clocks["frameclocks"] * 1e-5)


def test_placements_agree_with_the_prd_in_jwst_test_data():
    import sqlite3

    import jwst

    db = os.path.join(
        os.path.dirname(jwst.__file__), "lib", "tests", "data", "xml_data_siafxml", "prd.db"
    )
    if not os.path.exists(db):
        pytest.skip("jwst installed without its test data")
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT SubarrayName, ColumnCorner, RowCorner, Columns, Rows, FrameReadTime "
            "FROM SubarrayFrameTime WHERE Instrument='MIRI' AND ReadoutPattern='FASTR1'"
        ).fetchall()
    prd = {name: (x, y, nx, ny, t) for name, x, y, nx, ny, t in rows}
    for name, (xs, ys, nx, ny) in simulate.SUBARRAYS.items():
        assert prd[name] == (xs, ys, nx, ny, simulate.FRAME_TIME[name])


@pytest.mark.parametrize("detector", ["MIRIMAGE", "MIRIFUSHORT", "MIRIFULONG"])
def test_readable_by_stdatamodels_and_the_inventory(tmp_path, detector):
    from stdatamodels.jwst import datamodels

    data = ramps(2, 3, "FULL" if detector != "MIRIMAGE" else "SUB128")
    subarray = "FULL" if detector != "MIRIMAGE" else "SUB128"
    name = NAME.replace("mirimage", detector.lower())
    path = simulate.write_uncal(
        str(tmp_path / name), data, start_mjd=60300.0, detector=detector, subarray=subarray
    )
    with datamodels.Level1bModel(path) as model:
        model.validate()
        assert model.refout.shape == (2, 3, data.shape[2] // 4, data.shape[3])
        assert len(model.group) == 6 and len(model.int_times) == 2
    with datamodels.RampModel(path) as model:
        np.testing.assert_array_equal(model.data, data.astype(np.float32))
        assert model.meta.exposure.nints == 2 and model.meta.instrument.detector == detector
        assert model.int_times["int_start_MJD_UTC"][0] == model.meta.exposure.start_time
    h = fits.getheader(path)
    exposure = read_exposure(path)
    assert (exposure.detector, exposure.nints, exposure.ngroups) == (detector, 2, 3)
    assert (exposure.start_mjd, exposure.mid_mjd, exposure.end_mjd) == (
        h["EXPSTART"],
        h["EXPMID"],
        h["EXPEND"],
    )
    if detector == "MIRIMAGE":
        assert (exposure.exp_type, exposure.filter, h["SCA_NUM"]) == ("MIR_IMAGE", "F770W", 493)
    else:
        assert (exposure.exp_type, exposure.band, exposure.filter) == ("MIR_MRS", "SHORT", "N/A")
        assert h["CHANNEL"] == {"MIRIFUSHORT": "12", "MIRIFULONG": "34"}[detector]
        assert h["SCA_NUM"] == {"MIRIFUSHORT": 495, "MIRIFULONG": 494}[detector]


def test_lean_files_keep_the_timing(tmp_path):
    data = ramps(2, 3)
    lean = simulate.write_uncal(
        str(tmp_path / "lean_uncal.fits"), data, start_mjd=60300.5, subarray="SUB64", archive=False
    )
    full = simulate.write_uncal(
        str(tmp_path / "full_uncal.fits"), data, start_mjd=60300.5, subarray="SUB64"
    )
    with fits.open(lean) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ASDF"]
        assert len(hdul[0].header) < 80
    for key in ("EXPSTART", "EXPMID", "EXPEND", "EFFEXPTM", "DURATION", "TFRAME", "NINTS"):
        assert fits.getval(lean, key) == fits.getval(full, key), key
    assert fits.getval(lean, "MJD-AVG", "SCI") == fits.getval(full, "MJD-AVG", "SCI")
    np.testing.assert_array_equal(fits.getdata(lean, "SCI"), fits.getdata(full, "SCI"))


def test_groupdq_extension_is_appended(tmp_path):
    data = ramps(2, 3)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[1, 2, 5, 6] = 2
    path = simulate.write_uncal(
        str(tmp_path / NAME), data, start_mjd=60300.0, subarray="SUB64", groupdq=gdq
    )
    np.testing.assert_array_equal(fits.getdata(path, "GROUPDQ"), gdq)
    assert read_exposure(path).groupdq is not None


def test_segment_names_and_bounds():
    root = "/data/jw01234001001_01101_00001_mirimage_uncal.fits"
    assert simulate.segment_paths(root, 2) == [
        "/data/jw01234001001_01101_00001-seg001_mirimage_uncal.fits",
        "/data/jw01234001001_01101_00001-seg002_mirimage_uncal.fits",
    ]
    assert simulate.segment_paths("x/odd_uncal.fits", 1) == ["x/odd-seg001_uncal.fits"]
    assert simulate.segment_bounds(7, 3) == [(1, 3), (4, 5), (6, 7)]
    assert simulate.segment_bounds(3, 3) == [(1, 1), (2, 2), (3, 3)]
    for bad in (0, 4):
        with pytest.raises(ValueError, match="cannot split 3"):
            simulate.segment_bounds(3, bad)


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    d = tmp_path_factory.mktemp("seg")
    data = ramps(7, 3, seed=4)
    gdq = (ramps(7, 3, seed=5) % 3).astype(np.uint8)
    root = str(d / "jw01234001001_01101_00001_mirimage_uncal.fits")
    paths = simulate.write_segments(
        root, data, 3, start_mjd=60310.75, subarray="SUB64", groupdq=gdq
    )
    (d / "whole").mkdir()
    whole = simulate.write_uncal(
        str(d / "whole" / os.path.basename(root)), data, start_mjd=60310.75, subarray="SUB64"
    )
    return root, paths, whole, data, gdq


def test_segments_are_named_and_numbered_as_the_archive_does(segmented):
    root, paths, whole, data, _ = segmented
    assert paths == simulate.segment_paths(root, 3)
    assert not os.path.exists(root)
    assert [os.path.basename(p) for p in paths] == [
        f"jw01234001001_01101_00001-seg00{k}_mirimage_uncal.fits" for k in (1, 2, 3)
    ]
    bounds = [(1, 3), (4, 5), (6, 7)]
    every = fits.getheader(whole)
    for k, (path, (first, last)) in enumerate(zip(paths, bounds, strict=True), start=1):
        h = fits.getheader(path)
        assert (h["EXSEGNUM"], h["EXSEGTOT"], h["INTSTART"], h["INTEND"]) == (k, 3, first, last)
        # The whole exposure's NINTS and times, in every segment.
        for key in ("NINTS", "EXPSTART", "EXPMID", "EXPEND", "EFFEXPTM", "DURATION", "NGROUPS"):
            assert h[key] == every[key], key
        assert fits.getval(path, "MJD-AVG", "SCI") == h["EXPMID"]
        assert h["FILENAME"] == os.path.basename(path)


def test_segments_hold_only_their_integrations(segmented):
    _, paths, whole, data, gdq = segmented
    sci = [fits.getdata(p, "SCI") for p in paths]
    np.testing.assert_array_equal(np.concatenate(sci), data)
    np.testing.assert_array_equal(np.concatenate([fits.getdata(p, "GROUPDQ") for p in paths]), gdq)
    refout = [fits.getdata(p, "REFOUT") for p in paths]
    assert [r.shape[0] for r in refout] == [3, 2, 2]
    # INT_TIMES and GROUP rows of the segments, together, are the unsegmented file's.
    for ext in ("INT_TIMES", "GROUP"):
        joined = np.concatenate([np.asarray(fits.getdata(p, ext)) for p in paths])
        assert joined.tolist() == np.asarray(fits.getdata(whole, ext)).tolist(), ext
    numbers = [fits.getdata(p, "INT_TIMES")["integration_number"].tolist() for p in paths]
    assert numbers == [[1, 2, 3], [4, 5], [6, 7]]


def test_segments_are_readable_by_stdatamodels(segmented):
    from stdatamodels.jwst import datamodels

    _, paths, _, data, _ = segmented
    with datamodels.RampModel(paths[1]) as model:
        np.testing.assert_array_equal(model.data, data[3:5].astype(np.float32))
        assert model.meta.exposure.integration_start == 4
        assert model.meta.exposure.segment_number == 2
        assert model.meta.exposure.nints == 7
        assert len(model.int_times) == 2
    with datamodels.Level1bModel(paths[2]) as model:
        model.validate()
        assert model.data.shape == (2, 3, 64, 72)


def test_segments_pass_dq_init_and_saturation(segmented, sat_ref, mask_ref):
    """Each segment goes through the jwst steps alone, its own integrations only."""
    from conftest import pipeline_groupdq

    _, paths, _, data, _ = segmented
    gdq = [pipeline_groupdq(p, sat_ref, mask_ref, 0) for p in paths]
    assert [g.shape[0] for g in gdq] == [3, 2, 2]
    assert np.concatenate(gdq).shape == data.shape


def test_one_segment_is_an_unsegmented_file(tmp_path):
    root = str(tmp_path / NAME)
    assert simulate.write_segments(root, ramps(2, 3), 1, start_mjd=60300.0, subarray="SUB64") == [
        root
    ]
    assert "EXSEGNUM" not in fits.getheader(root)
    with pytest.raises(TypeError, match="bogus"):
        simulate.write_segments(root, ramps(2, 3), 2, start_mjd=60300.0, bogus=1)


def test_make_program_segments_exposures_with_enough_integrations(tmp_path):
    program = simulate.make_program(
        str(tmp_path / "p"),
        n_exposures=3,
        ngroups=3,
        subarrays=("SUB64",),
        nints=(1, 3),
        segments=2,
    )
    names = sorted(os.path.basename(f) for f in program.files)
    segmented = [n for n in names if "-seg" in n]
    assert len(program.files) == 4 and len(segmented) == 2
    assert {fits.getval(os.path.join(program.directory, n), "EXSEGTOT") for n in segmented} == {2}
    root = segmented[0].replace("-seg001", "")
    assert segmented == [root.replace("_mirimage", f"-seg00{k}_mirimage") for k in (1, 2)]
    # Exposures follow one another: each starts after the previous one ended.
    spans = sorted({(fits.getval(f, "EXPSTART"), fits.getval(f, "EXPEND")) for f in program.files})
    assert len(spans) == 3
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert (start - end) * DAY == pytest.approx(60.0, abs=1e-3)


def test_make_program_default_is_unsegmented_and_archive_shaped(tmp_path):
    program = simulate.make_program(
        str(tmp_path / "p"), n_exposures=2, ngroups=3, subarrays=("SUB64",), nints=(2,)
    )
    assert len(program.files) == 2 and not any("-seg" in f for f in program.files)
    for f in program.files:
        assert fits.getval(f, "EXTNAME", "REFOUT") == "REFOUT"
        assert read_exposure(f).nints == 2
