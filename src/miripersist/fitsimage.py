"""uint32 image HDUs as bytes: astropy makes the header, numpy the data and checksums.

A DQ image written by ``astropy.io.fits`` costs several milliseconds beyond the disk:
the unsigned data are scaled into a new array, byte-swapped into another, and the
checksum walks them once more. Here the stored words are made in one pass, straight
into the caller's output buffer, the data sum is one numpy reduction, and the header is
astropy's own serialisation, so the bytes are exactly those astropy writes (the tests
compare them).

FITS stores uint32 as BITPIX 32 with BZERO 2**31: the stored big-endian int32 word of
a value is the value with its top bit flipped.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

BLOCK = 2880
_TOP_BIT = np.uint32(1 << 31)
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


def image_header(
    shape: tuple[int, int], *, primary: bool, extname: str | None = None
) -> fits.Header:
    """The structural cards astropy writes for a uint32 image of ``shape``."""
    probe = np.zeros((1, 1), dtype=np.uint32)
    hdu = fits.PrimaryHDU(data=probe) if primary else fits.ImageHDU(data=probe, name=extname)
    header = hdu.header.copy()
    header["NAXIS1"] = shape[1]
    header["NAXIS2"] = shape[0]
    return header


def hdu_size(header: fits.Header, checksum: bool = False) -> int:
    """Bytes of the uint32 image HDU that :func:`hdu_into` makes from ``header``."""
    if checksum:
        header = _with_checksum_cards(header, "")
    data = 4 * header["NAXIS1"] * header["NAXIS2"]
    return len(header.tostring()) + data + (-data % BLOCK)


def _with_checksum_cards(header: fits.Header, comment: str) -> fits.Header:
    header = header.copy()
    header["CHECKSUM"] = ("0" * 16, comment)
    header["DATASUM"] = ("0", comment)
    return header


def hdu_into(
    buffer, header: fits.Header, values: np.ndarray, checksum_comment: str | None = None
) -> int:
    """Write the header, data and padding of a uint32 image HDU into ``buffer``.

    The stored words are made in place, so a page-aligned buffer can go to the disk as it
    is (direct I/O) with no further copy.

    Parameters
    ----------
    buffer : writable buffer
        At least :func:`hdu_size` bytes; the HDU starts at its first byte.
    header : astropy.io.fits.Header
        From :func:`image_header` plus any cards of the caller's (not modified).
    values : ndarray of uint32, shape (NAXIS2, NAXIS1)
        The image.
    checksum_comment : str, optional
        Add DATASUM and CHECKSUM cards with this comment (as ``add_checksum(when=...)``).

    Returns
    -------
    int
        Bytes written: the HDU's length, a multiple of 2880.
    """
    if values.shape != (header["NAXIS2"], header["NAXIS1"]):
        raise ValueError(f"image shape {values.shape} does not match its header")
    if checksum_comment is not None:
        header = _with_checksum_cards(header, checksum_comment)
    # CHECKSUM and DATASUM are fixed-width values: the header's length is known now.
    head_len = len(header.tostring())
    view = memoryview(buffer).cast("B")
    words = np.frombuffer(view, dtype=">u4", count=values.size, offset=head_len)
    np.bitwise_xor(values.reshape(-1), _TOP_BIT, out=words, casting="unsafe")
    end = head_len + words.nbytes
    pad = -end % BLOCK
    view[end : end + pad] = bytes(pad)
    if checksum_comment is not None:
        datasum = ones_complement_sum(words)
        header["DATASUM"] = (str(datasum), checksum_comment)
        text = np.frombuffer(header.tostring().encode("ascii"), dtype=">u4")
        header["CHECKSUM"] = encode_checksum(~ones_complement_sum(text, datasum) & 0xFFFFFFFF)
    view[:head_len] = header.tostring().encode("ascii")
    return end + pad
