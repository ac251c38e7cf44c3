"""Which of the memory's entries a run takes, and when a run is stale (pure functions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from miripersist import Parameters
from miripersist.recall import (
    LOOKBACK_DAYS,
    Entry,
    Own,
    RunRecord,
    dedupe,
    default_lookback,
    recall,
    source_key,
)

HOUR = 1.0 / 24.0
KEY = source_key(Parameters())


def entry(name: str, hours: float, detector="MIRIMAGE", key=KEY, ref="r1", length=0.1) -> Entry:
    start = 60000.0 + hours * HOUR
    end = start + length * HOUR
    return Entry(name, detector, "h" + name, start, (start + end) / 2, end, key=key,
                 reference_sha256=ref)  # fmt: skip


def own(name: str, hours: float, detector="MIRIMAGE") -> Own:
    e = entry(name, hours, detector)
    return Own(name, detector, e.start_mjd, e.mid_mjd)


RUN = [own("a", 30.0), own("b", 32.0), own("c", 34.0)]


def names(found) -> list[str]:
    return [e.file for e in found.entries.get("MIRIMAGE", ())]


def test_before_within_the_lookback_between_and_none_after():
    entries = [
        entry("too-early", 30.0 - 24.2),  # ended 24.1 h before the run's first start
        entry("early", 30.0 - 23.9),
        entry("between", 31.0),
        entry("after-last", 35.0),
        entry("b", 32.0),  # the run's own
    ]
    found = recall(entries, RUN, KEY, {"MIRIMAGE": {"r1"}}, LOOKBACK_DAYS)
    assert names(found) == ["early", "between"]
    assert found.left_out == {}


def test_the_lookback_boundary_is_the_end_of_the_entry():
    # An entry that ends exactly a lookback before the first start is taken.
    start = RUN[0].start_mjd
    exact = Entry("exact", "MIRIMAGE", "h", start - 2.0, start - 1.5, start - 1.0, key=KEY)
    assert names(recall([exact], RUN, KEY, {}, 1.0)) == ["exact"]
    assert names(recall([exact], RUN, KEY, {}, 1.0 - 1e-6)) == []


def test_other_detectors_and_kinds_of_source_are_not_taken():
    other = source_key(Parameters(n_unsat_threshold=2))
    entries = [
        entry("fulong", 31.0, detector="MIRIFULONG"),
        entry("other-params", 31.0, key=other),
        entry("other-ref", 31.5, ref="r2"),
        entry("groupdq", 31.6, ref=""),  # sources from GROUPDQ: no reference to compare
    ]
    found = recall(entries, RUN, KEY, {"MIRIMAGE": {"r1"}}, LOOKBACK_DAYS)
    assert names(found) == ["groupdq"]
    assert found.left_out == {
        "made with other source parameters": 1,
        "made with another SATURATION reference": 1,
    }
    # A run that reads GROUPDQ (no references) takes any reference's entries.
    assert names(recall(entries, RUN, KEY, {}, LOOKBACK_DAYS)) == ["other-ref", "groupdq"]


def test_entries_come_back_in_scan_order_and_each_identity_once():
    entries = [entry("y", 31.5), entry("x", 31.0), entry("x", 31.0)]
    found = recall(dedupe(entries), RUN, KEY, {}, LOOKBACK_DAYS)
    assert names(found) == ["x", "y"]
    assert found.used == sorted(e.identity for e in entries[:2])


def test_the_source_key_follows_the_parameters_that_shape_sources_only():
    assert source_key(Parameters(window_days=2.0, mode="sidecar")) == KEY
    for changed in ({"n_unsat_threshold": 2}, {"n_pix_grow_sat": 0}, {"dilate": 1},
                    {"integrations": "all"}, {"method": "snowblind"}):  # fmt: skip
        assert source_key(Parameters(**changed)) != KEY, changed


@pytest.mark.parametrize(
    ("window", "lookback"), [(math.inf, 1.0), (0.5, 1.0), (2.0, 2.0), (float("nan"), 1.0)]
)
def test_the_default_lookback(window, lookback):
    assert default_lookback(window) == lookback


def test_a_run_is_stale_when_an_entry_it_would_take_came_later():
    before = [entry("early", 20.0)]
    record = RunRecord(
        store="/s",
        output_dir="/o",
        key=KEY,
        parameters={},
        lookback_days=LOOKBACK_DAYS,
        references={"MIRIMAGE": ["r1"]},
        own=tuple(RUN),
        used=tuple(recall(before, RUN, KEY, {"MIRIMAGE": {"r1"}}, 1.0).used),
    )
    assert record.missed(before) == []
    later = [*before, entry("between", 33.0), entry("after", 40.0), entry("old", 1.0)]
    assert [e.file for e in record.missed(later)] == ["between"]
    assert RunRecord.from_json(record.as_json()) == record


def test_entries_compare_without_their_pixels():
    a = entry("x", 1.0)
    b = Entry(**{**a.__dict__, "pixels": np.array([1, 2], np.int32)})
    assert a == b and a.identity == b.identity
