"""``--method pipeline`` against jwst's own PersistenceStep chained over a program.

The oracle is the serial chain a person runs by hand: every exposure in time order
through DQInitStep + SaturationStep + PersistenceStep, each reading the
persistence-array file the one before it saved. miripersist must give (a) state files
on which the step, run alone per exposure in any order, flags what the chain flags,
(b) copies whose GROUPDQ holds exactly the chain's PERSISTENCE flags, (c) the same
answer when the program is split in two runs joined by ``--history``, and a final
state equal to the chain's.
"""

from __future__ import annotations

import os
import shutil

import asdf
import numpy as np
import pytest
from astropy.io import fits

from miripersist import Parameters, run, simulate
from miripersist.errors import ConfigError
from miripersist.inventory import read_exposure
from miripersist.statefile import state_bytes

PERSISTENCE = 32
DO_NOT_USE = 1
# Exposures of 6 groups (2.775 s each, FULL) 60 s apart: 5 s closes inside an
# integration, 20 s inside the exposure, 100 s between the next exposures, 2000 s never.
WINDOWS = (5, 20, 100, 2000)


def _in_time_order(files: list[str]) -> list[str]:
    return sorted(files, key=lambda p: (read_exposure(p).start_mjd, p))


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """Four FULL exposures of 2, 1, 2, 1 integrations, with stars that saturate."""
    return simulate.make_program(
        str(tmp_path_factory.mktemp("pipeline") / "in"),
        n_exposures=4,
        ngroups=6,
        nints=(2, 1),
        stars_per_exposure=4,
    )


@pytest.fixture(scope="module")
def saturated(program):
    """Each file after the real DQInitStep + SaturationStep, in time order."""
    from jwst.dq_init import DQInitStep
    from jwst.saturation import SaturationStep

    out = []
    for path in _in_time_order(program.files):
        model = DQInitStep.call(path, override_mask=program.mask_ref)
        model = SaturationStep.call(
            model, override_saturation=program.saturation_ref, override_superbias="N/A"
        )
        out.append((path, model))
    return out


def chain(models, seconds: int, state: str, dnu: bool = False) -> dict[str, np.ndarray]:
    """The step over the models in order, sharing one persistence-array file."""
    from jwst.persistence import PersistenceStep

    result = {}
    for path, model in models:
        done = PersistenceStep.call(
            model.copy(),
            persistence_time=seconds,
            persistence_array_file=state,
            save_persistence=state,
            persistence_dnu=dnu,
        )
        result[os.path.basename(path)] = np.array(done.groupdq)
    return result


def step_alone(model, seconds: int, state: str) -> np.ndarray:
    from jwst.persistence import PersistenceStep

    done = PersistenceStep.call(
        model.copy(), persistence_time=seconds, persistence_array_file=state
    )
    return np.array(done.groupdq)


def _copy_of(out: str, path: str) -> str:
    root = os.path.basename(path)[: -len("_uncal.fits")]
    return os.path.join(out, f"{root}_masked_persistence_uncal.fits")


def _state_of(out: str, path: str) -> str:
    return os.path.join(
        out, os.path.basename(path)[: -len("_uncal.fits")] + "_persistence_state.asdf"
    )


def _tree(path: str) -> dict:
    with asdf.open(path, memmap=False) as af:
        return {
            d: {k: (np.array(v) if k in ("rows", "cols", "vals") else v) for k, v in e.items()}
            for d, e in af.tree.items()
            if isinstance(e, dict) and "vals" in e
        }


def _same_tree(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for d in a:
        for k in ("rows", "cols", "vals"):
            if not np.array_equal(a[d][k], b[d][k]):
                return False
        if a[d]["pers_time"] != b[d]["pers_time"] or a[d]["filename"] != b[d]["filename"]:
            return False
    return True


@pytest.mark.parametrize("seconds", WINDOWS)
def test_copies_and_state_files_equal_the_serial_chain(program, saturated, seconds, tmp_path):
    expected = chain(saturated, seconds, str(tmp_path / "chain.asdf"))
    out = str(tmp_path / "out")
    run(
        [program.directory],
        out,
        saturation_refs=[program.saturation_ref],
        params=Parameters(method="pipeline", window_days=seconds / 86400.0),
    )
    flagged = 0
    for path, _ in saturated:
        name = os.path.basename(path)
        with fits.open(_copy_of(out, path)) as hdul:
            ours = hdul["GROUPDQ"].data
            assert "PIXELDQ" not in hdul  # the copy's pixel flags are untouched
        np.testing.assert_array_equal(ours, expected[name] & PERSISTENCE, err_msg=name)
        flagged += int(np.count_nonzero(ours))
    # (a) the step alone on each of our state files, last exposure first
    for path, model in reversed(saturated):
        alone = step_alone(model, seconds, _state_of(out, path))
        np.testing.assert_array_equal(alone, expected[os.path.basename(path)])
    # (b) the same state with a key the lean writer does not know: written by asdf itself
    path, model = saturated[-1]
    with asdf.open(_state_of(out, path), memmap=False) as af:
        tree = {
            k: {**v, "extra": 1} for k, v in af.tree.items() if isinstance(v, dict) and "vals" in v
        }
        tree = {k: {n: np.asarray(x) if n in ("rows", "cols", "vals") else x for n, x in v.items()}
                for k, v in tree.items()}  # fmt: skip
    by_asdf = tmp_path / "by_asdf.asdf"
    by_asdf.write_bytes(state_bytes(tree))
    np.testing.assert_array_equal(
        step_alone(model, seconds, str(by_asdf)), expected[os.path.basename(path)]
    )
    assert _same_tree(
        _tree(os.path.join(out, "persistence_state.asdf")), _tree(tmp_path / "chain.asdf")
    )
    assert flagged > 0


def test_two_integrations_and_dnu_flags(program, saturated, tmp_path):
    """With persistence_dnu the chain sets DO_NOT_USE too; ``--flags`` says the same."""
    expected = chain(saturated, 100, str(tmp_path / "chain.asdf"), dnu=True)
    out = str(tmp_path / "out")
    run(
        [program.directory],
        out,
        saturation_refs=[program.saturation_ref],
        params=Parameters(
            method="pipeline", window_days=100 / 86400.0, flags="DO_NOT_USE,PERSISTENCE"
        ),
    )
    two = [p for p, m in saturated if m.groupdq.shape[0] == 2]
    assert two
    for path, _ in saturated:
        ours = fits.getdata(_copy_of(out, path), "GROUPDQ")
        chain_flags = expected[os.path.basename(path)]
        np.testing.assert_array_equal(ours & PERSISTENCE, chain_flags & PERSISTENCE)
        assert np.array_equal(ours & DO_NOT_USE > 0, ours & PERSISTENCE > 0)


def test_split_run_with_history_equals_one_run(program, saturated, tmp_path):
    seconds = 100
    expected = chain(saturated, seconds, str(tmp_path / "chain.asdf"))
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    paths = [p for p, _ in saturated]
    for p in paths[:2]:
        shutil.copy(p, first)
    for p in paths[2:]:
        shutil.copy(p, second)
    params = Parameters(method="pipeline", window_days=seconds / 86400.0, mode="sidecar")
    run([str(first)], str(tmp_path / "out1"), [program.saturation_ref], params=params)
    history = str(tmp_path / "out1" / "persistence_state.asdf")
    out2 = str(tmp_path / "out2")
    run([str(second)], out2, [program.saturation_ref], params=params, history=history)
    assert not any(n.endswith(".fits") for n in os.listdir(out2))  # sidecar mode: states only
    for path, model in saturated[2:]:
        alone = step_alone(model, seconds, _state_of(out2, path))
        np.testing.assert_array_equal(alone, expected[os.path.basename(path)])
    assert _same_tree(
        _tree(os.path.join(out2, "persistence_state.asdf")), _tree(tmp_path / "chain.asdf")
    )
    # The first run's store serves as well: it holds the same final state.
    out4 = str(tmp_path / "out4")
    store = str(tmp_path / "out1" / "persistence.zarr")
    run([str(second)], out4, [program.saturation_ref], params=params, history=store)
    for path, _ in saturated[2:]:
        assert _same_tree(_tree(_state_of(out4, path)), _tree(_state_of(out2, path)))
    # A history that already holds one of the run's exposures is refused.
    with pytest.raises(ConfigError, match="one of this run's exposures"):
        run(
            [str(first)],
            str(tmp_path / "out3"),
            [program.saturation_ref],
            params=params,
            history=history,
        )


@pytest.mark.parametrize("given", ["state", "store"])
def test_a_history_that_interleaves_with_the_run_is_refused(program, tmp_path, given):
    # Visits whose exposures alternate in time: the first visit's later saturation comes
    # after the second visit starts, so its final state is not what the step would carry
    # into the second visit's first exposure.
    paths = _in_time_order(program.files)
    first, second = tmp_path / "first", tmp_path / "second"
    for where, part in ((first, paths[0::2]), (second, paths[1::2])):
        where.mkdir()
        for p in part:
            shutil.copy(p, where)
    params = Parameters(method="pipeline", window_days=2000 / 86400.0, mode="sidecar")
    run([str(first)], str(tmp_path / "out1"), [program.saturation_ref], params=params)
    history = str(
        tmp_path / "out1" / ("persistence_state.asdf" if given == "state" else "persistence.zarr")
    )
    out2 = tmp_path / "out2"
    with pytest.raises(ConfigError, match="a history must be wholly earlier") as info:
        run([str(second)], str(out2), [program.saturation_ref], params=params, history=history)
    assert len(str(info.value).splitlines()) == 1
    assert not out2.exists()


def test_rerun_writes_nothing_and_a_killed_output_is_remade(program, tmp_path):
    out = str(tmp_path / "out")
    params = Parameters(method="pipeline", window_days=100 / 86400.0)
    run([program.directory], out, [program.saturation_ref], params=params)
    before = {
        n: os.stat(os.path.join(out, n)).st_mtime_ns
        for n in os.listdir(out)
        if "." in n and not n.endswith(".zarr")
    }
    victim = sorted(n for n in before if n.endswith("_state.asdf"))[1]
    os.remove(os.path.join(out, victim))
    ds = run([program.directory], out, [program.saturation_ref], params=params)
    # The exposure whose state file is gone gets it again; its copy, still whole and
    # holding the same flags (its recorded digest says so), is kept; nothing else changes.
    assert ds.attrs["last_run"]["written"] == 1
    assert ds.attrs["last_run"]["whole"] == 1
    after = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in before}
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {victim}
    ds = run([program.directory], out, [program.saturation_ref], params=params)
    assert ds.attrs["last_run"]["written"] == 0
    assert {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in before} == after


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """FULL and SUB256 exposures of one detector, interleaved."""
    return simulate.make_program(
        str(tmp_path_factory.mktemp("mixed") / "in"),
        n_exposures=4,
        ngroups=5,
        subarrays=("FULL", "SUB256"),
        stars_per_exposure=6,
        seed=3,
    )


def _full_frame_equivalent(model):
    """A subarray ramp after saturation, placed in a full frame (its timing kept)."""
    from stdatamodels.jwst import datamodels

    xs, ys = model.meta.subarray.xstart, model.meta.subarray.ystart
    nints, ngroups, ny, nx = model.groupdq.shape
    full = datamodels.RampModel((nints, ngroups, 1024, 1032))
    full.update(model)
    full.int_times = model.int_times
    full.meta.subarray.name = "FULL"
    full.meta.subarray.xstart, full.meta.subarray.ystart = 1, 1
    full.meta.subarray.xsize, full.meta.subarray.ysize = 1032, 1024
    full.groupdq[:, :, ys - 1 : ys - 1 + ny, xs - 1 : xs - 1 + nx] = model.groupdq
    return full


def test_subarrays_equal_the_chain_on_full_frame_equivalents(mixed, tmp_path):
    """The chain cannot go from FULL to a subarray (IndexError); on full-frame
    equivalents it can, and every exposure's flags in its own frame must agree."""
    from jwst.dq_init import DQInitStep
    from jwst.saturation import SaturationStep

    seconds = 200
    models = []
    for path in _in_time_order(mixed.files):
        m = DQInitStep.call(path, override_mask=mixed.mask_ref)
        m = SaturationStep.call(
            m, override_saturation=mixed.saturation_ref, override_superbias="N/A"
        )
        models.append((path, m))
    subs = [m for _, m in models if m.meta.subarray.name != "FULL"]
    assert subs and len(subs) < len(models)
    equivalents = [
        (p, _full_frame_equivalent(m) if m.meta.subarray.name != "FULL" else m) for p, m in models
    ]
    expected = chain(equivalents, seconds, str(tmp_path / "chain.asdf"))
    out = str(tmp_path / "out")
    run(
        [mixed.directory],
        out,
        [mixed.saturation_ref],
        params=Parameters(method="pipeline", window_days=seconds / 86400.0),
    )
    flagged_in_sub = 0
    for path, model in models:
        e = read_exposure(path)
        rows, cols = e.window
        want = expected[os.path.basename(path)][:, :, rows, cols] & PERSISTENCE
        ours = fits.getdata(_copy_of(out, path), "GROUPDQ")
        np.testing.assert_array_equal(ours, want, err_msg=path)
        # The step alone on the subarray file itself, with our state in its frame.
        np.testing.assert_array_equal(
            step_alone(model, seconds, _state_of(out, path)) & PERSISTENCE, want
        )
        if model.meta.subarray.name != "FULL":
            flagged_in_sub += int(np.count_nonzero(ours))
    assert flagged_in_sub > 0
    assert _same_tree(
        _tree(os.path.join(out, "persistence_state.asdf")), _tree(tmp_path / "chain.asdf")
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "needs --window"),
        ({"window_days": float("inf")}, "needs --window"),
        ({"window_days": 2.5 / 86400.0}, "whole number of seconds"),
        ({"window_days": 0.01, "dilate": 1}, "--dilate"),
        ({"window_days": 0.01, "flags": 1 << 10}, "8-bit"),
    ],
)
def test_parameters_the_step_cannot_take_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Parameters(method="pipeline", **kwargs)


@pytest.mark.parametrize(
    ("method", "option", "value"),
    [
        ("pipeline", "n_unsat_threshold", 5),
        ("pipeline", "integrations", "all"),
        ("pipeline", "dilate", 1),
        ("pipeline", "compress", True),
        ("snowblind", "n_unsat_threshold", 0),
        ("snowblind", "integrations", "all"),
    ],
)
def test_options_a_method_does_not_use_are_refused(method, option, value):
    base = {"window_days": 0.01, "mode": "sidecar"}
    Parameters(method=method, **base)  # the defaults are accepted
    flag = "--" + option.replace("_", "-")
    with pytest.raises(ConfigError, match=f"^{flag} does not apply to --method {method}$"):
        Parameters(method=method, **base, **{option: value})
    Parameters(method="notebook", **base, **{option: value})  # the notebook uses each


def test_dq_init_and_saturation_keep_the_copies_group_flags(program, tmp_path):
    """calwebb_detector1 reads the copy's GROUPDQ: dq_init and saturation OR into it."""
    from jwst.dq_init import DQInitStep
    from jwst.saturation import SaturationStep

    out = str(tmp_path / "out")
    run(
        [program.directory],
        out,
        [program.saturation_ref],
        params=Parameters(method="pipeline", window_days=100 / 86400.0),
    )
    path = _in_time_order(program.files)[-1]
    ours = fits.getdata(_copy_of(out, path), "GROUPDQ")
    assert ours.any()
    model = DQInitStep.call(_copy_of(out, path), override_mask=program.mask_ref)
    model = SaturationStep.call(
        model, override_saturation=program.saturation_ref, override_superbias="N/A"
    )
    np.testing.assert_array_equal(np.asarray(model.groupdq) & PERSISTENCE, ours)


def test_segments_are_each_one_run_of_the_step(tmp_path):
    """Each segment file is one run of the chain; the state passes from segment to segment."""
    from jwst.dq_init import DQInitStep
    from jwst.saturation import SaturationStep

    prog = simulate.make_program(
        str(tmp_path / "in"), n_exposures=3, ngroups=4, nints=(2,), segments=2, seed=5
    )
    files = _in_time_order(prog.files)
    assert any("-seg002" in f for f in files)
    models = []
    for path in files:
        m = DQInitStep.call(path, override_mask=prog.mask_ref)
        m = SaturationStep.call(
            m, override_saturation=prog.saturation_ref, override_superbias="N/A"
        )
        models.append((path, m))
    expected = chain(models, 30, str(tmp_path / "chain.asdf"))
    out = str(tmp_path / "out")
    run(
        [prog.directory],
        out,
        [prog.saturation_ref],
        params=Parameters(method="pipeline", window_days=30 / 86400.0),
    )
    flagged = 0
    for path, model in models:
        ours = fits.getdata(_copy_of(out, path), "GROUPDQ")
        np.testing.assert_array_equal(ours, expected[os.path.basename(path)] & PERSISTENCE)
        alone = step_alone(model, 30, _state_of(out, path))
        np.testing.assert_array_equal(alone, expected[os.path.basename(path)])
        flagged += int(np.count_nonzero(ours))
    assert flagged > 0


def test_cli_runs_the_pipeline_method_and_says_what_it_needs(program, tmp_path, capsys):
    from miripersist.cli import main

    out = str(tmp_path / "out")
    base = ["run", program.directory, "--output-dir", out]
    base += ["--saturation-ref", program.saturation_ref, "--quiet", "--method", "pipeline"]
    assert main(base) == 2
    assert "needs --window" in capsys.readouterr().err
    assert main([*base, "--window", "2500", "--mode", "sidecar"]) == 0
    names = sorted(os.listdir(out))
    assert "persistence_state.asdf" in names
    assert sum(n.endswith("_persistence_state.asdf") for n in names) == len(program.files)


KILL_CHILD = """
import json, os, signal, sys

import miripersist.engine as engine
import miripersist.outputs as outputs
import miripersist.store as store
import miripersist.writeback as writeback

args = json.loads(sys.argv[1])
point = args["point"]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if point == "store-update":  # the first block stored, none of its files written
    real_block = store.Writer.block

    def block(self, *a, **k):
        real_block(self, *a, **k)
        die()

    store.Writer.block = block
elif point == "mid-file":  # the first output's bytes written, not yet synced or renamed
    writeback.os.fsync = lambda fd: die()
elif point == "after-files":  # three state files in place, the rest not
    real_write, done = outputs.write_state, []

    def write_state(*a, **k):
        out = real_write(*a, **k)
        done.append(out)
        if len(done) == 3:
            die()
        return out

    outputs.write_state = write_state
engine.run(
    args["inputs"],
    args["out"],
    [args["ref"]],
    engine.Parameters(method="pipeline", window_days=100 / 86400.0, mode=args["mode"], batch=2),
)
"""


@pytest.mark.parametrize("mode", ["copy", "sidecar"])
@pytest.mark.parametrize("point", ["store-update", "mid-file", "after-files"])
def test_a_killed_run_is_finished_by_the_same_command(program, tmp_path, mode, point):
    import json
    import subprocess
    import sys

    from conftest import sha256

    params = Parameters(method="pipeline", window_days=100 / 86400.0, mode=mode, batch=2)
    fresh = tmp_path / "fresh"
    run([program.directory], str(fresh), [program.saturation_ref], params=params)
    out = tmp_path / "killed"
    args = {"point": point, "inputs": [program.directory], "out": str(out)}
    args |= {"ref": program.saturation_ref, "mode": mode}
    child = subprocess.run([sys.executable, "-c", KILL_CHILD, json.dumps(args)], check=False)
    assert child.returncode == -9
    ds = run([program.directory], str(out), [program.saturation_ref], params=params)

    def files(d):
        return {p.name: sha256(p) for p in sorted(d.iterdir()) if p.is_file()}

    assert files(out) == files(fresh)  # byte for byte, and no temporary left behind
    expected = run([program.directory], str(fresh), [program.saturation_ref], params=params)
    np.testing.assert_array_equal(ds["mask"].values, expected["mask"].values)
    np.testing.assert_array_equal(ds["result_sha256"].values, expected["result_sha256"].values)
    again = run([program.directory], str(out), [program.saturation_ref], params=params)
    assert again.attrs["last_run"]["written"] == 0
