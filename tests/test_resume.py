"""Long runs: kill and resume, incremental programs, changed inputs, saturation history."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from conftest import sha256

from miripersist import Parameters, run, simulate
from miripersist.errors import ConfigError, MiripersistError
from miripersist.inventory import read_exposure
from miripersist.summary import format_summary


@pytest.fixture(scope="module")
def longer(tmp_path_factory):
    """Enough FULL-frame exposures that a run can be stopped part-way."""
    return simulate.make_program(
        str(tmp_path_factory.mktemp("long") / "in"),
        n_exposures=24,
        ngroups=4,
        subarrays=("FULL", "SUB256"),
        seed=9,
    )


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, longer):
    out = tmp_path_factory.mktemp("reference")
    ds = run([longer.directory], str(out), [longer.saturation_ref], Parameters(batch=2))
    return out, ds


def digests(directory) -> dict[str, str]:
    return {p.name: sha256(p) for p in sorted(directory.glob("*.fits"))}


def _start(longer, out, batch=1):
    cmd = [
        sys.executable,
        "-m",
        "miripersist",
        "run",
        longer.directory,
        "--output-dir",
        str(out),
        "--saturation-ref",
        longer.saturation_ref,
        "--batch",
        str(batch),
        "--quiet",
    ]
    # Niced, so that on a busy machine this process still gets to stop it in time.
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=lambda: os.nice(10)
    )


def _stop_after_first_output(proc, out, sig):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(out.glob("*_masked_persistence_uncal.fits")):
            # Frozen at once, so that the run cannot finish before the signal arrives.
            proc.send_signal(signal.SIGSTOP)
            proc.send_signal(sig)
            proc.send_signal(signal.SIGCONT)
            break
        time.sleep(0.002)
    proc.wait(timeout=120)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_stopped_run_resumes_to_identical_outputs(tmp_path, longer, reference_run, sig):
    ref_out, ref_ds = reference_run
    out = tmp_path / "out"
    out.mkdir()
    proc = _start(longer, out)
    _stop_after_first_output(proc, out, sig)
    said = proc.stderr.read()
    assert proc.returncode != 0, f"the run must have been stopped part-way; it said {said!r}"
    if sig != signal.SIGKILL:
        assert proc.returncode == 1
        assert b"run the same command again" in said
        assert not list(out.glob(".tmp-*")), "a clean stop leaves no temporary file"
    store = xr.open_zarr(out / "persistence.zarr")  # readable after any stop
    done = int(store["complete"].values.sum())
    assert done < 24

    ds = run([longer.directory], str(out), [longer.saturation_ref], Parameters(batch=1))
    assert ds.attrs["last_run"]["computed"] == 24 - done
    assert ds.attrs["last_run"]["reused"] == done
    assert digests(out) == digests(ref_out)
    assert not list(out.glob(".tmp-*"))
    np.testing.assert_array_equal(ds["mask"].values, ref_ds["mask"].values)
    again = run([longer.directory], str(out), [longer.saturation_ref], Parameters(batch=1))
    assert "nothing to do" in format_summary(again)
    assert "nothing to do" not in format_summary(ds)
    assert again.attrs["last_run"] == {
        "computed": 0,
        "reused": 24,
        "written": 0,
        "whole": 0,
        "unchanged": 24,
        "retained": 0,
    }


def _subset(longer, tmp_path, keep):
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    for p in keep:
        shutil.copy2(p, d)
    return d


def test_later_exposures_only_extend_the_scan(tmp_path, longer, reference_run):
    ref_out, _ = reference_run
    by_time = sorted(longer.files, key=lambda p: read_exposure(p).mid_mjd)
    d = _subset(longer, tmp_path, by_time[:16])
    out = tmp_path / "out"
    run([str(d)], str(out), [longer.saturation_ref])
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("*.fits")}
    _subset(longer, tmp_path, by_time[16:])
    ds = run([str(d)], str(out), [longer.saturation_ref])
    assert ds.attrs["last_run"]["computed"] == 8 and ds.attrs["last_run"]["reused"] == 16
    assert ds.attrs["last_run"]["written"] == 8
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.fits") if p.name in first} == first
    assert digests(out) == digests(ref_out)


def test_an_earlier_exposure_rewrites_only_changed_outputs(tmp_path, longer, reference_run):
    ref_out, _ = reference_run
    by_time = sorted(longer.files, key=lambda p: read_exposure(p).mid_mjd)
    late_comer = by_time[5]
    d = _subset(longer, tmp_path, [p for p in by_time if p != late_comer])
    out = tmp_path / "out"
    before_ds = run([str(d)], str(out), [longer.saturation_ref])
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.fits")}
    masks_before = {f: before_ds["mask"][i].values for i, f in enumerate(before_ds["file"].values)}
    _subset(longer, tmp_path, [late_comer])
    ds = run([str(d)], str(out), [longer.saturation_ref])
    assert ds.attrs["last_run"]["computed"] == 1 and ds.attrs["last_run"]["reused"] == 23
    changed = {
        f
        for i, f in enumerate(ds["file"].values)
        if f in masks_before and not np.array_equal(masks_before[f], ds["mask"][i].values)
    }
    assert changed, "the late exposure's sources must change some later masks"
    rewritten = {
        p.name
        for p in out.glob("*.fits")
        if p.name in stamps and p.stat().st_mtime_ns != stamps[p.name]
    }
    out_name = {f: f.replace("_uncal.fits", "_masked_persistence_uncal.fits") for f in changed}
    assert rewritten == set(out_name.values())
    assert ds.attrs["last_run"]["written"] == len(changed) + 1
    assert digests(out) == digests(ref_out)


@pytest.mark.modifies_inputs
def test_a_changed_input_is_recomputed(tmp_path, longer):
    d = _subset(longer, tmp_path, longer.files[:6])
    out = tmp_path / "out"
    run([str(d)], str(out), [longer.saturation_ref])
    victim = sorted(d.glob("*_uncal.fits"))[0]
    from astropy.io import fits

    with fits.open(victim, mode="update") as hdul:
        hdul["SCI"].data[0, :, 100:110, 100:110] = 65535
    ds = run([str(d)], str(out), [longer.saturation_ref])
    assert ds.attrs["last_run"]["computed"] == 1
    i = list(ds["file"].values).index(victim.name)
    assert ds["source"][i].values[100:110, 100:110].all()


def test_history_masks_the_first_exposures_of_a_visit(tmp_path, longer):
    by_time = sorted(longer.files, key=lambda p: read_exposure(p).mid_mjd)
    visit1 = _subset(longer, tmp_path, by_time[:6])
    v2 = tmp_path / "v2"
    v2.mkdir()
    for p in by_time[6:9]:
        shutil.copy2(p, v2)
    first = run([str(visit1)], str(tmp_path / "o1"), [longer.saturation_ref])
    plain = run([str(v2)], str(tmp_path / "o2"), [longer.saturation_ref])
    assert plain["n_masked"].values[0] == 0
    hist = run(
        [str(v2)],
        str(tmp_path / "o3"),
        [longer.saturation_ref],
        history=str(tmp_path / "o1" / "persistence.zarr"),
    )
    seen = first["source"].values.any(axis=0)
    e = read_exposure(str(hist["path"].values[0]))
    np.testing.assert_array_equal(hist["mask"][0].values, seen)
    assert hist["n_masked"].values[0] == seen[e.window].sum() > 0
    assert os.path.exists(tmp_path / "o3" / "persistence.zarr")


def test_history_added_to_a_finished_run_updates_its_masks(tmp_path, longer):
    by_time = sorted(longer.files, key=lambda p: read_exposure(p).mid_mjd)
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    for d, files in ((v1, by_time[:6]), (v2, by_time[6:9])):
        d.mkdir()
        for p in files:
            shutil.copy2(p, d)
    run([str(v1)], str(tmp_path / "o1"), [longer.saturation_ref])
    history = str(tmp_path / "o1" / "persistence.zarr")
    run([str(v2)], str(tmp_path / "o2"), [longer.saturation_ref])
    again = run([str(v2)], str(tmp_path / "o2"), [longer.saturation_ref], history=history)
    fresh = run([str(v2)], str(tmp_path / "o3"), [longer.saturation_ref], history=history)
    assert again.attrs["last_run"]["computed"] == 0
    np.testing.assert_array_equal(again["mask"].values, fresh["mask"].values)
    reread = xr.open_zarr(tmp_path / "o2" / "persistence.zarr")
    np.testing.assert_array_equal(reread["mask"].values, fresh["mask"].values)
    assert reread.attrs["history"] == history
    assert digests(tmp_path / "o2") == digests(tmp_path / "o3")


def test_leftovers_of_a_killed_incremental_run_are_cleaned(tmp_path, longer):
    out = tmp_path / "out"
    run([longer.directory], str(out), [longer.saturation_ref])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    for kind in ("new", "tmp", "old"):
        (out / f"persistence.zarr.{kind}-{host}-{dead.pid}").mkdir()
    kept = [
        f"persistence.zarr.new-{host}-{os.getpid()}",  # a live process's
        f"persistence.zarr.new-elsewhere.cluster-{dead.pid}",  # another host's: may be alive
    ]
    for name in kept:
        (out / name).mkdir()
    run([longer.directory], str(out), [longer.saturation_ref])
    left = sorted(p.name for p in out.glob("persistence.zarr.*"))
    assert left == sorted(kept)


def _lowered_reference(source: str, path, factor: float) -> str:
    from astropy.io import fits

    thr = fits.getdata(source, "SCI") * np.float32(factor)
    dq = fits.getdata(source, "DQ")
    return simulate.write_saturation_reference(str(path), thr, dq)


def test_a_changed_saturation_reference_recomputes_everything(tmp_path, longer):
    d = _subset(longer, tmp_path, longer.files[:6])
    out, fresh_out = tmp_path / "out", tmp_path / "fresh"
    first = run([str(d)], str(out), [longer.saturation_ref])["n_source"].values
    corrected = _lowered_reference(longer.saturation_ref, tmp_path / "b.fits", 0.5)
    ds = run([str(d)], str(out), [corrected])
    assert ds.attrs["last_run"]["computed"] == 6 and ds.attrs["last_run"]["reused"] == 0
    fresh = run([str(d)], str(fresh_out), [corrected])
    np.testing.assert_array_equal(ds["source"].values, fresh["source"].values)
    assert (ds["n_source"].values > first).all(), "the test must change sources"
    assert set(ds["saturation_ref"].values.astype(str)) == {corrected}
    assert digests(out) == digests(fresh_out)


def test_a_reference_corrected_under_the_same_name_recomputes(tmp_path, longer):
    d = _subset(longer, tmp_path, longer.files[:4])
    ref = tmp_path / "sat.fits"
    shutil.copy2(longer.saturation_ref, ref)
    out = tmp_path / "out"
    run([str(d)], str(out), [str(ref)])
    _lowered_reference(longer.saturation_ref, ref, 0.5)  # replaced in place, same path
    ds = run([str(d)], str(out), [str(ref)])
    assert ds.attrs["last_run"]["computed"] == 4
    fresh = run([str(d)], str(tmp_path / "fresh"), [str(ref)])
    np.testing.assert_array_equal(ds["source"].values, fresh["source"].values)
    assert digests(out) == digests(tmp_path / "fresh")


def _two_visits(tmp_path, longer, split=12):
    by_time = sorted(longer.files, key=lambda p: read_exposure(p).mid_mjd)
    obs1, obs2 = tmp_path / "obs1", tmp_path / "obs2"
    for d, files in ((obs1, by_time[:split]), (obs2, by_time[split:])):
        d.mkdir()
        for p in files:
            shutil.copy2(p, d)
    return obs1, obs2


def test_a_rerun_with_fewer_inputs_keeps_the_rest_in_the_scan(tmp_path, longer, reference_run):
    ref_out, ref_ds = reference_run
    obs1, obs2 = _two_visits(tmp_path, longer)
    out = tmp_path / "out"
    run([str(obs1), str(obs2)], str(out), [longer.saturation_ref])
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.fits")}
    ds = run([str(obs2)], str(out), [longer.saturation_ref])
    assert ds.sizes["exposure"] == 24
    assert ds.attrs["last_run"]["retained"] == 12 and ds.attrs["last_run"]["written"] == 0
    np.testing.assert_array_equal(ds["mask"].values, ref_ds["mask"].values)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.fits")} == stamps
    # and the full command is still this store's own
    again = run([str(obs1), str(obs2)], str(out), [longer.saturation_ref])
    assert again.attrs["last_run"]["written"] == 0 and again.attrs["last_run"]["computed"] == 0
    assert digests(out) == digests(ref_out)


def _program_then_a_late_comer(tmp_path, longer):
    """A run on all but the fourth exposure; that one then alone in a directory of its own."""
    by_time = sorted(longer.files, key=lambda p: read_exposure(p).mid_mjd)
    late_comer = by_time[3]
    obs1 = _subset(longer, tmp_path, [p for p in by_time if p != late_comer])
    out = tmp_path / "out"
    run([str(obs1)], str(out), [longer.saturation_ref])
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy2(late_comer, extra)
    return obs1, out, extra


def test_retained_outputs_are_rewritten_from_their_recorded_inputs(tmp_path, longer, reference_run):
    ref_out, _ = reference_run
    _, out, extra = _program_then_a_late_comer(tmp_path, longer)
    # Only the late comer is named; the exposures after it are masked anew from the store.
    ds = run([str(extra)], str(out), [longer.saturation_ref])
    assert ds.attrs["last_run"]["computed"] == 1 and ds.attrs["last_run"]["retained"] == 23
    assert ds.attrs["last_run"]["written"] > 1
    assert digests(out) == digests(ref_out)


def test_outputs_that_cannot_be_remade_are_named_stale(tmp_path, longer, reference_run):
    ref_out, _ = reference_run
    obs1, out, extra = _program_then_a_late_comer(tmp_path, longer)
    moved = tmp_path / "moved"
    obs1.rename(moved)
    with pytest.raises(MiripersistError, match="stale, the mask changed but the input"):
        run([str(extra)], str(out), [longer.saturation_ref])
    store = xr.open_zarr(out / "persistence.zarr")
    assert not store["written"].values.all(), "stale outputs are not recorded as written"
    with pytest.raises(MiripersistError, match="stale"):  # still stale: nothing was forgotten
        run([str(extra)], str(out), [longer.saturation_ref])
    moved.rename(obs1)
    ds = run([str(extra)], str(out), [longer.saturation_ref])
    assert ds["written"].values.all()
    assert digests(out) == digests(ref_out)


def test_a_history_later_than_the_run_or_holding_its_exposures_is_refused(tmp_path, longer):
    obs1, obs2 = _two_visits(tmp_path, longer, split=6)
    run([str(obs2)], str(tmp_path / "o2"), [longer.saturation_ref])
    later = str(tmp_path / "o2" / "persistence.zarr")
    with pytest.raises(ConfigError, match="ends after this run's first exposure"):
        run([str(obs1)], str(tmp_path / "o1"), [longer.saturation_ref], history=later)
    with pytest.raises(ConfigError, match="the same exposure as this run's"):
        run([str(obs2)], str(tmp_path / "o3"), [longer.saturation_ref], history=later)
    assert not (tmp_path / "o1" / "persistence.zarr").exists()


def test_a_history_with_a_window_masks_only_what_ended_within_it(tmp_path, longer):
    obs1, obs2 = _two_visits(tmp_path, longer, split=6)
    hist = run([str(obs1)], str(tmp_path / "o1"), [longer.saturation_ref]).load()
    first = read_exposure(
        str(sorted(obs2.glob("*_uncal.fits"), key=lambda p: read_exposure(p).mid_mjd)[0])
    )
    ends = hist["end_mjd"].values
    # A window that reaches back to the third-to-last history exposure exactly (whole seconds).
    gap_s = round((first.start_mjd - ends[-3]) * 86400)
    window = gap_s / 86400
    ds = run(
        [str(obs2)],
        str(tmp_path / "o2"),
        [longer.saturation_ref],
        Parameters(window_days=window),
        history=str(tmp_path / "o1" / "persistence.zarr"),
    )
    sources = hist["source"].values
    within = first.start_mjd - ends <= window
    expected = np.zeros(sources.shape[1:], bool)
    for j in np.flatnonzero(within):
        expected |= sources[j]
    assert 0 < within.sum() < len(ends)
    np.testing.assert_array_equal(ds["mask"][0].values, expected)


def test_history_through_the_command_line(tmp_path, longer, capsys):
    from miripersist.cli import main

    obs1, obs2 = _two_visits(tmp_path, longer, split=6)
    base = ["--saturation-ref", longer.saturation_ref, "--quiet"]
    assert main(["run", str(obs1), "--output-dir", str(tmp_path / "o1"), *base]) == 0
    history = str(tmp_path / "o1" / "persistence.zarr")
    args = ["run", str(obs2), "--output-dir", str(tmp_path / "o2"), "--history", history, *base]
    assert main(args) == 0
    ds = xr.open_zarr(tmp_path / "o2" / "persistence.zarr")
    assert ds.attrs["history"] == history
    plain = run([str(obs2)], str(tmp_path / "plain"), [longer.saturation_ref])
    assert ds["n_masked"].values[0] > plain["n_masked"].values[0] == 0
    capsys.readouterr()
    later = str(tmp_path / "o2" / "persistence.zarr")
    args = ["run", str(obs1), "--output-dir", str(tmp_path / "o3"), "--history", later, *base]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a history must be wholly earlier" in err[0]


def _visits(tmp_path, longer, *cuts):
    by_time = sorted(longer.files, key=lambda p: read_exposure(p).mid_mjd)
    edges = [0, *cuts, len(by_time)]
    dirs = []
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        d = tmp_path / f"visit{k + 1}"
        d.mkdir()
        for p in by_time[a:b]:
            shutil.copy2(p, d)
        dirs.append(d)
    return dirs


def test_histories_chain_so_a_visit_is_masked_by_every_visit_before_it(
    tmp_path, longer, reference_run
):
    _, whole = reference_run  # one run over all the visits
    v1, v2, v3 = _visits(tmp_path, longer, 8, 16)
    stores = []
    for k, visit in enumerate((v1, v2, v3)):
        history = stores[-1] if stores else None
        ds = run(
            [str(visit)], str(tmp_path / f"o{k + 1}"), [longer.saturation_ref], history=history
        )
        stores.append(str(tmp_path / f"o{k + 1}" / "persistence.zarr"))
    names = list(ds["file"].values)
    at = [list(whole["file"].values).index(n) for n in names]
    np.testing.assert_array_equal(ds["mask"].values, whole["mask"].values[at])
    np.testing.assert_array_equal(ds["n_masked"].values, whole["n_masked"].values[at])
    # A chain's stores must stay: the first visit's gone, the third cannot be masked right.
    os.rename(stores[0], stores[0] + ".moved")
    with pytest.raises(ConfigError, match=f"the --history store {stores[1]} was made with it"):
        run([str(v3)], str(tmp_path / "o4"), [longer.saturation_ref], history=stores[1])


def test_a_history_is_never_dropped_or_mixed_silently(tmp_path, longer):
    v1, v2 = _visits(tmp_path, longer, 8)
    run([str(v1)], str(tmp_path / "o1"), [longer.saturation_ref])
    history = str(tmp_path / "o1" / "persistence.zarr")
    args = ([str(v2)], str(tmp_path / "o2"), [longer.saturation_ref])
    run(*args, history=history)
    with pytest.raises(ConfigError, match=f"--history {history} -> none"):
        run(*args)  # a resubmitted job without the option
    with pytest.raises(ConfigError, match="made with --n-unsat-threshold 3, this run uses 5"):
        run(
            [str(v2)],
            str(tmp_path / "o3"),
            [longer.saturation_ref],
            Parameters(n_unsat_threshold=5),
            history=history,
        )


@pytest.mark.parametrize("mode", ["copy", "sidecar"])
def test_outputs_a_failed_run_finished_are_kept_by_the_rerun(
    tmp_path, longer, reference_run, monkeypatch, mode
):
    import errno

    import miripersist.writeback as writeback

    out = tmp_path / "out"
    params = Parameters(batch=16, mode=mode)
    writer = writeback.write_copy if mode == "copy" else writeback.write_sidecar
    calls = []

    def full_disk(*args, **kwargs):
        calls.append(args)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return writer(*args, **kwargs)

    monkeypatch.setattr(writeback, "write_copy" if mode == "copy" else "write_sidecar", full_disk)
    with pytest.raises(MiripersistError, match="No space left on device"):
        run([longer.directory], str(out), [longer.saturation_ref], params)
    monkeypatch.undo()
    whole = {p.name: p.stat().st_mtime_ns for p in out.glob("*.fits")}
    assert 3 <= len(whole) < len(longer.files)

    ds = run([longer.directory], str(out), [longer.saturation_ref], params)
    done = ds.attrs["last_run"]
    assert done["whole"] == len(whole)
    assert done["written"] == len(longer.files) - len(whole)
    assert {n: p.stat().st_mtime_ns for n, p in ((p.name, p) for p in out.glob("*.fits"))
            if n in whole} == whole  # fmt: skip
    assert ds["written"].values.all()
    fresh = tmp_path / "fresh"
    run([longer.directory], str(fresh), [longer.saturation_ref], params)
    assert digests(out) == digests(fresh)
