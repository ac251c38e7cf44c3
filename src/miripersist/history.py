"""``--history`` from an earlier run's store: its sources as saturation already seen."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from . import resume
from . import store as store_mod
from .errors import ConfigError, brief
from .inventory import DETECTOR_SHAPE, Exposure
from .scan import new_carry


def open_store_history(path: str, exposures: Sequence[Exposure], method: str) -> xr.Dataset:
    """An earlier run's store, checked against this run's exposures and method."""
    past = _open_history(path)
    _check_history(past, exposures, method)
    return past


def _open_history(path: str) -> xr.Dataset:
    try:
        return store_mod.open_store(path)
    except Exception as exc:  # zarr and xarray raise many kinds on a damaged store
        raise ConfigError(f"{path}: --history store cannot be read ({brief(exc, 120)})") from None


def _check_history(past: xr.Dataset, exposures: Sequence[Exposure], method: str) -> None:
    made_with = past.attrs.get("parameters", {}).get("method", "notebook")
    if made_with != method:
        raise ConfigError(
            f"--history store was made with --method {made_with}, this run uses {method}: "
            "their sources are not the same thing"
        )
    done = past["complete"].values
    resume.check_history(
        [
            (str(d), str(h), float(t), str(f))
            for d, h, t, f, c in zip(
                past["detector"].values,
                past["header_sha256"].values,
                past["end_mjd"].values,
                past["file"].values,
                done,
                strict=True,
            )
            if c
        ],
        [(e.detector, e.header_sha256, e.start_mjd, e.name) for e in exposures],
    )


def history_carry(past: xr.Dataset, detector: str, rule) -> np.ndarray:
    """Carry image from an earlier run's store: its sources on ``detector``, as already seen."""
    carry = new_carry(DETECTOR_SHAPE)
    chosen = np.flatnonzero(
        (past["detector"].values.astype(str) == detector) & past["complete"].values
    )
    ends = rule.stamp(past["start_mjd"].values, past["end_mjd"].values)
    for lo in range(0, len(chosen), 64):
        part = chosen[lo : lo + 64]
        # In time order, so that a later exposure's end time wins.
        for j, source in zip(part, past["source"].isel(exposure=list(part)).values, strict=True):
            carry[source] = float(ends[j])
    return carry
