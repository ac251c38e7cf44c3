"""How each kind of output is written: the sink's table, one writer a :class:`Kind`.

A rule describes its outputs as data (:class:`Output`, :class:`~miripersist.methods.Final`);
the writers here make them. Each output appears whole or not at all (written beside its
final name, flushed, renamed); a file that already holds what it would get is left alone,
so that a rerun after a kill rewrites nothing it finished.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MiripersistError
from .fitsimage import smallest_unsigned
from .kinds import Kind
from .recognise import CARD as RESULT_CARD
from .recognise import COMMENT as RESULT_COMMENT
from .recognise import holds, output_digest

if TYPE_CHECKING:
    from .inventory import Exposure
    from .methods import Final
    from .parameters import Parameters


@dataclass(frozen=True)
class Output:
    """One output file of one input file, described.

    Attributes
    ----------
    kind : Kind
    final : str
        Its path.
    file : Exposure
        The input file (segment) it is made from.
    mask : array-like of bool
        The exposure's pixel mask in its own frame (an ndarray, or packed bits on its way
        to another process).
    n_masked : int
        Pixels set in ``mask``.
    data : object
        What the rule made for this kind (group flags, a state tree); None for a pixel mask.
    """

    kind: Kind
    final: str
    file: Exposure
    mask: Any
    n_masked: int
    data: Any = None


def write_pixel_mask(output: Output, params: Parameters) -> str | None:
    """A masked copy or a DQ sidecar; its path, or None when ``final`` already held it."""
    from . import store as store_mod
    from .writeback import write_copy, write_sidecar

    final, copy = output.final, output.kind is Kind.PIXELDQ_COPY
    mask = np.asarray(output.mask, dtype=bool)
    result = output_digest(output.file, mask, params.record())
    if holds(final, result):  # left whole by a run that stopped before recording it
        return None
    # The mask travels to the worker (1 byte a pixel, or a bit to another process), the DQ
    # image is made there: uint32 in a copy's PIXELDQ, the smallest type that holds the
    # flags in a sidecar.
    dtype = np.dtype(np.uint32) if copy else smallest_unsigned(int(params.flags))
    dq = mask.astype(dtype)  # one new image (0 and 1)
    dq *= dtype.type(params.flags)
    cards = params.header_cards(output.n_masked, store_mod.package_versions()["miripersist"])
    cards[RESULT_CARD] = (result, RESULT_COMMENT)
    try:
        if copy:
            write_copy(output.file, dq, final, cards)
        else:
            write_sidecar(dq, final, cards, compress=params.compress)
    except OSError as exc:
        raise MiripersistError(
            f"{final}: cannot write ({exc.strerror or exc}); nothing was left behind, "
            "run the same command again to finish"
        ) from None
    return final


def write_groupdq(output: Output, params: Parameters) -> str | None:
    """A copy with the GROUPDQ of the rule's group flags (``data``)."""
    from .outputs import write_groupdq_copy

    return write_groupdq_copy(output.file, output.data, output.final, params)


def write_state_file(output: Output, params: Parameters) -> str | None:
    """A persistence-array file of the rule's state tree (``data``)."""
    from .outputs import write_state

    return write_state(output.data, output.final)


#: The writer of each kind of per-file output.
WRITERS: dict[Kind, Callable[[Output, Parameters], str | None]] = {
    Kind.PIXELDQ_COPY: write_pixel_mask,
    Kind.DQ_SIDECAR: write_pixel_mask,
    Kind.GROUPDQ_COPY: write_groupdq,
    Kind.STATE_FILE: write_state_file,
}


def write_output(output: Output, params: Parameters) -> str | None:
    """Write ``output`` by the writer of its kind; its path, or None when it held it already."""
    return WRITERS[output.kind](output, params)


def write_state_at_end(final: Final, output_dir: str, store: str) -> None:
    """A state file in the output directory."""
    from .outputs import write_state

    write_state(final.data, os.path.join(output_dir, final.name))


def write_store_image(final: Final, output_dir: str, store: str) -> None:
    """An image in the run's store."""
    from .store import put_image

    put_image(store, final.name, final.data, dict(final.attrs))


#: The writer of each kind of output a rule leaves at the end of a run.
FINAL_WRITERS: dict[Kind, Callable[[Final, str, str], None]] = {
    Kind.STATE_FILE: write_state_at_end,
    Kind.STORE_ARRAY: write_store_image,
}


def write_final(final: Final, output_dir: str, store: str) -> None:
    """Write what a rule leaves beside the per-exposure outputs (``store``: the run's store)."""
    FINAL_WRITERS[final.kind](final, output_dir, store)
