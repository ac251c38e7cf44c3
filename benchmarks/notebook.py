"""The notebook method, faithfully: what users do today (the baseline).

Every file is opened as a RampModel and run through DQInitStep and SaturationStep; the
unsaturated groups of the first integration are counted; each exposure's PIXELDQ is set
to DO_NOT_USE from all earlier masks, ORed again for every file, and the whole model is
written. Run offline with the references given on the command line.
"""

from __future__ import annotations

import glob
import os
import sys

import numpy as np


def main(in_dir: str, out_dir: str, sat_ref: str, mask_ref: str, n_unsat: int = 3) -> None:
    files = sorted(glob.glob(os.path.join(in_dir, "*_uncal.fits")))
    notebook(files, out_dir, sat_ref, mask_ref, n_unsat)


def notebook(files: list[str], out_dir: str, sat_ref: str, mask_ref: str, n_unsat: int = 3) -> None:
    """The method on the given files (``benchmarks/cold.py`` times it inside its process)."""
    from jwst.dq_init import DQInitStep
    from jwst.saturation import SaturationStep
    from stdatamodels.jwst import datamodels
    from stdatamodels.jwst.datamodels import dqflags

    times = []
    for f in files:
        with datamodels.open(f) as m:
            times.append(m.meta.exposure.mid_time_mjd)
    files = [f for _, f in sorted(zip(times, files, strict=True))]
    masks = []
    for f in files:
        model = DQInitStep.call(f, override_mask=mask_ref)
        model = SaturationStep.call(model, override_saturation=sat_ref, override_superbias="N/A")
        sat = (model.groupdq[0] & dqflags.group["SATURATED"]) > 0
        n_unsat_groups = model.groupdq.shape[1] - sat.sum(axis=0)
        masks.append(n_unsat_groups <= n_unsat)
        model.close()
    os.makedirs(out_dir, exist_ok=True)
    for i, f in enumerate(files):
        model = datamodels.RampModel(f)
        combined = np.zeros(model.data.shape[-2:], dtype=bool)
        for earlier in masks[:i]:
            combined |= earlier
        model.pixeldq[combined] = dqflags.pixel["DO_NOT_USE"]
        model.save(os.path.join(out_dir, os.path.basename(f).replace("_uncal", "_nb_uncal")))
        model.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
