"""The lean header reader gives the values astropy gives, card for card."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from miripersist.headers import HeaderError, card_value, read_header


def _astropy_value(image: bytes) -> object:
    return fits.Card.fromstring(image.decode("ascii")).value


def _same(ours: object, theirs: object) -> bool:
    if isinstance(theirs, float) and math.isnan(theirs):
        return isinstance(ours, float) and math.isnan(ours)
    return type(ours) is type(theirs) and ours == theirs


printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
# Too long for one card: astropy writes CONTINUE cards after the first.
long_printable = st.text(
    st.characters(min_codepoint=32, max_codepoint=126), min_size=61, max_size=300
)
values = st.one_of(
    st.integers(-(2**62), 2**62),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    printable,
    long_printable,
)


@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
@settings(max_examples=400, deadline=None)
@given(values, st.one_of(st.just(""), printable))
def test_values_of_cards_astropy_writes(value, comment):
    try:
        image = fits.Card("KEYWORD", value, comment).image.encode("ascii")
    except ValueError:  # too long for one card
        return
    assert _same(card_value(image), _astropy_value(image))


# Other writers' spellings: fixed and free format, D exponents, signs, odd blanks.
ODD = [
    "= 1.5D+03",
    "= 1.5d-3 / lower-case exponent",
    "=  +0007",
    "= -.5E2",
    "= 5.",
    "= 'O''HARA'  / doubled quote",
    "= 'trailing   '",
    "= ''",
    "= '  '",
    "=                    T",
    "= F / false",
    "= 1 2",
    "= abc",
    "=",
    "= / only a comment",
    "='no space'",
    "= 'unterminated",
    "= (1.0, 2.0)",
    "= 3 / comment with 'quotes' and / slashes",
    "= - 5",
    "= 1.0E",
    "= 1e5",
]


def _outcome(parse, image: bytes) -> tuple[str, object]:
    try:
        return "value", parse(image)
    except Exception as exc:  # astropy's own kinds of error, for unparsable cards
        return "error", type(exc)


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning")
@pytest.mark.parametrize("tail", ODD)
def test_values_of_odd_cards(tail):
    image = f"{'KEYWORD':8s}{tail}".ljust(80).encode("ascii")
    ours, theirs = _outcome(card_value, image), _outcome(_astropy_value, image)
    assert ours[0] == theirs[0]
    assert _same(ours[1], theirs[1]) if ours[0] == "value" else ours[1] is theirs[1]


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning")
@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list("0123456789+-.EeDdTF' /abx")), max_size=30))
def test_values_of_random_value_fields(tail):
    image = f"KEYWORD = {tail}".ljust(80).encode("ascii")
    ours, theirs = _outcome(card_value, image), _outcome(_astropy_value, image)
    assert ours[0] == theirs[0]
    assert _same(ours[1], theirs[1]) if ours[0] == "value" else ours[1] is theirs[1]


def _header_file(header: fits.Header) -> io.BytesIO:
    return io.BytesIO(header.tostring().encode("ascii") + b"\0" * 2880)


def test_header_matches_astropy_and_ends_at_its_last_block():
    header = fits.Header()
    header["SIMPLE"] = True
    header["NAXIS"] = 0
    for k in range(120):  # several blocks
        header[f"KEY{k}"] = (k * 1.5, "a comment")
    header["DUP"] = 1
    header.append(("DUP", 2))  # astropy's header["DUP"] is the first
    header.add_history("history has no value")
    header["LONGSTR"] = "x" * 150  # CONTINUE cards follow
    header["HIERARCH a long keyword"] = 5
    header["FILTER"] = "F770W"
    fh = _header_file(header)
    cards, length = read_header(fh)
    assert length == len(header.tostring()) == fh.tell()
    for key in ("NAXIS", "KEY0", "KEY119", "DUP", "LONGSTR", "FILTER", "filter"):
        assert _same(cards[key], header[key]), key
    assert cards.get("MISSING", 7) == 7 and "HISTORY" not in cards


@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.sampled_from(["KEYA", "KEYB", "LONGSTR", "FILTER", "NAXIS1"]),
                values,
                st.one_of(st.just(""), printable),
            ),
            st.tuples(st.sampled_from(["COMMENT", "HISTORY"]), printable, st.just("")),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_headers_with_long_strings_and_repeats_match_astropy(entries):
    header = fits.Header()
    for keyword, value, comment in entries:
        header.append((keyword, value, comment) if comment else (keyword, value))
    # The values as astropy reads them back (CONTINUE cards of long strings, which
    # may cross a block boundary, joined; repeated keywords mean their first card).
    text = header.tostring()
    theirs = fits.Header.fromstring(text)
    cards, length = read_header(io.BytesIO(text.encode("ascii")))
    assert length == len(text)
    keywords = {k for k, _, _ in entries if k not in ("COMMENT", "HISTORY")}
    assert set(cards) == keywords
    for key in keywords:
        assert _same(cards[key], theirs[key]), key


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyWarning")
@settings(max_examples=300, deadline=None)
@given(values, st.integers(8, 79), st.integers(128, 255))
def test_a_byte_that_is_not_ascii_reads_as_astropy_reads_it_from_a_file(value, at, byte):
    raw = bytearray(fits.Header([("KEYWORD", value)]).tostring().encode("ascii"))
    raw[at] = byte  # in the first card's value or comment

    def ours(data: bytes) -> object:
        return read_header(io.BytesIO(data))[0]["KEYWORD"]

    def theirs(data: bytes) -> object:
        return fits.Header.fromfile(io.BytesIO(data))["KEYWORD"]

    mine, astropys = _outcome(ours, bytes(raw)), _outcome(theirs, bytes(raw))
    assert mine[0] == astropys[0]
    assert _same(mine[1], astropys[1]) if mine[0] == "value" else mine[1] is astropys[1]


@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
def test_cards_as_written_by_hand_read_as_astropy_reads_them():
    """Lower-case keywords, a repeated keyword with CONTINUE cards after its second card,
    CONTINUE after a comment, an END-like keyword, and the END card itself mid-block."""
    cards = [
        "SIMPLE  =                    T",
        "naxis   =                    0",
        "Filter  = 'F770W   '",
        "LONG    = 'abc&'",
        "CONTINUE  'def&'",
        "CONTINUE  'ghi'",
        "LONG    = 'second&'",
        "CONTINUE  'not joined to the first'",
        "COMMENT a comment",
        "CONTINUE  'after a comment'",
        "ENDTIME =                  1.5",
        "END",
    ]
    text = "".join(c.ljust(80) for c in cards)
    data = (text + " " * (-len(text) % 2880)).encode("ascii")
    theirs = fits.Header.fromstring(data.decode("ascii"))
    ours, length = read_header(io.BytesIO(data + b"\0" * 2880))
    assert length == 2880
    assert set(ours) == {"SIMPLE", "NAXIS", "FILTER", "LONG", "ENDTIME"}
    for key in ("SIMPLE", "NAXIS", "naxis", "FILTER", "filter", "LONG", "ENDTIME"):
        assert _same(ours[key], theirs[key]), key
    assert ours["LONG"] == "abcdefghi"
    assert ours.get("COMMENT") is None and ours.get("CONTINUE") is None
    assert ours.get("A-KEYWORD-TOO-LONG", 3) == 3


def test_header_without_end_is_an_error():
    image = fits.Header({"SIMPLE": True}).tostring().encode("ascii")[:2880]
    missing_end = image.replace(b"END" + b" " * 77, b" " * 80)
    with pytest.raises(HeaderError, match="no END card"):
        read_header(io.BytesIO(missing_end + b" " * 100))


def test_values_of_a_simulated_uncal_file(tmp_path):
    from miripersist import simulate

    program = simulate.make_program(str(tmp_path), n_exposures=1, ngroups=4)
    path = program.files[0]
    with fits.open(path) as hdul, open(path, "rb") as fh:
        for hdu in hdul:
            fh.seek(hdu.fileinfo()["hdrLoc"])
            cards, _ = read_header(fh)
            for card in hdu.header.cards:
                if card.keyword not in ("", "HISTORY", "COMMENT") and not card.keyword.startswith(
                    "HIERARCH"
                ):
                    want = hdu.header[card.keyword]
                    assert _same(cards[card.keyword], want), card.keyword
    assert np.isfinite(cards.get("NAXIS", 0))
