"""The shortest plain serial numpy/astropy script that does the sidecar job (the floor).

Read only the groups that decide from each file, compare, grow, OR into the running
mask, write the DQ image. No dask, no store, no checks, no fsync.
"""

from __future__ import annotations

import glob
import os
import sys

import numpy as np
from astropy.io import fits
from scipy import ndimage


def main(in_dir: str, out_dir: str, sat_ref: str, n_unsat: int = 3, grow: int = 1) -> None:
    sidecars(glob.glob(os.path.join(in_dir, "*_uncal.fits")), out_dir, sat_ref, n_unsat, grow)


def sidecars(paths: list[str], out_dir: str, sat_ref: str, n_unsat: int = 3, grow: int = 1) -> None:
    """The job on the given files (``benchmarks/cold.py`` times it inside its process)."""
    with fits.open(sat_ref) as ref:
        thr = ref["SCI"].data.astype(np.float32)
        thr[np.isnan(thr) | ((ref["DQ"].data & 2**21) > 0)] = 65536
    files = sorted(paths, key=lambda f: fits.getval(f, "MJD-AVG", "SCI"))
    seen = np.zeros((1024, 1032), dtype=bool)
    os.makedirs(out_dir, exist_ok=True)
    box = np.ones((2 * grow + 1,) * 2, dtype=bool)
    for f in files:
        with fits.open(f, memmap=True, do_not_scale_image_data=True) as hdul:
            h = hdul[0].header
            y0, x0 = h["SUBSTRT2"] - 1, h["SUBSTRT1"] - 1
            raw = hdul["SCI"].data[0, : n_unsat + 1]
            ramp = raw.view(">u2") ^ np.uint16(0x8000) if raw.dtype.kind == "i" else raw
            win = (slice(y0, y0 + ramp.shape[1]), slice(x0, x0 + ramp.shape[2]))
            sat = ndimage.binary_dilation((ramp >= thr[win]).any(axis=0), box)
        name = os.path.basename(f).replace("_uncal.fits", "_persistence_dq.fits")
        fits.writeto(
            os.path.join(out_dir, name),
            np.where(seen[win], 33, 0).astype(np.uint32),
            overwrite=True,
        )
        seen[win] |= sat


if __name__ == "__main__":
    main(*sys.argv[1:4])
