"""Worker jobs on a batch system, through dask-jobqueue: ``--cluster slurm --jobs 4``.

dask-jobqueue reads its configuration as dask does (``~/.config/dask/jobqueue.yaml``,
``DASK_JOBQUEUE__SLURM__CORES=8`` ...): a site's settings are used as they are, and the
options here override only what is given. The jobs end with the run that started them.
"""

from __future__ import annotations

import importlib
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError

#: Each batch system: its dask-jobqueue cluster class, and the keyword each override has
#: there (absent where the system has no such setting).
SYSTEMS: dict[str, tuple[str, dict[str, str]]] = {
    "slurm": ("SLURMCluster", {"queue": "queue", "account": "account", "walltime": "walltime"}),
    "pbs": ("PBSCluster", {"queue": "queue", "account": "account", "walltime": "walltime"}),
    "lsf": ("LSFCluster", {"queue": "queue", "account": "project", "walltime": "walltime"}),
    "sge": ("SGECluster", {"queue": "queue", "account": "project", "walltime": "walltime"}),
    "htcondor": ("HTCondorCluster", {}),
}

#: Each field of :class:`Batch` on the command line: its option, value's name, help; whole
#: numbers are those with the value's name N.
FLAGS = {
    "jobs": ("--jobs", "N", "jobs to submit (default 1)"),
    "cores": ("--job-cores", "N", "cores a job"),
    "memory": ("--job-memory", "SIZE", "memory a job (e.g. 32GB)"),
    "processes": ("--job-processes", "N", "dask worker processes a job"),
    "walltime": ("--walltime", "HH:MM:SS", "a job's wall time"),
    "queue": ("--queue", "NAME", "queue (SLURM: partition)"),
    "account": ("--account", "NAME", "account to charge (LSF, SGE: project)"),
}

#: How long a run waits for its first worker job to start, by default (s): a queue can be busy.
WAIT_FOR_JOBS = 600.0


def check_count(flag: str, value: object) -> None:
    """Refuse, in one line naming ``flag``, a count that is given and not 1 or more.

    Raises
    ------
    ConfigError
        If ``value`` is not None and not a whole number of at least 1 (True is not one).
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{flag} must be a whole number of 1 or more, not {value!r}")


@dataclass(frozen=True)
class Batch:
    """Worker jobs to start on a batch system for one run.

    Attributes
    ----------
    system : str
        One of :data:`SYSTEMS`.
    jobs : int
        Jobs to submit; each runs ``processes`` dask workers.
    cores, memory, processes, walltime, queue, account : optional
        Per job: cores (``8``), memory (``32GB``), worker processes, wall time
        (``02:00:00``), queue or partition, account (a project on LSF and SGE). None:
        as dask-jobqueue's configuration says.
    """

    system: str
    jobs: int = 1
    cores: int | None = None
    memory: str | None = None
    processes: int | None = None
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None

    @classmethod
    def given(cls, system: str, values: Mapping[str, Any]) -> Batch:
        """The jobs of ``system`` with the settings in ``values`` that are not None."""
        return cls(system, **{k: v for k, v in values.items() if v is not None})

    def check(self) -> None:
        """Refuse, in one line, a system or an override that cannot be used.

        Raises
        ------
        ConfigError
            An unknown system, a count below 1, or an override the system does not have.
        """
        if self.system not in SYSTEMS:
            raise ConfigError(
                f"--cluster {self.system}: not a batch system dask-jobqueue runs on "
                f"(choose from {', '.join(SYSTEMS)})"
            )
        for name in ("jobs", "cores", "processes"):
            check_count(FLAGS[name][0], getattr(self, name))
        kept = SYSTEMS[self.system][1]
        for name in ("queue", "account", "walltime"):
            if getattr(self, name) is not None and name not in kept:
                raise ConfigError(f"{FLAGS[name][0]}: --cluster {self.system} has no such setting")

    def keywords(self) -> dict[str, Any]:
        """The cluster class's keywords for the overrides given (the rest: its configuration)."""
        renamed = SYSTEMS[self.system][1]
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("system", "jobs") or value is None:
                continue
            out[renamed.get(f.name, f.name)] = value
        return out


def import_jobqueue():
    """dask_jobqueue, imported with this process's Ctrl-C handling kept.

    Importing dask-jobqueue sets a SIGINT handler that exits (its runner module's), which
    would turn an interrupted run's KeyboardInterrupt, and the run's clean stop, into a bare
    exit: the handler in place before is put back.

    Raises
    ------
    ConfigError
        If dask-jobqueue is not installed, or its first import is outside the main thread
        (where no signal handler can be set).
    """
    before = signal.getsignal(signal.SIGINT)
    try:
        module = importlib.import_module("dask_jobqueue")
    except ImportError:
        raise ConfigError("--cluster needs dask-jobqueue: pip install 'miripersist[hpc]'") from None
    except ValueError as exc:  # signal.signal outside the main thread
        raise ConfigError(
            f"dask-jobqueue cannot be imported here ({exc}): import it in the main thread first"
        ) from None
    finally:
        if threading.current_thread() is threading.main_thread() and before is not None:
            signal.signal(signal.SIGINT, before)
    return module


def start(batch: Batch):
    """A dask-jobqueue cluster for ``batch``, its jobs submitted.

    Raises
    ------
    ConfigError
        If dask-jobqueue is not installed, or its configuration and the overrides leave
        something a job needs unsaid (cores, memory), in one line.
    """
    batch.check()
    cls = getattr(import_jobqueue(), SYSTEMS[batch.system][0])
    try:
        cluster = cls(**batch.keywords())
    except ValueError as exc:  # dask-jobqueue's word for settings that are missing
        said = str(exc).splitlines()[0].split(", for example")[0].rstrip(" :")
        raise ConfigError(
            f"--cluster {batch.system}: {said} (set it in jobqueue.yaml, as "
            f"DASK_JOBQUEUE__{batch.system.upper()}__..., or with {FLAGS['cores'][0]} and "
            f"{FLAGS['memory'][0]})"
        ) from None
    cluster.scale(jobs=batch.jobs)
    return cluster
