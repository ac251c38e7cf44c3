"""FITS headers read lean: the cards are indexed as raw text, values parsed on demand.

``astropy.io.fits.Header.fromfile`` makes a ``Card`` object of every card and parses
every keyword to index them, and each ``Card.value`` looks two settings up in astropy's
configuration: together most of the inventory's time. Here a header's cards are
indexed by their keyword fields, taken from the bytes all at once (no loop over the
cards in Python), and only the values the caller asks for are parsed: the plain forms
(quoted string, logical, integer, real) by one regular expression, anything else by
astropy's own ``Card``. A card followed by CONTINUE cards (a long string) keeps them in
its image, and such an image is parsed by astropy as a whole, as ``Header.fromfile``
does. The tests check both ways agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import BinaryIO

import numpy as np
from astropy.io import fits

BLOCK = 2880
CARD = 80
# Cards without a value: several may share a keyword, none is ever looked up here.
_COMMENTARY = frozenset(k.ljust(8) for k in (b"", b"COMMENT", b"HISTORY", b"CONTINUE", b"HIERARCH"))
_END = b"END     "
_MISSING = object()
# A card as its 8-byte keyword field and the rest.
_KEYWORD_FIELD = np.dtype([("keyword", "S8"), ("rest", "V72")])


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

    def __init__(self, data: bytes, keywords: list[bytes]) -> None:
        # ``keywords`` are the upper-cased 8-byte keyword fields of the cards before END.
        self._data = data
        self._keywords = keywords
        # Reversed, so that the first card of a repeated keyword is the one that stays.
        self._at = dict(zip(reversed(keywords), range(len(keywords) - 1, -1, -1), strict=True))
        for keyword in _COMMENTARY:
            self._at.pop(keyword, None)
        self._values: dict[str, object] = {}

    def _value(self, key: str) -> object:
        """The value of ``key``, or ``_MISSING``."""
        value = self._values.get(key, _MISSING)
        if value is not _MISSING:
            return value
        # A key longer than 8 characters is in no keyword field: not found.
        first = self._at.get(key.upper().encode("ascii", "replace").ljust(8), -1)
        if first < 0:
            return _MISSING
        last = first + 1
        while last < len(self._keywords) and self._keywords[last] == b"CONTINUE":
            # astropy appends every CONTINUE card to the card before it (even across
            # blocks), whatever that card is.
            last += 1
        value = self._values[key] = card_value(self._data[first * CARD : last * CARD])
        return value

    def __getitem__(self, key: str) -> object:
        value = self._value(key)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: str, default: object = None) -> object:
        """The value of ``key``, or ``default`` when the header has no such card."""
        # Mapping.get would raise and catch a KeyError for every missing keyword.
        value = self._value(key)
        return default if value is _MISSING else value

    def __iter__(self) -> Iterator[str]:
        return (k.decode("ascii", "replace").rstrip() for k in self._at)

    def __len__(self) -> int:
        return len(self._at)


def read_header(fh: BinaryIO) -> tuple[Cards, int]:
    """Read the header that starts at the file's position, up to its END card's block.

    The cards are indexed by their keyword fields, taken all at once from the bytes
    (no loop over the cards in Python: most of the inventory's time otherwise).

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
    blocks: list[bytes] = []
    keywords: list[np.ndarray] = []  # each block's 8-byte keyword fields
    while True:
        block = fh.read(BLOCK)
        if len(block) < BLOCK:
            length = BLOCK * len(blocks) + len(block)
            raise HeaderError(f"header has no END card in its {length} bytes")
        blocks.append(block)
        keywords.append(np.frombuffer(block, dtype=_KEYWORD_FIELD)["keyword"])
        ends = np.flatnonzero(keywords[-1] == _END)
        if ends.size:
            break
    n_cards = (len(blocks) - 1) * (BLOCK // CARD) + int(ends[0])
    # Upper-cased as astropy indexes them: only the keyword fields (the values keep case).
    fields = np.concatenate(keywords)[:n_cards].tobytes().upper()
    data = b"".join(blocks)
    return Cards(data, np.frombuffer(fields, dtype="S8").tolist()), len(data)
