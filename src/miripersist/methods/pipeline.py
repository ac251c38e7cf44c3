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

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, brief
from ..grouptimes import mjd_to_epoch
from ..inventory import DETECTOR_SHAPE
from ..kinds import Kind
from ..saturation import NEVER
from ..statefile import FINAL_STATE, last_filenames, read_state, state_entry
from ..windows import expire, flag_groups
from .base import Block, Final, Method, Options, Past, Scanned, Traits

if TYPE_CHECKING:
    from ..inventory import Exposure
    from ..parameters import Parameters
    from ..reads import Reads


#: Prefix of the store arrays that hold each detector's final window ends.
WINDOW_END = "window_end_"


def pers_time(params: Parameters) -> int:
    """The window in whole seconds, as the step's ``persistence_time``."""
    return round(params.window_days * 86400.0)


class Pipeline(Method):
    """The pipeline's rule: group-level windows from the first saturated group."""

    name = "pipeline"
    options = Options(
        flags="PERSISTENCE",
        window_days=math.nan,  # no default: the step has none either
        # Every group of a tile is read at once, so a task's memory grows with the ramp:
        # 512 rows took 90 MB more at 30 groups for no gain in time.
        tile=(256, 1032),
        # Every integration counts, from its first saturated group; group flags, no pixels.
        ignores=("n_unsat_threshold", "integrations", "dilate", "compress"),
    )
    traits = Traits(
        # The scan needs every group's flags, more than the store keeps.
        reuses_sources=False,
        writes=MappingProxyType(
            {"copy": (Kind.GROUPDQ_COPY, Kind.STATE_FILE), "sidecar": (Kind.STATE_FILE,)}
        ),
        # Its state is each pixel's window end, from group times: not sources a memory keeps.
        remembers=False,
    )

    def check(self, params: Parameters) -> None:
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
        if int(params.flags) > 255:
            raise ConfigError(
                "--method pipeline sets group flags (GROUPDQ is 8-bit): use PERSISTENCE "
                "and DO_NOT_USE"
            )
        super().check(params)

    def sources(self, exposure: Exposure, read: Reads, params: Parameters) -> list:
        """Per file (one run of the step each): first saturated groups, group times."""
        return [[read.first_saturated(f), read.group_times(f)] for f in exposure.files]

    def scan(self, block: Block, carry: object, params: Parameters) -> Scanned:
        """The step, file after file; masks are pixels with any flagged group."""
        assert isinstance(carry, State)
        seconds = pers_time(params)
        masks = block.out
        masks.fill(False)
        digests, payloads = [], []
        for k, (exposure, frame) in enumerate(zip(block.exposures, block.frames, strict=True)):
            # Pixels that saturate in any group of any integration of any file.
            block.place(k, np.logical_or.reduce([(f != NEVER).any(axis=0) for f, _ in frame]))
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
                payload.append(
                    {Kind.STATE_FILE: {exposure.detector: entry}, Kind.GROUPDQ_COPY: flags}
                )
                h.update(_digest(flags, entry).encode())
            digests.append(h.hexdigest())
            payloads.append(tuple(payload))
        return Scanned(masks, carry, digests, payloads)

    def begin(
        self, exposures: Sequence[Exposure], past: Past, params: Parameters
    ) -> dict[str, object]:
        """Window ends (Unix seconds, 0 for none), full frame: from ``--history`` or none.

        A history is a persistence-array file (the step's, or a run's final state), or
        the store of an earlier ``--method pipeline`` run, which holds its final state
        too, and its exposures, which must all end before this run's first one starts (as
        every method's history must). A state file records no exposure times: there,
        every saturation it remembers must come before this run's first exposure, which
        is what makes it the state the step would carry into this run.
        """
        carries: dict[str, object] = {
            e.detector: State(np.zeros(DETECTOR_SHAPE)) for e in exposures
        }
        history = past.history
        if history is None:
            return carries
        seconds = pers_time(params)
        names = {os.path.basename(f.path) for e in exposures for f in e.files}
        if os.path.isdir(history):
            from ..history import check_wholly_earlier, open_history_store

            check_wholly_earlier(open_history_store(history), exposures)
            states, last = stored_states(history, seconds)
        else:
            states = read_state(history, seconds, DETECTOR_SHAPE)
            last = last_filenames(history)
        for detector, name in last.items():
            if name in names:
                raise ConfigError(
                    f"--history {history}: its {detector} state ends with {name}, one of this "
                    "run's exposures; give the state before them"
                )
        _check_saturation_earlier(history, states, exposures, seconds)
        # Detectors only the history knows keep their state, for the run's final one.
        return carries | {d: State(states[d].copy(), last.get(d, "")) for d in states}

    def finish(self, carries: dict[str, object], params: Parameters) -> list[Final]:
        """Each detector's state after its last exposure, full frame.

        As ``OUTPUT_DIR/persistence_state.asdf``, and in the store as ``window_end_DETECTOR``
        images, where ``--history STORE`` finds them.
        """
        seconds = pers_time(params)
        states = {d: c for d, c in sorted(carries.items()) if isinstance(c, State)}
        tree = {d: state_entry(c.ends, c.filename, seconds) for d, c in states.items()}
        return [
            Final(Kind.STATE_FILE, FINAL_STATE, tree),
            *(
                Final(
                    Kind.STORE_ARRAY,
                    f"{WINDOW_END}{d}",
                    c.ends,
                    {
                        "_ARRAY_DIMENSIONS": ["y", "x"],
                        "description": "persistence window ends (Unix s, 0 for none) after the run",
                        "filename": c.filename,
                        "pers_time": seconds,
                    },
                )
                for d, c in states.items()
            ),
        ]


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

    first: dict[str, Exposure] = {}
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


def stored_states(store: str, seconds: int) -> tuple[dict, dict]:
    """The final states :func:`store_states` wrote, and the file each ends with."""
    import zarr

    from ..store import FORMAT

    try:
        group = zarr.open_group(store, mode="r", **FORMAT)
        arrays = [(n, a) for n, a in group.arrays() if n.startswith(WINDOW_END)]
    except Exception as exc:  # zarr raises many kinds on what is not a store
        raise ConfigError(f"{store}: --history store cannot be read ({brief(exc, 120)})") from None
    if not arrays:
        raise ConfigError(
            f"{store}: not the store of a --method pipeline run (no window_end_ images); "
            f"give its {FINAL_STATE} or such a store"
        )
    states, last = {}, {}
    for name, array in arrays:
        if array.attrs.get("pers_time", -1) != seconds:
            raise ConfigError(
                f"{store}: its state was made with a window of {array.attrs.get('pers_time')} s, "
                f"this run's is {seconds} s"
            )
        detector = name[len(WINDOW_END) :]
        states[detector] = np.asarray(array[:], dtype=np.float64)
        last[detector] = str(array.attrs.get("filename", ""))
    return states, last
