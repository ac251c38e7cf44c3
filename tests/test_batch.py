"""--cluster's settings: what each batch system takes, and the refusals, in one line each."""

from __future__ import annotations

import pytest
from conftest import jobqueue_or_skip

from miripersist import Batch, ConfigError
from miripersist.batch import SYSTEMS
from miripersist.cli import main


def test_only_the_overrides_given_reach_dask_jobqueue_under_each_system_s_name():
    assert Batch("slurm", jobs=3).keywords() == {}
    given = Batch("lsf", cores=8, memory="32GB", processes=4, walltime="02:00", account="p1")
    assert given.keywords() == {
        "cores": 8,
        "memory": "32GB",
        "processes": 4,
        "walltime": "02:00",
        "project": "p1",  # LSF's name for it
    }
    assert Batch("slurm", queue="debug", account="a").keywords() == {
        "queue": "debug",
        "account": "a",
    }


def test_each_system_is_a_dask_jobqueue_cluster_class():
    jobqueue = jobqueue_or_skip()
    for system, (name, renamed) in SYSTEMS.items():
        cls = getattr(jobqueue, name)
        assert cls.job_cls.config_name == system
        accepted = cls.job_cls.__init__.__code__.co_varnames
        assert all(kw in accepted for kw in renamed.values()), system


@pytest.mark.parametrize(
    ("batch", "said"),
    [
        (Batch("torque"), "--cluster torque: not a batch system dask-jobqueue runs on"),
        (Batch("slurm", jobs=0), "--jobs must be a whole number of 1 or more, not 0"),
        (Batch("pbs", cores=True), "--job-cores must be a whole number of 1 or more, not True"),
        (Batch("htcondor", walltime="01:00:00"), "--walltime: --cluster htcondor has no such"),
    ],
)
def test_settings_that_cannot_be_used_are_refused(batch, said):
    with pytest.raises(ConfigError, match=said):
        batch.check()


def test_without_cores_and_memory_anywhere_the_run_says_where_to_give_them(
    tmp_path, capsys, program
):
    jobqueue_or_skip()
    import dask

    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        code = main(["run", program.directory, "--output-dir", str(tmp_path / "o"), "--cluster",
                     "slurm", "--saturation-ref", program.saturation_ref])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("miripersist: error: --cluster slurm: You must specify how much")
    assert "jobqueue.yaml" in err[0] and "--job-cores and --job-memory" in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--jobs", "2"], "--jobs is for worker jobs: give --cluster SYSTEM too"),
        (["--walltime", "1:00:00"], "--walltime is for worker jobs: give --cluster SYSTEM too"),
        (["--wait-for-workers", "5m"], "--wait-for-workers is for a cluster's workers"),
    ],
)
def test_job_options_need_a_cluster(tmp_path, capsys, argv, said):
    assert main(["run", str(tmp_path), "--output-dir", str(tmp_path / "o"), *argv]) == 2
    assert said in capsys.readouterr().err


def test_a_batch_system_and_another_cluster_are_one_too_many(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", str(tmp_path), "--output-dir", "o", "--cluster", "slurm", "--workers", "2"])
    assert "--workers: not allowed with argument --cluster" in capsys.readouterr().err


def test_importing_dask_jobqueue_keeps_the_process_s_ctrl_c(tmp_path):
    # dask-jobqueue's import sets a SIGINT handler of its own (sys.exit): a run's Ctrl-C
    # would no longer be the KeyboardInterrupt that stops it cleanly.
    import subprocess
    import sys

    jobqueue_or_skip()
    check = (
        "import signal; from miripersist.batch import import_jobqueue; "
        "before = signal.getsignal(signal.SIGINT); import_jobqueue(); "
        "assert signal.getsignal(signal.SIGINT) is before; "
        "import dask_jobqueue.runner, importlib; importlib.reload(dask_jobqueue.runner); "
        "assert signal.getsignal(signal.SIGINT) is not before, 'the import no longer sets one'"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
