"""The run: inventory, thresholds, lazy sources, scan, store, write-back.

Exposures are processed per detector in blocks of ``Parameters.batch`` consecutive
exposures. Within a block every tile of every exposure is computed in parallel; the
previous block's files are written in the same dask computation, so reading and
writing overlap. Memory is bounded by the block size, not by the number of exposures.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import dask
import numpy as np
import xarray as xr

from . import store as store_mod
from .errors import ConfigError, InputError, MiripersistError
from .flags import flag_names, parse_flags
from .inventory import (
    DETECTOR_SHAPE,
    Exposure,
    by_detector,
    discover,
    inventory,
    output_name,
)
from .reader import lazy_sources
from .saturation import grow
from .scan import exclusive_scan, new_carry
from .thresholds import assign_references
from .usermask import read_user_mask
from .writeback import remove_stale_temporaries, write_copy, write_sidecar

MODES = ("copy", "sidecar")


@dataclass(frozen=True)
class Parameters:
    """What decides the masks and how the work is cut.

    Attributes
    ----------
    n_unsat_threshold : int
        A pixel is a source when its first integration has at most this many
        unsaturated groups (and saturated at all).
    n_pix_grow_sat : int
        Growth of saturated pixels, as jwst's saturation step parameter.
    flags : int
        Pixel DQ bits set where masked (default DO_NOT_USE | PERSISTENCE).
    mode : str
        ``"copy"`` (masked copies of the uncal files) or ``"sidecar"`` (DQ images for
        dq_init's ``user_supplied_dq``).
    window_days : float
        How long a source keeps masking after its exposure ends; ``inf`` for ever.
    integrations : str
        ``"first"`` (the notebook's rule) or ``"all"``: saturation in any integration
        makes a source.
    dilate : int
        Grow the persistence sources by this many pixels beyond the saturated core
        (in detector coordinates), for the halos bright cores leave.
    tile : tuple of int
        Dask tile shape (rows, columns) over the detector.
    batch : int
        Exposures per block; bounds memory.
    """

    n_unsat_threshold: int = 3
    n_pix_grow_sat: int = 1
    flags: int = field(default_factory=lambda: parse_flags("DO_NOT_USE,PERSISTENCE"))
    mode: str = "copy"
    window_days: float = math.inf
    integrations: str = "first"
    dilate: int = 0
    tile: tuple[int, int] = (256, 1032)
    batch: int = 16

    def __post_init__(self) -> None:
        if self.n_unsat_threshold < 0:
            raise ConfigError("--n-unsat-threshold must be 0 or more")
        if self.n_pix_grow_sat < 0:
            raise ConfigError("--n-pix-grow-sat must be 0 or more")
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.integrations not in ("first", "all"):
            raise ConfigError(f"--integrations must be first or all, not {self.integrations!r}")
        if self.dilate < 0:
            raise ConfigError("--dilate must be 0 or more")
        if not self.window_days > 0:
            raise ConfigError("--window must be positive")
        if min(self.tile) < 1 or self.batch < 1:
            raise ConfigError("tile sizes and batch must be positive")

    def record(self) -> dict:
        """JSON-ready description for the store's attributes."""
        out = asdict(self)
        out["flags_names"] = flag_names(self.flags)
        out["window_days"] = "inf" if math.isinf(self.window_days) else self.window_days
        out["tile"] = list(self.tile)
        return out


def _header_cards(params: Parameters, n_masked: int) -> dict[str, object]:
    version = store_mod.package_versions()["miripersist"]
    return {
        "MPTOOL": ("miripersist", "persistence flags made by this tool"),
        "MPVERS": (version, "miripersist version"),
        "MPNUNSAT": (params.n_unsat_threshold, "source: at most this many unsaturated groups"),
        "MPNGROW": (params.n_pix_grow_sat, "saturation growth (n_pix_grow_sat)"),
        "MPFLAGS": (params.flags, "pixel DQ bits set where masked"),
        "MPWINDOW": (str(params.record()["window_days"]), "mask lifetime after exposure (days)"),
        "MPINTEG": (params.integrations, "integrations that make sources"),
        "MPDILATE": (params.dilate, "sources grown by this many pixels"),
        "MPNMASK": (n_masked, "pixels flagged in this exposure"),
    }


def _write_one(
    exposure: Exposure, applied: np.ndarray, n_masked: int, final: str, params: Parameters
) -> str:
    # The boolean mask travels to the worker (1 byte a pixel), the DQ image is made there.
    dq = applied.astype(np.uint32)
    dq *= np.uint32(params.flags)
    cards = _header_cards(params, n_masked)
    try:
        if params.mode == "copy":
            write_copy(exposure, dq, final, cards)
        else:
            write_sidecar(dq, final, cards)
    except OSError as exc:
        raise MiripersistError(
            f"{final}: cannot write ({exc.strerror or exc}); nothing was left behind, "
            "run the same command again to finish"
        ) from None
    return final


def _output_paths(exposures: Sequence[Exposure], output_dir: str, mode: str) -> list[str]:
    outputs = [os.path.join(output_dir, output_name(e.path, mode)) for e in exposures]
    names = [os.path.basename(p) for p in outputs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"two inputs would both be written to {dup} (same file name)")
    return outputs


def _refuse_foreign_outputs(outputs: Sequence[str], ours: Sequence[bool]) -> None:
    """Stop before writing anything if an output exists that no earlier run of this store made."""
    clash = [p for p, mine in zip(outputs, ours, strict=True) if not mine and os.path.exists(p)]
    if clash:
        more = f" and {len(clash) - 1} more" if len(clash) > 1 else ""
        raise ConfigError(f"{clash[0]}{more}: output exists (use --overwrite to replace)")


def _user_mask_digest(mask: np.ndarray) -> str:
    return hashlib.sha256(np.packbits(mask).tobytes()).hexdigest()


def _previous_run(store_path: str, record: dict) -> xr.Dataset | None:
    """The store of an earlier run with the same parameters, or None; refuse a different one."""
    if not os.path.exists(store_path):
        return None
    try:
        previous = store_mod.open_store(store_path)
    except Exception as exc:  # zarr and xarray raise many kinds on a damaged store
        raise ConfigError(
            f"{store_path}: store cannot be read ({exc!s:.120}); use --overwrite to replace it"
        ) from None
    old = previous.attrs.get("parameters", {})
    keys = (
        "n_unsat_threshold",
        "n_pix_grow_sat",
        "flags",
        "mode",
        "window_days",
        "user_mask_sha256",
        "integrations",
        "dilate",
    )
    differ = [k for k in keys if old.get(k) != record.get(k)]
    if differ:
        what = ", ".join(f"{k} {old.get(k)!r} -> {record.get(k)!r}" for k in differ)
        raise ConfigError(
            f"{store_path}: store was made with other parameters ({what}); "
            "use --overwrite or another --store"
        )
    return previous


def _stored(ds: xr.Dataset, name: str, indices: Sequence[int]) -> np.ndarray:
    """Images of a store variable for these exposures, reading each chunk once."""
    return ds[name].isel(exposure=list(indices)).values


def history_carry(path: str, detector: str) -> np.ndarray:
    """Carry image from an earlier run's store: its sources on ``detector``, as already seen."""
    try:
        past = store_mod.open_store(path)
    except Exception as exc:  # zarr and xarray raise many kinds on a damaged store
        raise ConfigError(f"{path}: --history store cannot be read ({exc!s:.120})") from None
    carry = new_carry(DETECTOR_SHAPE)
    chosen = np.flatnonzero(
        (past["detector"].values.astype(str) == detector) & past["complete"].values
    )
    ends = past["end_mjd"].values
    for lo in range(0, len(chosen), 64):
        part = chosen[lo : lo + 64]
        # In time order, so that a later exposure's end time wins.
        for j, source in zip(part, _stored(past, "source", part), strict=True):
            carry[source] = float(ends[j])
    return carry


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


def _local_workers() -> int:
    # Write-back waits on the disk (fsync) far more than it computes: more threads than
    # cores overlap those waits (measured: docs/benchmarks.md).
    return max(4, 2 * (os.cpu_count() or 1))


def run(
    inputs: Sequence[str],
    output_dir: str,
    saturation_refs: Sequence[str] = (),
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
    inputs : sequence of str
        Directories, files or glob patterns of ``*_uncal.fits`` files.
    output_dir : str
        Where the masked files (or sidecars) and, by default, the store go.
    saturation_refs : sequence of str
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
        Store of an earlier run whose sources count as saturation before this run's exposures.
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
    params = params or Parameters()
    exposures, skipped = inventory(discover(inputs), skip_bad, verify_checksums)
    references = assign_references(exposures, saturation_refs)
    exposures, references, more = _check_windows(exposures, references, skip_bad)
    skipped += more
    umask = read_user_mask(user_mask)
    record = params.record() | {"user_mask_sha256": _user_mask_digest(umask)}
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{output_dir}: cannot make output directory ({exc.strerror})") from None
    if not os.access(output_dir, os.W_OK):
        raise ConfigError(f"{output_dir}: output directory is not writable")
    remove_stale_temporaries(output_dir)
    outputs = _output_paths(exposures, output_dir, params.mode)
    store_path = store or os.path.join(output_dir, "persistence.zarr")
    store_mod.remove_stale(store_path)
    previous = None if overwrite else _previous_run(store_path, record)

    # Which exposures the previous run already knows, by input identity.
    known: dict[tuple, int] = {}
    if previous is not None:
        for j, key in enumerate(
            zip(
                previous["path"].values.astype(str),
                previous["size"].values,
                previous["mtime_ns"].values,
                previous["header_sha256"].values.astype(str),
                strict=True,
            )
        ):
            known[(os.path.abspath(key[0]), int(key[1]), int(key[2]), key[3])] = j
    old_index = [known.get(e.fingerprint) for e in exposures]
    if not overwrite:
        # Outputs of inputs the store knows (even if they changed since) are this run's own.
        old_paths = {key[0] for key in known}
        _refuse_foreign_outputs(outputs, [os.path.abspath(e.path) in old_paths for e in exposures])
    old_complete = previous["complete"].values if previous is not None else None
    old_written = previous["written"].values if previous is not None else None
    in_place = previous is not None and old_index == list(range(previous.sizes["exposure"]))
    target = store_path if previous is None or in_place else f"{store_path}.new-{os.getpid()}"
    if not in_place:
        store_mod.create(
            target,
            exposures,
            [r.path if r is not None else "" for r in references],
            umask,
            {
                "parameters": record,
                "versions": store_mod.package_versions(),
                "user_mask": user_mask or "",
                "history": history or "",
                "skipped": [{"path": p, "problem": why} for p, why in skipped],
                "detector_shape": list(DETECTOR_SHAPE),
            },
            chunk_exposures=params.batch,
        )

    windows: dict[tuple, object] = {}

    def thresholds_for(i: int):
        ref, exp = references[i], exposures[i]
        if ref is None:
            return None
        key = (ref.path, exp.xstart, exp.ystart, exp.xsize, exp.ysize)
        if key not in windows:
            windows[key] = dask.delayed(ref.window_for(exp), pure=True)
        return windows[key]

    def reusable(i: int) -> bool:
        j = old_index[i]
        return j is not None and bool(old_complete[j])

    counts = {"computed": 0, "reused": 0, "written": 0, "unchanged": 0}
    writer = store_mod.Writer(target)
    distributed = _has_client()
    config = {} if distributed else {"num_workers": _local_workers()}
    # One dask computation is in flight while the main thread scans: the next block's
    # sources are read, and the previous block's store update and files written, during
    # the scan of this block.
    background = ThreadPoolExecutor(1, thread_name_prefix="miripersist-compute")
    pending: list = []  # [future, number of files, exposures to mark written]

    def settle() -> list:
        """Wait for the computation in flight; record its files as written; its sources."""
        if not pending:
            return []
        future, n_files, marks = pending
        pending.clear()
        sources = future.result()
        writer.written(marks)
        counts["written"] += n_files
        return sources

    def launch(lazy: list, stored: list, files: list, marks: list[int]) -> None:
        future = background.submit(lambda: dask.compute(lazy, stored, files)[0])
        pending.extend([future, len(files), marks])

    def lazy_block(block: list[int]) -> tuple[list[int], list]:
        todo = [i for i in block if not reusable(i)]
        lazy = [
            lazy_sources(
                exposures[i],
                thresholds_for(i),
                params.n_unsat_threshold,
                params.n_pix_grow_sat,
                params.tile,
                all_integrations=params.integrations == "all",
            )
            for i in todo
        ]
        return todo, lazy

    blocks = [
        (detector, indices[b0 : b0 + params.batch])
        for detector, indices in by_detector(exposures).items()
        for b0 in range(0, len(indices), params.batch)
    ]
    carry = None
    done = 0
    with dask.config.set(config), background:
        todo, lazy = lazy_block(blocks[0][1])
        launch(lazy, [], [], [])
        stored: list = []  # this block's store update (zarr)
        files: list = []  # this block's output files
        to_mark: list[int] = []  # exposures whose outputs are in place once those tasks ran
        for b, (detector, block) in enumerate(blocks):
            frames = dict(zip(todo, settle(), strict=True))
            if b + 1 < len(blocks):
                todo, lazy = lazy_block(blocks[b + 1][1])
            else:
                todo, lazy = [], []
            launch(lazy, stored, files, to_mark)
            stored, files, to_mark = [], [], []
            if b == 0 or blocks[b - 1][0] != detector:
                carry = history_carry(history, detector) if history else new_carry(DETECTOR_SHAPE)
            sources = np.zeros((len(block), *DETECTOR_SHAPE), dtype=bool)
            reused = [k for k, i in enumerate(block) if i not in frames]
            if reused:
                # One read of the stored chunks for the whole block, not one per exposure.
                sources[reused] = _stored(previous, "source", [old_index[block[k]] for k in reused])
            for k, i in enumerate(block):
                if i in frames:
                    sources[(k, *exposures[i].window)] = frames[i]
                    if params.dilate:
                        sources[k] = grow(sources[k], params.dilate)
            counts["computed"] += len(frames)
            counts["reused"] += len(block) - len(frames)
            masks, carry = exclusive_scan(
                sources,
                np.array([exposures[i].start_mjd for i in block]),
                np.array([exposures[i].end_mjd for i in block]),
                carry,
                params.window_days,
            )
            with_user = masks | umask if umask.any() else masks
            applied = [with_user[k][exposures[i].window] for k, i in enumerate(block)]
            n_masked = np.array([np.count_nonzero(a) for a in applied])
            n_source = np.array([np.count_nonzero(x) for x in sources])
            # The earlier run's mask of each exposure, when it knows the exposure.
            known_here = [k for k, i in enumerate(block) if old_index[i] is not None]
            kept = [False] * len(block)
            if known_here:
                old_masks = _stored(previous, "mask", [old_index[block[k]] for k in known_here])
                for k, old in zip(known_here, old_masks, strict=True):
                    kept[k] = bool(np.array_equal(old, masks[k]))
            if not (in_place and all(reusable(i) for i in block) and all(kept)):
                args = (block[0], sources, masks, n_source, n_masked)
                if distributed:
                    writer.block(*args)  # the client writes the store; no 30 MB shipping
                else:
                    # Stored in parallel with the next block's reads, before files are marked.
                    stored.append(dask.delayed(writer.block, pure=False)(*args))
            for k, i in enumerate(block):
                j = old_index[i]
                same = kept[k] and bool(old_written[j]) and os.path.exists(outputs[i])
                if same:
                    counts["unchanged"] += 1
                else:
                    # A partial is one opaque leaf: dask would otherwise walk the Exposure
                    # and Parameters dataclasses of every call while holding the GIL.
                    write = functools.partial(
                        _write_one, exposures[i], applied[k], int(n_masked[k]), outputs[i], params
                    )
                    files.append(dask.delayed(write, pure=False)())
                if not (same and in_place):
                    to_mark.append(i)
            done += len(block)
            if progress is not None:
                progress(done, len(exposures))
        settle()
        launch([], stored, files, to_mark)
        settle()
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
    ds = store_mod.open_store(store_path)
    ds.attrs["last_run"] = counts
    return ds


def _has_client() -> bool:
    # A client needs distributed imported; importing it only to find none costs 0.4 s.
    if "distributed" not in sys.modules:
        return False
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return False
    return True
