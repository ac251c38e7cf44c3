"""The end-of-run table, laid out as astropy.table's ``pformat`` lays out the same columns."""

from __future__ import annotations

import string

from astropy.table import Table
from hypothesis import given, settings
from hypothesis import strategies as st

from miripersist.summary import fixed_width

names = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
cells = st.text(string.ascii_letters + string.digits + ".:-_", min_size=1, max_size=14)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda rows: st.dictionaries(
            names, st.lists(cells, min_size=rows, max_size=rows), min_size=1, max_size=6
        )
    )
)
def test_layout_is_astropys(columns):
    expected = Table({name: values for name, values in columns.items()}).pformat(
        max_lines=-1, max_width=-1
    )
    assert fixed_width(columns) == expected
