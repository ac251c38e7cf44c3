"""The time of every group, as jwst's PersistenceStep counts it (Unix seconds).

The step (``jwst/persistence/persistence.py``, ``DataSet.do_all``) starts integration
``i`` at ``int_times[i]["int_start_MJD_UTC"]`` when the INT_TIMES table has that row, else
at ``EXPSTART + i * EFFINTTM``, converts MJD as ``(mjd - 40587) * 86400`` and adds TGROUP
once per group before looking at it. The same additions, in the same order, give the
same floating-point times, so window ends compare exactly as the step's do.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from .errors import InputError

#: MJD of the Unix epoch.
UNIX_EPOCH_MJD = 40587.0
SECONDS_PER_DAY = 86400.0


def mjd_to_epoch(mjd: float) -> float:
    """Unix seconds of an MJD, as the step converts it."""
    return (mjd - UNIX_EPOCH_MJD) * SECONDS_PER_DAY


def group_times(
    start_mjd: float,
    integration_time: float,
    group_time: float,
    int_start_mjd: np.ndarray,
    nints: int,
    ngroups: int,
) -> np.ndarray:
    """Times of the groups of one file, shape (nints, ngroups), in Unix seconds.

    Parameters
    ----------
    start_mjd : float
        EXPSTART.
    integration_time : float
        EFFINTTM (s).
    group_time : float
        TGROUP (s).
    int_start_mjd : ndarray
        The INT_TIMES table's ``int_start_MJD_UTC`` column (may be empty).
    nints, ngroups : int
        The file's integrations and groups.
    """
    epoch = mjd_to_epoch(start_mjd)
    out = np.empty((nints, ngroups), dtype=np.float64)
    for i in range(nints):
        if len(int_start_mjd) > i:
            now = mjd_to_epoch(int_start_mjd[i])
        else:
            now = epoch + i * integration_time
        for g in range(ngroups):
            now = now + group_time
            out[i, g] = now
    return out


def file_group_times(path: str, nints: int, ngroups: int) -> np.ndarray:
    """:func:`group_times` of an uncal file, from its primary header and INT_TIMES table."""
    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            head = hdul[0].header
            missing = [k for k in ("EXPSTART", "EFFINTTM", "TGROUP") if k not in head]
            if missing:
                raise InputError(
                    f"{path}: no {', '.join(missing)} in the primary header; the pipeline's "
                    "persistence step times its groups from them"
                )
            starts = np.zeros(0)
            if "INT_TIMES" in hdul:
                table = hdul["INT_TIMES"].data
                if table is not None and "int_start_MJD_UTC" in table.columns.names:
                    starts = np.asarray(table["int_start_MJD_UTC"], dtype=np.float64)
            return group_times(
                float(head["EXPSTART"]),
                float(head["EFFINTTM"]),
                float(head["TGROUP"]),
                starts,
                nints,
                ngroups,
            )
    except OSError as exc:
        raise InputError(f"{path}: cannot read its times ({exc})") from None
