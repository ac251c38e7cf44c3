"""``miripersist demo``: a small synthetic program, masked, summarised and plotted."""

from __future__ import annotations

import os
import time

import numpy as np
import xarray as xr

from .cli import ProgressBar
from .engine import Parameters, run
from .report import _visible
from .simulate import make_program
from .summary import format_summary


def plot(ds: xr.Dataset, path: str) -> str:
    """Masked fraction against time, and the final cumulative mask, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = ds["xsize"].values * ds["ysize"].values
    pct = 100.0 * ds["n_masked"].values / frame
    hours = (ds["mid_mjd"].values - ds["mid_mjd"].values.min()) * 24.0
    filters = ds["filter"].values.astype(str)
    last = ds.sizes["exposure"] - 1
    final = (ds["mask"][last] | ds["source"][last]).values

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5), width_ratios=(1.2, 1))
    for name in sorted(set(filters)):
        sel = filters == name
        ax0.plot(hours[sel], pct[sel], "o", label=name)
    ax0.plot(hours, pct, "-", color="0.7", zorder=0)
    ax0.set_xlabel("hours since first exposure (mid time)")
    ax0.set_ylabel("pixels flagged (% of frame)")
    ax0.set_title("Persistence mask grows with the program")
    ax0.legend(title="filter")
    ax1.imshow(_visible(final), origin="lower", cmap="Greys", interpolation="nearest")
    ax1.set_title(f"Cumulative mask after {last + 1} exposures ({int(final.sum())} pixels)")
    ax1.set_xlabel("x (detector column)")
    ax1.set_ylabel("y (detector row)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def demo(directory: str = "miripersist-demo", quiet: bool = False) -> xr.Dataset:
    """Make (once) and mask a 12-exposure program with FULL and SUB256 frames.

    Returns the run's store. Writes ``DIR/inputs``, ``DIR/outputs`` and ``DIR/demo.png``.
    """
    t0 = time.monotonic()
    inputs = os.path.join(directory, "inputs")
    program = make_program(
        inputs,
        n_exposures=12,
        ngroups=10,
        subarrays=("FULL", "FULL", "SUB256"),
        filters=("F770W", "F1800W", "F2100W"),
        nints=(1, 2),
        stars_per_exposure=12,
    )
    ds = run(
        [inputs],
        os.path.join(directory, "outputs"),
        saturation_refs=[program.saturation_ref],
        params=Parameters(),
        overwrite=True,
        progress=ProgressBar(not quiet),
    )
    png = plot(ds, os.path.join(directory, "demo.png"))
    print(format_summary(ds))
    total = int(np.sum(ds["n_masked"].values))
    print(
        f"\n{ds.sizes['exposure']} exposures masked ({total} pixel flags) in "
        f"{time.monotonic() - t0:.1f} s"
    )
    print(f"masked files and store: {os.path.join(directory, 'outputs')}")
    print(f"plot: {png}")
    return ds
