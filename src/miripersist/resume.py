"""What a rerun does: which sources to reuse, which outputs to write, what to refuse.

Pure functions over plain records: the engine gathers what the inputs, the store and the
output directory hold, asks here, and does the I/O. The rules:

- An exposure is known by its file name (a JWST file name names one exposure); its
  stored sources are reused when its content is the same: file size, modification time,
  header digest and the content digest of its SATURATION reference.
- A store is the program's memory. Exposures it knows that this run does not name stay
  in the scan with their stored sources; exposures it knows but never finished, and that
  this run does not name, are left out (they have no sources to give).
- An output may be replaced only if the store made it or claimed it before writing it.
- An output is written when its mask changed, when it was never recorded as written, or
  when it is missing; an output whose mask changed but whose input is gone is stale.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Identity:
    """What decides an exposure's sources and where its output goes.

    Attributes
    ----------
    name : str
        Input file name: the exposure's identity across moves of its directory.
    path : str
        Absolute input path.
    content : tuple
        ``(size, mtime_ns, header_sha256, reference_sha256)``: equal content, equal sources.
    reference_path : str
        Where the SATURATION reference was read from (recorded, not compared for reuse).
    order : tuple
        Scan order key ``(detector, mid_mjd, name)``.
    segments : tuple of str
        File names of the exposure's segments (empty for an exposure in one file).
    """

    name: str
    path: str
    content: tuple
    reference_path: str
    order: tuple
    segments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stored:
    """An exposure the store holds, with the state of its arrays and output."""

    identity: Identity
    complete: bool
    written: bool


@dataclass(frozen=True)
class Entry:
    """One exposure of this run's scan.

    Attributes
    ----------
    identity : Identity
        The exposure (for a retained one, as the store recorded it).
    input_index : int or None
        Index among this run's inputs; None for an exposure only the store knows.
    stored_index : int or None
        Index in the store; None for an exposure the store does not know.
    reuse : bool
        Its sources come from the store instead of the file.
    """

    identity: Identity
    input_index: int | None
    stored_index: int | None
    reuse: bool

    @property
    def retained(self) -> bool:
        """Known to the store only: not named by this run."""
        return self.input_index is None


@dataclass(frozen=True)
class Plan:
    """The scan of a run and how it relates to the store.

    Attributes
    ----------
    entries : list of Entry
        Every exposure of the scan, in scan order.
    in_place : bool
        The scan is exactly the store's exposures, unchanged: update the store in place.
    dropped : list of int
        Stored exposures left out: not named by this run and never finished.
    """

    entries: list[Entry]
    in_place: bool
    dropped: list[int]


def plan(inputs: Sequence[Identity], stored: Sequence[Stored] | None) -> Plan:
    """Merge this run's inputs with what the store knows.

    Parameters
    ----------
    inputs : sequence of Identity
        This run's exposures (any order; names are unique).
    stored : sequence of Stored or None
        The store's exposures in store order, or None for no usable store (a fresh run or
        ``--overwrite``).

    Returns
    -------
    Plan
    """
    stored = list(stored or ())
    by_name = {s.identity.name: j for j, s in enumerate(stored)}
    entries: list[Entry] = []
    named: set[int] = set()
    for i, ident in enumerate(inputs):
        j = by_name.get(ident.name)
        if j is not None:
            named.add(j)
        reuse = j is not None and stored[j].complete and stored[j].identity.content == ident.content
        entries.append(Entry(ident, i, j, reuse))
    dropped = []
    for j, s in enumerate(stored):
        if j in named:
            continue
        if s.complete:
            entries.append(Entry(s.identity, None, j, True))
        else:
            dropped.append(j)
    entries.sort(key=lambda e: e.identity.order)
    in_place = (
        bool(stored)
        and not dropped
        and [e.stored_index for e in entries] == list(range(len(stored)))
        and all(e.identity == stored[e.stored_index].identity for e in entries)
    )
    return Plan(entries, in_place, dropped)


def owned_outputs(stored: Sequence[Stored], claimed: Collection[str], out: Callable) -> set[str]:
    """Output names a store may replace: its exposures' and those it claimed before writing.

    ``out`` maps an input file name to its output name, or to a tuple of names when a
    method writes several files for one input; a segmented exposure has outputs per
    segment.
    """
    names = (out(n) for s in stored for n in (s.identity.segments or (s.identity.name,)))
    return {o for made in names for o in ((made,) if isinstance(made, str) else made)} | set(
        claimed
    )


def refuse_foreign(
    planned: Sequence[str], existing: Collection[str], owned: Collection[str], directory: str = ""
) -> None:
    """Stop before anything is written if an output exists that the store never made.

    ``planned``, ``existing`` and ``owned`` are file names in the output ``directory``.

    Raises
    ------
    ConfigError
        Naming the first such output and how many more there are.
    """
    clash = [name for name in planned if name in existing and name not in owned]
    if clash:
        more = f" and {len(clash) - 1} more" if len(clash) > 1 else ""
        raise ConfigError(
            f"{os.path.join(directory, clash[0])}{more}: output exists and was not made by "
            "this store (replace it with --overwrite, overwrite=True in Python, or choose "
            "another output directory)"
        )


#: What to do with an exposure's output once its mask is known.
UNCHANGED, WRITE, STALE, MISSING = "unchanged", "write", "stale", "missing"


def output_action(*, same_mask: bool, written: bool, exists: bool, writable: bool) -> str:
    """Decide an output's fate.

    Parameters
    ----------
    same_mask : bool
        The stored mask equals the one just computed (False for an exposure new to the store).
    written : bool
        The store recorded the output as written with the stored mask.
    exists : bool
        The output file is there.
    writable : bool
        Its input is at hand, unchanged, so the output can be made.

    Returns
    -------
    str
        ``"unchanged"``, ``"write"``, ``"stale"`` (must be rewritten, cannot be) or
        ``"missing"`` (gone, but was right and cannot be remade; not this run's to fix).
    """
    if same_mask and written and exists:
        return UNCHANGED
    if writable:
        return WRITE
    return MISSING if same_mask and written else STALE


def check_history(
    history: Sequence[tuple[str, str, float, str]], scan: Sequence[tuple[str, str, float, str]]
) -> None:
    """Refuse a history that is not wholly before this run.

    Parameters
    ----------
    history, scan : sequence of (detector, header_sha256, time, file)
        For the history: each finished exposure with its end time. For the scan: each
        exposure with its start time.

    Raises
    ------
    ConfigError
        If the history holds one of this run's exposures, or an exposure on a detector
        that ends after the start of this run's first exposure on that detector.
    """
    ours = {digest: name for _, digest, _, name in scan}
    first: dict[str, tuple[float, str]] = {}
    for detector, _, start, name in scan:
        if detector not in first or start < first[detector][0]:
            first[detector] = (start, name)
    for detector, digest, end, name in history:
        if digest in ours:
            raise ConfigError(
                f"--history holds {name}, the same exposure as this run's {ours[digest]}: "
                "a history is an earlier visit, not part of this run"
            )
        if detector in first and end > first[detector][0]:
            raise ConfigError(
                f"--history exposure {name} on {detector} ends after this run's first "
                f"exposure {first[detector][1]} starts: a history must be wholly earlier"
            )
