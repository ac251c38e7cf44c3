"""What a run recalls of the detector's memory: which earlier exposures' sources mask it.

The memory (:mod:`miripersist.memory`) holds, per detector, the sources of every exposure
any run has seen. A run takes from it, on each of its detectors, every entry that comes
before one of its own exposures in scan order and that it does not hold itself: those
that ended within the lookback before its first exposure, and every one between its own
(programs interleave). The rule then masks with them exactly as with its own sources.

An entry serves only a run whose sources mean the same thing: the same method and the
same parameters that shape a source (:data:`SOURCE_PARAMETERS`), and a SATURATION
reference of the same content. Everything here is pure: plain data in, plain data out.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: The parameters that decide what a source is: an entry's must be the run's.
SOURCE_PARAMETERS = ("method", "n_unsat_threshold", "n_pix_grow_sat", "integrations", "dilate")

#: MJD 0, as a time.
MJD_ZERO = datetime.datetime(1858, 11, 17)

#: How far back a run looks by default (days): negative persistence lasts tens of hours.
LOOKBACK_DAYS = 1.0


def source_key(params: object) -> str:
    """The digest of the parameters that shape sources (``params``: a Parameters)."""
    shaped = {name: getattr(params, name) for name in SOURCE_PARAMETERS}
    return hashlib.sha256(json.dumps(shaped, sort_keys=True).encode()).hexdigest()[:32]


def source_parameters(params: object) -> dict:
    """The parameters that shape sources, as the memory records them beside their key."""
    return {name: getattr(params, name) for name in SOURCE_PARAMETERS}


def default_lookback(window_days: float) -> float:
    """24 hours, or the window when it is finite and longer."""
    if math.isfinite(window_days) and window_days > LOOKBACK_DAYS:
        return window_days
    return LOOKBACK_DAYS


@dataclass(frozen=True)
class Entry:
    """One exposure's sources as the memory keeps them.

    Attributes
    ----------
    file : str
        The exposure's file name (its first segment's).
    detector : str
    header_sha256 : str
        Digest of its headers: with ``file``, the exposure's identity.
    start_mjd, mid_mjd, end_mjd : float
    program, observation, visit : str
        From the headers (PROGRAM, OBSERVTN, VISIT), or the archive's file name.
    key : str
        :func:`source_key` of the parameters that made the sources.
    reference_sha256 : str
        Digest of the SATURATION reference they were computed with ("" for GROUPDQ).
    pixels : ndarray of int32, optional
        Flat indices (``y * 1032 + x``) of the source pixels, detector coordinates; None
        until read.
    """

    file: str
    detector: str
    header_sha256: str
    start_mjd: float
    mid_mjd: float
    end_mjd: float
    program: str = ""
    observation: str = ""
    visit: str = ""
    key: str = ""
    reference_sha256: str = ""
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def identity(self) -> str:
        """One text for the same exposure with the same kind of sources."""
        return f"{self.file}|{self.header_sha256}|{self.key}|{self.reference_sha256}"

    @property
    def order(self) -> tuple[float, str]:
        """Its place in a detector's scan, as the planner orders exposures."""
        return (self.mid_mjd, self.file)


@dataclass(frozen=True)
class Own:
    """What recall needs of one of a run's own exposures."""

    file: str
    detector: str
    start_mjd: float
    mid_mjd: float

    @property
    def order(self) -> tuple[float, str]:
        """As :attr:`Entry.order`."""
        return (self.mid_mjd, self.file)


@dataclass(frozen=True)
class Recalled:
    """What a run takes from the memory.

    Attributes
    ----------
    entries : mapping of str to tuple of Entry
        Per detector, the entries that mask the run's exposures, in scan order.
    left_out : mapping of str to int
        Entries within reach that serve other parameters, counted by reason.
    """

    entries: Mapping[str, tuple[Entry, ...]]
    left_out: Mapping[str, int]

    @property
    def used(self) -> list[str]:
        """The identities of every entry taken, sorted."""
        return sorted(e.identity for entries in self.entries.values() for e in entries)


def recall(
    entries: Sequence[Entry],
    own: Sequence[Own],
    key: str,
    references: Mapping[str, set[str]],
    lookback_days: float,
) -> Recalled:
    """The entries that mask a run's exposures (``own``) on each of its detectors.

    Parameters
    ----------
    entries : sequence of Entry
        The memory's entries (any order, pixels not needed).
    own : sequence of Own
        The run's exposures.
    key : str
        The run's :func:`source_key`.
    references : mapping of str to set of str
        Per detector, the digests of the SATURATION references the run uses there (empty
        or absent: the run reads GROUPDQ there, and any reference serves).
    lookback_days : float
        How long before its first exposure on a detector an entry may have ended.
    """
    reach = _reach(own)
    names = {(o.detector, o.file) for o in own}
    taken: dict[str, list[Entry]] = {d: [] for d in reach}
    left_out: Counter[str] = Counter()
    for e in entries:
        if e.detector not in reach or (e.detector, e.file) in names:
            continue
        first, last = reach[e.detector]
        if e.order >= last.order:
            continue  # after every exposure of the run: it masks none of them
        if e.order < first.order and e.end_mjd < first.start_mjd - lookback_days:
            continue  # before the lookback
        why = _mismatch(e, key, references.get(e.detector, set()))
        if why:
            left_out[why] += 1
        else:
            taken[e.detector].append(e)
    return Recalled(
        {d: tuple(sorted(found, key=lambda e: e.order)) for d, found in taken.items()},
        dict(left_out),
    )


def reach(own: Sequence[Own], lookback_days: float) -> dict[str, tuple[float, float]]:
    """Per detector, what :func:`recall` may take of the memory: ``(end, mid)``.

    The entries that end at or after ``end`` and whose mid time is before ``mid``: a
    superset of those it takes, cheap to select.
    """
    return {
        d: (first.start_mjd - lookback_days, float(np.nextafter(last.mid_mjd, np.inf)))
        for d, (first, last) in _reach(own).items()
    }


def first_exposures(own: Sequence[Own]) -> dict[str, Own]:
    """Per detector, the run's first exposure in scan order."""
    return {d: first for d, (first, _) in _reach(own).items()}


def mjd_iso(mjd: float) -> str:
    """A time (MJD, UTC) as ``2026-12-07T20:41:30``."""
    since = datetime.timedelta(days=mjd)
    return (MJD_ZERO + since).isoformat(timespec="seconds")


def _reach(own: Sequence[Own]) -> dict[str, tuple[Own, Own]]:
    """Per detector, the run's first and last exposures in scan order."""
    reach: dict[str, tuple[Own, Own]] = {}
    for o in own:
        first, last = reach.get(o.detector, (o, o))
        reach[o.detector] = (min(first, o, key=_order), max(last, o, key=_order))
    return reach


def reference_digests(
    detectors: Sequence[str], digests: Sequence[str | None]
) -> dict[str, set[str]]:
    """Per detector, the SATURATION references' digests of a run (None: a GROUPDQ input)."""
    out: dict[str, set[str]] = {}
    for detector, digest in zip(detectors, digests, strict=True):
        if digest is not None:
            out.setdefault(detector, set()).add(digest)
    return out


def _order(o: Own) -> tuple[float, str]:
    return o.order


def _mismatch(entry: Entry, key: str, references: set[str]) -> str:
    """Why ``entry`` cannot serve the run ("" when it can)."""
    if entry.key != key:
        return "made with other source parameters"
    if references and entry.reference_sha256 and entry.reference_sha256 not in references:
        return "made with another SATURATION reference"
    return ""


def dedupe(entries: Sequence[Entry]) -> list[Entry]:
    """Each identity once, the first given kept (the memory lists its batches oldest first)."""
    seen: set[str] = set()
    out = []
    for e in entries:
        if e.identity not in seen:
            seen.add(e.identity)
            out.append(e)
    return out


@dataclass(frozen=True)
class RunRecord:
    """What the memory keeps of a run, to tell when a later entry makes it stale.

    Attributes
    ----------
    store, output_dir : str
        The run's store and output directory (a run is known by its store).
    key : str
        Its :func:`source_key`.
    parameters : dict
        The parameters behind ``key``, for people.
    lookback_days : float
    references : mapping of str to list of str
        Per detector, its SATURATION references' digests.
    own : tuple of Own
        Its exposures.
    used : tuple of str
        The identities of the entries it took.
    made : str
        When it was recorded (ISO 8601, UTC).
    """

    store: str
    output_dir: str
    key: str
    parameters: dict
    lookback_days: float
    references: Mapping[str, list[str]]
    own: tuple[Own, ...]
    used: tuple[str, ...]
    made: str = ""

    def recall(self, entries: Sequence[Entry]) -> Recalled:
        """What the run would take from ``entries`` now."""
        refs = {d: set(r) for d, r in self.references.items()}
        return recall(entries, self.own, self.key, refs, self.lookback_days)

    def missed(self, entries: Sequence[Entry]) -> list[Entry]:
        """Entries the run would take now and did not: not empty, the run is stale."""
        used = set(self.used)
        now = self.recall(entries).entries
        return [e for found in now.values() for e in found if e.identity not in used]

    def as_json(self) -> dict:
        """As the memory writes it."""
        return {
            "store": self.store,
            "output_dir": self.output_dir,
            "key": self.key,
            "parameters": self.parameters,
            "lookback_days": self.lookback_days,
            "references": {d: sorted(r) for d, r in self.references.items()},
            "own": [[o.file, o.detector, o.start_mjd, o.mid_mjd] for o in self.own],
            "used": list(self.used),
            "made": self.made,
        }

    @classmethod
    def from_json(cls, data: dict) -> RunRecord:
        """As :meth:`as_json` wrote it."""
        return cls(
            store=data["store"],
            output_dir=data["output_dir"],
            key=data["key"],
            parameters=data.get("parameters", {}),
            lookback_days=float(data["lookback_days"]),
            references={d: list(r) for d, r in data.get("references", {}).items()},
            own=tuple(Own(f, d, float(s), float(m)) for f, d, s, m in data["own"]),
            used=tuple(data["used"]),
            made=data.get("made", ""),
        )


def coverage(entries: Sequence[Entry]) -> dict[str, dict]:
    """Per detector: what the memory holds there.

    A dict each: the time span (``start``, ``end``, MJD), the exposures (``files``: each
    file name and header digest) and their ``programs``.
    """
    out: dict[str, dict] = {}
    for e in entries:
        d = out.setdefault(
            e.detector, {"start": math.inf, "end": -math.inf, "files": set(), "programs": set()}
        )
        d["start"] = min(d["start"], e.start_mjd)
        d["end"] = max(d["end"], e.end_mjd)
        d["files"].add((e.file, e.header_sha256))
        if e.program:
            d["programs"].add(e.program)
    return out
