"""The detector memory: persistence from other programs' exposures, across runs.

Three programs interleave in time on MIRIMAGE and a fourth runs on MIRIFULONG. The oracle
is the notebook's rule on jwst's own saturation flags (DQInitStep + SaturationStep) over
every exposure of all four, in time order: a run of one program with a memory must give
each of its exposures exactly that mask.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import notebook_sources, pipeline_groupdq

import miripersist
from miripersist import simulate
from miripersist.inventory import DETECTOR_SHAPE
from miripersist.memory import Memory
from miripersist.store import open_store

MINUTE = 1.0 / 1440.0
HOUR = 1.0 / 24.0

#: (program, detector, minutes after the first exposure): interleaved on MIRIMAGE.
TIMELINE = (
    ("01111", "MIRIMAGE", 0),
    ("04444", "MIRIFULONG", 10),
    ("02222", "MIRIMAGE", 20),
    ("01111", "MIRIMAGE", 40),
    ("04444", "MIRIFULONG", 50),
    ("03333", "MIRIMAGE", 60),
    ("02222", "MIRIMAGE", 80),
    ("01111", "MIRIMAGE", 100),
    ("03333", "MIRIMAGE", 190),
)
PROGRAMS = ("01111", "02222", "03333", "04444")


@dataclass(frozen=True)
class Exposure:
    """One file of the timeline, with the pipeline's sources (detector frame)."""

    path: str
    program: str
    detector: str
    start: float
    end: float
    sources: np.ndarray

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass(frozen=True)
class Programs:
    root: str
    refs: dict
    exposures: tuple[Exposure, ...]

    def directory(self, program: str) -> str:
        return os.path.join(self.root, f"P{program}")

    @property
    def references(self) -> list[str]:
        return sorted(self.refs.values())

    def expected(self, window_days: float, alone: bool = False) -> dict[str, np.ndarray]:
        """Per file, the oracle's mask: earlier sources on its detector within the window.

        ``alone``: from its own program's exposures only, as a run without a memory.
        """
        out = {}
        for e in self.exposures:
            mask = np.zeros(DETECTOR_SHAPE, bool)
            for o in self.exposures:
                if o.detector == e.detector and o.start < e.start:
                    if o.end >= e.start - window_days and (o.program == e.program or not alone):
                        mask |= o.sources
            out[e.name] = mask
        return out


@pytest.fixture(scope="module")
def programs(tmp_path_factory, mask_ref) -> Programs:
    root = str(tmp_path_factory.mktemp("memory"))
    rng = np.random.default_rng(11)
    refs = {}
    for detector in ("MIRIMAGE", "MIRIFULONG"):
        thr, dq = simulate.thresholds(np.random.default_rng(1))
        refs[detector] = simulate.write_saturation_reference(
            os.path.join(root, f"{detector.lower()}_saturation.fits"), thr, dq, detector
        )
    masks = {"MIRIMAGE": mask_ref}
    masks["MIRIFULONG"] = simulate.write_mask_reference(
        os.path.join(root, "mirifulong_mask.fits"), detector="MIRIFULONG"
    )
    made, numbers = [], {}
    for program, detector, minutes in TIMELINE:
        numbers[program] = numbers.get(program, 0) + 1
        stars = [(rng.uniform(20, 1000), rng.uniform(20, 1010), 30000.0) for _ in range(4)]
        data = simulate.ramps(simulate.star_rates(DETECTOR_SHAPE, stars), 5, 1, rng=rng)
        folder = os.path.join(root, f"P{program}")
        os.makedirs(folder, exist_ok=True)
        name = f"jw{program}001001_02101_{numbers[program]:05d}_{detector.lower()}_uncal.fits"
        start = 60300.0 + minutes * MINUTE
        path = simulate.write_uncal(
            os.path.join(folder, name), data, start_mjd=start, detector=detector, archive=False
        )
        end = start + simulate.exposure_times(start, 5, 1).duration / 86400.0
        gdq = pipeline_groupdq(path, refs[detector], masks[detector], 1)
        made.append(Exposure(path, program, detector, start, end, notebook_sources(gdq, 3)))
    return Programs(root, refs, tuple(made))


def _masks(store: str) -> dict[str, np.ndarray]:
    ds = open_store(store)
    return {str(f): ds["mask"].sel(exposure=f).values for f in ds.exposure.values}


def _run(programs: Programs, program: str, out, memory, **keywords):
    return miripersist.run(
        programs.directory(program),
        str(out / program),
        programs.references,
        memory=str(memory),
        params=miripersist.Parameters(mode="sidecar", **keywords.pop("params", {})),
        **keywords,
    )


def _assert_masks(programs: Programs, out, expected: dict, which=PROGRAMS) -> None:
    for program in which:
        got = _masks(str(out / program / "persistence.zarr"))
        assert got, program
        for name, mask in got.items():
            want = expected[name]
            assert np.array_equal(mask, want), (
                f"{name}: {int(mask.sum())} pixels masked, the oracle {int(want.sum())}"
            )


@pytest.mark.parametrize("window", [HOUR, 24 * HOUR, np.inf], ids=["1h", "24h", "inf"])
def test_a_fed_memory_gives_each_program_the_masks_of_one_run_over_all(programs, tmp_path, window):
    memory = tmp_path / "memory"
    added = miripersist.add_to_memory(
        [programs.directory(p) for p in PROGRAMS], str(memory), programs.references
    )
    assert added == len(TIMELINE)
    expected, alone = programs.expected(window), programs.expected(window, alone=True)
    # Others' exposures, before and between a program's own, change its masks here.
    assert any(not np.array_equal(expected[n], alone[n]) for n in expected)
    for program in PROGRAMS:
        _run(programs, program, tmp_path, memory, params={"window_days": window})
    _assert_masks(programs, tmp_path, expected)


def test_runs_started_at_once_as_processes_share_one_memory(programs, tmp_path):
    memory = tmp_path / "memory"
    miripersist.add_to_memory(
        [programs.directory(p) for p in PROGRAMS], str(memory), programs.references
    )
    refs = [a for r in programs.references for a in ("--saturation-ref", r)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "miripersist", "run", programs.directory(p)]
            + ["--output-dir", str(tmp_path / p), "--memory", str(memory), "--quiet"]
            + ["--mode", "sidecar", *refs],
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in PROGRAMS
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    _assert_masks(programs, tmp_path, programs.expected(np.inf))
    # Each run is recorded, none stale: the memory held every exposure before they ran.
    found = miripersist.memory_status(str(memory))
    assert sorted(r["output_dir"] for r in found["runs"]) == sorted(
        str(tmp_path / p) for p in PROGRAMS
    )
    assert all(r["stale"] == [] for r in found["runs"])


def _stale_by_hand(programs: Programs, order, lookback=24 * HOUR) -> set[str]:
    """Programs whose run missed an exposure of a program run after it (the rule, by hand)."""
    stale = set()
    for k, program in enumerate(order):
        mine = [e for e in programs.exposures if e.program == program]
        first, last = min(e.start for e in mine), max(e.start for e in mine)
        for later in order[k + 1 :]:
            for e in programs.exposures:
                if e.program == later and e.detector == mine[0].detector:
                    if e.start < last and e.end >= first - lookback:
                        stale.add(program)
    return stale


@pytest.mark.parametrize(
    "order",
    [("03333", "01111", "04444", "02222"), ("01111", "02222", "03333", "04444")],
    ids=["3-1-4-2", "1-2-3-4"],
)
def test_a_fresh_memory_names_the_stale_runs_and_their_reruns_catch_up(
    programs, tmp_path, caplog, order
):
    memory = tmp_path / "memory"
    for program in order:
        _run(programs, program, tmp_path, memory)
    stale = _stale_by_hand(programs, order)
    assert stale, "the order must leave a run stale for the test to mean anything"
    found = miripersist.memory_status(str(memory))
    named = {os.path.basename(r["output_dir"]) for r in found["runs"] if r["stale"]}
    assert named == stale
    # The runs that made them stale said so, naming their output directories.
    warned = " ".join(r.getMessage() for r in caplog.records if "is stale" in r.getMessage())
    assert all(str(tmp_path / p) in warned for p in stale)
    expected = programs.expected(np.inf)
    for program in sorted(stale):
        before = _masks(str(tmp_path / program / "persistence.zarr"))
        ds = _run(programs, program, tmp_path, memory)
        changed = sum(not np.array_equal(before[n], expected[n]) for n in before)
        # Only the outputs whose masks change are rewritten.
        assert ds.attrs["last_run"]["written"] == changed
        assert ds.attrs["last_run"]["unchanged"] == len(before) - changed
    _assert_masks(programs, tmp_path, expected)
    found = miripersist.memory_status(str(memory))
    assert all(r["stale"] == [] for r in found["runs"])


def test_snowblinds_rule_with_a_memory_is_its_run_over_all_programs(programs, tmp_path):
    memory, params = tmp_path / "memory", miripersist.Parameters(method="snowblind")
    miripersist.add_to_memory(
        [programs.directory(p) for p in PROGRAMS], str(memory), programs.references, params
    )
    whole = miripersist.run(
        [programs.directory(p) for p in PROGRAMS],
        str(tmp_path / "all"),
        programs.references,
        params=miripersist.Parameters(method="snowblind", mode="sidecar", window_days=HOUR),
    )
    expected = {str(f): whole["mask"].sel(exposure=f).values for f in whole.exposure.values}
    assert any(m.any() for m in expected.values())
    for program in PROGRAMS:
        _run(
            programs,
            program,
            tmp_path,
            memory,
            params={"method": "snowblind", "window_days": HOUR},
        )
    _assert_masks(programs, tmp_path, expected)


def test_entries_made_with_other_parameters_are_left_out_in_one_line(programs, tmp_path, caplog):
    memory = tmp_path / "memory"
    other = miripersist.Parameters(n_unsat_threshold=2)
    miripersist.add_to_memory(
        [programs.directory(p) for p in ("01111", "02222")],
        str(memory),
        programs.references,
        other,
    )
    ds = _run(programs, "02222", tmp_path, memory)
    lines = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    # Two of program 1's exposures come before program 2's last (the third after it).
    assert len(lines) == 1 and "2 entries" in lines[0], lines
    assert "made with other source parameters" in lines[0] and str(memory) in lines[0]
    # Masked by its own exposures only.
    mine = [e for e in programs.exposures if e.program == "02222"]
    assert not ds["mask"].sel(exposure=mine[0].name).values.any()
    np.testing.assert_array_equal(ds["mask"].sel(exposure=mine[1].name).values, mine[0].sources)


def test_a_lookback_before_what_the_memory_holds_is_said(programs, tmp_path, caplog):
    memory = tmp_path / "memory"
    miripersist.add_to_memory(programs.directory("01111"), str(memory), programs.references)
    # Program 3 starts an hour after program 1: a lookback of 50 minutes stays within
    # what the memory holds; of two hours, it reaches before.
    _run(programs, "03333", tmp_path, memory, lookback="50m")
    lines = [r.getMessage() for r in caplog.records if "lookback reaches back" in r.getMessage()]
    assert lines == []
    caplog.clear()
    _run(programs, "03333", tmp_path, memory, lookback="2h", overwrite=True)
    lines = [r.getMessage() for r in caplog.records if "lookback reaches back" in r.getMessage()]
    assert len(lines) == 1 and "MIRIMAGE" in lines[0]
    assert "2023-12-21T23:00:00" in lines[0] and "from 2023-12-22T00:00:00" in lines[0]


def test_the_pipeline_method_refuses_a_memory_in_one_line(programs, tmp_path):
    cmd = [sys.executable, "-m", "miripersist", "run", programs.directory("01111")]
    cmd += ["--output-dir", str(tmp_path / "o"), "--memory", str(tmp_path / "m")]
    cmd += ["--method", "pipeline", "--window", "3600s"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "miripersist: error: --memory does not apply to --method pipeline: what it carries "
        "between exposures is not sources; chain its runs with --history"
    ]
    assert not os.path.exists(tmp_path / "m")


def test_the_memory_opens_with_xarray(programs, tmp_path):
    import xarray as xr

    memory = tmp_path / "memory"
    miripersist.add_to_memory(programs.directory("02222"), str(memory), programs.references)
    tree = xr.open_datatree(str(memory), engine="zarr", consolidated=False)
    batches = tree["batches"]
    (batch,) = batches.children.values()
    ds = batch.to_dataset()
    assert ds.sizes["entry"] == 2
    mine = [e for e in programs.exposures if e.program == "02222"]
    assert sorted(ds["file"].values.tolist()) == sorted(e.name for e in mine)
    # The sources, pixel for pixel, as flat indices in the detector frame.
    ends = np.cumsum(ds["n_pixels"].values)
    for k, name in enumerate(ds["file"].values):
        pixels = ds["pixels"].values[ends[k] - ds["n_pixels"].values[k] : ends[k]]
        image = np.zeros(DETECTOR_SHAPE, bool).reshape(-1)
        image[pixels] = True
        (e,) = [e for e in mine if e.name == name]
        np.testing.assert_array_equal(image.reshape(DETECTOR_SHAPE), e.sources)


def test_concurrent_adds_and_a_killed_one_leave_each_exposure_once(programs, tmp_path):
    memory = tmp_path / "memory"
    refs = [a for r in programs.references for a in ("--saturation-ref", r)]
    sets = [("01111", "02222"), ("02222", "03333"), ("03333", "04444"), ("01111", "04444")]

    def add(programs_set):
        return subprocess.Popen(
            [sys.executable, "-m", "miripersist", "memory", "add"]
            + [programs.directory(p) for p in programs_set]
            + ["--memory", str(memory), "--quiet", *refs],
            stderr=subprocess.PIPE,
            text=True,
        )

    victim = add(sets[0])
    others = [add(s) for s in sets[1:]]
    # Killed once its scratch run is under way (its hidden directory beside the memory).
    deadline, mark = time.monotonic() + 120, f"-{victim.pid}-"
    while not any(n.startswith(".tmp-") and mark in n for n in os.listdir(tmp_path)):
        assert time.monotonic() < deadline and victim.poll() is None
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    for proc in others:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    entries = Memory(str(memory)).entries()
    names = sorted(e.file for e in entries)
    assert names == sorted(e.name for e in programs.exposures)
    # Each equal to a single add's entry.
    single = tmp_path / "single"
    miripersist.add_to_memory(
        [programs.directory(p) for p in PROGRAMS], str(single), programs.references
    )
    one = Memory(str(single))
    alone = {e.identity: e for e in one.with_pixels(one.entries())}
    mem = Memory(str(memory))
    for e in mem.with_pixels(mem.entries()):
        assert e == alone[e.identity]
        np.testing.assert_array_equal(e.pixels, alone[e.identity].pixels)
    # What the killed add left is hidden, and the next add on this host removes it.
    miripersist.add_to_memory(programs.directory("01111"), str(memory), programs.references)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
    assert not [n for n in os.listdir(memory / "batches") if n.startswith(".tmp-")]


def test_memory_status_on_the_command_line(programs, tmp_path):
    memory = tmp_path / "memory"
    miripersist.add_to_memory(
        [programs.directory(p) for p in PROGRAMS], str(memory), programs.references
    )
    cmd = [sys.executable, "-m", "miripersist", "memory", "status", str(memory)]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "MIRIMAGE: 7 exposures" in text and "MIRIFULONG: 2 exposures" in text
    assert "programs 01111, 02222, 03333" in text
    data = json.loads(
        subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=True).stdout
    )
    assert data["detectors"]["MIRIFULONG"]["programs"] == ["04444"]
    assert data["entries"] == len(TIMELINE)


def test_nearby_pixel_ranges_are_read_as_one():
    from miripersist.memory import coalesced

    ranges = [(30, 40), (0, 10), (10, 20), (1000, 1005), (25, 28)]
    assert coalesced(ranges, gap=6) == [(0, 40), (1000, 1005)]
    assert coalesced(ranges, gap=3) == [(0, 20), (25, 40), (1000, 1005)]
    assert coalesced(ranges, gap=1) == [(0, 20), (25, 28), (30, 40), (1000, 1005)]
    assert coalesced([], gap=10) == []
