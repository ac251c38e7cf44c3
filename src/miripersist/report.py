"""``miripersist report STORE``: a table and figures to look at a run.

Everything is read from the store, one exposure at a time, so a report of a program of
thousands of exposures needs no more memory than one of ten.
"""

from __future__ import annotations

import os

import numpy as np
import xarray as xr
from astropy.table import Table
from astropy.time import Time
from scipy import ndimage

from .scan import NEVER_SATURATED, new_carry
from .store import open_store

HOURS = 24.0


def report_table(ds: xr.Dataset) -> Table:
    """Per exposure: file, detector, filter, times, sources, masked pixels, mask ages.

    The ages of an exposure's persistence mask are the hours from the end of the
    saturation behind each masked pixel to the exposure's start (min, median, max).
    """
    n = ds.sizes["exposure"]
    ages = np.full((n, 3), np.nan)
    detectors = ds["detector"].values.astype(str)
    start = ds["start_mjd"].values
    end = ds["end_mjd"].values
    for det in np.unique(detectors):
        carry = new_carry(tuple(ds.attrs.get("detector_shape", (1024, 1032))))
        for i in np.flatnonzero(detectors == det):
            mask = ds["mask"][i].values
            last = carry[mask]
            last = last[last > NEVER_SATURATED]
            if last.size:
                age = (start[i] - last) * HOURS
                ages[i] = (age.min(), np.median(age), age.max())
            carry[ds["source"][i].values] = end[i]
    frame = ds["xsize"].values * ds["ysize"].values
    table = Table(
        {
            "file": ds["file"].values.astype(str),
            "detector": detectors,
            "filter": ds["filter"].values.astype(str),
            "start": [t[:19] for t in Time(start, format="mjd").isot],
            "mid_mjd": ds["mid_mjd"].values,
            "end": [t[:19] for t in Time(end, format="mjd").isot],
            "new_sources": ds["n_source"].values,
            "masked": ds["n_masked"].values,
            "masked_pct": np.round(100.0 * ds["n_masked"].values / frame, 4),
            "mask_age_min_h": np.round(ages[:, 0], 3),
            "mask_age_median_h": np.round(ages[:, 1], 3),
            "mask_age_max_h": np.round(ages[:, 2], 3),
        }
    )
    table["mid_mjd"].format = ".6f"
    return table


def _visible(mask: np.ndarray, grow: int = 4) -> np.ndarray:
    # Single pixels vanish in a 1032-pixel-wide figure; widen them for the eye only.
    return ndimage.maximum_filter(mask, size=2 * grow + 1) if mask.any() else mask


def plot_fraction(ds: xr.Dataset, table: Table, path: str) -> str:
    """Masked fraction against time, a panel per detector, a colour per filter."""
    import matplotlib.pyplot as plt

    detectors = sorted(set(table["detector"]))
    fig, axes = plt.subplots(1, len(detectors), figsize=(6 * len(detectors), 4), squeeze=False)
    t0 = float(np.min(table["mid_mjd"]))
    for ax, det in zip(axes[0], detectors, strict=True):
        rows = table[table["detector"] == det]
        hours = (np.asarray(rows["mid_mjd"]) - t0) * HOURS
        ax.plot(hours, rows["masked_pct"], "-", color="0.75", zorder=0)
        for name in sorted(set(rows["filter"])):
            sel = np.asarray(rows["filter"] == name)
            ax.plot(hours[sel], np.asarray(rows["masked_pct"])[sel], "o", label=name or "-")
        ax.set(
            title=det,
            xlabel="hours since the first exposure (mid time)",
            ylabel="pixels flagged (% of frame)",
        )
        ax.legend(title="filter", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_final(ds: xr.Dataset, path: str) -> str:
    """The cumulative mask after the last exposure of each detector (with the user mask)."""
    import matplotlib.pyplot as plt

    detectors = ds["detector"].values.astype(str)
    names = sorted(set(detectors))
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 5), squeeze=False)
    for ax, det in zip(axes[0], names, strict=True):
        last = int(np.flatnonzero(detectors == det)[-1])
        final = (ds["mask"][last] | ds["source"][last] | ds["user_mask"]).values
        ax.imshow(_visible(final), origin="lower", cmap="Greys", interpolation="nearest")
        ax.set(
            title=f"{det}: {int(final.sum())} pixels after {last + 1} exposures",
            xlabel="x (detector column)",
            ylabel="y (detector row)",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_strip(ds: xr.Dataset, path: str, most: int = 8) -> str:
    """Per-exposure masks (grey) with the sources of the exposure before each (red).

    The red pixels are what each mask gained from the exposure just before it; the first
    ``most`` exposures of the first detector are shown.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    detectors = ds["detector"].values.astype(str)
    chosen = np.flatnonzero(detectors == sorted(set(detectors))[0])[:most]
    ncols = min(4, len(chosen))
    nrows = -(-len(chosen) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(chosen) :]:
        ax.set_axis_off()
    cmap = ListedColormap(["white", "0.6", "red"])
    for k, (ax, i) in enumerate(zip(axes.flat, chosen, strict=False)):
        image = _visible(ds["mask"][i].values).astype(np.uint8)
        if k:
            image[_visible(ds["source"][chosen[k - 1]].values)] = 2
        ax.imshow(image, origin="lower", cmap=cmap, vmin=0, vmax=2, interpolation="nearest")
        x0, y0 = int(ds["xstart"].values[i]) - 1, int(ds["ystart"].values[i]) - 1
        xs, ys = int(ds["xsize"].values[i]), int(ds["ysize"].values[i])
        if (ys, xs) != image.shape:  # a subarray: only its frame is flagged
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), xs, ys, fill=False, color="tab:blue"))
        ax.set_title(
            f"#{i + 1} {ds['subarray'].values[i]} {ds['filter'].values[i]}: "
            f"{int(ds['n_masked'][i])} px",
            fontsize=9,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "Persistence masks per exposure (grey), sources of the exposure before (red), "
        "subarray frames (blue)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def report(store: str, out: str | None = None) -> tuple[Table, list[str]]:
    """Write ``persistence_report.ecsv`` and three PNG figures for a store; return them."""
    import matplotlib

    matplotlib.use("Agg")
    ds = open_store(store)
    out = out or os.path.join(os.path.dirname(os.path.abspath(store)), "report")
    os.makedirs(out, exist_ok=True)
    table = report_table(ds)
    table.write(os.path.join(out, "persistence_report.ecsv"), overwrite=True)
    figures = [
        plot_fraction(ds, table, os.path.join(out, "masked_fraction.png")),
        plot_final(ds, os.path.join(out, "final_mask.png")),
        plot_strip(ds, os.path.join(out, "mask_strip.png")),
    ]
    return table, figures
