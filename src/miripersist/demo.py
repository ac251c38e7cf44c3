"""``miripersist demo``: a small synthetic program, masked, summarised and plotted."""

from __future__ import annotations

import os
import time

import numpy as np
import xarray as xr

from .engine import Parameters, run
from .figures import HOURS, draw_flagged, outline_frames, widen
from .progress import ProgressBar
from .simulate import make_program
from .summary import format_summary


def plot(ds: xr.Dataset, path: str) -> str:
    """Pixels flagged per exposure and held by the detector's mask, and the final mask.

    The left panel counts detector pixels: each exposure's flags (in its own frame, so a
    SUB256 exposure flags fewer) and the cumulative mask the detector holds after it,
    whose last value is the right panel's count.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(ds["mid_mjd"].values, kind="stable")
    held = (ds["mask"] | ds["source"]).sum(("y", "x")).values
    hours = (ds["mid_mjd"].values - ds["mid_mjd"].values.min()) * HOURS
    last = int(order[-1])
    final = (ds["mask"][last] | ds["source"][last]).values

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5), width_ratios=(1.2, 1))
    ax0.step(
        hours[order],
        held[order],
        where="post",
        color="0.3",
        label="held by the detector's mask after it",
    )
    draw_flagged(ax0, ds, order, float(ds["mid_mjd"].values.min()))
    ax0.set_ylabel("detector pixels")
    ax0.set_title("The persistence mask grows with the program")
    ax1.imshow(widen(final), origin="lower", cmap="Greys", interpolation="nearest")
    outline_frames(ax1, ds, order)
    ax1.set_title(f"The detector's mask after {len(order)} exposures: {int(final.sum())} pixels")
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
    flags = int(np.sum(ds["n_masked"].values))
    held = int((ds["mask"][-1] | ds["source"][-1]).sum())
    print(
        f"\n{ds.sizes['exposure']} exposures masked in {time.monotonic() - t0:.1f} s: "
        f"{flags} pixel flags written (each exposure's own, counted in its frame), "
        f"{held} detector pixels in the final mask"
    )
    print(f"masked files and store: {os.path.join(directory, 'outputs')}")
    print(f"plot: {png}")
    return ds
