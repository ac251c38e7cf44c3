"""The end-of-run table: one row per exposure, or per detector for a large program."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

    from .store import Stored


def summary_columns(ds: xr.Dataset | Stored) -> dict[str, list[str]]:
    """Per exposure: file, detector, filter, subarray, mid time, new sources, masked pixels.

    The percentage is of the exposure's own frame (the whole detector for FULL), which the
    subarray column explains. A segmented exposure is one row, named by its first segment,
    with the number of its segment files. Values are the text printed.
    """
    from astropy.time import Time

    frame = np.asarray(ds["xsize"]) * np.asarray(ds["ysize"])
    masked = np.asarray(ds["n_masked"])
    columns = {
        "file": np.asarray(ds["file"]).astype(str).tolist(),
        "detector": np.asarray(ds["detector"]).astype(str).tolist(),
        "filter": np.asarray(ds["filter"]).astype(str).tolist(),
        "subarray": np.asarray(ds["subarray"]).astype(str).tolist(),
        "mid_time": [t[:19] for t in Time(np.asarray(ds["mid_mjd"]), format="mjd").isot],
        "new_sources": [str(int(v)) for v in np.asarray(ds["n_source"])],
        "masked": [str(int(v)) for v in masked],
        # A few pixels of a full frame round to 0.0 %: said as under the last place shown.
        "masked_pct": [
            "<0.001" if m and p == 0 else str(float(p))
            for m, p in zip(masked, np.round(100.0 * masked / frame, 3), strict=True)
        ],
    }
    if "segment_files" in ds:
        files = np.asarray(ds["segment_files"]).astype(str)
        if any(files):
            segments = [str(len(f.split(",")) if f else 1) for f in files]
            columns = {"file": columns.pop("file"), "segments": segments, **columns}
    return columns


def fixed_width(columns: dict[str, list[str]]) -> list[str]:
    """Columns as text lines: names centred over a rule, values right-aligned, 3 wide at least.

    Written out rather than through ``astropy.table`` (whose import is a sixth of a
    one-exposure run), in the layout its ``pformat`` gives.
    """
    widths = {name: max([3, len(name), *map(len, values)]) for name, values in columns.items()}
    lines = [
        " ".join(name.center(widths[name]) for name in columns),
        " ".join("-" * w for w in widths.values()),
    ]
    rows = zip(*columns.values(), strict=True)
    lines += [
        " ".join(v.rjust(w) for v, w in zip(row, widths.values(), strict=True)) for row in rows
    ]
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _rule_line(parameters: dict) -> str:
    from .options import window_words

    window = parameters.get("window_days", "inf")
    days = float("inf") if window == "inf" else float(window)
    return (
        f"method {parameters.get('method', 'notebook')}, window {window_words(days)}, "
        f"flags {parameters.get('flags_names', '?')}"
    )


def last_run_line(counts: dict) -> str:
    """What this call did, in one line; says so when it had nothing to do."""
    text = (
        f"this run: {_count(counts.get('computed', 0), 'exposure')} computed, "
        f"{counts.get('reused', 0)} reused from the store"
        + (f" ({counts['retained']} not named by this run)" if counts.get("retained") else "")
        + f"; {_count(counts.get('written', 0), 'output')} written, "
        f"{counts.get('unchanged', 0)} unchanged"
        + (
            f", {counts['whole']} found whole (left by a run that stopped)"
            if counts.get("whole")
            else ""
        )
    )
    if not counts.get("computed") and not counts.get("written"):
        text += " (nothing to do: every output was already in place)"
    return text


#: Past this many exposures the summary is one row per detector, unless asked otherwise.
MOST_ROWS = 40


def detector_columns(ds: xr.Dataset | Stored) -> dict[str, list[str]]:
    """Per detector: exposures (of them subarrays), time span, new sources, masked pixels."""
    from astropy.time import Time

    detectors = np.asarray(ds["detector"]).astype(str)
    subarray = np.asarray(ds["subarray"]).astype(str)
    mid = np.asarray(ds["mid_mjd"])
    sources, masked = np.asarray(ds["n_source"]), np.asarray(ds["n_masked"])
    columns: dict[str, list[str]] = {
        k: [] for k in ("detector", "exposures", "subarrays", "first", "last", "new_sources",
                        "masked")
    }  # fmt: skip
    for name in sorted(set(detectors)):
        here = detectors == name
        first, last = Time([mid[here].min(), mid[here].max()], format="mjd").isot
        columns["detector"].append(name)
        columns["exposures"].append(str(int(here.sum())))
        columns["subarrays"].append(str(int((subarray[here] != "FULL").sum())))
        columns["first"].append(first[:19])
        columns["last"].append(last[:19])
        columns["new_sources"].append(str(int(sources[here].sum())))
        columns["masked"].append(str(int(masked[here].sum())))
    return columns


def format_summary(
    ds: xr.Dataset | Stored, rows: str = "auto", where: dict[str, str] | None = None
) -> str:
    """The summary table as fixed-width text, then the inputs that were left out, if any.

    Parameters
    ----------
    ds : xarray.Dataset or Stored
        A run's store.
    rows : str
        ``"exposures"`` (a row each), ``"detectors"`` (a row per detector) or ``"auto"``
        (a row each up to :data:`MOST_ROWS` exposures, then per detector).
    where : dict of str, optional
        Places to name at the end (``{"outputs": DIR, "store": PATH}``), in order.
    """
    n = len(np.asarray(ds["file"]))
    per_detector = rows == "detectors" or (rows == "auto" and n > MOST_ROWS)
    lines = [_rule_line(ds.attrs.get("parameters", {})), ""]
    lines += fixed_width(detector_columns(ds) if per_detector else summary_columns(ds))
    if per_detector and rows == "auto":
        lines.append(
            f"({n} exposures: a row per detector; --summary exposures lists each, and "
            "'miripersist report' writes them all to a table)"
        )
    last = ds.attrs.get("last_run")
    if isinstance(last, dict):
        lines.append("")
        lines.append(last_run_line(last))
    skipped = ds.attrs.get("skipped", [])
    if skipped:
        lines.append(
            f"\n{_count(len(skipped), 'input')} left out (their saturation is not propagated):"
        )
        lines += [f"  {item['problem']}" for item in skipped]
    named = {
        **(where or {}),
        "history": ds.attrs.get("history") or "",
        "memory": ds.attrs.get("memory") or "",
    }
    lines += [f"{what}: {path}" for what, path in named.items() if path]
    return "\n".join(lines)
