"""The stpipe step under ``strun``: a refusal is one line in strun's words, with its exit code."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from miripersist import MiripersistError, PersistenceMaskStep, simulate
from miripersist.step import StepError, strun_words


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    return simulate.make_program(
        str(tmp_path_factory.mktemp("step") / "obs"), n_exposures=2, ngroups=4, seed=8
    )


def _strun(prog, out, *options):
    env = dict(os.environ, STPIPE_DISABLE_CRDS_STEPPARS="True")
    strun = os.path.join(os.path.dirname(sys.executable), "strun")
    return subprocess.run(
        [
            strun,
            "persistence_mask",
            prog.directory,
            f"--saturation_ref={prog.saturation_ref}",
            f"--output_dir={out}",
            *options,
        ],
        env=env,
        capture_output=True,
        text=True,
    )


def test_a_refusal_under_strun_is_one_line_naming_strun_s_option(prog, tmp_path):
    out = tmp_path / "out"
    assert _strun(prog, out, "--mode=sidecar").returncode == 0
    again = _strun(prog, out, "--mode=copy")
    assert again.returncode == 2, again.stderr[-2000:]
    assert "Traceback" not in again.stderr
    errors = [line for line in again.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, again.stderr[-2000:]
    assert "store was made with other parameters" in errors[0]
    assert "--overwrite=True" in errors[0] and "in Python" not in errors[0]
    assert _strun(prog, out, "--mode=copy", "--overwrite=True").returncode == 0


def test_from_python_the_step_raises_the_package_s_error(prog, tmp_path):
    with pytest.raises(MiripersistError) as info:
        PersistenceMaskStep.call(
            prog.directory,
            saturation_ref=prog.saturation_ref,
            window="soon",
            output_dir=str(tmp_path),
        )
    assert isinstance(info.value, StepError)
    assert info.value.exit_code == 2 and str(info.value).startswith("window: not a duration")


@pytest.mark.parametrize(
    ("said", "strun"),
    [
        (
            "use --overwrite (overwrite=True in Python) or another --store (store=...)",
            "use --overwrite=True or another --store",
        ),
        (
            "--saturation-ref is missing; or --skip-bad",
            "--saturation_ref is missing; or --skip_bad=True",
        ),
        ("--window 2500s; --n-unsat-threshold", "--window 2500s; --n_unsat_threshold"),
    ],
)
def test_options_are_spelled_as_strun_takes_them(said, strun):
    assert strun_words(said, PersistenceMaskStep.spec) == strun
