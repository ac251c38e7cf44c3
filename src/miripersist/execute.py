"""Where a block's work runs: local threads or a dask cluster, and how it travels.

The one module that knows dask's schedulers. Local threads compute through
``dask.compute``; a cluster gets the graphs through ``Client.get`` with each array's tiles
put together on the client (:class:`Tiles`), boolean tiles packed into bits on the way
(:class:`Bits`), shared inputs scattered to every worker once (:func:`shared`), and the
output files written by its workers a few a task (:func:`write_on_cluster`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dask
import dask.array as da
import dask.core
import numpy as np

from .cluster import WAIT_FOR_WORKERS
from .errors import MiripersistError

if TYPE_CHECKING:
    from dask.delayed import Delayed

__all__ = [
    "FILES_PER_TASK",
    "Bits",
    "Runner",
    "Tiles",
    "has_client",
    "local_threads",
    "on_cluster",
    "on_local_threads",
    "runner",
    "shared",
    "write_files",
    "write_in",
    "write_on_cluster",
]


class Bits:
    """A boolean image as bits, for a trip between processes: an eighth of the bytes."""

    __slots__ = ("bits", "shape")

    def __init__(self, mask: np.ndarray) -> None:
        self.bits = np.packbits(mask, axis=None)
        self.shape = mask.shape

    def __sizeof__(self) -> int:
        # What dask's memory accounting of a worker counts: the bits, not a reference.
        return object.__sizeof__(self) + self.bits.nbytes

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        ones = np.unpackbits(self.bits, count=math.prod(self.shape)).reshape(self.shape)
        # Zeros and ones: as bools without a copy.
        if dtype is None or np.dtype(dtype) == bool:
            return ones.view(bool)
        return ones.astype(dtype, copy=False)


class Tiles:
    """A lazy array as the tasks of its tiles, and how to put their results together.

    ``dask.compute`` of an array adds a task that gathers its tiles into one array; on a
    cluster that task moves tiles between workers and then the whole image to the
    client, and is one more task for the scheduler. Computed as its tiles, each goes to
    the client once and is put in place there (in the thread that waits for the
    results, beside the scan); a boolean tile travels as bits, packed by the task that
    makes it. Local threads keep the gathering task: it costs them no more than this,
    and the order it gives the reads (an exposure's tiles together) suits a cold disk.

    A dask collection: its graph, keys and finalisation.
    """

    __slots__ = ("dtype", "graph", "keys", "shape", "slices")

    def __init__(self, lazy: da.Array) -> None:
        self.shape, self.dtype = lazy.shape, lazy.dtype
        self.slices = da.core.slices_from_chunks(lazy.chunks)
        self.keys = list(dask.core.flatten(lazy.__dask_keys__()))
        self.graph = dict(lazy.__dask_graph__())
        if self.dtype == bool:
            # The tile's own task, nested: packed where it is made, with no task more.
            for key in self.keys:
                self.graph[key] = (Bits, self.graph[key])

    def __dask_graph__(self) -> dict:
        return self.graph

    def __dask_keys__(self) -> list:
        return self.keys

    def __dask_postcompute__(self) -> tuple:
        return self.assemble, ()

    def assemble(self, tiles: list) -> np.ndarray:
        """The whole array from its tiles' results."""
        if len(tiles) == 1:
            return np.asarray(tiles[0], self.dtype)
        out = np.empty(self.shape, self.dtype)
        for where, tile in zip(self.slices, tiles, strict=True):
            out[where] = tile
        return out


def on_cluster(lazy: list) -> list:
    """``dask.compute(lazy)`` on the client's cluster, each array's tiles put together here.

    ``dask.compute`` would add a task that gathers all results on one worker (moving
    every tile between workers, then the whole set to the client). Instead the graphs go
    to the client's public ``Client.get`` as they are, each tile comes to the client once
    (packed, :class:`Bits`), and each collection is finalised here as ``dask.compute``
    finalises it (``__dask_postcompute__``). A test checks that only the tiles' and the
    writes' tasks run.
    """
    if not lazy:
        return []
    from distributed import default_client

    parts = [Tiles(x) if isinstance(x, da.Array) else x for x in lazy]
    graph: dict = {}
    for part in parts:
        graph.update(part.__dask_graph__())
    client = default_client()
    futures = client.get(graph, [part.__dask_keys__() for part in parts], sync=False)
    results = watched(client, futures)
    done = []
    for part, result in zip(parts, results, strict=True):
        finalise, extra = part.__dask_postcompute__()
        done.append(finalise(result, *extra))
    return done


#: dask's configuration key: how long a run waits, with every worker lost, for one to join
#: again before it stops (s); :data:`miripersist.cluster.WAIT_FOR_WORKERS` when unset.
WAIT_KEY = "miripersist.wait-for-workers"

#: How often the client looks at the scheduler's workers while a computation runs (s).
POLL = 1.0


def watched(client, futures: list) -> list:
    """The results of ``futures`` (nested lists), watching that the cluster still works on them.

    A worker lost mid-run costs only its tasks, which the scheduler gives to the others.
    With none left for the configured wait (:data:`WAIT_KEY`), or the scheduler gone, the
    run stops with one line naming what was lost; the store and the files written so far
    stay, so the same command resumes.
    """
    from distributed import KilledWorker, wait

    flat = list(dask.core.flatten(futures))
    seen = set(_workers(client))
    alone_since: float | None = None
    patience = float(dask.config.get(WAIT_KEY, WAIT_FOR_WORKERS))
    while True:
        try:
            wait(flat, timeout=POLL)
            return client.gather(futures)
        except TimeoutError:
            pass
        except (CancelledError, OSError):
            if any(f.status == "error" for f in flat):
                raise  # a task's own error (an input that cannot be read): as it is
            # Cancelled: the scheduler is gone, or so are the workers that held scattered data.
            _workers(client)
            raise MiripersistError(_lost(client, seen, "")) from None
        except KilledWorker as exc:
            raise MiripersistError(
                f"{client.scheduler.address}: every worker that ran a task died in it "
                f"({exc.task}; dask's KilledWorker: out of memory?); the same command resumes"
            ) from None
        workers = _workers(client)
        seen |= set(workers)
        if workers:
            alone_since = None
            continue
        alone_since = alone_since or time.monotonic()
        if time.monotonic() - alone_since > patience:
            raise MiripersistError(_lost(client, seen, f" and none joined again in {patience:g} s"))


def _lost(client, seen: set[str], more: str) -> str:
    lost = ", ".join(sorted(seen)) or "none had joined"
    return (
        f"{client.scheduler.address}: every dask worker was lost ({lost}){more}; "
        "the same command resumes"
    )


def _workers(client) -> list[str]:
    """The scheduler's workers, by name, asked now (not the client's cached view).

    Raises
    ------
    MiripersistError
        If the scheduler does not answer.
    """
    try:
        info = client.run_on_scheduler(_names)
    except (OSError, TimeoutError, CancelledError):
        raise MiripersistError(_scheduler_gone(client)) from None
    return list(info)


def _names(dask_scheduler=None) -> list[str]:
    # Runs on the scheduler.
    return [f"{ws.name} ({ws.address})" for ws in dask_scheduler.workers.values()]


def _scheduler_gone(client) -> str:
    return (
        f"{client.scheduler.address}: the dask scheduler is gone; the same command resumes "
        "once one runs again"
    )


def on_local_threads(lazy: list) -> list:
    """``dask.compute(lazy)`` on the local threads, or on a scheduler dask's configuration names.

    Named outright, the threads are used without a look for a distributed client first.
    """
    if not lazy:
        return []
    scheduler = dask.config.get("scheduler", None) or "threads"
    return dask.compute(lazy, scheduler=scheduler, optimize_graph=False)[0]


#: Output files written by one task on a cluster (a block of 16 exposures gives 4 tasks, a
#: quarter of the tasks its scheduler would handle), and at once by local threads.
FILES_PER_TASK = 4


def write_on_cluster(writes: list[Callable[[], str | None]]) -> list[str | None]:
    """Make ``writes`` on the client's cluster, a few a task; their paths (None: kept)."""
    tasks = [
        dask.delayed(write_files, pure=False)(writes[k : k + FILES_PER_TASK])
        for k in range(0, len(writes), FILES_PER_TASK)
    ]
    return [path for paths in on_cluster(tasks) for path in paths]


def write_files(writes: list[Callable[[], str | None]]) -> list[str | None]:
    """Make ``writes``, one after another; their paths."""
    return [write() for write in writes]


def write_in(pool: ThreadPoolExecutor, writes: list[Callable[[], str | None]]) -> list[str | None]:
    """Make ``writes`` in ``pool``'s threads, a few at once; their paths."""
    return list(pool.map(operator.call, writes))


def shared(value: object, distributed: bool) -> Delayed:
    """``value`` as a dask.delayed that every block's computation refers to.

    On a cluster it is sent to every worker once (``Client.scatter``) and the graphs hold
    a reference; a literal would travel in every block's graph (4 MB of thresholds each).
    """
    if not distributed:
        return dask.delayed(value, pure=True)
    from distributed import default_client

    return dask.delayed(default_client().scatter(value, broadcast=True, hash=False))


def has_client() -> bool:
    """Whether a dask client is open in this process (then the run goes to its cluster)."""
    # A client needs distributed imported; importing it only to find none costs 0.4 s.
    if "distributed" not in sys.modules:
        return False
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return False
    return True


def _as_is(mask: np.ndarray) -> np.ndarray:
    return mask


@dataclass(frozen=True)
class Runner:
    """Where a run's work goes, as the block loop uses it.

    Attributes
    ----------
    compute : callable
        ``compute(lazy)``: a block's lazy sources, computed.
    make : callable
        ``make(writes)``: output files written (calls without arguments); their paths.
    pack : callable
        A pixel mask as it travels to the writer of its file (bits, to another process).
    share : callable
        A value every block's graph refers to, sent once (:func:`shared`).
    """

    compute: Callable[[list], list]
    make: Callable[[list[Callable[[], str | None]]], list[str | None]]
    pack: Callable[[np.ndarray], object]
    share: Callable[[object], Delayed]


@contextlib.contextmanager
def runner(local_threads: int) -> Iterator[Runner]:
    """The cluster of this process's dask client, or ``local_threads`` threads here.

    Local threads write files a few at once, as each waits on the disk for most of its
    time; a cluster's workers write them.
    """
    if has_client():
        yield Runner(
            on_cluster, write_on_cluster, Bits, functools.partial(shared, distributed=True)
        )
        return
    with (
        dask.config.set(num_workers=local_threads),
        ThreadPoolExecutor(FILES_PER_TASK, thread_name_prefix="miripersist-write") as pool,
    ):
        yield Runner(
            on_local_threads,
            functools.partial(write_in, pool),
            _as_is,
            functools.partial(shared, distributed=False),
        )


def local_threads(mode: str) -> int:
    """Threads of a local run.

    A copy's write-back waits on the disk (fsync of 60-100 MB) far more than it computes:
    more threads than cores overlap those waits. Sidecars are small: one thread a core
    (at least two, so that reads of several files are in flight on a cold cache) reads
    cold as fast and runs warm faster, with less memory (docs/benchmarks.md).
    """
    cores = os.cpu_count() or 1
    return max(4, 2 * cores) if mode == "copy" else max(2, cores)
