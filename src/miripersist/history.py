"""``--history`` from an earlier run's store: its sources as saturation already seen."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from . import resume
from . import store as store_mod
from .errors import ConfigError, brief
from .inventory import DETECTOR_SHAPE, Exposure
from .options import option_name
from .recall import SOURCE_PARAMETERS
from .scan import new_carry


def open_store_history(path: str, exposures: Sequence[Exposure], params) -> list[xr.Dataset]:
    """An earlier run's store and the chain of histories it was made with, earliest first.

    Each store in the chain was made with the next one's ``--history`` (the run that made
    it recorded the path), so that a visit's history holds every visit before it. The
    last is checked against this run's exposures; all against its source parameters.
    """
    paths, chain = [path], [open_history_store(path)]
    while earlier := chain[0].attrs.get("history"):
        if earlier in paths:
            break  # no store can be its own history: a damaged chain ends here
        paths.insert(0, earlier)
        chain.insert(0, open_history_store(earlier, made=paths[1]))
    for where, past in zip(paths, chain, strict=True):
        _check_parameters(where, past, params)
    check_wholly_earlier(chain[-1], exposures)
    return chain


def open_history_store(path: str, made: str | None = None) -> xr.Dataset:
    """An earlier run's store given as ``--history``; a one-line error if it cannot be read.

    ``made``, when given, is the store that was made with ``path`` as its own history.
    """
    try:
        return store_mod.open_store(path)
    except Exception as exc:  # zarr and xarray raise many kinds on a damaged store
        why = brief(exc, 120)
        if made is None:
            raise ConfigError(f"{path}: --history store cannot be read ({why})") from None
        raise ConfigError(
            f"{path}: cannot be read ({why}), and the --history store {made} was made with "
            "it as its own history: a chain's stores must stay where they were"
        ) from None


def _check_parameters(path: str, past: xr.Dataset, params) -> None:
    made_with = {"method": "notebook", **past.attrs.get("parameters", {})}
    for name in SOURCE_PARAMETERS:
        theirs, ours = made_with.get(name), getattr(params, name)
        if theirs is not None and theirs != ours:
            raise ConfigError(
                f"{path}: --history store was made with {option_name(name)} {theirs}, this "
                f"run uses {ours}: their sources are not the same thing"
            )


def check_wholly_earlier(past: xr.Dataset, exposures: Sequence[Exposure]) -> None:
    """Refuse a history store that holds an exposure of this run, or one not wholly before it.

    Raises
    ------
    ConfigError
        As :func:`miripersist.resume.check_history`.
    """
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


def history_carry(chain: Sequence[xr.Dataset], detector: str, stamp: str) -> np.ndarray:
    """Carry image from earlier runs' stores: their sources on ``detector``, as already seen.

    ``chain`` is earliest first (:func:`open_store_history`): a later store's stamps win.
    ``stamp`` names the time a source records: ``"end_mjd"`` or ``"start_mjd"``.
    """
    carry = new_carry(DETECTOR_SHAPE)
    for past in chain:
        chosen = np.flatnonzero(
            (past["detector"].values.astype(str) == detector) & past["complete"].values
        )
        ends = past[stamp].values
        for lo in range(0, len(chosen), 64):
            part = chosen[lo : lo + 64]
            # In time order, so that a later exposure's end time wins.
            images = past["source"].isel(exposure=list(part)).values
            for j, source in zip(part, images, strict=True):
                carry[source] = float(ends[j])
    return carry
