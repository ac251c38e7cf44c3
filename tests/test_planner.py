"""The resume planner on plain data: every case of a rerun, without files."""

from __future__ import annotations

import itertools

import pytest

from miripersist.errors import ConfigError
from miripersist.resume import (
    MISSING,
    STALE,
    UNCHANGED,
    WRITE,
    Identity,
    Stored,
    check_history,
    output_action,
    owned_outputs,
    plan,
    refuse_foreign,
)


def ident(name, t, det="MIRIMAGE", path=None, mtime=1, ref="r1", ref_path="/refs/sat.fits"):
    return Identity(
        name=name,
        path=path or f"/data/{name}",
        content=(100, mtime, f"h-{name}", ref),
        reference_path=ref_path,
        order=(det, t, name),
    )


PROGRAM = [ident(f"e{k}", float(k)) for k in range(6)]


def stored_of(idents, complete=True, written=True):
    return [Stored(i, complete, written) for i in idents]


def summary(p):
    return [(e.identity.name, e.input_index, e.stored_index, e.reuse) for e in p.entries]


def test_fresh_run_computes_everything_in_time_order():
    p = plan(list(reversed(PROGRAM)), None)
    assert [e.identity.name for e in p.entries] == [f"e{k}" for k in range(6)]
    assert not any(e.reuse for e in p.entries) and not p.in_place and p.dropped == []
    assert [e.input_index for e in p.entries] == [5, 4, 3, 2, 1, 0]


def test_same_command_again_reuses_everything_in_place():
    p = plan(PROGRAM, stored_of(PROGRAM))
    assert p.in_place and all(e.reuse for e in p.entries)
    assert [e.stored_index for e in p.entries] == list(range(6))


def test_killed_fresh_run_recomputes_only_unfinished():
    stored = [Stored(i, complete=k < 3, written=k < 2) for k, i in enumerate(PROGRAM)]
    p = plan(PROGRAM, stored)
    assert p.in_place
    assert [e.reuse for e in p.entries] == [True] * 3 + [False] * 3


def test_changed_reference_recomputes_and_is_not_in_place():
    # issue: a corrected SATURATION reference must not be ignored
    new = [ident(i.name, i.order[1], ref="r2") for i in PROGRAM]
    p = plan(new, stored_of(PROGRAM))
    assert not any(e.reuse for e in p.entries)
    assert not p.in_place, "the store's reference coordinates must be rewritten"


def test_moved_reference_with_same_content_is_reused_but_recorded():
    moved = [ident(i.name, i.order[1], ref_path="/elsewhere/sat.fits") for i in PROGRAM]
    p = plan(moved, stored_of(PROGRAM))
    assert all(e.reuse for e in p.entries) and not p.in_place


def test_moved_input_directory_reuses_sources():
    moved = [ident(i.name, i.order[1], path=f"/new/{i.name}") for i in PROGRAM]
    p = plan(moved, stored_of(PROGRAM))
    assert all(e.reuse for e in p.entries) and not p.in_place


def test_changed_input_is_recomputed_alone():
    changed = list(PROGRAM)
    changed[2] = ident("e2", 2.0, mtime=99)
    p = plan(changed, stored_of(PROGRAM))
    assert [e.reuse for e in p.entries] == [True, True, False, True, True, True]


def test_fewer_inputs_keep_the_rest_from_the_store():
    # issue: run obs1 + obs2, then obs2 alone must not forget obs1
    p = plan(PROGRAM[3:], stored_of(PROGRAM))
    assert summary(p) == [
        ("e0", None, 0, True),
        ("e1", None, 1, True),
        ("e2", None, 2, True),
        ("e3", 0, 3, True),
        ("e4", 1, 4, True),
        ("e5", 2, 5, True),
    ]
    assert [e.retained for e in p.entries] == [True] * 3 + [False] * 3
    assert p.in_place, "nothing changed: the store is updated in place"


def test_unfinished_exposures_not_named_are_dropped():
    stored = [Stored(i, complete=k != 1, written=False) for k, i in enumerate(PROGRAM)]
    p = plan(PROGRAM[3:], stored)
    assert p.dropped == [1]
    assert [e.identity.name for e in p.entries] == ["e0", "e2", "e3", "e4", "e5"]
    assert not p.in_place


def test_new_exposures_interleave_in_time_order():
    early = ident("a", -1.0)
    middle = ident("m", 2.5)
    other_detector = ident("z", 0.5, det="MIRIFULONG")
    p = plan([*PROGRAM, middle, early, other_detector], stored_of(PROGRAM))
    names = [e.identity.name for e in p.entries]
    assert names == ["z", "a", "e0", "e1", "e2", "m", "e3", "e4", "e5"]
    assert [e.reuse for e in p.entries] == [False, False, *[True] * 3, False, *[True] * 3]
    assert not p.in_place


def test_combinations_of_reasons():
    # Every subset of {fewer inputs, changed reference, new exposure, unfinished} at once.
    reasons = ["fewer", "reference", "new", "unfinished"]
    for chosen in itertools.chain.from_iterable(
        itertools.combinations(reasons, r) for r in range(len(reasons) + 1)
    ):
        named = PROGRAM[2:] if "fewer" in chosen else list(PROGRAM)
        if "reference" in chosen:
            named = [ident(i.name, i.order[1], ref="r2") if i.name == "e4" else i for i in named]
        if "new" in chosen:
            named = [*named, ident("n", 3.5)]
        stored = [
            Stored(i, complete=not ("unfinished" in chosen and k == 1), written=True)
            for k, i in enumerate(PROGRAM)
        ]
        p = plan(named, stored)
        by_name = {e.identity.name: e for e in p.entries}
        assert by_name["e4"].reuse is ("reference" not in chosen)
        assert ("n" in by_name) is ("new" in chosen) and (
            not by_name.get("n") or not by_name["n"].reuse
        )
        dropped_e1 = "fewer" in chosen and "unfinished" in chosen
        assert ("e1" not in by_name) is dropped_e1
        assert p.dropped == ([1] if dropped_e1 else [])
        if "unfinished" in chosen and not dropped_e1:
            assert not by_name["e1"].reuse
        assert p.in_place is (not {"reference", "new"} & set(chosen) and not dropped_e1)
        orders = [e.identity.order for e in p.entries]
        assert orders == sorted(orders)


def test_outputs_owned_are_the_stores_and_its_claims():
    stored = stored_of(PROGRAM[:2])
    owned = owned_outputs(stored, ["x_out"], lambda n: f"{n}_out")
    assert owned == {"e0_out", "e1_out", "x_out"}
    refuse_foreign(["e0_out", "e1_out", "x_out", "new_out"], {"e0_out", "x_out"}, owned)
    with pytest.raises(ConfigError, match="^y_out and 1 more: output exists"):
        refuse_foreign(["e0_out", "y_out", "z_out"], {"e0_out", "y_out", "z_out"}, owned)


@pytest.mark.parametrize(
    ("same", "written", "exists", "writable", "expected"),
    [
        (True, True, True, True, UNCHANGED),
        (True, True, True, False, UNCHANGED),
        (False, True, True, True, WRITE),  # mask changed
        (True, False, True, True, WRITE),  # killed after the store update, before the file
        (True, True, False, True, WRITE),  # output deleted
        (False, False, False, True, WRITE),  # new exposure
        (False, True, True, False, STALE),  # mask changed, input gone
        (True, False, True, False, STALE),  # never written, input gone
        (True, True, False, False, MISSING),  # right once, gone, cannot be remade
    ],
)
def test_output_action(same, written, exists, writable, expected):
    got = output_action(same_mask=same, written=written, exists=exists, writable=writable)
    assert got == expected


SCAN = [
    ("MIRIMAGE", "h1", 10.0, "a"),
    ("MIRIMAGE", "h2", 11.0, "b"),
    ("MIRIFULONG", "h3", 12.0, "c"),
]


def test_history_wholly_before_is_accepted():
    check_history([("MIRIMAGE", "p1", 9.5, "old"), ("MIRIFULONG", "p2", 11.9, "old2")], SCAN)
    # a later exposure on a detector this run does not use does not matter
    check_history([("MIRIFUSHORT", "p3", 50.0, "late")], SCAN)


def test_history_ending_exactly_at_the_start_is_earlier():
    check_history([("MIRIMAGE", "p1", 10.0, "old")], SCAN)


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ([("MIRIMAGE", "p1", 10.5, "late")], "late on MIRIMAGE ends after .* a starts"),
        ([("MIRIFULONG", "p1", 12.01, "late")], "late on MIRIFULONG ends after .* c starts"),
        ([("MIRIFULONG", "h1", 1.0, "twin")], "holds twin, the same exposure as this run's a"),
    ],
)
def test_history_that_overlaps_is_refused(history, message):
    with pytest.raises(ConfigError, match=message):
        check_history(history, SCAN)
