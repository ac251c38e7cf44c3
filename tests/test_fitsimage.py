"""The fast unsigned image writer makes exactly the bytes astropy writes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from miripersist import fitsimage


def _ours(header: fits.Header, values: np.ndarray, comment: str | None) -> bytes:
    head = fitsimage.serialise(header, comment)
    size = fitsimage.hdu_size(head)
    # Stale bytes in the buffer must not leak into the HDU.
    buffer = bytearray(b"\xa5" * (size + 7))
    assert fitsimage.hdu_into(buffer, head, values, comment) == size
    return bytes(buffer[:size])


def _astropy(values: np.ndarray, primary: bool, comment: str | None) -> bytes:
    hdu = fits.PrimaryHDU(data=values) if primary else fits.ImageHDU(data=values, name="PIXELDQ")
    hdu.header["MPTEST"] = (7, "a card of the caller's")
    hdu.header.add_history("a history line")
    if comment is not None:
        hdu.add_checksum(when=comment)
    buf = io.BytesIO()
    if primary:
        hdu.writeto(buf)
        return buf.getvalue()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()[len(fits.PrimaryHDU().header.tostring()) :]


@st.composite
def images(draw):
    ny, nx = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = np.dtype(draw(st.sampled_from([np.uint8, np.uint16, np.uint32])))
    top = int(np.iinfo(dtype).max)
    rng = np.random.default_rng(seed)
    values = rng.integers(0, top + 1, size=(ny, nx), dtype=np.uint64).astype(dtype)
    # The extremes, and long runs of one value as in a sparse DQ image.
    values.flat[0] = draw(st.sampled_from([0, 1, top // 2, top // 2 + 1, top]))
    if draw(st.booleans()):
        values[values % 7 != 0] = 0
    return values


@settings(max_examples=150, deadline=None)
@given(images(), st.booleans(), st.sampled_from([None, "HDU checksum (miripersist)"]))
def test_bytes_equal_astropy(values, primary, comment):
    header = fitsimage.image_header(
        values.shape, primary=primary, extname="PIXELDQ", dtype=values.dtype
    )
    header["MPTEST"] = (7, "a card of the caller's")
    header.add_history("a history line")
    assert _ours(header, values, comment) == _astropy(values, primary, comment)


def test_full_frame_round_trip_and_checksum(tmp_path):
    values = np.zeros((1024, 1032), dtype=np.uint32)
    values[100:140, 7::11] = 33
    values[-1, -1] = 2**31 | 2048
    header = fitsimage.image_header(values.shape, primary=True)
    path = tmp_path / "dq.fits"
    path.write_bytes(_ours(header, values, "c"))
    assert path.stat().st_size % 2880 == 0
    with fits.open(path, checksum=True) as hdul:
        assert hdul[0].verify_checksum() == 1 and hdul[0].verify_datasum() == 1
        np.testing.assert_array_equal(hdul[0].data, values)
        assert hdul[0].data.dtype == np.uint32


@pytest.mark.parametrize(
    ("largest", "dtype"),
    [(33, np.uint8), (255, np.uint8), (256, np.uint16), (2**16, np.uint32), (2**31 | 1, np.uint32)],
)
def test_smallest_unsigned(largest, dtype):
    assert fitsimage.smallest_unsigned(largest) == np.dtype(dtype)


def test_shape_must_match_header():
    header = fitsimage.image_header((4, 5), primary=True)
    with pytest.raises(ValueError, match="does not match"):
        fitsimage.hdu_into(
            bytearray(8000), fitsimage.serialise(header), np.zeros((5, 4), np.uint32)
        )


def test_replaced_card_equals_astropy_header_edit():
    header = fitsimage.image_header((3, 4), primary=True)
    header["MPNMASK"] = (0, "pixels flagged")
    header["AFTER"] = ("x", "a card after it")
    edited = header.copy()
    edited["MPNMASK"] = (123456, "pixels flagged")
    head = fitsimage.replace_card(fitsimage.serialise(header), "MPNMASK", 123456, "pixels flagged")
    assert head == fitsimage.serialise(edited)
    with pytest.raises(KeyError, match="no NOSUCH card"):
        fitsimage.replace_card(head, "NOSUCH", 1, "")
