"""Benchmark data sets made with the project's simulator, cloned cheaply to any size."""

from __future__ import annotations

import os
import shutil

from astropy.io import fits

from miripersist import simulate

UNIQUE = 6  # distinct exposures simulated; the rest are byte clones with new times and names


def build(directory: str, n: int, ngroups: int, subarray: str = "FULL") -> simulate.Program:
    """A program of ``n`` exposures with ``ngroups`` groups, made once and reused."""
    stamp = os.path.join(directory, ".complete")
    base = os.path.join(directory, "seed")
    program_dir = os.path.join(directory, "in")
    if os.path.exists(stamp):
        files = sorted(os.path.join(program_dir, f) for f in os.listdir(program_dir))
        return simulate.Program(
            program_dir,
            files,
            os.path.join(base, "mirimage_saturation.fits"),
            os.path.join(base, "mirimage_mask.fits"),
        )
    shutil.rmtree(directory, ignore_errors=True)
    seed = simulate.make_program(
        base,
        n_exposures=min(n, UNIQUE),
        ngroups=ngroups,
        subarrays=(subarray,),
        filters=("F770W", "F1800W"),
    )
    os.makedirs(program_dir)
    seeds = sorted(seed.files, key=lambda p: fits.getval(p, "EXPSTART"))
    t0 = fits.getval(seeds[0], "EXPSTART")
    step = fits.getval(seeds[1], "EXPSTART") - t0 if len(seeds) > 1 else 0.01
    files = []
    for i in range(n):
        path = os.path.join(
            program_dir,
            f"jw09999{i // 1000 + 1:03d}001_02101_{i % 1000 + 1:05d}_mirimage_uncal.fits",
        )
        shutil.copyfile(seeds[i % len(seeds)], path)
        shift = (i - i % len(seeds)) * step
        if shift:
            with fits.open(path, mode="update") as hdul:
                for key in ("EXPSTART", "EXPMID", "EXPEND"):
                    if key in hdul[0].header:
                        hdul[0].header[key] += shift
                for key in ("MJD-BEG", "MJD-AVG", "MJD-END"):
                    if key in hdul["SCI"].header:
                        hdul["SCI"].header[key] += shift
                if "INT_TIMES" in hdul:  # archive-shaped seeds: keep the table consistent
                    table = hdul["INT_TIMES"].data
                    for column in table.names:
                        if column.startswith("int_") and column != "integration_number":
                            table[column] += shift
        files.append(path)
    open(stamp, "w").close()
    return simulate.Program(program_dir, files, seed.saturation_ref, seed.mask_ref)
