"""The block loop: each block's sources read, scanned by the rule, decided, handed over.

Exposures are processed per detector in blocks of ``Parameters.batch`` consecutive
exposures (:attr:`miripersist.planner.RunPlan.blocks`). One dask computation is in flight
while the main thread scans: the next block's sources are read, and the previous block's
store update and files written (:mod:`miripersist.sink`), during the scan of this block.
Memory is bounded by the block size, not by the number of exposures.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import resume
from . import store as store_mod
from .execute import Runner, local_threads, runner
from .inventory import DETECTOR_SHAPE
from .methods import Block, Method, Scanned
from .parameters import Parameters
from .planner import BlockPlan, RunPlan
from .reads import Reads
from .sink import Flight, Handover, Store
from .thresholds import Window
from .writers import Output, write_final, write_output

if TYPE_CHECKING:
    from dask.delayed import Delayed

log = logging.getLogger(__name__)

#: What a run counts, as ``attrs["last_run"]`` of the store reports it.
COUNTS = ("computed", "reused", "written", "whole", "unchanged", "retained")


def scan_blocks(
    plan: RunPlan,
    params: Parameters,
    user_mask: np.ndarray,
    progress: Callable[[int, int], None] | None = None,
    store: Store | None = None,
) -> tuple[dict[str, int], list[int]]:
    """Read, scan, store and write every block of ``plan``; the counts and stale exposures.

    ``store`` receives the blocks (default: a :class:`miripersist.store.Writer` of the
    plan's target store).
    """
    if not plan.blocks:
        return dict.fromkeys(COUNTS, 0), []
    rule = params.rule
    store = store if store is not None else store_mod.Writer(plan.target)
    counts = dict.fromkeys(COUNTS, 0)
    with (
        runner(local_threads(params.mode)) as where,
        Flight(
            where.compute, where.make, store, functools.partial(write_output, params=params), counts
        ) as flight,
    ):
        loop = Loop(plan, params, rule, user_mask, where, counts)
        blocks = plan.blocks
        flight.launch(loop.lazy(blocks[0]))
        handover = None
        for b, block in enumerate(blocks):
            frames = flight.settle()
            flight.launch(loop.lazy(blocks[b + 1]) if b + 1 < len(blocks) else [], handover)
            handover = loop.block(b, block, frames)
            if progress is not None:
                progress(loop.done, len(plan.exposures))
        flight.settle()
        flight.launch([], handover)
        flight.settle()
    for final in rule.finish(loop.carries, params):
        write_final(final, plan.output_dir, plan.target)
    return counts, loop.stale


@dataclass
class Loop:
    """The block loop's state: each detector's carry, buffers, counts, stale exposures."""

    plan: RunPlan
    params: Parameters
    rule: Method
    user_mask: np.ndarray
    where: Runner
    counts: dict[str, int]
    carries: dict[str, object] = field(init=False)
    stale: list[int] = field(default_factory=list)
    done: int = 0

    def __post_init__(self) -> None:
        self.carries = dict(self.plan.start)
        self.windows: dict[tuple, Delayed] = {}
        self.previous = (
            store_mod.Stored(self.plan.previous) if self.plan.previous is not None else None
        )
        # Two sets of block images (sources, masks), for alternate blocks: a block's images
        # are read by its store update and file writes, which run during the next block's
        # scan and are done before the block after it starts. Fresh 16 MB images every
        # block cost more to fault in than the scan of them.
        longest = max(len(block.indices) for block in self.plan.blocks)
        self.images = [
            tuple(np.zeros((longest, *DETECTOR_SHAPE), bool) for _ in range(2))
            for _ in range(min(2, len(self.plan.blocks)))
        ]

    def todo(self, block: BlockPlan) -> list[int]:
        """The block's exposures whose sources are read (not taken from the store)."""
        return [i for i in block.indices if not self.plan.reuse[i]]

    def lazy(self, block: BlockPlan) -> list:
        """The sources the rule reads of the block's exposures, lazily."""
        params = self.params
        return [
            self.rule.sources(
                self.plan.exposures[i],
                Reads(self.thresholds(i), params.n_pix_grow_sat, params.tile),
                params,
            )
            for i in self.todo(block)
        ]

    def thresholds(self, i: int) -> Delayed | None:
        """Exposure ``i``'s thresholds, shared by every exposure of the same frame."""
        ref, e = self.plan.references[i], self.plan.exposures[i]
        if ref is None:
            return None
        key = (ref.path, e.xstart, e.ystart, e.xsize, e.ysize)
        if key not in self.windows:
            self.windows[key] = self.where.share(Window(ref.window_for(e)))
        return self.windows[key]

    def block(self, b: int, block: BlockPlan, computed: list) -> Handover:
        """Scan block number ``b`` given its computed sources; what the sink gets of it."""
        indices, exposures = block.indices, self.plan.exposures
        frames = dict(zip(self.todo(block), computed, strict=True))
        sources, out = (image[: len(indices)] for image in self.images[b % 2])
        reused = [k for k, i in enumerate(indices) if i not in frames]
        if reused:
            assert self.previous is not None
            earlier = [self.plan.earlier[indices[k]] for k in reused]
            sources[reused] = self.previous.images("source", [e.row for e in earlier if e])
        scanned = self.rule.scan(
            Block(
                block.detector,
                [exposures[i] for i in indices],
                [frames.get(i) for i in indices],
                sources,
                out,
            ),
            self.carries[block.detector],
            self.params,
        )
        self.carries[block.detector] = scanned.carry
        self.counts["computed"] += len(frames)
        self.counts["reused"] += len(indices) - len(frames)
        self.counts["retained"] += sum(self.plan.retained[i] for i in indices)
        self.done += len(indices)
        return self.handover(indices, sources, scanned)

    def handover(self, indices: tuple[int, ...], sources: np.ndarray, scanned: Scanned) -> Handover:
        """What to store, which files to write and which to mark, for a scanned block."""
        plan = self.plan
        masks = scanned.masks
        with_user = masks | self.user_mask if self.user_mask.any() else masks
        applied = [with_user[k][plan.exposures[i].window] for k, i in enumerate(indices)]
        n_masked = np.array([np.count_nonzero(a) for a in applied])
        kept = self.kept(indices, masks, scanned.digests)
        actions = [_action(plan, i, kept[k]) for k, i in enumerate(indices)]
        handover = Handover()
        if not (plan.in_place and all(plan.reuse[i] for i in indices) and all(kept)):
            # Outputs to be rewritten lose their "written" mark in the same update, which
            # runs before any of this block's files is written. Stored by this process (no
            # 30 MB shipping to a worker) beside the next block's reads.
            unwritten = [
                i
                for i, a in zip(indices, actions, strict=True)
                if a in (resume.WRITE, resume.STALE)
            ]
            n_source = np.array([np.count_nonzero(x) for x in sources])
            handover.update = store_mod.StoreUpdate(
                indices[0], sources, masks, n_source, n_masked, unwritten, scanned.digests
            )
        for k, i in enumerate(indices):
            self.act(actions[k], i, handover)
            if actions[k] == resume.WRITE:
                handover.outputs += self.outputs(
                    i, applied[k], int(n_masked[k]), scanned.payloads[k]
                )
        return handover

    def act(self, action: str, i: int, handover: Handover) -> None:
        """Count, warn of or mark exposure ``i`` as its ``action`` says."""
        if action == resume.STALE:
            self.stale.append(i)
            return
        if action == resume.MISSING:
            log.warning(
                "%s: output is gone and its input %s too; its mask is unchanged",
                self.plan.outputs[i][0],
                self.plan.exposures[i].path,
            )
        elif action != resume.WRITE:
            self.counts["unchanged"] += 1
        if action == resume.WRITE or not self.plan.in_place:
            handover.mark.append(i)

    def outputs(self, i: int, applied: np.ndarray, n_masked: int, payload: tuple) -> list[Output]:
        """Exposure ``i``'s output files, described, in the order the plan names them."""
        exposure, finals = self.plan.exposures[i], iter(self.plan.outputs[i])
        # A run of the store only (no outputs planned) writes no kind.
        kinds = self.rule.traits.writes[self.params.mode] if self.plan.outputs[i] else ()
        mask = self.where.pack(applied)
        return [
            Output(kind, next(finals), f, mask, n_masked, payload[j].get(kind) if payload else None)
            for j, f in enumerate(exposure.files)
            for kind in kinds
        ]

    def kept(self, indices: tuple[int, ...], masks: np.ndarray, digests: list[str]) -> list[bool]:
        """Per exposure of a block: whether the earlier run's mask and digest are this run's."""
        earlier = [self.plan.earlier[i] for i in indices]
        known = [k for k, e in enumerate(earlier) if e is not None]
        kept = [False] * len(indices)
        if known:
            assert self.previous is not None
            old = self.previous.images("mask", [earlier[k].row for k in known])  # type: ignore[union-attr]
            for k, old_mask in zip(known, old, strict=True):
                same = bool(np.array_equal(old_mask, masks[k]))
                kept[k] = same and earlier[k].digest == digests[k]  # type: ignore[union-attr]
        return kept


def _action(plan: RunPlan, i: int, kept: bool) -> str:
    """What to do with exposure ``i``'s outputs (:func:`miripersist.resume.output_action`)."""
    earlier = plan.earlier[i]
    return resume.output_action(
        same_mask=kept,
        written=earlier is not None and earlier.written,
        exists=all(os.path.exists(o) for o in plan.outputs[i]),
        writable=plan.writable[i],
    )
