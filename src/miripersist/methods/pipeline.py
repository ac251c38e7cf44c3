"""jwst's own ``PersistenceStep`` (jwst 3.0), chained over a whole program.

The step flags groups, not pixels: a pixel's first SATURATED group in an integration
opens a window of ``persistence_time`` seconds, and every group of this and later
exposures inside an open window gets PERSISTENCE (see :mod:`miripersist.windows`). Run by
hand it is serial: each exposure reads the state the one before it saved. Here every
exposure's saturation is read in parallel and the state is carried through the program
in the scan; each file gets the state just before it, in its own frame and the step's
format, so that the step run per file, in any order, flags what the serial chain flags.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, brief
from ..grouptimes import file_group_times, mjd_to_epoch
from ..inventory import DETECTOR_SHAPE, output_name
from ..saturation import NEVER
from ..statefile import FINAL_STATE, STATE_SUFFIX, last_filenames, read_state, state_entry
from ..windows import expire, flag_groups
from .base import Method


def state_name(path: str) -> str:
    """``<name>_persistence_state.asdf`` for ``<name>_uncal.fits``."""
    base = os.path.basename(path)
    stem = base[: -len("_uncal.fits")] if base.endswith("_uncal.fits") else base.rsplit(".", 1)[0]
    return stem + STATE_SUFFIX


def pers_time(params) -> int:
    """The window in whole seconds, as the step's ``persistence_time``."""
    return round(params.window_days * 86400.0)


class Pipeline(Method):
    """The pipeline's rule: group-level windows from the first saturated group."""

    name = "pipeline"
    default_flags = "PERSISTENCE"
    default_window_days = math.nan  # no default: the step has none either
    # Every group of a tile is read at once, so a task's memory grows with the ramp: 512
    # rows took 90 MB more at 30 groups for no gain in time.
    default_tile = (256, 1032)
    reuses_sources = False
    accepts_user_mask = False
    flags_own_exposure = True
    writes_dq_sidecars = False  # sidecar mode: the state files only
    # Every integration counts, from its first saturated group; group flags, no pixels.
    ignores = ("n_unsat_threshold", "integrations", "dilate", "compress")

    def check(self, params) -> None:
        """A whole, finite number of seconds; group flags that fit GROUPDQ's uint8."""
        days = params.window_days
        if not math.isfinite(days):
            raise ConfigError(
                "--method pipeline needs --window SECONDS, a finite whole number of seconds "
                "(the step's persistence_time)"
            )
        seconds = days * 86400.0
        if abs(seconds - round(seconds)) > 1e-6 or round(seconds) < 1:
            raise ConfigError(
                f"--method pipeline needs a whole number of seconds for --window, not "
                f"{seconds:.6g} s (the step's persistence_time is an integer)"
            )
        if params.flags > 255:
            raise ConfigError(
                "--method pipeline sets group flags (GROUPDQ is 8-bit): use PERSISTENCE "
                "and DO_NOT_USE"
            )
        super().check(params)

    def lazy_sources(self, exposure, thresholds, params, reader):
        """Per file: first saturated group per integration, and the group times."""
        import dask
        import dask.array as da

        from ..reader import lazy_first_saturated

        # Both parts are dask arrays: dask 2026.8's compute regroups nested lists that mix
        # arrays with plain delayed objects (arrays first), which would pair them wrongly.
        return [
            [
                lazy_first_saturated(f, thresholds, params.n_pix_grow_sat, params.tile),
                da.from_delayed(
                    dask.delayed(file_group_times, pure=True)(f.path, f.nints, f.ngroups),
                    (f.nints, f.ngroups),
                    np.float64,
                ),
            ]
            for f in exposure.files
        ]

    def combine(self, parts):
        """The files stay apart: each is one run of the step."""
        return parts

    def source_image(self, frame) -> np.ndarray:
        """Pixels that saturate in any group of any integration of any file."""
        return np.logical_or.reduce([(first != NEVER).any(axis=0) for first, _ in frame])

    def stamp(self, start_mjd, end_mjd):
        """For the check of windows against gaps: from the end of the exposure."""
        return end_mjd

    def masked(self, carry, start_mjd, window_days):
        """For the check of windows against gaps (the scan is :meth:`scan_block`)."""
        return np.isfinite(carry) & (carry >= start_mjd - window_days)

    def scan_block(self, sources, frames, exposures, carry, params, out=None):
        """The step, file after file; masks are pixels with any flagged group."""
        seconds = pers_time(params)
        if out is None:
            masks = np.zeros(sources.shape, dtype=bool)
        else:
            masks = out
            masks.fill(False)
        digests, payloads = [], []
        for k, (exposure, frame) in enumerate(zip(exposures, frames, strict=True)):
            rows, cols = exposure.window
            h, payload = hashlib.sha256(), []
            for f, (first, times) in zip(exposure.files, frame, strict=True):
                before = carry.ends[rows, cols].copy()
                entry = state_entry(before, carry.filename, seconds, (f.xstart, f.ystart))
                after, flags = flag_groups(before, first, times, seconds)
                # Pixels beyond a subarray see the file's groups pass, as in a full frame.
                expire(carry.ends, times, seconds)
                carry.ends[rows, cols] = after
                carry.filename = os.path.basename(f.path)
                masks[k, rows, cols] |= flags.any_group()
                payload.append((entry, flags))
                h.update(_digest(flags, entry).encode())
            digests.append(h.hexdigest())
            payloads.append(payload)
        return masks, carry, digests, payloads

    def output_names(self, path, mode, keep_names):
        """The state file, and in copy mode the copy with its GROUPDQ."""
        state = state_name(path)
        return (output_name(path, mode, keep_names), state) if mode == "copy" else (state,)

    def writes(self, exposure, outputs, payload, applied, n_masked, params, write_mask):
        """Per file its state file; in copy mode its copy with a GROUPDQ extension."""
        from ..outputs import write_groupdq_copy, write_state

        per_file = 2 if params.mode == "copy" else 1
        out = []
        for j, (f, (entry, flags)) in enumerate(zip(exposure.files, payload, strict=True)):
            names = outputs[j * per_file : (j + 1) * per_file]
            out.append(functools.partial(write_state, {exposure.detector: entry}, names[-1]))
            if params.mode == "copy":
                out.append(functools.partial(write_groupdq_copy, f, flags, names[0], params))
        return out

    def open_history(self, path, exposures, params):
        """A persistence-array file (the step's, or a run's final state), full frame.

        A store of an earlier ``--method pipeline`` run holds its final state too, and
        its exposures, which must all end before this run's first one starts (as every
        method's history must). A state file records no exposure times: there, every
        saturation it remembers must come before this run's first exposure, which is
        what makes it the state the step would carry into this run.
        """
        seconds = pers_time(params)
        names = {os.path.basename(f.path) for e in exposures for f in e.files}
        if os.path.isdir(path):
            from ..history import check_wholly_earlier, open_history_store

            check_wholly_earlier(open_history_store(path), exposures)
            states, last = stored_states(path, seconds)
        else:
            states = read_state(path, seconds, DETECTOR_SHAPE)
            last = last_filenames(path)
        for detector, name in last.items():
            if name in names:
                raise ConfigError(
                    f"--history {path}: its {detector} state ends with {name}, one of this "
                    "run's exposures; give the state before them"
                )
        _check_saturation_earlier(path, states, exposures, seconds)
        return {d: (states[d], last.get(d, "")) for d in states}

    def initial_carry(self, past, detector):
        """Window ends (Unix seconds, 0 for none), full frame: from the history or none."""
        image, name = (past or {}).get(detector, (None, ""))
        ends = np.zeros(DETECTOR_SHAPE) if image is None else image.copy()
        return State(ends, name)

    def finish(self, output_dir, store, carries, params, past):
        """Each detector's state after its last exposure, full frame.

        Written as ``OUTPUT_DIR/persistence_state.asdf``, and in the store as
        ``window_end_DETECTOR`` images, where ``--history STORE`` finds them.
        """
        from ..outputs import write_state

        tree = {d: state_entry(c.ends, c.filename, pers_time(params)) for d, c in carries.items()}
        for detector, (image, name) in (past or {}).items():
            tree.setdefault(detector, state_entry(image, name, pers_time(params)))
        tree = dict(sorted(tree.items()))
        write_state(tree, os.path.join(output_dir, FINAL_STATE))
        ends = {d: c.ends for d, c in carries.items()}
        ends.update({d: image for d, (image, _) in (past or {}).items() if d not in ends})
        store_states(store, ends, {d: e["filename"] for d, e in tree.items()}, pers_time(params))


@dataclass
class State:
    """A detector's carried state: window ends and the file that left them.

    Attributes
    ----------
    ends : ndarray of float64
        Window ends (Unix seconds, 0 for none), full frame.
    filename : str
        The file whose step run left them (the state file's ``filename``).
    """

    ends: np.ndarray
    filename: str = ""


def _check_saturation_earlier(path: str, states: dict, exposures, seconds: int) -> None:
    """Refuse a state holding saturation seen after this run's first exposure on its detector.

    A window end is the time of a first saturated group plus the window, so the latest
    saturation a state remembers is its latest window end less the window.
    """
    from astropy.time import Time

    first: dict[str, object] = {}
    for e in exposures:
        if e.detector not in first or e.start_mjd < first[e.detector].start_mjd:
            first[e.detector] = e
    for detector, ends in states.items():
        if detector not in first or not ends.any():
            continue
        latest = float(ends.max()) - seconds
        ours = first[detector]
        if latest > mjd_to_epoch(ours.start_mjd):
            when = Time(latest, format="unix").isot[:19]
            raise ConfigError(
                f"--history {path}: its {detector} state holds saturation at {when}, after "
                f"this run's first exposure {ours.name} starts: a history must be wholly "
                "earlier (run the visits together, or give the state from before this one)"
            )


def _digest(flags, entry: dict) -> str:
    h = hashlib.sha256(flags.digest().encode())
    h.update(f"{entry['filename']}|{entry['pers_time']}".encode())
    for key in ("rows", "cols", "vals"):
        h.update(np.ascontiguousarray(entry[key]).tobytes())
    return h.hexdigest()


def store_states(store: str, ends: dict, filenames: dict, seconds: int) -> None:
    """Each detector's final window ends as a (y, x) image ``window_end_DETECTOR`` of the store."""
    import zarr

    from ..store import FORMAT

    group = zarr.open_group(store, mode="r+", **FORMAT)
    for detector, image in ends.items():
        array = group.create_array(
            f"window_end_{detector}",
            shape=image.shape,
            dtype=np.float64,
            chunks=image.shape,
            fill_value=0.0,
            overwrite=True,
        )
        array[...] = image
        array.attrs.update(
            {
                "_ARRAY_DIMENSIONS": ["y", "x"],
                "description": "persistence window ends (Unix s, 0 for none) after the run",
                "filename": filenames.get(detector, ""),
                "pers_time": int(seconds),
            }
        )


def stored_states(store: str, seconds: int) -> tuple[dict, dict]:
    """The final states :func:`store_states` wrote, and the file each ends with."""
    import zarr

    from ..store import FORMAT

    try:
        group = zarr.open_group(store, mode="r", **FORMAT)
        names = [n for n in group.array_keys() if n.startswith("window_end_")]
    except Exception as exc:  # zarr raises many kinds on what is not a store
        raise ConfigError(f"{store}: --history store cannot be read ({brief(exc, 120)})") from None
    if not names:
        raise ConfigError(
            f"{store}: not the store of a --method pipeline run (no window_end_ images); "
            f"give its {FINAL_STATE} or such a store"
        )
    states, last = {}, {}
    for name in names:
        array = group[name]
        if int(array.attrs.get("pers_time", -1)) != seconds:
            raise ConfigError(
                f"{store}: its state was made with a window of {array.attrs.get('pers_time')} s, "
                f"this run's is {seconds} s"
            )
        detector = name[len("window_end_") :]
        states[detector] = np.asarray(array[...], dtype=np.float64)
        last[detector] = str(array.attrs.get("filename", ""))
    return states, last
