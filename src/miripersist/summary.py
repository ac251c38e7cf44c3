"""The end-of-run table: one row per exposure."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr
    from astropy.table import Table

    from .store import Stored


def summary_table(ds: xr.Dataset | Stored) -> Table:
    """Per exposure: file, detector, filter, subarray, mid time, new sources, masked pixels.

    The percentage is of the exposure's own frame (the whole detector for FULL), which the
    subarray column explains. A segmented exposure is one row, named by its first segment,
    with the number of its segment files.
    """
    # Imported here: a --quiet run never needs them (astropy.table costs 0.3 s).
    from astropy.table import Table
    from astropy.time import Time

    frame = np.asarray(ds["xsize"]) * np.asarray(ds["ysize"])
    masked = np.asarray(ds["n_masked"])
    table = Table(
        {
            "file": np.asarray(ds["file"]).astype(str),
            "detector": np.asarray(ds["detector"]).astype(str),
            "filter": np.asarray(ds["filter"]).astype(str),
            "subarray": np.asarray(ds["subarray"]).astype(str),
            "mid_time": Time(np.asarray(ds["mid_mjd"]), format="mjd").isot,
            "new_sources": np.asarray(ds["n_source"]),
            "masked": masked,
            "masked_pct": np.round(100.0 * masked / frame, 3),
        }
    )
    table["mid_time"] = [t[:19] for t in table["mid_time"]]
    if "segment_files" in ds:
        files = np.asarray(ds["segment_files"]).astype(str)
        if any(files):
            table.add_column([len(f.split(",")) if f else 1 for f in files], 1, name="segments")
    return table


def _rule_line(parameters: dict) -> str:
    from .parameters import window_words

    window = parameters.get("window_days", "inf")
    days = float("inf") if window == "inf" else float(window)
    return (
        f"method {parameters.get('method', 'notebook')}, window {window_words(days)}, "
        f"flags {parameters.get('flags_names', '?')}"
    )


def last_run_line(counts: dict) -> str:
    """What this call did, in one line; says so when it had nothing to do."""
    text = (
        f"this run: {counts.get('computed', 0)} exposures computed, "
        f"{counts.get('reused', 0)} reused from the store"
        + (f" ({counts['retained']} not named by this run)" if counts.get("retained") else "")
        + f"; {counts.get('written', 0)} outputs written, "
        f"{counts.get('unchanged', 0)} unchanged"
    )
    if not counts.get("computed") and not counts.get("written"):
        text += " (nothing to do: every output was already in place)"
    return text


def format_summary(ds: xr.Dataset | Stored) -> str:
    """The summary table as fixed-width text, then the inputs that were left out, if any."""
    lines = [_rule_line(ds.attrs.get("parameters", {})), ""]
    lines += summary_table(ds).pformat(max_lines=-1, max_width=-1)
    last = ds.attrs.get("last_run")
    if isinstance(last, dict):
        lines.append("")
        lines.append(last_run_line(last))
    skipped = ds.attrs.get("skipped", [])
    if skipped:
        lines.append(f"\n{len(skipped)} inputs left out (their saturation is not propagated):")
        lines += [f"  {item['problem']}" for item in skipped]
    return "\n".join(lines)
