"""Running on a dask cluster: connect, and check that every worker sees the files.

Workers read inputs and write outputs by path, so a shared file system is assumed (as on
HPC), and the paths they get must be absolute (a worker's working directory is not the
client's). Before any work, every worker is asked whether it can read the inputs and write
to the output directory; a host that cannot is named and the run stops. Asking creates
nothing, on any host.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence

from .errors import ConfigError, MiripersistError

#: How long a run waits for a first worker of a running scheduler, by default (s).
WAIT_FOR_WORKERS = 60.0


def connect(
    scheduler: str | None = None,
    scheduler_file: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    wait_for_workers: float | None = None,
):
    """Return a ``distributed.Client`` for the options given, or None for the local default.

    Dask's own log lines (cluster start and stop, worker chatter, advice about optional
    packages) are kept off the console: they read like failures and are not this tool's to
    say. Errors still show.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``).
    scheduler_file : str, optional
        Scheduler file written by ``dask scheduler --scheduler-file``, dask-mpi or
        dask-jobqueue.
    workers, threads_per_worker : int, optional
        Start a local cluster of worker processes.
    wait_for_workers : float, optional
        Seconds to wait for a running scheduler's first worker (default
        :data:`WAIT_FOR_WORKERS`); a batch system may still be starting them.

    Raises
    ------
    ConfigError
        If a count is below 1, or the scheduler cannot be reached.
    MiripersistError
        If no worker joins a running scheduler in time.
    """
    if scheduler is None and scheduler_file is None and workers is None:
        return None
    for name, value in (("--workers", workers), ("--threads-per-worker", threads_per_worker)):
        whole = isinstance(value, int) and not isinstance(value, bool)
        if value is not None and not (whole and value >= 1):
            raise ConfigError(f"{name} must be a whole number of 1 or more, not {value!r}")
    from distributed import Client, LocalCluster

    for name in ("distributed", "tornado", "asyncio", "bokeh"):
        logging.getLogger(name).setLevel(logging.ERROR)

    try:
        if scheduler is not None or scheduler_file is not None:
            if scheduler_file is not None and not os.path.exists(scheduler_file):
                raise ConfigError(f"{scheduler_file}: no such scheduler file")
            client = Client(scheduler, scheduler_file=scheduler_file, timeout="30s")
            _wait_for_a_worker(
                client,
                scheduler or scheduler_file,
                WAIT_FOR_WORKERS if wait_for_workers is None else wait_for_workers,
            )
            return client
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker or 1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        return Client(cluster)
    except (OSError, TimeoutError) as exc:
        where = scheduler or scheduler_file or "local cluster"
        raise ConfigError(f"{where}: cannot connect to the dask scheduler ({exc})") from None


def _wait_for_a_worker(client, where: str, seconds: float) -> None:
    """Return once the scheduler has a worker; else close ``client`` and say so in one line."""
    try:
        client.wait_for_workers(1, timeout=seconds)
    except TimeoutError:
        client.close()
        raise MiripersistError(
            f"{where}: the dask scheduler has no worker (none joined in {seconds:g} s); "
            "start workers, or wait longer for a batch system's with --wait-for-workers"
        ) from None


def dashboard(client) -> str | None:
    """The dashboard's address, or None when the scheduler serves none."""
    try:
        served = "dashboard" in client.scheduler_info().get("services", {})
    except Exception:  # an old or unusual scheduler: no claim either way
        return None
    return client.dashboard_link if served else None


def disconnect(client) -> None:
    """Close ``client`` and, if :func:`connect` started it, its local cluster.

    A client does not close a cluster it was handed. Left to the interpreter's exit, the
    scheduler in this process can stop before the worker processes, whose next heartbeat
    then logs an error; closing the cluster here stops the workers first.
    """
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _can_write_in(directory: str) -> bool:
    """Whether files can be made in ``directory``, or in it once it is made.

    A directory that does not exist yet is judged by its nearest existing ancestor, which
    must be a directory this process may write in. Nothing is created.
    """
    path = directory
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def _probe(readable: Sequence[str], writable: str) -> dict:
    # Runs on a worker. It only looks: anything it made would stay behind on that host.
    bad = [p for p in readable if not os.access(p, os.R_OK)]
    if not _can_write_in(writable):
        bad.append(writable)
    return {"host": socket.gethostname(), "bad": bad}


def check_workers(client, readable: Sequence[str], writable: str) -> None:
    """Stop with a message naming the host if a worker cannot see the files.

    Nothing is created on the workers: inputs are checked for reading and the output
    directory (or, if it does not exist yet, its nearest existing parent) for writing, with
    ``os.access``. Relative paths are made absolute here, on the client, since a worker's
    working directory may be another.

    Parameters
    ----------
    client : distributed.Client
        The client whose workers are asked.
    readable : sequence of str
        Files every worker must be able to read.
    writable : str
        The directory every worker must be able to write in.

    Raises
    ------
    ConfigError
        If a worker cannot read one of ``readable`` or write in ``writable``.
    """
    readable = [os.path.abspath(p) for p in readable]
    writable = os.path.abspath(writable)
    answers = client.run(_probe, readable, writable)
    for worker, answer in sorted(answers.items()):
        if answer["bad"]:
            more = f" and {len(answer['bad']) - 1} more" if len(answer["bad"]) > 1 else ""
            raise ConfigError(
                f"worker {worker} on host {answer['host']} cannot reach {answer['bad'][0]}{more} "
                "(workers need the inputs and the output directory on a shared file system)"
            )
