"""What a run writes, described as data: the kinds of output and the names they take.

A method says which kinds it writes for each input file in each ``--mode``
(:attr:`miripersist.methods.Traits.writes`); the sink (:mod:`miripersist.writers`) knows
how to write every kind. A new method therefore writes nothing by itself.
"""

from __future__ import annotations

import enum
import os

from .inventory import output_name
from .statefile import STATE_SUFFIX


class Kind(enum.Enum):
    """A kind of output."""

    #: A byte copy of the uncal file whose PIXELDQ holds the flags.
    PIXELDQ_COPY = "pixeldq-copy"
    #: A DQ image for dq_init's ``user_supplied_dq``.
    DQ_SIDECAR = "dq-sidecar"
    #: A byte copy of the uncal file with a GROUPDQ extension of group flags appended.
    GROUPDQ_COPY = "groupdq-copy"
    #: A persistence-array file in the format of jwst's PersistenceStep.
    STATE_FILE = "state-file"
    #: An image in the run's store.
    STORE_ARRAY = "store-array"


#: Kinds whose content is the exposure's pixel mask (a user mask adds to it).
PIXEL_MASKS = frozenset({Kind.PIXELDQ_COPY, Kind.DQ_SIDECAR})


def state_name(path: str) -> str:
    """``<name>_persistence_state.asdf`` for ``<name>_uncal.fits``."""
    base = os.path.basename(path)
    stem = base[: -len("_uncal.fits")] if base.endswith("_uncal.fits") else base.rsplit(".", 1)[0]
    return stem + STATE_SUFFIX


def file_name(kind: Kind, path: str, keep_names: bool = False) -> str:
    """The name of the ``kind`` of output made for input file ``path``."""
    if kind is Kind.STATE_FILE:
        return state_name(path)
    return output_name(path, "sidecar" if kind is Kind.DQ_SIDECAR else "copy", keep_names)


def file_names(kinds: tuple[Kind, ...], path: str, keep_names: bool = False) -> tuple[str, ...]:
    """The names of the outputs of ``kinds`` made for input file ``path``, in that order."""
    return tuple(file_name(kind, path, keep_names) for kind in kinds)
