"""Running on a dask cluster: connect, and check that every worker sees the files.

Workers read inputs and write outputs by path, so a shared file system is assumed (as on
HPC), and the paths they get must be absolute (a worker's working directory is not the
client's). Before any work, every worker is asked whether it can read the inputs and write
to the output directory; a host that cannot is named and the run stops. Asking creates
nothing, on any host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence

from .batch import WAIT_FOR_JOBS, Batch, check_count, start
from .errors import ConfigError, MiripersistError

#: How long a run waits for a first worker of a running scheduler, by default (s).
WAIT_FOR_WORKERS = 60.0


def connect(
    scheduler: str | None = None,
    scheduler_file: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    wait_for_workers: float | None = None,
    batch: Batch | None = None,
    log_level: int = logging.ERROR,
):
    """Return a ``distributed.Client`` for the options given, or None for the local default.

    Dask's own log lines (cluster start and stop, worker chatter, advice about optional
    packages) are kept off the console: they read like failures and are not this tool's to
    say. Those of ``log_level`` and above still show.

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
        Seconds to wait for a first worker: of a running scheduler (default
        :data:`WAIT_FOR_WORKERS`), or of ``batch``'s jobs (default
        :data:`miripersist.batch.WAIT_FOR_JOBS`).
    batch : Batch, optional
        Worker jobs to submit to a batch system; :func:`disconnect` ends them.
    log_level : int
        The least level of dask's log lines that show (the command line shows only
        critical ones, as a lost scheduler or lost workers stop a run with a line of its own;
        with ``--debug``, errors too).

    Raises
    ------
    ConfigError
        If a count is below 1, or the scheduler cannot be reached.
    MiripersistError
        If no worker joins in time.
    """
    if scheduler is None and scheduler_file is None and workers is None and batch is None:
        return None
    check_count("--workers", workers)
    check_count("--threads-per-worker", threads_per_worker)
    import distributed  # noqa: F401  (its import sets its loggers' levels: set them after)

    _quiet(("distributed", "tornado", "asyncio", "bokeh", "dask_jobqueue"), log_level)
    where = (
        scheduler or scheduler_file or (f"--cluster {batch.system}" if batch else "local cluster")
    )
    try:
        if batch is not None:
            return _batch_client(
                batch, WAIT_FOR_JOBS if wait_for_workers is None else wait_for_workers
            )
        if scheduler is not None or scheduler_file is not None:
            return _running(scheduler, scheduler_file, wait_for_workers)
        return _local(workers, threads_per_worker)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"{where}: cannot connect to the dask scheduler ({exc})") from None


def _quiet(roots: Sequence[str], level: int) -> None:
    """Show only ``level`` and above of these loggers, and of those below them with a level.

    distributed's configuration gives some of its loggers levels of their own
    (``distributed.client``: warning), which their parent's would not override.
    """
    below = tuple(f"{r}." for r in roots)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith(below) and isinstance(logger, logging.Logger) and logger.level:
            logger.setLevel(level)
    for name in roots:
        logging.getLogger(name).setLevel(level)


def _running(scheduler: str | None, scheduler_file: str | None, wait: float | None):
    """A client of a running scheduler, once it has a worker."""
    from distributed import Client

    if scheduler_file is not None and not os.path.exists(scheduler_file):
        raise ConfigError(f"{scheduler_file}: no such scheduler file")
    client = Client(scheduler, scheduler_file=scheduler_file, timeout="30s")
    where = scheduler or scheduler_file or ""
    _wait_for_a_worker(client, where, WAIT_FOR_WORKERS if wait is None else wait)
    return client


def _local(workers: int | None, threads_per_worker: int | None):
    """A client of a new local cluster of worker processes."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads_per_worker or 1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    return Client(cluster)


def _batch_client(batch: Batch, wait: float):
    """A client of a new dask-jobqueue cluster, once one of its jobs' workers has joined.

    The cluster is closed (its jobs cancelled) if anything fails before the client is
    handed back.
    """
    from distributed import Client

    cluster = start(batch)
    try:
        client = Client(cluster)
        _wait_for_a_worker(client, f"--cluster {batch.system}", wait, JOBS_QUEUED)
    except BaseException:
        cluster.close()
        raise
    return client


#: What to do when no worker has joined in time.
START_WORKERS = "start workers, or wait longer for a batch system's with --wait-for-workers"
JOBS_QUEUED = (
    "its jobs may still be queued: the queue tells why; or wait longer with --wait-for-workers"
)


def _wait_for_a_worker(client, where: str, seconds: float, hint: str = START_WORKERS) -> None:
    """Return once the scheduler has a worker; else close ``client`` and say so in one line."""
    try:
        client.wait_for_workers(1, timeout=seconds)
    except TimeoutError:
        client.close()
        raise MiripersistError(
            f"{where}: the dask scheduler has no worker (none joined in {seconds:g} s); {hint}"
        ) from None


@contextlib.contextmanager
def batch_client(
    batch: Batch, wait_for_workers: float | None = None, log_level: int = logging.ERROR
) -> Iterator:
    """A dask client of worker jobs on a batch system; the jobs end when the block does.

    Runs of :func:`miripersist.run` inside the ``with`` block go to its workers. The jobs
    are cancelled as the block ends, also when it fails or is interrupted.

    Parameters
    ----------
    batch : Batch
        The batch system and the jobs' settings (the rest as dask-jobqueue's
        configuration says).
    wait_for_workers, log_level
        As :func:`connect`'s.

    Examples
    --------
    >>> with batch_client(Batch("slurm", jobs=4, walltime="02:00:00")):  # doctest: +SKIP
    ...     miripersist.run(["uncal"], "masked", ["sat.fits"])
    """
    client = connect(batch=batch, wait_for_workers=wait_for_workers, log_level=log_level)
    try:
        yield client
    finally:
        disconnect(client)


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
