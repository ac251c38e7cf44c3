"""An output's digest, recorded in its header, so that a rerun knows a whole one it finds.

Outputs appear whole or not at all (written beside their final name, then renamed), but a
run that fails or is killed after some of a block's files are in place has not yet
recorded them in the store. The digest says what a file holds: the flags (as bits), the
input file it was made from (name, size, modification time, header digest) and the run's
parameters. A rerun that finds an output with the digest it would write leaves it as it is.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

#: The header keyword of the digest, and its comment.
CARD = "MPRESULT"
COMMENT = "digest: flags, input, parameters"
_CUTS = ("batch", "tile")


def output_digest(source, flags: np.ndarray | str, record: dict) -> str:
    """The digest of the output made from input file ``source`` with ``flags``.

    Parameters
    ----------
    source : Exposure
        The input file (one segment of a segmented exposure).
    flags : ndarray of bool, or str
        The pixels flagged, or a digest of what the output holds beyond its input.
    record : dict
        The run's parameters (``Parameters.record()``); those that only cut the work
        (``batch``, ``tile``) are left out.

    Returns
    -------
    str
        32 hexadecimal digits (128 bits): one header card with room for its comment.
    """
    # How the work is cut (tiles, exposures a block) never changes an output.
    shaping = {k: v for k, v in record.items() if k not in _CUTS}
    h = hashlib.sha256()
    h.update(f"{os.path.basename(source.path)}|{source.size}|{source.mtime_ns}|".encode())
    h.update(f"{source.header_sha256}|{json.dumps(shaping, sort_keys=True)}|".encode())
    if isinstance(flags, str):
        h.update(flags.encode())
    else:
        h.update(repr(flags.shape).encode())
        h.update(np.packbits(flags, axis=None).tobytes())
    return h.hexdigest()[:32]


def holds(path: str, digest: str) -> bool:
    """Whether the file at ``path`` is an output that records ``digest``.

    Only a file that is there is read (its headers, not its data); anything that cannot
    be read as FITS holds nothing.
    """
    if not os.path.exists(path):
        return False
    from astropy.io import fits

    try:
        with fits.open(path, lazy_load_hdus=True, memmap=False) as hdul:
            return any(hdu.header.get(CARD) == digest for hdu in hdul)
    except (OSError, ValueError):
        return False
