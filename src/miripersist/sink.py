"""Where a block's results go: the store first, then the files, then the written marks.

The order is what crash safety rests on. A block's store update (its sources, masks and
counts, and the outputs about to be rewritten losing their ``written`` mark) runs before
any of its files is written, and an output is marked written only once its file is in
place. A run killed anywhere leaves a store that a rerun trusts: an output it marks written
is whole, any other is remade.

The block loop hands each block over as data (:class:`Handover`); the work runs in the
background, beside the scan of the next block: :class:`Flight` keeps one block's source
computation and the block before's update and files in flight, and :meth:`Flight.settle`
waits for them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from .store import StoreUpdate

#: A write of one output file: its path, or None when the file already held it.
Write = Callable[[], "str | None"]


class Store(Protocol):
    """What the sink needs of the store (:class:`miripersist.store.Writer`)."""

    def block(self, update: StoreUpdate) -> None:
        """Store a block of exposures; clear the ``written`` marks of its ``unwritten``."""

    def written(self, indices: list[int]) -> None:
        """Mark the outputs of these exposures as written."""


@dataclass
class Handover:
    """A block's results, for the sink.

    Attributes
    ----------
    update : StoreUpdate or None
        What to store (None: the store holds it already).
    outputs : list
        The files to write (:class:`miripersist.writers.Output`).
    mark : list of int
        Exposures whose outputs are in place once those files are written.
    """

    update: StoreUpdate | None = None
    outputs: list[Any] = field(default_factory=list)
    mark: list[int] = field(default_factory=list)


def store_then_write(
    store: Store, update: StoreUpdate | None, writes: list[Write], make: Callable
) -> list[str | None]:
    """Store a block (``update``), then ``make`` its ``writes``; their paths.

    In this order, so that outputs to be rewritten lose their ``written`` mark first.
    """
    if update is not None:
        store.block(update)
    return make(writes) if writes else []


class Flight:
    """The work in flight: one block's sources computing, the block before being stored.

    Parameters
    ----------
    compute : callable
        ``compute(lazy)``: the block's lazy sources, computed (see :mod:`miripersist.execute`).
    make : callable
        ``make(writes)``: the block's file writes made; their paths.
    store : Store
    write : callable
        ``write(output)``: one output file written; its path, or None when it held it.
    counts : dict
        The run's counts: ``written`` and ``whole`` (files that already held their
        content) grow as files are settled.
    """

    def __init__(
        self,
        compute: Callable[[list], list],
        make: Callable[[list[Write]], list[str | None]],
        store: Store,
        write: Callable[[Any], str | None],
        counts: dict[str, int],
    ) -> None:
        self.compute, self.make, self.store, self.write = compute, make, store, write
        self.counts = counts
        self.background = ThreadPoolExecutor(2, thread_name_prefix="miripersist-compute")
        self.pending: list[Future] = []
        self.to_mark: list[int] = []

    def launch(self, lazy: list, handover: Handover | None = None) -> None:
        """Start computing ``lazy``, and storing then writing a block handed over.

        The writes run beside the next block's computation rather than in it: the threaded
        scheduler ran the store update after most reads, and the files' waits on the disk
        held its threads (6.6 -> 6.1 ms an exposure, docs/benchmarks.md).
        """
        handover = handover or Handover()
        self.pending = [self.background.submit(self.compute, lazy)]
        # Partials are opaque leaves: dask would otherwise walk the outputs' dataclasses
        # (an Exposure each) while holding the GIL.
        writes: list[Write] = [functools.partial(self.write, o) for o in handover.outputs]
        if handover.update is not None or writes:
            self.pending.append(
                self.background.submit(
                    store_then_write, self.store, handover.update, writes, self.make
                )
            )
        self.to_mark = handover.mark

    def settle(self) -> list:
        """Wait for the work in flight; mark its files written; return its sources."""
        if not self.pending:
            return []
        sources, *paths = [future.result() for future in self.pending]
        self.pending = []
        self.store.written(self.to_mark)
        for path in paths[0] if paths else []:
            self.counts["written" if path is not None else "whole"] += 1
        return sources

    def __enter__(self) -> Flight:
        return self

    def __exit__(self, *exc: object) -> None:
        # The background's work is waited for (it writes files) before anything stops.
        self.background.shutdown(wait=True)
