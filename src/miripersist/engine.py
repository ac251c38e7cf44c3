"""The run: inventory, thresholds, lazy sources, scan, store, write-back.

Exposures are processed per detector in blocks of ``Parameters.batch`` consecutive
exposures. Within a block every tile of every exposure is computed in parallel; the
previous block's store update and files are made meanwhile, so reading and writing
overlap. Memory is bounded by the block size, not by the number of exposures.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import dask
import numpy as np

from . import lock as run_lock
from . import resume
from . import store as store_mod
from .errors import ConfigError, InputError, MiripersistError, brief
from .execute import (
    FILES_PER_TASK,
    Bits,
    has_client,
    on_cluster,
    on_local_threads,
    shared,
    write_in,
    write_on_cluster,
)
from .fitsimage import smallest_unsigned
from .inventory import (
    DETECTOR_SHAPE,
    ArrayLayout,
    Exposure,
    by_detector,
    combine_segments,
    discover,
    inventory,
    read_exposure,
)
from .methods import Method
from .options import option_name, window_words
from .parameters import Parameters
from .paths import local_path, local_paths, optional_path
from .reader import lazy_sources
from .recognise import CARD as RESULT_CARD
from .recognise import COMMENT as RESULT_COMMENT
from .recognise import holds, output_digest
from .saturation import grow
from .sink import Flight
from .thresholds import Window, assign_references
from .usermask import read_user_mask
from .writeback import remove_stale_temporaries, write_copy, write_sidecar

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger(__name__)


def _header_cards(params: Parameters, n_masked: int) -> dict[str, object]:
    return params.header_cards(n_masked, store_mod.package_versions()["miripersist"])


def _write_one(
    exposure: Exposure, applied: np.ndarray | Bits, n_masked: int, final: str, params: Parameters
) -> str | None:
    """Write one pixel-flag output; its path, or None when ``final`` already held it."""
    mask = np.asarray(applied, dtype=bool)
    result = output_digest(exposure, mask, params.record())
    if holds(final, result):  # left whole by a run that stopped before recording it
        return None
    # The mask travels to the worker (1 byte a pixel, or a bit to another process), the DQ
    # image is made there: uint32 in a copy's PIXELDQ, the smallest type that holds the
    # flags in a sidecar.
    dtype = np.dtype(np.uint32) if params.mode == "copy" else smallest_unsigned(params.flags)
    dq = mask.astype(dtype)  # one new image (0 and 1)
    dq *= dtype.type(params.flags)
    cards = _header_cards(params, n_masked)
    cards[RESULT_CARD] = (result, RESULT_COMMENT)
    try:
        if params.mode == "copy":
            write_copy(exposure, dq, final, cards)
        else:
            write_sidecar(dq, final, cards, compress=params.compress)
    except OSError as exc:
        raise MiripersistError(
            f"{final}: cannot write ({exc.strerror or exc}); nothing was left behind, "
            "run the same command again to finish"
        ) from None
    return final


def _output_paths(
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
    outputs = [
        tuple(
            os.path.join(output_dir, name)
            for f in e.files
            for name in params.rule.output_names(f.path, params.mode, keep_names)
        )
        for e in exposures
    ]
    names = [os.path.basename(p) for paths in outputs for p in paths]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"two inputs would both be written to {dup} (same file name)")
    return outputs


def _lazy_sources(exposure: Exposure, thresholds, params: Parameters):
    """Sources of a whole exposure, lazily, as its method defines them."""
    parts = params.rule.lazy_sources(exposure, thresholds, params, lazy_sources)
    return params.rule.combine(parts)


def one_history(history: str | os.PathLike | Sequence | None) -> str | os.PathLike | None:
    """The one ``--history`` of a run; more than one is refused.

    A store made with ``--history`` holds the history before it, so visits chain run
    after run; two stores side by side would each have to be checked against the other.
    """
    if history is None or isinstance(history, str | os.PathLike):
        return history
    given = list(history)
    if len(given) > 1:
        raise ConfigError(
            f"--history given {len(given)} times ({', '.join(map(str, given))}): give one, "
            "the store of the latest earlier visit (a store made with --history holds the "
            "visits before it)"
        )
    return given[0] if given else None


def _user_mask_digest(mask: np.ndarray) -> str:
    return hashlib.sha256(np.packbits(mask).tobytes()).hexdigest()


def _warn_if_sidecars_unread(params: Parameters) -> None:
    """Say so when the jwst installed here cannot read the sidecars a run would write."""
    if params.mode != "sidecar" or not params.rule.writes_dq_sidecars:
        return
    installed = store_mod.package_versions()["jwst"]
    major = installed.split(".", 1)[0]
    if major.isdigit() and int(major) < 2:
        log.warning(
            "warning: sidecars are read by dq_init's user_supplied_dq, which jwst %s "
            "(installed here) does not have (jwst 2.0 added it); for calwebb_detector1 of "
            "this jwst use --mode copy",
            installed,
        )


def _empty_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.listdir(path)


def _check_store_path(store_path: str, output_dir: str) -> None:
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


def _previous_run(
    store_path: str, record: dict, user_mask: str | None, history: str | None
) -> store_mod.Stored | None:
    """The store of an earlier run with the same parameters, or None; refuse a different one."""
    if not os.path.exists(store_path) or _empty_dir(store_path):
        return None
    try:
        previous = store_mod.Stored(store_path)
    except Exception as exc:  # zarr raises many kinds on a damaged store
        raise ConfigError(
            f"{store_path}: store cannot be read ({brief(exc, 120)}); replace it with --overwrite "
            "(overwrite=True in Python)"
        ) from None
    old = previous.attrs.get("parameters", {})
    keys = (
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
    # A store made before methods existed was made with the notebook's.
    old = {"method": "notebook", "compress": False, "keep_names": False, **old}
    differ = [k for k in keys if old.get(k) != record.get(k)]
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
        now = record | {"user_mask": user_mask, "history": history or "none"}
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


def _identity(e: Exposure, reference_path: str, reference_sha256: str) -> resume.Identity:
    return resume.Identity(
        name=e.name,
        path=os.path.abspath(e.path),
        content=(e.size, e.mtime_ns, e.header_sha256, reference_sha256),
        reference_path=reference_path,
        order=(e.detector, e.mid_mjd, e.name),
        segments=tuple(f.name for f in e.segments),
    )


def _store_rows(ds: store_mod.Stored) -> list[dict]:
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


def _stored_exposure(row: dict) -> resume.Stored:
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


def _retained_exposure(row: dict) -> tuple[Exposure, bool]:
    """An exposure only the store knows, and whether its output can be made again.

    From its recorded input when that is still there and unchanged; else from the store's
    coordinates (enough to place and scan it, not to read or copy it).
    """
    path = str(row["path"])
    segments = _segment_names(row)
    paths = [os.path.join(os.path.dirname(path), s) for s in segments] or [path]
    try:
        files = [read_exposure(p) if os.path.isfile(p) else None for p in paths]
        e = None if None in files else combine_segments(files) if segments else files[0]
    except InputError:
        e = None
    if e is not None and (e.size, e.mtime_ns, e.header_sha256) == (
        int(row["size"]),
        int(row["mtime_ns"]),
        str(row["header_sha256"]),
    ):
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
        size=int(row["size"]),
        mtime_ns=int(row["mtime_ns"]),
        header_sha256=str(row["header_sha256"]),
    )
    # Enough of each segment to name its output.
    return replace(e, segments=tuple(replace(e, path=p) for p in paths) if segments else ()), False


def _warn_if_window_masks_nothing(exposures: Sequence[Exposure], params: Parameters) -> None:
    """Warn when the window is shorter than every gap between consecutive exposures."""
    if math.isinf(params.window_days) or params.rule.flags_own_exposure:
        return
    for detector, indices in by_detector(exposures).items():
        if len(indices) < 2:
            continue
        start = np.array([exposures[i].start_mjd for i in indices])
        stamps = params.rule.stamp(start, np.array([exposures[i].end_mjd for i in indices]))
        shortest = float(np.min(start[1:] - stamps[:-1]))
        if not params.rule.masked(np.array([stamps[0]]), stamps[0] + shortest, params.window_days)[
            0
        ]:
            log.warning(
                "--window %s is shorter than the shortest gap between consecutive %s "
                "exposures (%s): it can mask nothing there",
                window_words(params.window_days),
                detector,
                window_words(shortest),
            )


def _check_windows(exposures, references, skip_bad: bool):
    """Check before any writing that every reference covers its exposure's subarray."""
    keep, bad = [], []
    for e, r in zip(exposures, references, strict=True):
        try:
            if r is not None:
                r.window_for(e)
            keep.append((e, r))
        except InputError as exc:
            bad.append((e.path, str(exc)))
    if bad and not skip_bad:
        raise InputError.listing([why for _, why in bad])
    if not keep:
        raise ConfigError("none of the inputs is a usable MIRI exposure")
    return [e for e, _ in keep], [r for _, r in keep], bad


def _local_workers(mode: str) -> int:
    # A copy's write-back waits on the disk (fsync of 60-100 MB) far more than it computes:
    # more threads than cores overlap those waits. Sidecars are small: one thread a core
    # (at least two, so that reads of several files are in flight on a cold cache) reads
    # cold as fast and runs warm faster, with less memory (docs/benchmarks.md).
    cores = os.cpu_count() or 1
    return max(4, 2 * cores) if mode == "copy" else max(2, cores)


def run(
    inputs: str | Sequence[str],
    output_dir: str,
    saturation_refs: str | Sequence[str] = (),
    params: Parameters | None = None,
    store: str | None = None,
    user_mask: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    history: str | None = None,
    skip_bad: bool = False,
    verify_checksums: bool = False,
) -> xr.Dataset:
    """Mask persistence in a set of MIRI uncal files.

    A rerun with the same store and parameters resumes: sources already in the store for
    unchanged inputs are reused, and only outputs that are missing or whose masks changed
    are written. New inputs join the scan in time order.

    Parameters
    ----------
    inputs : str or sequence of str
        Directories, files or glob patterns of ``*_uncal.fits`` files (one as a string).
    output_dir : str
        Where the masked files (or sidecars) and, by default, the store go.
    saturation_refs : str or sequence of str
        SATURATION reference files, at most one per detector; none to ask CRDS.
    params : Parameters, optional
        Method parameters.
    store : str, optional
        Zarr store path (default ``output_dir/persistence.zarr``).
    user_mask : str, optional
        Extra pixels to flag in every exposure (see :func:`miripersist.usermask.read_user_mask`).
    overwrite : bool
        Start afresh: replace the store and any existing outputs.
    progress : callable, optional
        Called as ``progress(done, total)`` after each block of exposures.
    history : str, optional
        Store of an earlier run whose sources count as saturation before this run's
        exposures; for a method with its own state (``pipeline``), that state's file.
    skip_bad : bool
        Leave out inputs that cannot be used (listed in ``attrs["skipped"]``) instead of
        stopping; their saturation is not propagated.
    verify_checksums : bool
        Verify every input's CHECKSUM/DATASUM keywords first (reads whole files).

    Returns
    -------
    xarray.Dataset
        The store, opened lazily. ``attrs["last_run"]`` counts the exposures computed,
        reused and written by this call.
    """
    return store_mod.open_store(
        run_to_store(
            inputs,
            output_dir,
            saturation_refs,
            params,
            store,
            user_mask,
            overwrite,
            progress,
            history,
            skip_bad,
            verify_checksums,
        )
    )


def run_to_store(
    inputs: str | Sequence[str],
    output_dir: str,
    saturation_refs: str | Sequence[str] = (),
    params: Parameters | None = None,
    store: str | None = None,
    user_mask: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    history: str | None = None,
    skip_bad: bool = False,
    verify_checksums: bool = False,
) -> str:
    """As :func:`run`, returning the store's path instead of opening it.

    The command line reads the store through zarr (:class:`miripersist.store.Stored`),
    without importing xarray.
    """
    params = Parameters() if params is None else params
    if not isinstance(params, Parameters):
        raise ConfigError(f"params must be a miripersist.Parameters, not {type(params).__name__}")
    # One path given as a string is one input, not a sequence of one-letter paths.
    inputs, saturation_refs = (
        [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        for paths in (inputs, saturation_refs)
    )
    # Absolute before anything is planned or sent to workers, whose working directory may
    # be another; a URL is refused before anything is made.
    inputs = local_paths(inputs, "an input")
    output_dir = local_path(output_dir, "--output-dir")
    saturation_refs = local_paths(saturation_refs, "--saturation-ref")
    store = optional_path(store, "--store")
    user_mask = optional_path(user_mask, "--user-mask")
    history = optional_path(one_history(history), "--history")
    inputs_found, skipped = inventory(discover(inputs), skip_bad, verify_checksums)
    references = assign_references(inputs_found, saturation_refs)
    inputs_found, references, more = _check_windows(inputs_found, references, skip_bad)
    for _, problem in more:
        log.warning(
            "warning: skipped %s; its saturation is not propagated to later exposures", problem
        )
    skipped += more
    umask = read_user_mask(user_mask)
    record = params.record() | {"user_mask_sha256": _user_mask_digest(umask)}
    store_path = store or os.path.join(output_dir, store_mod.DEFAULT_NAME)
    _check_store_path(store_path, output_dir)
    _warn_if_sidecars_unread(params)
    made = not os.path.exists(output_dir)
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{output_dir}: cannot make output directory ({exc.strerror})") from None
    if not os.access(output_dir, os.W_OK):
        raise ConfigError(f"{output_dir}: output directory is not writable")
    try:
        with run_lock.exclusive(output_dir, store_path):
            scan = _prepare(
                output_dir,
                store_path,
                params,
                inputs_found,
                references,
                skipped,
                umask,
                user_mask,
                record,
                overwrite,
                history,
            )
            counts, stale = _scan_and_write(scan, params, umask, progress)
            return _finish(scan, counts, stale, store_path, skipped, history)
    except MiripersistError:
        if made:
            # A run refused before it wrote anything leaves no trace (rmdir of an empty
            # directory only: anything written stays for the rerun).
            with contextlib.suppress(OSError):
                os.rmdir(output_dir)
        raise


@dataclass
class _Scan:
    """What a run scans and writes, as planned against the store (see :func:`_prepare`)."""

    plan: resume.Plan
    exposures: list[Exposure]
    refs: list
    writable: list[bool]
    outputs: list[tuple[str, ...]]
    rows: list[dict]
    previous: store_mod.Stored | None
    past: object
    target: str
    rule: Method
    output_dir: str

    @functools.cached_property
    def old_index(self) -> list[int | None]:
        """Per exposure, its index in the earlier store (None: not there)."""
        return [entry.stored_index for entry in self.plan.entries]

    @functools.cached_property
    def reuse(self) -> list[bool]:
        """Per exposure, whether its sources are taken from the earlier store."""
        return [entry.reuse and self.rule.reuses_sources for entry in self.plan.entries]


def _prepare(  # noqa: C901
    output_dir: str,
    store_path: str,
    params: Parameters,
    inputs_found: list[Exposure],
    references: list,
    skipped: list,
    umask: np.ndarray,
    user_mask: str | None,
    record: dict,
    overwrite: bool,
    history: str | None,
) -> _Scan:
    """Plan the scan against the store; refuse what must be refused; make the target store.

    Nothing is written to the outputs here: the store learns the outputs it will own
    (claims) and, for a run that changes its shape, a new store is made beside it.
    """
    remove_stale_temporaries(output_dir)
    for line in store_mod.remove_stale(store_path):
        log.info("%s: %s (left by a run that died)", store_path, line)
    previous = None if overwrite else _previous_run(store_path, record, user_mask, history)

    # The scan: this run's inputs merged with what the store remembers (see resume.py).
    rows = _store_rows(previous) if previous is not None else []
    stored = [_stored_exposure(row) for row in rows]
    the_plan = resume.plan(
        [
            _identity(e, *((r.path, r.sha256) if r is not None else ("", "")))
            for e, r in zip(inputs_found, references, strict=True)
        ],
        stored if previous is not None else None,
    )
    for j in the_plan.dropped:
        log.warning(
            "%s: left out of the scan: the store knows it but never finished it, "
            "and it is not among this run's inputs",
            rows[j]["path"],
        )
    exposures: list[Exposure] = []
    refs: list = []
    writable: list[bool] = []
    for entry in the_plan.entries:
        if entry.retained:
            e, ok = _retained_exposure(rows[entry.stored_index])
            exposures.append(e)
            refs.append(None)
            writable.append(ok)
        else:
            exposures.append(inputs_found[entry.input_index])
            refs.append(references[entry.input_index])
            writable.append(True)
    old_index = [entry.stored_index for entry in the_plan.entries]
    in_place = the_plan.in_place
    rule = params.rule
    if not rule.reuses_sources:
        gone = [
            e.path for e, entry in zip(exposures, the_plan.entries, strict=True) if entry.retained
        ]
        if gone:
            raise ConfigError(
                f"{gone[0]}: the store knows this exposure but it is not among the inputs; "
                f"--method {rule.name} reads every exposure on every run, so give it again, "
                "or start afresh with --overwrite"
            )
    if umask.any() and not rule.accepts_user_mask:
        raise ConfigError(f"--user-mask does not apply to --method {rule.name} (group flags)")
    past = rule.open_history(history, exposures, params) if history else None
    _warn_if_window_masks_nothing(exposures, params)
    outputs = _output_paths(exposures, output_dir, params)
    claimed = list(previous.attrs.get("claimed_outputs", [])) if previous is not None else []
    if not overwrite:
        resume.refuse_foreign(
            [os.path.basename(o) for paths in outputs for o in paths],
            set(os.listdir(output_dir)),
            resume.owned_outputs(
                stored, claimed, lambda n: rule.output_names(n, params.mode, params.keep_names)
            ),
            output_dir,
        )
    # Outputs are claimed in the live store before any is written, so that a run killed
    # while writing is resumed by the same command, not refused as another run's.
    claimed = sorted({*claimed, *(os.path.basename(o) for paths in outputs for o in paths)})
    if previous is not None and not in_place:
        store_mod.update_attrs(store_path, {"claimed_outputs": claimed})
    target = store_path if previous is None or in_place else store_mod.sibling(store_path, "new")
    if not in_place:
        store_mod.create(
            target,
            exposures,
            [
                (r.path, r.sha256)
                if r is not None
                else (str(rows[j]["saturation_ref"]), rows[j]["saturation_ref_sha256"] or "")
                if j is not None
                else ("", "")
                for r, j in zip(refs, old_index, strict=True)
            ],
            umask,
            {
                "parameters": record,
                "versions": store_mod.package_versions(),
                "user_mask": user_mask or "",
                "history": history or "",
                "skipped": [{"path": p, "problem": why} for p, why in skipped],
                "detector_shape": list(DETECTOR_SHAPE),
                "claimed_outputs": claimed,
            },
            chunk_exposures=params.batch,
        )

    return _Scan(
        the_plan, exposures, refs, writable, outputs, rows, previous, past, target, rule, output_dir
    )


def _scan_and_write(  # noqa: C901, PLR0915
    scan: _Scan,
    params: Parameters,
    umask: np.ndarray,
    progress: Callable[[int, int], None] | None,
) -> tuple[dict[str, int], list[int]]:
    """Read sources, scan, store and write, block after block; the counts and stale exposures.

    One dask computation is in flight while the main thread scans: the next block's
    sources are read, and the previous block's store update and files written, during the
    scan of this block.
    """
    exposures, refs, outputs, rule = scan.exposures, scan.refs, scan.outputs, scan.rule
    past, the_plan = scan.past, scan.plan
    reuse, in_place = scan.reuse, scan.plan.in_place
    windows: dict[tuple, object] = {}
    distributed = has_client()

    def thresholds_for(i: int):
        ref, exp = refs[i], exposures[i]
        if ref is None:
            return None
        key = (ref.path, exp.xstart, exp.ystart, exp.xsize, exp.ysize)
        if key not in windows:
            windows[key] = shared(Window(ref.window_for(exp)), distributed)
        return windows[key]

    counts = {"computed": 0, "reused": 0, "written": 0, "whole": 0, "unchanged": 0, "retained": 0}
    stale: list[int] = []
    writer = store_mod.Writer(scan.target)
    config = {} if distributed else {"num_workers": _local_workers(params.mode)}
    # Local threads write files a few at once, as each waits on the disk for most of its
    # time; a cluster's workers write them.
    file_writers = ThreadPoolExecutor(FILES_PER_TASK, thread_name_prefix="miripersist-write")
    if distributed:
        compute, make = on_cluster, write_on_cluster
    else:
        compute, make = on_local_threads, functools.partial(write_in, file_writers)

    def lazy_block(block: list[int]) -> tuple[list[int], list]:
        todo = [i for i in block if not reuse[i]]
        lazy = [_lazy_sources(exposures[i], thresholds_for(i), params) for i in todo]
        return todo, lazy

    blocks = [
        (detector, indices[b0 : b0 + params.batch])
        for detector, indices in by_detector(exposures).items()
        for b0 in range(0, len(indices), params.batch)
    ]
    # Two sets of block images (sources, masks), for alternate blocks: a block's images are
    # read by its store update and file writes, which run during the next block's scan and
    # are done before the block after it starts. Fresh 16 MB images every block cost more
    # to fault in than the scan of them.
    longest = max(len(block) for _, block in blocks)
    images = [
        (np.zeros((longest, *DETECTOR_SHAPE), bool), np.zeros((longest, *DETECTOR_SHAPE), bool))
        for _ in range(min(2, len(blocks)))
    ]
    carry = None
    carries: dict[str, object] = {}  # each detector's carry after its last block
    done = 0
    # The flight's work is waited for (it writes files) before the file writers stop.
    with dask.config.set(config), file_writers, Flight(compute, make, writer, counts) as flight:
        todo, lazy = lazy_block(blocks[0][1])
        flight.launch(lazy, None, [], [])
        update = None  # this block's store update (zarr)
        files: list = []  # this block's output files, as calls that write them
        to_mark: list[int] = []  # exposures whose outputs are in place once those tasks ran
        for b, (detector, block) in enumerate(blocks):
            frames = dict(zip(todo, flight.settle(), strict=True))
            if b + 1 < len(blocks):
                todo, lazy = lazy_block(blocks[b + 1][1])
            else:
                todo, lazy = [], []
            flight.launch(lazy, update, files, to_mark)
            update, files, to_mark = None, [], []
            if b == 0 or blocks[b - 1][0] != detector:
                carry = rule.initial_carry(past, detector)
            sources, out = (image[: len(block)] for image in images[b % 2])
            _place_sources(sources, block, frames, scan, params)
            counts["computed"] += len(frames)
            counts["reused"] += len(block) - len(frames)
            counts["retained"] += sum(the_plan.entries[i].retained for i in block)
            masks, carry, digests, payloads = rule.scan_block(
                sources,
                [frames.get(i) for i in block],
                [exposures[i] for i in block],
                carry,
                params,
                out,
            )
            carries[detector] = carry
            with_user = masks | umask if umask.any() else masks
            applied = [with_user[k][exposures[i].window] for k, i in enumerate(block)]
            n_masked = np.array([np.count_nonzero(a) for a in applied])
            n_source = np.array([np.count_nonzero(x) for x in sources])
            kept = _kept(block, masks, digests, scan)
            actions = _actions(block, kept, scan)
            if not (in_place and all(reuse[i] for i in block) and all(kept)):
                # Outputs to be rewritten lose their "written" mark in the same update,
                # which runs before any of this block's files is written.
                unwritten = [
                    i
                    for i, a in zip(block, actions, strict=True)
                    if a in (resume.WRITE, resume.STALE)
                ]
                # Stored (by this process: no 30 MB shipping to a worker) beside the next
                # block's reads, before files are marked.
                update = functools.partial(
                    writer.block, block[0], sources, masks, n_source, n_masked, unwritten, digests
                )
            for k, i in enumerate(block):
                action = actions[k]
                if action == resume.WRITE:
                    # Partials are opaque leaves: dask would otherwise walk the Exposure
                    # and Parameters dataclasses of every call while holding the GIL.
                    for write in rule.writes(
                        exposures[i],
                        outputs[i],
                        payloads[k],
                        Bits(applied[k]) if distributed else applied[k],
                        int(n_masked[k]),
                        params,
                        _write_one,
                    ):
                        files.append(write)
                elif action == resume.STALE:
                    stale.append(i)
                    continue
                elif action == resume.MISSING:
                    log.warning(
                        "%s: output is gone and its input %s too; its mask is unchanged",
                        outputs[i][0],
                        exposures[i].path,
                    )
                else:
                    counts["unchanged"] += 1
                if action == resume.WRITE or not in_place:
                    to_mark.append(i)
            done += len(block)
            if progress is not None:
                progress(done, len(exposures))
        flight.settle()
        flight.launch([], update, files, to_mark)
        flight.settle()
    rule.finish(scan.output_dir, scan.target, carries, params, past)
    return counts, stale


def _finish(
    scan: _Scan,
    counts: dict[str, int],
    stale: list[int],
    store_path: str,
    skipped: list,
    history: str | None,
) -> str:
    """Record the run in its store, put a new store in place, and name stale outputs."""
    exposures, outputs, target = scan.exposures, scan.outputs, scan.target
    store_mod.update_attrs(
        target,
        {
            "last_run": counts,
            "skipped": [{"path": p, "problem": why} for p, why in skipped],
            "history": history or "",
        },
    )
    if target != store_path:
        store_mod.replace(target, store_path)
    if stale:
        names = [o for i in stale for o in outputs[i]]
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        raise MiripersistError(
            f"{names[0]}{more}: stale, the mask changed but the input "
            f"({exposures[stale[0]].path}) is gone or changed since the store recorded it; "
            "give those inputs again, or start afresh with --overwrite"
        )
    return store_path


def _place_sources(
    sources: np.ndarray,
    block: list[int],
    frames: dict[int, object],
    scan: _Scan,
    params: Parameters,
) -> None:
    """Put a block's sources in detector coordinates into ``sources``: computed or stored.

    An exposure computed this run is placed in its frame and grown by ``--dilate``; one
    reused is read from the earlier store, with one read of its chunks for the block.
    """
    reused = [k for k, i in enumerate(block) if i not in frames]
    if reused:
        sources[reused] = scan.previous.images("source", [scan.old_index[block[k]] for k in reused])
    for k, i in enumerate(block):
        if i not in frames:
            continue
        frame = scan.rule.source_image(frames[i])
        if frame.shape != DETECTOR_SHAPE:
            # A subarray: the rest of the detector is no source. (A full frame covers the
            # whole image: clearing it first would be a wasted pass.)
            sources[k].fill(False)
        sources[(k, *scan.exposures[i].window)] = frame
        if params.dilate:
            sources[k] = grow(sources[k], params.dilate)


def _kept(
    block: list[int],
    masks: np.ndarray,
    digests: list[str],
    scan: _Scan,
) -> list[bool]:
    """Per exposure of a block: whether the earlier run's mask and digest are this run's."""
    old_index = scan.old_index
    known_here = [k for k, i in enumerate(block) if old_index[i] is not None]
    kept = [False] * len(block)
    if known_here:
        old_masks = scan.previous.images("mask", [old_index[block[k]] for k in known_here])
        for k, old in zip(known_here, old_masks, strict=True):
            old_digest = scan.rows[old_index[block[k]]].get("result_sha256") or ""
            kept[k] = bool(np.array_equal(old, masks[k])) and old_digest == digests[k]
    return kept


def _actions(block: list[int], kept: list[bool], scan: _Scan) -> list[str]:
    """Per exposure of a block, what to do with its outputs (:func:`resume.output_action`)."""
    rows, old_index = scan.rows, scan.old_index
    return [
        resume.output_action(
            same_mask=kept[k],
            written=old_index[i] is not None and bool(rows[old_index[i]]["written"]),
            exists=all(os.path.exists(o) for o in scan.outputs[i]),
            writable=scan.writable[i],
        )
        for k, i in enumerate(block)
    ]
