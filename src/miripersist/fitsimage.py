"""Unsigned integer image HDUs as bytes: astropy makes the header, numpy the data and checksums.

A DQ image written by ``astropy.io.fits`` costs several milliseconds beyond the disk:
the unsigned data are scaled into a new array, byte-swapped into another, and the
checksum walks them once more. Here the stored words are made in one pass, straight
into the caller's output buffer, the data sum is one numpy reduction, and the header is
astropy's own serialisation, so the bytes are exactly those astropy writes (the tests
compare them).

FITS stores uint32 as BITPIX 32 with BZERO 2**31 and uint16 as BITPIX 16 with BZERO
2**15: the stored big-endian word of a value is the value with its top bit flipped.
uint8 is BITPIX 8 as it is.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from .headers import BLOCK, CARD, card_value

_BITPIX = {8: np.dtype(np.uint8), 16: np.dtype(np.uint16), 32: np.dtype(np.uint32)}
# Characters the FITS checksum encoding must avoid (punctuation between digits and letters).
_EXCLUDE = frozenset(b":;<=>?@[\\]^_`")


def ones_complement_sum(words: np.ndarray, start: int = 0) -> int:
    """The 32-bit ones' complement sum of big-endian words (the FITS DATASUM rule)."""
    total = int(start) + int(words.sum(dtype=np.uint64))
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def encode_checksum(value: int) -> str:
    """The 16 ASCII characters that encode a 32-bit checksum (FITS checksum convention).

    Each byte becomes four characters near its quarter plus ``"0"``; pairs are nudged off
    the excluded punctuation, bytes are interleaved, and the string is rotated by one.
    """
    asc = bytearray(16)
    for i in range(4):
        byte = (value >> (24 - 8 * i)) & 0xFF
        quotient, remainder = byte // 4 + ord("0"), byte % 4
        ch = [quotient + remainder, quotient, quotient, quotient]
        nudged = True
        while nudged:
            nudged = False
            for j in (0, 2):
                if ch[j] in _EXCLUDE or ch[j + 1] in _EXCLUDE:
                    ch[j] += 1
                    ch[j + 1] -= 1
                    nudged = True
        for j in range(4):
            asc[4 * j + i] = ch[j]
    return bytes(asc[15:] + asc[:15]).decode("ascii")


def smallest_unsigned(largest: int) -> np.dtype:
    """The smallest unsigned integer type that holds ``largest`` (uint8, uint16 or uint32)."""
    for dtype in _BITPIX.values():
        if largest <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"{largest} does not fit 32 bits")


def image_header(
    shape: tuple[int, int],
    *,
    primary: bool,
    extname: str | None = None,
    dtype: np.dtype | type = np.uint32,
) -> fits.Header:
    """The structural cards astropy writes for an unsigned ``dtype`` image of ``shape``."""
    probe = np.zeros((1, 1), dtype=dtype)
    hdu = fits.PrimaryHDU(data=probe) if primary else fits.ImageHDU(data=probe, name=extname)
    header = hdu.header.copy()
    header["NAXIS1"] = shape[1]
    header["NAXIS2"] = shape[0]
    return header


def serialise(header: fits.Header, checksum_comment: str | None = None) -> bytes:
    """The header as written, with zero CHECKSUM and DATASUM cards if a comment is given.

    Serialising is astropy's: the costly part of a header, done once for a template that
    :func:`replace_card` then edits per file.
    """
    if checksum_comment is not None:
        header = header.copy()
        header["CHECKSUM"] = ("0" * 16, checksum_comment)
        header["DATASUM"] = ("0", checksum_comment)
    return header.tostring().encode("ascii")


def _card_at(head: bytes, keyword: str) -> int:
    key = keyword.ljust(8).encode("ascii")
    for at in range(0, len(head), CARD):
        if head[at : at + 8] == key:
            return at
    raise KeyError(f"no {keyword} card in the header")


def replace_card(head: bytes, keyword: str, value: object, comment: str) -> bytes:
    """``head`` with the first ``keyword`` card replaced by one of ``value`` and ``comment``.

    The new card must fit one 80-character image, as every value here does.
    """
    image = fits.Card(keyword, value, comment).image.encode("ascii")
    if len(image) != CARD:
        raise ValueError(f"{keyword} card does not fit one card image")
    at = _card_at(head, keyword)
    return head[:at] + image + head[at + CARD :]


def hdu_size(head: bytes) -> int:
    """Bytes of the image HDU that :func:`hdu_into` makes with the header ``head``."""
    ny, nx = _image_shape(head)
    data = _dtype(head).itemsize * nx * ny
    return len(head) + data + (-data % BLOCK)


def _dtype(head: bytes) -> np.dtype:
    at = _card_at(head, "BITPIX")
    return _BITPIX[int(card_value(head[at : at + CARD]))]


def _image_shape(head: bytes) -> tuple[int, int]:
    def axis(k: int) -> int:
        at = _card_at(head, f"NAXIS{k}")
        return int(card_value(head[at : at + CARD]))

    return axis(2), axis(1)


def hdu_into(buffer, head: bytes, values: np.ndarray, checksum_comment: str | None = None) -> int:
    """Write the header, data and padding of an unsigned image HDU into ``buffer``.

    The stored words are made in place, so a page-aligned buffer can go to the disk as it
    is (direct I/O) with no further copy.

    Parameters
    ----------
    buffer : writable buffer
        At least :func:`hdu_size` bytes; the HDU starts at its first byte.
    head : bytes
        The header from :func:`serialise`, with its CHECKSUM and DATASUM cards (zero) if
        ``checksum_comment`` is given.
    values : ndarray of unsigned integers, shape (NAXIS2, NAXIS1)
        The image; values must fit the header's type (BITPIX).
    checksum_comment : str, optional
        Fill in the DATASUM and CHECKSUM cards, with this comment (as
        ``add_checksum(when=...)``).

    Returns
    -------
    int
        Bytes written: the HDU's length, a multiple of 2880.
    """
    if values.shape != _image_shape(head):
        raise ValueError(f"image shape {values.shape} does not match its header")
    view = memoryview(buffer).cast("B")
    dtype = _dtype(head)
    stored = np.frombuffer(view, dtype=dtype.newbyteorder(">"), count=values.size, offset=len(head))
    if dtype.itemsize == 1:
        np.copyto(stored, values.reshape(-1), casting="unsafe")
    else:
        top = dtype.type(1 << (8 * dtype.itemsize - 1))
        np.bitwise_xor(values.reshape(-1), top, out=stored, casting="unsafe")
    end = len(head) + stored.nbytes
    pad = -end % BLOCK
    view[end : end + pad] = bytes(pad)
    if checksum_comment is not None:
        # The data sum is over the whole padded data as 32-bit words.
        words = np.frombuffer(
            view, dtype=">u4", count=(end + pad - len(head)) // 4, offset=len(head)
        )
        datasum = ones_complement_sum(words)
        # The checksum is over the header with CHECKSUM zero and DATASUM filled in.
        head = replace_card(head, "DATASUM", str(datasum), checksum_comment)
        total = ones_complement_sum(np.frombuffer(head, dtype=">u4"), datasum)
        head = replace_card(
            head, "CHECKSUM", encode_checksum(~total & 0xFFFFFFFF), checksum_comment
        )
    view[: len(head)] = head
    return end + pad
