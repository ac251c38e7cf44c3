"""The plan of a run: this run's inputs merged with what the store remembers, frozen.

:func:`make_plan` takes the :class:`Request` (inputs found, parameters checked, paths
resolved) and the store of an earlier run with the same parameters, decides every
exposure's place in the scan (:mod:`miripersist.resume`), refuses what must be refused
before anything is written, names every output, claims them in the store and makes the
store this run writes. What it returns, a :class:`RunPlan`, is plain data the block loop
(:mod:`miripersist.blocks`) works through.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from . import resume
from . import store as store_mod
from .errors import ConfigError, InputError, brief
from .inventory import (
    DETECTOR_SHAPE,
    ArrayLayout,
    Exposure,
    by_detector,
    combine_segments,
    read_exposure,
)
from .kinds import PIXEL_MASKS, file_names
from .memory import Memory
from .methods import Past
from .options import option_name, window_words
from .parameters import Parameters
from .recall import (
    LOOKBACK_DAYS,
    Entry,
    Own,
    Recalled,
    first_exposures,
    mjd_iso,
    reach,
    recall,
    reference_digests,
    source_key,
)
from .writeback import remove_stale_temporaries

log = logging.getLogger(__name__)

#: The parameters an earlier run's store must share with this run to be resumed.
RESUMED_WITH = (
    "method",
    "compress",
    "keep_names",
    "n_unsat_threshold",
    "n_pix_grow_sat",
    "flags",
    "mode",
    "window_days",
    "user_mask_sha256",
    "integrations",
    "dilate",
)


@dataclass(frozen=True)
class Request:
    """What a run is asked to do, resolved: paths absolute, inputs read, parameters checked.

    Attributes
    ----------
    exposures : tuple of Exposure
        The usable inputs found.
    references : tuple
        Each input's SATURATION reference (None: the file carries GROUPDQ).
    skipped : tuple of (str, str)
        Inputs left out, and why.
    output_dir, store : str
    params : Parameters
    user_mask : ndarray of bool
        Pixels flagged in every exposure (all False for none).
    user_mask_path, history : str or None
        As the user named them.
    overwrite : bool
        Start afresh.
    memory : str or None
        The detector memory, as the user named it.
    lookback_days : float
        How long before a detector's first exposure a memory's entry may have ended.
    write_outputs : bool
        False: the store only (sources and masks), no output files (``memory add``).
    """

    exposures: tuple[Exposure, ...]
    references: tuple
    skipped: tuple[tuple[str, str], ...]
    output_dir: str
    store: str
    params: Parameters
    user_mask: np.ndarray
    user_mask_path: str | None
    history: str | None
    overwrite: bool
    memory: str | None = None
    lookback_days: float = LOOKBACK_DAYS
    write_outputs: bool = True

    def readable(self) -> list[str]:
        """Every file the run reads: its inputs, then their SATURATION references."""
        references = {r.path for r in self.references if r is not None}
        return [*(e.path for e in self.exposures), *sorted(references)]

    def record(self) -> dict:
        """The parameters as the store records them, the user mask's digest among them."""
        digest = hashlib.sha256(np.packbits(self.user_mask).tobytes()).hexdigest()
        return self.params.record() | {"user_mask_sha256": digest}


class Earlier(NamedTuple):
    """What the earlier store knows of an exposure."""

    row: int  #: its index there
    written: bool  #: whether its outputs were marked written
    digest: str  #: the digest of what its outputs hold beyond the mask


class BlockPlan(NamedTuple):
    """A block: consecutive exposures of one detector, scanned together."""

    detector: str
    indices: tuple[int, ...]


@dataclass(frozen=True)
class RunPlan:
    """A run, planned. Per-exposure tuples are in scan order.

    Attributes
    ----------
    exposures : tuple of Exposure
    references : tuple
        Per exposure its SATURATION reference (None: GROUPDQ, or only the store knows it).
    outputs : tuple of tuple of str
        Per exposure, the outputs of each of its files, file after file.
    blocks : tuple of BlockPlan
    reuse : tuple of bool
        Whether its sources are taken from the earlier store instead of read.
    retained : tuple of bool
        Whether only the store knows it (not among this run's inputs).
    writable : tuple of bool
        Whether its outputs can be made (its input is here and unchanged).
    earlier : tuple of Earlier or None
    in_place : bool
        Whether the earlier store is updated where it is (else a new one is made beside).
    previous : str or None
        The earlier store's path, whose sources and masks are read.
    target : str
        The store this run writes.
    output_dir : str
    start : mapping of str to object
        Each detector's state before its first exposure (:meth:`Method.begin`).
    recalled : tuple of str
        The identities of the memory's entries the run masks with.
    """

    exposures: tuple[Exposure, ...]
    references: tuple
    outputs: tuple[tuple[str, ...], ...]
    blocks: tuple[BlockPlan, ...]
    reuse: tuple[bool, ...]
    retained: tuple[bool, ...]
    writable: tuple[bool, ...]
    earlier: tuple[Earlier | None, ...]
    in_place: bool
    previous: str | None
    target: str
    output_dir: str
    start: Mapping[str, object]
    recalled: tuple[str, ...] = ()


def make_plan(request: Request) -> RunPlan:
    """Plan the scan against the store; refuse what must be refused; make the target store.

    Nothing is written to the outputs here: the store learns the outputs it will own
    (claims) and, for a run that changes its shape, a new store is made beside it.
    """
    remove_stale_temporaries(request.output_dir)
    for line in store_mod.remove_stale(request.store):
        log.info("%s: %s (left by a run that died)", request.store, line)
    previous = None if request.overwrite else previous_run(request)
    rows = store_rows(previous) if previous is not None else []
    stored = [stored_exposure(row) for row in rows]
    order = resume.plan(
        [_identity(e, r) for e, r in zip(request.exposures, request.references, strict=True)],
        stored if previous is not None else None,
    )
    for j in order.dropped:
        log.warning(
            "%s: left out of the scan: the store knows it but never finished it, "
            "and it is not among this run's inputs",
            rows[j]["path"],
        )
    exposures, references, writable = _merge(order, rows, request)
    rule, params = request.params.rule, request.params
    retained = tuple(entry.retained for entry in order.entries)
    _refuse(rule.name, rule.traits, params.mode, exposures, retained, request.user_mask)
    recalled = recall_memory(request, exposures, references)
    past = Past(request.history, request.memory, recalled.entries)
    start = rule.begin(exposures, past, params)
    outputs = (
        output_paths(exposures, request.output_dir, params)
        if request.write_outputs
        else [()] * len(exposures)
    )
    claimed = _claim(request, previous, stored, outputs)
    target = request.store
    if previous is None or not order.in_place:
        target = _make_target(
            request, previous, exposures, _stored_references(references, order, rows), claimed
        )
    return RunPlan(
        exposures=tuple(exposures),
        references=tuple(references),
        outputs=tuple(outputs),
        blocks=_blocks(exposures, params.batch),
        reuse=tuple(e.reuse and rule.traits.reuses_sources for e in order.entries),
        retained=retained,
        writable=tuple(writable),
        earlier=tuple(_earlier(e.stored_index, rows) for e in order.entries),
        in_place=order.in_place,
        previous=previous.path if previous is not None else None,
        target=target,
        output_dir=request.output_dir,
        start=start,
        recalled=tuple(recalled.used),
    )


def recall_memory(request: Request, exposures: Sequence[Exposure], references: list) -> Recalled:
    """The memory's entries that mask this run's exposures, with their pixels; warnings.

    Says in one line how many entries within reach were left out and why, and, per
    detector, when the lookback reaches before the first exposure the memory holds there.
    """
    own = [Own(e.name, e.detector, e.start_mjd, e.mid_mjd) for e in exposures]
    found: list[Entry] = []
    memory = None
    if request.memory is not None and os.path.exists(request.memory):
        memory = Memory(request.memory)
        found = memory.entries(reach(own, request.lookback_days))
    digests = reference_digests(
        [e.detector for e in exposures], [r.sha256 if r is not None else None for r in references]
    )
    key = source_key(request.params)
    recalled = recall(found, own, key, digests, request.lookback_days)
    if request.memory is not None:
        _warn_of_memory(request, recalled, own, memory.since if memory is not None else {})
    if memory is None or not recalled.used:
        return recalled
    entries = {d: tuple(memory.with_pixels(chosen)) for d, chosen in recalled.entries.items()}
    return Recalled(entries, recalled.left_out)


def _warn_of_memory(
    request: Request, recalled: Recalled, own: list[Own], since: Mapping[str, float]
) -> None:
    """Entries left out, and detectors whose lookback reaches before what the memory holds."""
    if recalled.left_out:
        why = "; ".join(f"{n} {reason}" for reason, n in sorted(recalled.left_out.items()))
        log.warning(
            "%s: %d entries within reach left out (%s): they are not this run's kind of source",
            request.memory,
            sum(recalled.left_out.values()),
            why,
        )
    for detector, first in sorted(first_exposures(own).items()):
        back = first.start_mjd - request.lookback_days
        held = since.get(detector)
        if held is None or held > back:
            log.warning(
                "%s: the lookback reaches back to %s on %s, but the memory holds %s: "
                "persistence from exposures before that is not masked",
                request.memory,
                mjd_iso(back),
                detector,
                f"its exposures from {mjd_iso(held)} only" if held is not None else "none",
            )


def _blocks(exposures: Sequence[Exposure], batch: int) -> tuple[BlockPlan, ...]:
    return tuple(
        BlockPlan(detector, tuple(indices[b0 : b0 + batch]))
        for detector, indices in by_detector(exposures).items()
        for b0 in range(0, len(indices), batch)
    )


def _earlier(index: int | None, rows: list[dict]) -> Earlier | None:
    if index is None:
        return None
    row = rows[index]
    return Earlier(index, bool(row["written"]), row.get("result_sha256") or "")


def _merge(order: resume.Plan, rows: list[dict], request: Request) -> tuple[list, list, list]:
    """The scan's exposures, their references and whether their outputs can be made."""
    exposures: list[Exposure] = []
    references: list = []
    writable: list[bool] = []
    for entry in order.entries:
        if entry.retained:
            assert entry.stored_index is not None  # a retained entry is a row of the store
            e, ok = retained_exposure(rows[entry.stored_index])
            exposures.append(e)
            references.append(None)
            writable.append(ok)
        else:
            assert entry.input_index is not None  # and any other is an input
            exposures.append(request.exposures[entry.input_index])
            references.append(request.references[entry.input_index])
            writable.append(True)
    return exposures, references, writable


def _refuse(name, traits, mode: str, exposures, retained, user_mask: np.ndarray) -> None:
    """Refuse what the rule's traits rule out: a store's exposure not given again, a user mask."""
    if not traits.reuses_sources:
        gone = [e.path for e, r in zip(exposures, retained, strict=True) if r]
        if gone:
            raise ConfigError(
                f"{gone[0]}: the store knows this exposure but it is not among the inputs; "
                f"--method {name} reads every exposure on every run, so give it again, "
                "or start afresh with --overwrite"
            )
    if user_mask.any() and not PIXEL_MASKS.intersection(traits.writes[mode]):
        raise ConfigError(
            f"--user-mask does not apply to --method {name} (it writes no pixel flags: group flags)"
        )


def _claim(request: Request, previous, stored: list, outputs: list) -> list[str]:
    """Refuse outputs another run owns; claim this run's in the live store; the claims."""
    params = request.params
    claimed = list(previous.attrs.get("claimed_outputs", [])) if previous is not None else []
    names = [os.path.basename(o) for paths in outputs for o in paths]
    if not request.overwrite:
        writes = params.rule.traits.writes[params.mode]
        resume.refuse_foreign(
            names,
            set(os.listdir(request.output_dir)),
            resume.owned_outputs(
                stored, claimed, lambda n: file_names(writes, n, params.keep_names)
            ),
            request.output_dir,
        )
    # Outputs are claimed in the live store before any is written, so that a run killed
    # while writing is resumed by the same command, not refused as another run's.
    return sorted({*claimed, *names})


def _stored_references(references: list, order: resume.Plan, rows: list[dict]) -> list:
    """Per exposure, its reference's path and digest, from the store where it has none."""
    out = []
    for r, entry in zip(references, order.entries, strict=True):
        j = entry.stored_index
        if r is not None:
            out.append((r.path, r.sha256))
        elif j is not None:
            out.append((str(rows[j]["saturation_ref"]), rows[j]["saturation_ref_sha256"] or ""))
        else:
            out.append(("", ""))
    return out


def _make_target(
    request: Request, previous, exposures: list, references: list, claimed: list[str]
) -> str:
    """Make the store this run writes: a new one, or one beside the earlier store."""
    if previous is not None:
        store_mod.update_attrs(request.store, {"claimed_outputs": claimed})
    target = request.store if previous is None else store_mod.sibling(request.store, "new")
    store_mod.create(
        target,
        exposures,
        references,
        request.user_mask,
        {
            "parameters": request.record(),
            "versions": store_mod.package_versions(),
            "user_mask": request.user_mask_path or "",
            "history": request.history or "",
            "skipped": [{"path": p, "problem": why} for p, why in request.skipped],
            "detector_shape": list(DETECTOR_SHAPE),
            "claimed_outputs": claimed,
        },
        chunk_exposures=request.params.batch,
    )
    return target


def output_paths(
    exposures: Sequence[Exposure], output_dir: str, params: Parameters
) -> list[tuple[str, ...]]:
    """Per exposure, the outputs of each of its files (segments), file after file."""
    keep_names = params.keep_names
    if keep_names:
        here = os.path.realpath(output_dir)
        for e in exposures:
            for f in e.files:
                if os.path.realpath(os.path.dirname(os.path.abspath(f.path))) == here:
                    raise ConfigError(
                        f"{output_dir}: holds the input {f.name}; with --keep-names the "
                        "outputs take their inputs' names, so give another output directory"
                    )
    writes = params.rule.traits.writes[params.mode]
    outputs = [
        tuple(
            os.path.join(output_dir, name)
            for f in e.files
            for name in file_names(writes, f.path, keep_names)
        )
        for e in exposures
    ]
    names = [os.path.basename(p) for paths in outputs for p in paths]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"two inputs would both be written to {dup} (same file name)")
    return outputs


def _empty_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.listdir(path)


def check_store_path(store_path: str, output_dir: str) -> None:
    """Refuse a store path that is not for a store: a run (with --overwrite) replaces it."""
    if os.path.exists(store_path) and not _empty_dir(store_path):
        if not store_mod.is_store(store_path):
            raise ConfigError(
                f"{store_path}: exists and is not a miripersist store; a run would replace "
                "it, so name a new path for the store"
            )
    parent = os.path.dirname(store_path)
    if os.path.isdir(parent) and not os.access(parent, os.W_OK):
        raise ConfigError(f"{store_path}: the store's directory {parent} is not writable")
    if os.path.commonpath([store_path, output_dir]) == store_path:
        raise ConfigError(
            f"{store_path}: the store cannot be the output directory or hold it; name "
            "another path for the store (by default it is persistence.zarr in the output "
            "directory)"
        )


def previous_run(request: Request) -> store_mod.Stored | None:
    """The store of an earlier run with the same parameters, or None; refuse a different one."""
    store_path, record, history = request.store, request.record(), request.history
    if not os.path.exists(store_path) or _empty_dir(store_path):
        return None
    try:
        previous = store_mod.Stored(store_path)
    except Exception as exc:  # zarr raises many kinds on a damaged store
        raise ConfigError(
            f"{store_path}: store cannot be read ({brief(exc, 120)}); replace it with --overwrite "
            "(overwrite=True in Python)"
        ) from None
    # A store made before methods existed was made with the notebook's.
    old = {"method": "notebook", "compress": False, "keep_names": False}
    old |= previous.attrs.get("parameters", {})
    differ = [k for k in RESUMED_WITH if old.get(k) != record.get(k)]
    # The history's sources are in every mask: a rerun that left it out (a resubmitted job
    # script without the option) would quietly mask less. Adding one updates the masks.
    if previous.attrs.get("history") and previous.attrs["history"] != history:
        differ.append("history")
    if differ:
        # The paths the digests and the history stand for, as the user named them.
        old |= {
            "user_mask": previous.attrs.get("user_mask"),
            "history": previous.attrs.get("history") or "none",
        }
        now = record | {"user_mask": request.user_mask_path, "history": history or "none"}
        what = ", ".join(_change(k, old, now) for k in differ)
        raise ConfigError(
            f"{store_path}: store was made with other parameters ({what}); "
            "use --overwrite (overwrite=True in Python) or another --store (store=...)"
        )
    return previous


def _change(key: str, old: dict, new: dict) -> str:
    """One parameter's change as the user gave it: option name and readable values."""
    if key == "user_mask_sha256":
        before, now = (d.get("user_mask") or "none" for d in (old, new))
        changed = " (its content changed)" if before == now else ""
        return f"--user-mask {before} -> {now}{changed}"
    if key == "window_days":
        before, now = (window_words(float(d.get(key, "inf"))) for d in (old, new))
    elif key == "flags":
        before, now = (d.get("flags_names", d[key]) for d in (old, new))
    else:
        before, now = old.get(key), new.get(key)
    return f"{option_name(key)} {before} -> {now}"


def _identity(e: Exposure, reference) -> resume.Identity:
    reference_path, reference_sha256 = (
        (reference.path, reference.sha256) if reference is not None else ("", "")
    )
    return resume.Identity(
        name=e.name,
        path=os.path.abspath(e.path),
        content=(e.size, e.mtime_ns, e.header_sha256, reference_sha256),
        reference_path=reference_path,
        order=(e.detector, e.mid_mjd, e.name),
        segments=tuple(f.name for f in e.segments),
    )


def store_rows(ds: store_mod.Stored) -> list[dict]:
    """The store's per-exposure coordinates and state as plain rows."""
    names = [
        name
        for name in (*store_mod.EXPOSURE_COORDS, "saturation_ref", "saturation_ref_sha256")
        if name in ds
    ]
    extra = [name for name in ("complete", "written", "result_sha256") if name in ds]
    columns = {name: ds[name] for name in (*names, *extra)}
    rows = []
    for j in range(len(ds)):
        row = {name: columns[name][j] for name in columns}
        for key, value in row.items():
            row[key] = value.item() if isinstance(value, np.generic) else value
        # A store of an earlier version has no reference digest: never equal, so recomputed.
        row.setdefault("saturation_ref_sha256", None)
        rows.append(row)
    return rows


def stored_exposure(row: dict) -> resume.Stored:
    """A store row as :mod:`miripersist.resume` compares it with this run's inputs."""
    ident = resume.Identity(
        name=str(row["file"]),
        path=str(row["path"]),
        content=(
            int(row["size"]),
            int(row["mtime_ns"]),
            str(row["header_sha256"]),
            row["saturation_ref_sha256"],
        ),
        reference_path=str(row["saturation_ref"]),
        order=(str(row["detector"]), float(row["mid_mjd"]), str(row["file"])),
        segments=_segment_names(row),
    )
    return resume.Stored(ident, bool(row["complete"]), bool(row["written"]))


def _segment_names(row: dict) -> tuple[str, ...]:
    text = str(row.get("segment_files", "") or "")
    return tuple(text.split(",")) if text else ()


def retained_exposure(row: dict) -> tuple[Exposure, bool]:
    """An exposure only the store knows, and whether its output can be made again.

    From its recorded input when that is still there and unchanged; else from the store's
    coordinates (enough to place and scan it, not to read or copy it).
    """
    path = str(row["path"])
    segments = _segment_names(row)
    paths = [os.path.join(os.path.dirname(path), s) for s in segments] or [path]
    try:
        read = [read_exposure(p) for p in paths if os.path.isfile(p)]
        files = [f for f in read if f is not None]  # gone, or no longer a MIRI exposure
        e = None if len(files) < len(paths) else combine_segments(files) if segments else files[0]
    except InputError:
        e = None
    recorded = (int(row["size"]), int(row["mtime_ns"]), str(row["header_sha256"]))
    if e is not None and (e.size, e.mtime_ns, e.header_sha256) == recorded:
        return e, True
    nints, ngroups = int(row["nints"]), int(row["ngroups"])
    ysize, xsize = int(row["ysize"]), int(row["xsize"])
    e = Exposure(
        path=path,
        detector=str(row["detector"]),
        filter=str(row["filter"]),
        subarray=str(row["subarray"]),
        xstart=int(row["xstart"]),
        ystart=int(row["ystart"]),
        xsize=xsize,
        ysize=ysize,
        nints=nints,
        ngroups=ngroups,
        start_mjd=float(row["start_mjd"]),
        mid_mjd=float(row["mid_mjd"]),
        end_mjd=float(row["end_mjd"]),
        sci=ArrayLayout(0, (nints, ngroups, ysize, xsize), 16),
        size=recorded[0],
        mtime_ns=recorded[1],
        header_sha256=recorded[2],
    )
    # Enough of each segment to name its output.
    return replace(e, segments=tuple(replace(e, path=p) for p in paths) if segments else ()), False
