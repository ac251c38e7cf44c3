"""The memory's side of a run: its exposures go in, its record too, and stale runs are named.

After a run with ``--memory`` (and for ``miripersist memory add``, a run of the store
only), each of its finished exposures becomes an entry: its sources as flat pixel
indices, its times, its program, observation and visit, and what shaped the sources. The
run's record says which entries it used, so that a later entry it should have used makes
it stale (:meth:`miripersist.recall.RunRecord.missed`).
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import store as store_mod
from .inventory import Exposure, archive_name
from .memory import Memory
from .planner import Request, RunPlan
from .recall import (
    Entry,
    Own,
    RunRecord,
    coverage,
    mjd_iso,
    reference_digests,
    source_key,
    source_parameters,
)
from .writeback import remove_stale_temporaries

log = logging.getLogger(__name__)

#: Exposures whose source images are read from the store at once.
CHUNK = 32


def ids(exposure: Exposure) -> tuple[str, str, str]:
    """Program, observation and visit: from the headers, else from an archive file name."""
    if exposure.program:
        return exposure.program, exposure.observation, exposure.visit
    parts = archive_name(exposure.name)
    return parts.get("program", ""), parts.get("obs", ""), parts.get("visit", "")


def entries_from_store(
    path: str, exposures: Sequence[Exposure], key: str, chunk: int = CHUNK
) -> list[Entry]:
    """The finished exposures of a run's store as memory entries, with their pixels.

    ``exposures`` are the store's, in its order (a run's plan).
    """
    stored = store_mod.Stored(path)
    files = [str(f) for f in stored["file"]]
    assert files == [e.name for e in exposures], "the plan's exposures are the store's"
    done = np.flatnonzero(stored["complete"])
    references = stored["saturation_ref_sha256"]
    out = []
    for lo in range(0, len(done), chunk):
        part = done[lo : lo + chunk]
        for i, image in zip(part, stored.images("source", list(part)), strict=True):
            e = exposures[i]
            program, observation, visit = ids(e)
            out.append(
                Entry(
                    file=e.name,
                    detector=e.detector,
                    header_sha256=e.header_sha256,
                    start_mjd=e.start_mjd,
                    mid_mjd=e.mid_mjd,
                    end_mjd=e.end_mjd,
                    program=program,
                    observation=observation,
                    visit=visit,
                    key=key,
                    reference_sha256=str(references[i]),
                    pixels=np.flatnonzero(image).astype(np.int32),
                )
            )
    return out


@dataclass(frozen=True)
class Remembered:
    """What putting a run into the memory did: entries new to it, and runs made stale."""

    added: int
    stale: list[RunRecord]


def remember(plan: RunPlan, request: Request, path: str, command: str = "run") -> Remembered:
    """Put a finished run's exposures into the memory at ``path`` (a run: its record too).

    The other runs the new entries make stale are warned of.
    """
    memory = Memory(path, create=True)
    key = source_key(request.params)
    entries = entries_from_store(request.store, plan.exposures, key)
    added = memory.add(entries, {"command": command, "store": request.store, "at": _now()})
    if command == "run":
        memory.record(run_record(plan, request, key))
    return Remembered(added, warn_of_stale(memory, entries, request.store))


def run_record(plan: RunPlan, request: Request, key: str) -> RunRecord:
    """What the memory keeps of this run."""
    references = reference_digests(
        [e.detector for e in plan.exposures],
        [r.sha256 if r is not None else None for r in plan.references],
    )
    return RunRecord(
        store=request.store,
        output_dir=request.output_dir,
        key=key,
        parameters=source_parameters(request.params),
        lookback_days=request.lookback_days,
        references={d: sorted(r) for d, r in references.items()},
        own=tuple(Own(e.name, e.detector, e.start_mjd, e.mid_mjd) for e in plan.exposures),
        used=plan.recalled,
        made=_now(),
    )


def warn_of_stale(memory: Memory, added: Sequence[Entry], store: str) -> list[RunRecord]:
    """Warn of, and return, the recorded runs that ``added`` entries make stale."""
    stale = []
    for record in memory.runs():
        if record.store == store:
            continue
        # What the run would take of these entries and did not (each is judged alone).
        missed = record.missed(added)
        if missed:
            stale.append(record)
            more = f" and {len(missed) - 1} more" if len(missed) > 1 else ""
            log.warning(
                "%s: the run of %s (store %s) is stale: %s%s mask it too; run its command "
                "again to bring its outputs up to date",
                memory.path,
                record.output_dir,
                record.store,
                missed[0].file,
                more,
            )
    return stale


def status(path: str) -> dict:
    """What a memory covers, per detector, and which recorded runs are stale.

    Returns
    -------
    dict
        ``detectors``: per detector its ``start`` and ``end`` (ISO UTC), ``exposures``
        and ``programs``; ``runs``: each recorded run's ``store``, ``output_dir``,
        ``made``, ``exposures`` and ``stale`` (the entries it should have used, by file).
    """
    memory = Memory(path)
    entries = memory.entries()
    detectors = {
        d: {
            "start": mjd_iso(c["start"]),
            "end": mjd_iso(c["end"]),
            "exposures": len(c["files"]),
            "programs": sorted(c["programs"]),
        }
        for d, c in sorted(coverage(entries).items())
    }
    runs = [
        {
            "store": r.store,
            "output_dir": r.output_dir,
            "made": r.made,
            "exposures": len(r.own),
            "stale": sorted({e.file for e in r.missed(entries)}),
        }
        for r in sorted(memory.runs(), key=lambda r: r.store)
    ]
    return {"memory": path, "entries": len(entries), "detectors": detectors, "runs": runs}


def scratch(memory: str) -> str:
    """A hidden directory beside the memory for a run of the store only (``memory add``).

    Named for its process, so that one left by a killed add is removed by the next.
    """
    parent = os.path.dirname(os.path.abspath(memory))
    os.makedirs(parent, exist_ok=True)
    remove_stale_temporaries(parent, suffix="")
    path = os.path.join(parent, f".tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}")
    os.makedirs(path)
    return path


def discard(path: str) -> None:
    """Remove a :func:`scratch` directory."""
    shutil.rmtree(path, ignore_errors=True)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
