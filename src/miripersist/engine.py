"""The run: inventory, thresholds, lazy sources, scan, store, write-back.

Exposures are processed per detector in blocks of ``Parameters.batch`` consecutive
exposures. Within a block every tile of every exposure is computed in parallel; the
previous block's files are written in the same dask computation, so reading and
writing overlap. Memory is bounded by the block size, not by the number of exposures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import dask
import numpy as np
import xarray as xr

from . import store as store_mod
from .errors import ConfigError
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
from .scan import exclusive_scan, new_carry
from .thresholds import assign_references
from .usermask import read_user_mask
from .writeback import write_copy, write_sidecar

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
    tile: tuple[int, int] = (256, 1032)
    batch: int = 16

    def __post_init__(self) -> None:
        if self.n_unsat_threshold < 0:
            raise ConfigError("--n-unsat-threshold must be 0 or more")
        if self.n_pix_grow_sat < 0:
            raise ConfigError("--n-pix-grow-sat must be 0 or more")
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
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


def _header_cards(params: Parameters, n_masked: int, n_before: int) -> dict[str, object]:
    version = store_mod.package_versions()["miripersist"]
    return {
        "MPTOOL": ("miripersist", "persistence flags made by this tool"),
        "MPVERS": (version, "miripersist version"),
        "MPNUNSAT": (params.n_unsat_threshold, "source: at most this many unsaturated groups"),
        "MPNGROW": (params.n_pix_grow_sat, "saturation growth (n_pix_grow_sat)"),
        "MPFLAGS": (params.flags, "pixel DQ bits set where masked"),
        "MPWINDOW": (str(params.record()["window_days"]), "mask lifetime after exposure (days)"),
        "MPNPRIOR": (n_before, "earlier exposures on this detector"),
        "MPNMASK": (n_masked, "pixels flagged in this exposure"),
    }


def _write_one(
    exposure: Exposure, dq: np.ndarray, final: str, mode: str, cards: dict[str, object]
) -> str:
    if mode == "copy":
        write_copy(exposure, dq, final, cards)
    else:
        write_sidecar(dq, final, cards)
    return final


def plan_outputs(
    exposures: Sequence[Exposure], output_dir: str, mode: str, overwrite: bool
) -> list[str]:
    """Output paths, refusing to replace existing files unless ``overwrite``."""
    outputs = [os.path.join(output_dir, output_name(e.path, mode)) for e in exposures]
    clash = [p for p in outputs if os.path.exists(p)]
    if clash and not overwrite:
        more = f" and {len(clash) - 1} more" if len(clash) > 1 else ""
        raise ConfigError(f"{clash[0]}{more}: output exists (use --overwrite to replace)")
    names = [os.path.basename(p) for p in outputs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"two inputs would both be written to {dup} (same file name)")
    return outputs


def run(
    inputs: Sequence[str],
    output_dir: str,
    saturation_refs: Sequence[str] = (),
    params: Parameters | None = None,
    store: str | None = None,
    user_mask: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> xr.Dataset:
    """Mask persistence in a set of MIRI uncal files.

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
        Replace existing outputs.
    progress : callable, optional
        Called as ``progress(done, total)`` after each block of exposures.

    Returns
    -------
    xarray.Dataset
        The store, opened lazily.
    """
    params = params or Parameters()
    paths = discover(inputs)
    exposures = inventory(paths)
    references = assign_references(exposures, saturation_refs)
    umask = read_user_mask(user_mask)
    os.makedirs(output_dir, exist_ok=True)
    if not os.access(output_dir, os.W_OK):
        raise ConfigError(f"{output_dir}: output directory is not writable")
    outputs = plan_outputs(exposures, output_dir, params.mode, overwrite)
    store_path = store or os.path.join(output_dir, "persistence.zarr")
    if os.path.exists(store_path) and not overwrite:
        raise ConfigError(f"{store_path}: store exists (use --overwrite to replace)")

    store_mod.create(
        store_path,
        exposures,
        [r.path if r is not None else "" for r in references],
        umask,
        {
            "parameters": params.record(),
            "versions": store_mod.package_versions(),
            "user_mask": user_mask or "",
            "detector_shape": list(DETECTOR_SHAPE),
        },
    )

    # One shared copy of each reference window in the graph, whatever the number of exposures.
    windows: dict[tuple, object] = {}

    def thresholds_for(i: int):
        ref, exp = references[i], exposures[i]
        if ref is None:
            return None
        key = (ref.path, exp.xstart, exp.ystart, exp.xsize, exp.ysize)
        if key not in windows:
            windows[key] = dask.delayed(ref.window_for(exp), pure=True)
        return windows[key]

    done = 0
    pending: list = []
    for indices in by_detector(exposures).values():
        carry = new_carry(DETECTOR_SHAPE)
        for b0 in range(0, len(indices), params.batch):
            block = indices[b0 : b0 + params.batch]
            lazy = [
                lazy_sources(
                    exposures[i],
                    thresholds_for(i),
                    params.n_unsat_threshold,
                    params.n_pix_grow_sat,
                    params.tile,
                )
                for i in block
            ]
            frames, _ = dask.compute(lazy, pending)
            sources = np.zeros((len(block), *DETECTOR_SHAPE), dtype=bool)
            for k, i in enumerate(block):
                sources[(k, *exposures[i].window)] = frames[k]
            masks, carry = exclusive_scan(
                sources,
                np.array([exposures[i].start_mjd for i in block]),
                np.array([exposures[i].end_mjd for i in block]),
                carry,
                params.window_days,
            )
            applied = [(masks[k] | umask)[exposures[i].window] for k, i in enumerate(block)]
            n_masked = np.array([a.sum() for a in applied])
            store_mod.write_block(
                store_path, block[0], sources, masks, sources.sum(axis=(1, 2)), n_masked
            )
            pending = [
                dask.delayed(_write_one, pure=False)(
                    exposures[i],
                    np.where(applied[k], np.uint32(params.flags), np.uint32(0)),
                    outputs[i],
                    params.mode,
                    _header_cards(params, int(n_masked[k]), b0 + k),
                )
                for k, i in enumerate(block)
            ]
            done += len(block)
            if progress is not None:
                progress(done, len(exposures))
    dask.compute(pending)
    return store_mod.open_store(store_path)
