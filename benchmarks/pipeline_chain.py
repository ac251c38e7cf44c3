"""jwst's PersistenceStep chained by hand over a program: the serial baseline.

Every file, in start-time order, through DQInitStep + SaturationStep + PersistenceStep,
each reading the persistence-array file the one before it saved, and the flagged ramp
written, as a person runs the pipeline's own step over a program today. Offline, with
the references given on the command line.
"""

from __future__ import annotations

import glob
import os
import sys


def main(in_dir: str, out_dir: str, sat_ref: str, mask_ref: str, seconds: int) -> None:
    from astropy.io import fits
    from jwst.dq_init import DQInitStep
    from jwst.persistence import PersistenceStep
    from jwst.saturation import SaturationStep

    files = sorted(glob.glob(os.path.join(in_dir, "*_uncal.fits")))
    files.sort(key=lambda f: fits.getheader(f)["EXPSTART"])
    os.makedirs(out_dir, exist_ok=True)
    state = os.path.join(out_dir, "persistence_state.asdf")
    for f in files:
        model = DQInitStep.call(f, override_mask=mask_ref)
        model = SaturationStep.call(model, override_saturation=sat_ref, override_superbias="N/A")
        model = PersistenceStep.call(
            model, persistence_time=seconds, persistence_array_file=state, save_persistence=state
        )
        model.save(os.path.join(out_dir, os.path.basename(f).replace("_uncal", "_persistence")))
        model.close()


if __name__ == "__main__":
    main(*sys.argv[1:5], int(sys.argv[5]) if len(sys.argv) > 5 else 2500)
