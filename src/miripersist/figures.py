"""The figures of ``miripersist demo`` and ``miripersist report``, drawn from a store.

Counts are in detector pixels: a SUB256 exposure flags only the pixels of its own
256 x 256 frame, so each subarray has a marker of its own, and its frame is outlined on
the detector images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from scipy import ndimage

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "draw_flagged",
    "exposure_frame",
    "outline_frames",
    "plot_final",
    "plot_fraction",
    "plot_strip",
    "strip_title",
    "widen",
]

#: Hours in a day: MJD differences to hours.
HOURS = 24.0
#: Marker and colour per subarray, in the order subarrays first appear; cycled past the end.
MARKERS = (("o", "tab:blue"), ("s", "tab:orange"), ("^", "tab:green"), ("D", "tab:red"))


def exposure_frame(ds: xr.Dataset, i: int) -> tuple[slice, slice]:
    """The detector rows and columns of exposure ``i``'s frame (its subarray)."""
    y0, x0 = int(ds["ystart"].values[i]) - 1, int(ds["xstart"].values[i]) - 1
    ys, xs = int(ds["ysize"].values[i]), int(ds["xsize"].values[i])
    return slice(y0, y0 + ys), slice(x0, x0 + xs)


def widen(mask: np.ndarray, grow: int = 4) -> np.ndarray:
    """``mask`` with every flagged pixel grown by ``grow``, for the eye only.

    Single pixels vanish in a figure of a 1032-pixel-wide detector.
    """
    return ndimage.maximum_filter(mask, size=2 * grow + 1) if mask.any() else mask


def draw_flagged(ax: Axes, ds: xr.Dataset, indices: np.ndarray, t0: float) -> None:
    """Pixels flagged per exposure against time, a marker per subarray (frame size named).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    ds : xarray.Dataset
        A store.
    indices : numpy.ndarray
        The exposures to draw, in time order.
    t0 : float
        The MJD of hour zero.
    """
    hours = (ds["mid_mjd"].values[indices] - t0) * HOURS
    flagged = ds["n_masked"].values[indices]
    subarrays = ds["subarray"].values.astype(str)[indices]
    names = list(dict.fromkeys(subarrays))
    for k, name in enumerate(names):
        sel = subarrays == name
        first = indices[int(np.flatnonzero(sel)[0])]
        size = f"{int(ds['xsize'].values[first])} x {int(ds['ysize'].values[first])}"
        marker, colour = MARKERS[k % len(MARKERS)]
        label = f"flagged in a {name or '-'} exposure ({size} frame)"
        ax.plot(hours[sel], flagged[sel], marker, color=colour, label=label, linestyle="none")
    ax.set_xlabel("hours since the first exposure (mid time)")
    ax.set_ylabel("pixels flagged in the exposure's frame")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)


def outline_frames(ax: Axes, ds: xr.Dataset, indices: np.ndarray) -> None:
    """Outline, on a detector image, each distinct subarray frame among ``indices``."""
    from matplotlib.patches import Rectangle

    shape = tuple(ds.attrs.get("detector_shape", (ds.sizes["y"], ds.sizes["x"])))
    seen: dict[tuple[int, int, int, int], str] = {}
    for i in indices:
        rows, cols = exposure_frame(ds, int(i))
        if (rows.stop - rows.start, cols.stop - cols.start) != shape:
            seen.setdefault(
                (rows.start, rows.stop, cols.start, cols.stop), str(ds["subarray"].values[i])
            )
    for (r0, r1, c0, c1), name in seen.items():
        ax.add_patch(
            Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, color="tab:blue")
        )
        ax.annotate(
            name, (c0, r1), xytext=(2, 2), textcoords="offset points", color="tab:blue", fontsize=8
        )


def plot_fraction(ds: xr.Dataset, path: str) -> str:
    """Pixels flagged per exposure against time, a panel per detector, a marker per subarray."""
    import matplotlib.pyplot as plt

    detectors = ds["detector"].values.astype(str)
    names = sorted(set(detectors))
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    t0 = float(np.min(ds["mid_mjd"].values))
    for ax, det in zip(axes[0], names, strict=True):
        mine = np.flatnonzero(detectors == det)
        draw_flagged(ax, ds, mine, t0)
        ax.set_title(f"{det}: {len(mine)} exposures")
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
        mine = np.flatnonzero(detectors == det)
        last = int(mine[-1])
        final = (ds["mask"][last] | ds["source"][last] | ds["user_mask"]).values
        ax.imshow(widen(final), origin="lower", cmap="Greys", interpolation="nearest")
        outline_frames(ax, ds, mine)
        ax.set(
            title=f"{det}: {int(final.sum())} detector pixels after {len(mine)} exposures",
            xlabel="x (detector column)",
            ylabel="y (detector row)",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def strip_title(ds: xr.Dataset, chosen: np.ndarray) -> str:
    """The title of :func:`plot_strip`: which exposures are shown, of how many."""
    detectors = ds["detector"].values.astype(str)
    det = detectors[chosen[0]]
    total = int(np.sum(detectors == det))
    first = int(np.flatnonzero(detectors == det)[0])
    lo, hi = int(chosen[0]) - first + 1, int(chosen[-1]) - first + 1
    shown = (
        f"all {total} {det} exposures"
        if len(chosen) == total
        else (
            f"{det} exposures {lo}-{hi} of {total} (the first {len(chosen)}; "
            "every exposure is in the table and in masked_fraction.png)"
        )
    )
    others = sorted(set(detectors) - {det})
    if others:
        shown += f" ({', '.join(others)}: not shown here, see the table)"
    return (
        f"Persistence masks per exposure (grey), sources of the exposure before (red), "
        f"subarray frames (blue)\n{shown}"
    )


def plot_strip(ds: xr.Dataset, path: str, most: int = 8) -> str:
    """Per-exposure masks (grey) with the sources of the exposure before each (red).

    The red pixels are what each mask gained from the exposure just before it. The first
    ``most`` exposures of the first detector are shown; the title says which, of how many.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    detectors = ds["detector"].values.astype(str)
    mine = np.flatnonzero(detectors == sorted(set(detectors))[0])
    chosen = mine[:most]
    ncols = min(4, len(chosen))
    nrows = -(-len(chosen) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.6 * nrows + 0.4), squeeze=False)
    for ax in axes.flat[len(chosen) :]:
        ax.set_axis_off()
    cmap = ListedColormap(["white", "0.6", "red"])
    for k, (ax, i) in enumerate(zip(axes.flat, chosen, strict=False)):
        image = widen(ds["mask"][i].values).astype(np.uint8)
        if k:
            image[widen(ds["source"][chosen[k - 1]].values)] = 2
        ax.imshow(image, origin="lower", cmap=cmap, vmin=0, vmax=2, interpolation="nearest")
        outline_frames(ax, ds, np.array([i]))
        ax.set_title(
            f"#{i - mine[0] + 1} {ds['subarray'].values[i]} {ds['filter'].values[i]}: "
            f"{int(ds['n_masked'][i])} px",
            fontsize=9,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(strip_title(ds, chosen), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
