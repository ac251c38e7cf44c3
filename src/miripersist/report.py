"""``miripersist report STORE``: a table, figures and a web page to look at a run.

Everything is read from the store a block of exposures at a time, so a report of a
program of thousands of exposures needs no more memory than one of ten.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import xarray as xr
from astropy.table import Table
from astropy.time import Time

from .errors import ConfigError
from .figures import HOURS, exposure_frame, plot_final, plot_fraction, plot_strip
from .paths import refuse_url
from .scan import NEVER_SATURATED, new_carry
from .store import find_store, open_store

__all__ = [
    "Report",
    "load_store",
    "report",
    "report_table",
]

#: Variables a store made by ``miripersist run`` always has.
STORE_VARIABLES = ("source", "mask", "n_source", "n_masked", "user_mask")


@dataclass(frozen=True)
class Report:
    """What :func:`report` wrote.

    Attributes
    ----------
    table : astropy.table.Table
        One row per exposure (see :func:`report_table`).
    figures : list of str
        Paths of the PNG figures.
    ecsv : str
        Path of the table as ECSV.
    page : str
        Path of the HTML page (``index.html``).
    """

    table: Table
    figures: list[str]
    ecsv: str
    page: str


def load_store(path: str) -> xr.Dataset:
    """Open a store for reading, or say in one line why ``path`` is not one.

    Parameters
    ----------
    path : str
        A store written by ``miripersist run``.

    Returns
    -------
    xarray.Dataset
        The store, opened lazily.

    Raises
    ------
    ConfigError
        ``PATH: no such store`` or ``PATH: not a miripersist store (why)``.
    """
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no such store")
    if not os.path.isdir(path):
        raise ConfigError(f"{path}: not a miripersist store (a file, not a zarr directory)")
    try:
        ds = open_store(path)
    except FileNotFoundError:  # zarr's GroupNotFoundError too
        raise ConfigError(f"{path}: not a miripersist store (no zarr group in it)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not a miripersist store ({why})") from None
    missing = [name for name in STORE_VARIABLES if name not in ds.variables]
    if missing or "exposure" not in ds.dims:
        what = ", ".join(missing) if missing else "exposure dimension"
        raise ConfigError(f"{path}: not a miripersist store (a zarr group without {what})")
    return ds


def _blocks(ds: xr.Dataset) -> list[tuple[int, int]]:
    """Ranges of exposures that share a chunk of the 3-D arrays (read once each)."""
    n = ds.sizes["exposure"]
    chunks = ds["mask"].chunks
    step = max(1, int(chunks[0][0])) if chunks else 16
    return [(a, min(a + step, n)) for a in range(0, n, step)]


def mask_ages(ds: xr.Dataset) -> np.ndarray:
    """Per exposure, the ages of its persistence mask in hours: (min, median, max).

    The age of a masked pixel is the time from the end of the latest exposure in which it
    was a source to the start of this exposure. Only the pixels of the exposure's own
    frame count (a SUB256 exposure is not aged by masked pixels outside its subarray); the
    user mask has no age. NaN where the frame has no masked pixel.
    """
    n = ds.sizes["exposure"]
    ages = np.full((n, 3), np.nan)
    detectors = ds["detector"].values.astype(str)
    start = ds["start_mjd"].values
    end = ds["end_mjd"].values
    shape = tuple(ds.attrs.get("detector_shape", (ds.sizes["y"], ds.sizes["x"])))
    carries: dict[str, np.ndarray] = {}
    for a, b in _blocks(ds):
        masks = ds["mask"][a:b].values
        sources = ds["source"][a:b].values
        for k, i in enumerate(range(a, b)):
            carry = carries.setdefault(detectors[i], new_carry(shape))
            rows, cols = exposure_frame(ds, i)
            last = carry[rows, cols][masks[k][rows, cols]]
            last = last[last > NEVER_SATURATED]
            if last.size:
                age = (start[i] - last) * HOURS
                ages[i] = (age.min(), np.median(age), age.max())
            carry[sources[k]] = end[i]
    return ages


def report_table(ds: xr.Dataset) -> Table:
    """Per exposure: file, configuration, times, sources, masked pixels, mask ages.

    Parameters
    ----------
    ds : xarray.Dataset
        A store (:func:`load_store`).

    Returns
    -------
    astropy.table.Table
        Columns ``file``, ``detector``, ``filter``, ``subarray``, ``start``, ``mid_mjd``,
        ``end`` (UTC), ``duration_s`` (end - start), ``new_sources``, ``masked`` (pixels
        flagged in the exposure's frame), ``masked_pct`` (of the frame), and
        ``mask_age_min_h``, ``mask_age_median_h``, ``mask_age_max_h``: see
        :func:`mask_ages`.
    """
    ages = mask_ages(ds)
    start = ds["start_mjd"].values
    end = ds["end_mjd"].values
    frame = ds["xsize"].values * ds["ysize"].values
    table = Table(
        {
            "file": ds["file"].values.astype(str),
            "detector": ds["detector"].values.astype(str),
            "filter": ds["filter"].values.astype(str),
            "subarray": ds["subarray"].values.astype(str),
            "start": [t[:19] for t in Time(start, format="mjd").isot],
            "mid_mjd": ds["mid_mjd"].values,
            "end": [t[:19] for t in Time(end, format="mjd").isot],
            "duration_s": np.round((end - start) * 86400.0, 1),
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


def report(store: str, out: str | None = None, outputs: str | None = None) -> Report:
    """Write the table, three figures and a web page about a store.

    Parameters
    ----------
    store : str
        A store written by ``miripersist run``, or the output directory that holds it as
        ``persistence.zarr``.
    out : str, optional
        Where to write (default: ``report/`` beside the store).
    outputs : str, optional
        The run's output directory, which the page links to (default: the store's
        directory, where ``miripersist run`` puts the store unless ``--store`` says
        otherwise).

    Returns
    -------
    Report
        The table and the paths of ``persistence_report.ecsv``, ``masked_fraction.png``,
        ``final_mask.png``, ``mask_strip.png`` and ``index.html`` (a self-contained page:
        the figures are embedded, the table sorts and filters in the browser).

    Raises
    ------
    ConfigError
        If ``store`` is not a store.
    """
    import matplotlib

    matplotlib.use("Agg")
    from .html_report import write_page

    for given, what in ((store, "the store"), (out, "--out"), (outputs, "--outputs")):
        if given:
            refuse_url(given, what)
    store = find_store(store)
    ds = load_store(store)
    if ds.sizes["exposure"] == 0:
        raise ConfigError(f"{store}: the store has no exposures")
    out = out or os.path.join(os.path.dirname(os.path.abspath(store)), "report")
    outputs = outputs or os.path.dirname(os.path.abspath(store))
    os.makedirs(out, exist_ok=True)
    table = report_table(ds)
    ecsv = os.path.join(out, "persistence_report.ecsv")
    table.write(ecsv, overwrite=True)
    figures = [
        plot_fraction(ds, os.path.join(out, "masked_fraction.png")),
        plot_final(ds, os.path.join(out, "final_mask.png")),
        plot_strip(ds, os.path.join(out, "mask_strip.png")),
    ]
    page = write_page(ds, table, figures, os.path.join(out, "index.html"), store, outputs)
    return Report(table, figures, ecsv, page)
