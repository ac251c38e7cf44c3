"""A run from start to end: the request resolved, planned, scanned block by block, finished.

The stages, each a module with plain data between them: the inputs are found and read
(:mod:`miripersist.inventory`) into a :class:`~miripersist.planner.Request`; the plan
merges them with the store of an earlier run (:mod:`miripersist.planner`); the block loop
reads, scans and hands each block to the sink (:mod:`miripersist.blocks`,
:mod:`miripersist.sink`); the run is recorded in its store here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from . import lock as run_lock
from . import store as store_mod
from .blocks import scan_blocks
from .errors import ConfigError, InputError, MiripersistError
from .inventory import discover, inventory
from .kinds import Kind
from .options import BY_NAME, checked
from .parameters import Parameters
from .paths import local_path, local_paths, optional_path
from .planner import Request, RunPlan, check_store_path, make_plan
from .recall import default_lookback
from .remember import discard, remember, scratch
from .thresholds import assign_references
from .usermask import read_user_mask

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger(__name__)


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


def _warn_if_sidecars_unread(params: Parameters) -> None:
    """Say so when the jwst installed here cannot read the sidecars a run would write."""
    if Kind.DQ_SIDECAR not in params.rule.traits.writes[params.mode]:
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
    memory: str | None = None,
    lookback: float | str | None = None,
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
    memory : str, optional
        The detector memory (:mod:`miripersist.memory`; made when missing): its exposures
        on this run's detectors mask this run's like its own, those that ended within
        ``lookback`` before a detector's first exposure here and those between its own.
        This run's exposures join it.
    lookback : float or str, optional
        Days (or a duration such as ``"10h"``); default 24 hours, or the window when it is
        finite and longer.

    Returns
    -------
    xarray.Dataset
        The store, opened lazily. ``attrs["last_run"]`` counts the exposures computed,
        reused and written by this call.

    See Also
    --------
    resolve, run_request : the two halves of a run, for a caller that looks at the
        request in between (the command line asks a cluster's workers whether they can
        read every input).
    """
    request = resolve(
        inputs,
        output_dir,
        saturation_refs,
        params,
        store,
        user_mask,
        overwrite,
        history,
        skip_bad,
        verify_checksums,
        memory,
        lookback,
    )
    return store_mod.open_store(run_request(request, progress))


def resolve(
    inputs: str | Sequence[str],
    output_dir: str,
    saturation_refs: str | Sequence[str] = (),
    params: Parameters | None = None,
    store: str | None = None,
    user_mask: str | None = None,
    overwrite: bool = False,
    history: str | os.PathLike | Sequence | None = None,
    skip_bad: bool = False,
    verify_checksums: bool = False,
    memory: str | os.PathLike | None = None,
    lookback: float | str | None = None,
) -> Request:
    """What :func:`run` is asked, resolved: paths made absolute, inputs found and read.

    Arguments as :func:`run`'s. Nothing is written.
    """
    params = Parameters() if params is None else params
    if not isinstance(params, Parameters):
        raise ConfigError(f"params must be a miripersist.Parameters, not {type(params).__name__}")
    for name, value in (
        ("overwrite", overwrite),
        ("skip_bad", skip_bad),
        ("verify_checksums", verify_checksums),
    ):
        checked(BY_NAME[name], value)
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
    memory = optional_path(memory, "--memory")
    if memory is not None and not params.rule.traits.remembers:
        raise ConfigError(
            f"--memory does not apply to --method {params.rule.name}: what it carries between "
            "exposures is not sources; chain its runs with --history"
        )
    lookback_days = checked(BY_NAME["lookback"], lookback)
    if lookback_days is None:
        lookback_days = default_lookback(params.window_days)
    elif memory is None:
        raise ConfigError("--lookback applies with --memory only")
    elif not lookback_days >= 0:  # type: ignore[operator]
        raise ConfigError(f"--lookback must not be negative, not {lookback}")
    found, skipped = inventory(discover(inputs), skip_bad, verify_checksums)
    references = assign_references(found, saturation_refs)
    found, references, more = _check_windows(found, references, skip_bad)
    for _, problem in more:
        log.warning(
            "warning: skipped %s; its saturation is not propagated to later exposures", problem
        )
    return Request(
        exposures=tuple(found),
        references=tuple(references),
        skipped=tuple(skipped + more),
        output_dir=output_dir,
        store=store or os.path.join(output_dir, store_mod.DEFAULT_NAME),
        params=params,
        user_mask=read_user_mask(user_mask),
        user_mask_path=user_mask,
        history=history,
        overwrite=overwrite,
        memory=memory,
        lookback_days=float(lookback_days),  # type: ignore[arg-type]
    )


def run_request(request: Request, progress: Callable[[int, int], None] | None = None) -> str:
    """Carry out a resolved request (:func:`resolve`); the store's path."""
    output_dir = request.output_dir
    check_store_path(request.store, output_dir)
    _warn_if_sidecars_unread(request.params)
    made = not os.path.exists(output_dir)
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{output_dir}: cannot make output directory ({exc.strerror})") from None
    if not os.access(output_dir, os.W_OK):
        raise ConfigError(f"{output_dir}: output directory is not writable")
    try:
        with run_lock.exclusive(output_dir, request.store):
            plan = make_plan(request)
            counts, stale = scan_blocks(plan, request.params, request.user_mask, progress)
            return _finish(plan, request, counts, stale)
    except MiripersistError:
        if made:
            # A run refused before it wrote anything leaves no trace (rmdir of an empty
            # directory only: anything written stays for the rerun).
            with contextlib.suppress(OSError):
                os.rmdir(output_dir)
        raise


def _finish(plan: RunPlan, request: Request, counts: dict[str, int], stale: list[int]) -> str:
    """Record the run in its store, put a new store in place, and name stale outputs."""
    store_mod.update_attrs(
        plan.target,
        {
            "last_run": counts,
            "skipped": [{"path": p, "problem": why} for p, why in request.skipped],
            "history": request.history or "",
            "memory": _memory_words(request.memory, len(plan.recalled)),
        },
    )
    if plan.target != request.store:
        store_mod.replace(plan.target, request.store)
    if request.memory is not None:
        remember(plan, request, request.memory)
    if stale:
        names = [o for i in stale for o in plan.outputs[i]]
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        raise MiripersistError(
            f"{names[0]}{more}: stale, the mask changed but the input "
            f"({plan.exposures[stale[0]].path}) is gone or changed since the store recorded it; "
            "give those inputs again, or start afresh with --overwrite"
        )
    return request.store


def _memory_words(memory: str | None, recalled: int) -> str:
    """The memory as the store records it: its path, and how many of its exposures masked."""
    if memory is None:
        return ""
    return f"{memory} ({recalled} exposure{'s' if recalled != 1 else ''} of it masked this run)"


def add_to_memory(
    inputs: str | Sequence[str],
    memory: str | os.PathLike,
    saturation_refs: str | Sequence[str] = (),
    params: Parameters | None = None,
    skip_bad: bool = False,
    verify_checksums: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Put exposures into the detector memory without writing outputs.

    For other programs' files, or a day of the detector's calibration exposures, that
    later runs with ``memory=`` should mask with. Their sources are computed as a run's
    (a run of the store only, in a hidden directory beside the memory, removed after).

    Parameters
    ----------
    inputs, saturation_refs, params, skip_bad, verify_checksums, progress
        As :func:`run`'s. Only the parameters that shape sources matter.
    memory : str
        The memory (made when missing).

    Returns
    -------
    int
        The entries that were not in the memory yet.
    """
    path = local_path(memory, "--memory")
    work = scratch(path)
    try:
        request = resolve(
            inputs,
            work,
            saturation_refs,
            params,
            skip_bad=skip_bad,
            verify_checksums=verify_checksums,
            memory=path,
        )
        # Planned without the memory: sources do not depend on what came before.
        request = dataclasses.replace(request, memory=None, write_outputs=False)
        with run_lock.exclusive(work, request.store):
            plan = make_plan(request)
            scan_blocks(plan, request.params, request.user_mask, progress)
            return remember(plan, request, path, command="memory add").added
    finally:
        discard(work)
