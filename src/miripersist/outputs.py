"""Outputs of the group-level method: persistence-array files and copies with GROUPDQ.

Like every output, each appears whole or not at all (written beside its final name,
flushed, renamed) and inputs are only read.
"""

from __future__ import annotations

import io
import os

import numpy as np
from astropy.io import fits

from .errors import MiripersistError
from .inventory import Exposure
from .recognise import CARD, COMMENT, holds, output_digest
from .statefile import state_bytes
from .windows import GroupFlags
from .writeback import CHECKSUM_COMMENT, atomic_output, copy_range, provenance, write_all

GROUPDQ = "GROUPDQ"


def _unwritten(final: str, exc: OSError) -> MiripersistError:
    return MiripersistError(
        f"{final}: cannot write ({exc.strerror or exc}); nothing was left behind, "
        "run the same command again to finish"
    )


def write_state(tree: dict, final: str) -> str | None:
    """Write a persistence-array file; its path, or None when ``final`` held these bytes."""
    data = state_bytes(tree)
    try:
        with open(final, "rb") as fh:
            if fh.read() == data:
                return None
    except OSError:
        pass
    try:
        with atomic_output(final) as fd:
            write_all(fd, [data])
    except OSError as exc:
        raise _unwritten(final, exc) from None
    return final


def groupdq_hdu(cube: np.ndarray, cards: dict[str, object]) -> memoryview:
    """A uint8 ``GROUPDQ`` image extension, serialised, with provenance and checksum."""
    hdu = fits.ImageHDU(data=cube, name=GROUPDQ)
    provenance(hdu.header, cards)
    hdu.add_checksum(when=CHECKSUM_COMMENT)  # a fixed comment: the same flags, the same bytes
    buffer = io.BytesIO()
    primary = fits.PrimaryHDU()
    fits.HDUList([primary, hdu]).writeto(buffer)
    # A view, not a copy: a 30-group full frame's GROUPDQ is 31 MB.
    return buffer.getbuffer()[len(primary.header.tostring()) :]


def write_groupdq_copy(exposure: Exposure, flags: GroupFlags, final: str, params) -> str | None:
    """Byte-copy an uncal file and append the GROUPDQ that the step's flags make.

    dq_init ORs its own bits into an existing GROUPDQ and the saturation step adds its
    flags, so these survive into calwebb_detector1. PIXELDQ is not touched. Returns the
    path, or None when ``final`` already held this copy.
    """
    from . import store as store_mod

    result = output_digest(exposure, flags.digest(), params.record())
    if holds(final, result):
        return None

    cards = params.header_cards(
        int(np.count_nonzero(flags.any_group())), store_mod.package_versions()["miripersist"]
    )
    cards["MPFLAGS"] = (params.flags, "group DQ bits set in persistence windows")
    cards["MPNMASK"] = (cards["MPNMASK"][0], "pixels with a flagged group in this file")
    cards[CARD] = (result, COMMENT)
    hdu = groupdq_hdu(flags.cube(params.flags), cards)  # the cube is freed once serialised
    try:
        src = os.open(exposure.path, os.O_RDONLY)
        try:
            size = os.fstat(src).st_size
            with atomic_output(final) as dst:
                copy_range(src, dst, 0, size)
                write_all(dst, [hdu])
        finally:
            os.close(src)
    except OSError as exc:
        raise _unwritten(final, exc) from None
    return final
