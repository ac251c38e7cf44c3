"""FITS headers read lean: the cards are indexed as raw text, values parsed on demand.

``astropy.io.fits.Header.fromfile`` makes a ``Card`` object of every card and parses
every keyword to index them, and each ``Card.value`` looks two settings up in astropy's
configuration: together most of the inventory's time. Here a header is split into
80-character records and indexed by keyword, and only the values the caller asks for
are parsed: the plain forms (quoted string, logical, integer, real) by one regular
expression, anything else by astropy's own ``Card``. A card followed by CONTINUE cards
(a long string) keeps them in its image, and such an image is parsed by astropy as a
whole, as ``Header.fromfile`` does. The tests check both ways agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import BinaryIO

from astropy.io import fits

BLOCK = 2880
CARD = 80
# Cards without a value: several may share a keyword, none is ever looked up here.
_COMMENTARY = frozenset({b"", b"COMMENT", b"HISTORY", b"CONTINUE", b"HIERARCH"})


# A value in the FITS fixed or free format, followed by nothing or a comment. The string
# form is astropy's own (a string ends at the first quote before a blank, slash or end).
_PLAIN_VALUE = re.compile(
    rb"=  *(?:'(?P<str>(?:[ -~]+?|''|) *?)'(?=$|/| )|(?P<bool>[TF])|(?P<int>[+-]?[0-9]+)"
    rb"|(?P<real>[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[EeDd][+-]?[0-9]+)?)) *(?:/.*)?$",
    re.DOTALL,
)


def _astropy_card_value(image: bytes) -> object:
    # As astropy reads a header from a file: a byte that is not ASCII becomes "?".
    text = image.decode("ascii", "replace").replace("\ufffd", "?")
    return fits.Card.fromstring(text).value


def card_value(image: bytes) -> object:
    """The value of a card, as ``astropy.io.fits`` gives it for a header read from a file.

    ``image`` is one 80-character card, or a card and the CONTINUE cards that follow it.
    """
    if len(image) > CARD:
        # A long string (or a damaged card) over several cards: astropy joins them.
        return _astropy_card_value(image)
    match = _PLAIN_VALUE.match(image, 8)
    if match is None:
        return _astropy_card_value(image)
    kind = match.lastgroup
    text = match.group(kind).decode("ascii", "replace")
    if kind == "str":
        # astropy strips trailing blanks (its default strip_header_whitespace).
        return text.replace("''", "'").rstrip()
    if kind == "bool":
        return text == "T"
    if kind == "int":
        return int(text)
    return float(text.replace("D", "E").replace("d", "e"))


class HeaderError(ValueError):
    """A header that cannot be read: no END card before the end of the file."""


class Cards(Mapping[str, object]):
    """The keyword cards of one header, each value parsed at first use (:func:`card_value`).

    Lookups are case-insensitive; a keyword that occurs twice means its first card, as
    in ``astropy.io.fits.Header``.
    """

    def __init__(self, images: dict[str, bytes]) -> None:
        self._images = images
        self._values: dict[str, object] = {}

    def __getitem__(self, key: str) -> object:
        key = key.upper()
        try:
            return self._values[key]
        except KeyError:
            pass
        value = card_value(self._images[key])
        self._values[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._images)

    def __len__(self) -> int:
        return len(self._images)


def read_header(fh: BinaryIO) -> tuple[Cards, int]:
    """Read the header that starts at the file's position, up to its END card's block.

    Returns
    -------
    Cards
        The header's keyword cards.
    int
        Its length in bytes (whole 2880-byte blocks); the file is left at its end.

    Raises
    ------
    HeaderError
        If the file ends before an END card.
    """
    images: dict[str, bytes] = {}
    length = 0
    last = None  # the keyword whose card came last, if that card is the one kept
    while True:
        block = fh.read(BLOCK)
        if len(block) < BLOCK:
            raise HeaderError(f"header has no END card in its {length + len(block)} bytes")
        length += BLOCK
        for start in range(0, BLOCK, CARD):
            keyword = block[start : start + 8].rstrip()
            if keyword == b"END":
                return Cards(images), length
            if keyword in _COMMENTARY:
                if keyword == b"CONTINUE" and last is not None:
                    # astropy appends every CONTINUE card to the card before it (even
                    # across blocks), whatever that card is.
                    images[last] += block[start : start + CARD]
                else:
                    last = None
                continue
            key = keyword.decode("ascii", "replace").upper()
            card = block[start : start + CARD]
            # A repeated keyword: its first card counts, as in astropy.
            last = key if images.setdefault(key, card) is card else None
