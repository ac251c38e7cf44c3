"""The report's web page: one self-contained ``index.html`` per report.

The page needs no network and no server: the CSS and the JavaScript are inline, the figures
are embedded as ``data:`` URIs, and the links to the outputs are relative to the page, so it
can be opened from a file, copied with its run, or served from a shared directory. The
exposure table is a JSON array turned into rows by a few lines of JavaScript, which keeps a
page of 10,000 exposures small and quick to open, and lets every column sort on a click.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Sequence

import numpy as np
import xarray as xr
from astropy.table import Table

__all__ = ["COLUMNS", "page_info", "render", "write_page"]

#: The exposure table's columns: (key in the report table, header, kind, tooltip).
COLUMNS = (
    ("index", "#", "num", "position in the store: by detector, then mid-exposure time"),
    ("file", "file", "text", "input file (a segmented exposure: its first segment)"),
    ("detector", "detector", "text", ""),
    ("filter", "filter", "text", ""),
    ("subarray", "subarray", "text", ""),
    ("start", "start (UTC)", "text", "exposure start (the end is in persistence_report.ecsv)"),
    ("duration_s", "duration (s)", "num", "exposure end - start"),
    ("new_sources", "new sources", "num", "pixels of this exposure that leave persistence"),
    ("masked", "pixels masked", "num", "pixels flagged in the exposure's frame"),
    ("masked_pct", "% masked", "num", "percent of the exposure's frame"),
    ("mask_age_min_h", "age min (h)", "num", "hours since the saturation behind its mask"),
    ("mask_age_median_h", "age median (h)", "num", "hours since the saturation behind its mask"),
    ("mask_age_max_h", "age max (h)", "num", "hours since the saturation behind its mask"),
    ("output", "output", "link", "the file this tool wrote (relative to this page)"),
)

#: Rows drawn at a time: a page of 10,000 exposures opens in well under a second.
PAGE_SIZE = 250

CSS = """
:root { --fg: #1d2430; --muted: #5c6675; --line: #d9dee5; --head: #f3f5f8; --accent: #1f5fa8;
        --warn: #8a4b00; --warnbg: #fff6e5; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: var(--fg); margin: 0 auto; padding: 1.2em 2em 3em; max-width: 1800px; }
h1 { font-size: 1.6em; margin: 0 0 .1em; }
h2 { font-size: 1.2em; margin: 1.8em 0 .5em; padding-bottom: .2em;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 1em; margin: 0 0 .4em; }
.sub { color: var(--muted); margin: 0 0 1em; overflow-wrap: anywhere; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
              font-size: .92em; }
.cards { display: flex; flex-wrap: wrap; gap: .8em; margin: 1em 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .5em .9em; min-width: 9em; }
.card b { display: block; font-size: 1.45em; }
.card span { color: var(--muted); font-size: .9em; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 1.2em; }
table.kv { border-collapse: collapse; width: 100%; }
table.kv td { border-top: 1px solid var(--line); padding: .2em .5em .2em 0; vertical-align: top;
              overflow-wrap: anywhere; }
table.kv td:first-child { color: var(--muted); white-space: nowrap; overflow-wrap: normal;
                          width: 1%; }
.warn { background: var(--warnbg); color: var(--warn); border: 1px solid #f0d3a0;
        border-radius: 6px; padding: .6em .9em; margin: 1em 0; }
figure { margin: 0 0 1.5em; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: .92em; margin-top: .3em; }
.tools { display: flex; gap: 1em; align-items: center; margin: .3em 0 .6em; flex-wrap: wrap; }
.tools input { font: inherit; padding: .3em .5em; border: 1px solid var(--line);
               border-radius: 4px; min-width: 22em; }
.tools span { color: var(--muted); }
.tools button, .tools select { font: inherit; padding: .15em .5em; }
.scroll { max-height: 75vh; overflow: auto; border: 1px solid var(--line); border-radius: 4px; }
table.data { border-collapse: collapse; width: 100%; font-size: 12.5px; }
table.data th { position: sticky; top: 0; background: var(--head); text-align: left;
                font-weight: 600; padding: .35em .4em; border-bottom: 1px solid var(--line);
                cursor: pointer; user-select: none; vertical-align: bottom; }
table.data th:hover { background: #e6eaf0; }
table.data th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: .75em; }
table.data th[aria-sort="descending"]::after { content: " \\25BC"; font-size: .75em; }
table.data td { padding: .2em .4em; border-bottom: 1px solid #eef0f3; white-space: nowrap; }
table.data td.num, table.data th.num { text-align: right; }
table.data tbody tr:hover { background: #f7f9fc; }
td.na { color: #a0a7b1; }
table.data td.links { white-space: normal; min-width: 5em; }
a { color: var(--accent); }
a.missing { color: var(--muted); text-decoration: line-through; }
footer { color: var(--muted); margin-top: 3em; font-size: .9em; }
"""

SCRIPT = """
(function () {
  "use strict";
  var t0 = performance.now();
  var COLS = JSON.parse(document.getElementById("columns").textContent);
  var ROWS = JSON.parse(document.getElementById("rows").textContent);
  var table = document.getElementById("exposures");
  var tbody = table.tBodies[0];
  var count = document.getElementById("count");
  var query = document.getElementById("filter");
  var sizeBox = document.getElementById("page-size");
  var prev = document.getElementById("prev"), next = document.getElementById("next");
  var LINK = COLS.findIndex(function (c) { return c[2] === "link"; });
  var hay = ROWS.map(function (r) {
    return r.map(function (v, j) {
      return j === LINK ? v.map(function (o) { return o[0]; }).join(" ") : v;
    }).join(" ").toLowerCase();
  });
  var view = ROWS.map(function (_, i) { return i; });
  var sortCol = -1, sortDir = 1, page = 0;
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }
  function cell(v, j) {
    var kind = COLS[j][2];
    if (kind === "link") {
      return '<td class="links">' + v.map(function (o) {
        return '<a href="' + esc(o[1]) + '" title="' + esc(o[0])
          + (o[2] ? '">' : ' (not found when the report was written)" class="missing">')
          + esc(o[3]) + "</a>";
      }).join(" &middot; ") + "</td>";
    }
    if (v === null) { return '<td class="' + (kind === "num" ? "num " : "") + 'na">n/a</td>'; }
    return kind === "num" ? '<td class="num">' + v + "</td>" : "<td>" + esc(v) + "</td>";
  }
  function size() { return sizeBox.value === "all" ? view.length || 1 : +sizeBox.value; }
  function draw() {
    var n = size(), pages = Math.max(1, Math.ceil(view.length / n));
    page = Math.min(Math.max(page, 0), pages - 1);
    var lo = page * n, hi = Math.min(view.length, lo + n), parts = [];
    for (var k = lo; k < hi; k++) {
      var r = ROWS[view[k]], s = "<tr>";
      for (var j = 0; j < r.length; j++) { s += cell(r[j], j); }
      parts.push(s + "</tr>");
    }
    tbody.innerHTML = parts.join("");
    var of = view.length + " exposures"
      + (view.length === ROWS.length ? "" : " (filtered from " + ROWS.length + ")");
    count.textContent = view.length > hi - lo
      ? "rows " + (hi > lo ? lo + 1 : 0) + "-" + hi + " of " + of : of;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }
  function key(v, j) {
    return COLS[j][2] === "link" ? v.map(function (o) { return o[0]; }).join(" ") : v;
  }
  function sortBy(j, dir) {
    view.sort(function (a, b) {
      var x = key(ROWS[a][j], j), y = key(ROWS[b][j], j);
      if (x === null || y === null) {  // missing values last, whichever the direction
        return x === y ? a - b : (x === null ? 1 : -1);
      }
      return (x < y ? -dir : x > y ? dir : 0) || a - b;
    });
  }
  function apply() {
    var q = query.value.trim().toLowerCase();
    view = [];
    for (var i = 0; i < ROWS.length; i++) { if (!q || hay[i].indexOf(q) >= 0) { view.push(i); } }
    if (sortCol >= 0) { sortBy(sortCol, sortDir); }
    page = 0;
    draw();
  }
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, j) {
    function sort() {
      sortDir = sortCol === j ? -sortDir : 1;
      sortCol = j;
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      apply();
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
    });
  });
  query.addEventListener("input", apply);
  sizeBox.addEventListener("change", function () { page = 0; draw(); });
  prev.addEventListener("click", function () { page -= 1; draw(); });
  next.addEventListener("click", function () { page += 1; draw(); });
  draw();
  document.body.setAttribute("data-render-ms", (performance.now() - t0).toFixed(1));
})();
"""


def _json_value(v):
    """A JSON-ready scalar: numpy numbers as Python numbers, NaN and masked as null."""
    if isinstance(v, np.generic):
        v = v.item()
    if v is np.ma.masked or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return v


def _script_json(value) -> str:
    # Inside <script>, "</" would end the element: escape it (JSON allows "\/").
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def page_info(ds: xr.Dataset, store: str, outputs: str) -> dict:
    """What the page says about a run besides its table: parameters, inputs, versions...

    Parameters
    ----------
    ds : xarray.Dataset
        The store.
    store : str
        Its path.
    outputs : str
        The run's output directory.

    Returns
    -------
    dict
        Keys ``store``, ``outputs``, ``parameters``, ``versions``, ``inputs`` (input
        directories and how many exposures each), ``references`` (SATURATION references and
        how many exposures each), ``user_mask``, ``history``, ``memory``, ``last_run``, ``skipped``,
        ``incomplete`` (exposures the run has not finished), ``detectors``.
    """
    paths = ds["path"].values.astype(str)
    segments = (
        ds["segment_files"].values.astype(str)
        if "segment_files" in ds.variables
        else np.full(len(paths), "")
    )
    files = Counter()
    for path, segs in zip(paths, segments, strict=True):
        files[os.path.dirname(path)] += len(segs.split(",")) if segs else 1
    none = "(none: the input has GROUPDQ)"
    refs = (
        Counter(str(r) or none for r in ds["saturation_ref"].values)
        if "saturation_ref" in ds.variables
        else Counter()
    )
    complete = ds["complete"].values if "complete" in ds.variables else np.ones(len(paths), bool)
    detectors = Counter(ds["detector"].values.astype(str))
    return {
        "store": os.path.abspath(store),
        "outputs": os.path.abspath(outputs),
        "parameters": dict(ds.attrs.get("parameters", {})),
        "versions": dict(ds.attrs.get("versions", {})),
        "inputs": sorted(files.items()),
        "references": sorted(refs.items()),
        "user_mask": str(ds.attrs.get("user_mask", "") or ""),
        "history": str(ds.attrs.get("history", "") or ""),
        "memory": str(ds.attrs.get("memory", "") or ""),
        "last_run": dict(ds.attrs.get("last_run", {}) or {}),
        "skipped": list(ds.attrs.get("skipped", []) or []),
        "incomplete": int(np.sum(~complete.astype(bool))),
        "detectors": sorted(detectors.items()),
    }


def _kv(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td class='mono'>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<table class='kv'>{body}</table>" if rows else "<p class='sub'>none</p>"


def _figure(title: str, caption: str, png: str) -> str:
    with open(png, "rb") as fh:
        data = base64.b64encode(fh.read()).decode("ascii")
    return (
        f"<figure><h3>{html.escape(title)}</h3>"
        f"<img src='data:image/png;base64,{data}' alt='{html.escape(title)}'>"
        f"<figcaption>{html.escape(caption)} (also <a href='{html.escape(os.path.basename(png))}'>"
        f"{html.escape(os.path.basename(png))}</a>)</figcaption></figure>"
    )


def _problem(item: dict) -> str:
    """Why an input was skipped, without its path in front (the row shows it)."""
    path, problem = str(item.get("path", "")), str(item.get("problem", ""))
    return problem[len(path) + 2 :] if path and problem.startswith(f"{path}: ") else problem


def _link_label(k: int, n: int) -> str:
    """The text of a link to an output (the header says which kind): the segment it is for."""
    return "open" if n == 1 else f"seg {k + 1}"


def _parameter_rows(parameters: dict, user_mask: str) -> list[tuple[str, object]]:
    """The run's parameters as the user gave them: option names, values as typed."""
    from .options import option_name, window_words

    rows = []
    for key, value in parameters.items():
        if key == "user_mask_sha256":
            if user_mask:  # else the digest of an empty mask: there was none
                rows.append(("--user-mask (its sha256)", value))
            continue
        if key == "flags_names":
            continue
        if key == "flags" and parameters.get("flags_names"):
            names = parameters["flags_names"]
            names = names if isinstance(names, str) else ",".join(map(str, names))
            value = f"{names} ({value})"
        elif key == "window_days":
            value = window_words(float(value))
        elif key == "tile":
            rows.append(("tile (Python: Parameters.tile)", " x ".join(map(str, value))))
            continue
        rows.append((option_name(key), value))
    return rows


def render(
    info: dict,
    table: Table,
    links: Sequence[Sequence[tuple[str, str, bool]]],
    figures: Sequence[tuple[str, str, str]],
    generated: str | None = None,
) -> str:
    """The page as HTML text.

    Parameters
    ----------
    info : dict
        As :func:`page_info` returns it.
    table : astropy.table.Table
        The report table (:func:`miripersist.report.report_table`), one row per exposure.
    links : sequence of sequence of (str, str, bool)
        Per exposure, its output files (one per segment file): name, path relative to the
        page, and whether it exists.
    figures : sequence of (str, str, str)
        Title, caption and PNG path of each figure, embedded in the page.
    generated : str, optional
        When the page was made (default: now, UTC).

    Returns
    -------
    str
        A complete HTML document.
    """
    generated = generated or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    params = info.get("parameters", {})
    version = info.get("versions", {}).get("miripersist", "")
    skipped = info.get("skipped", [])
    columns = [[label, tip, kind] for key, label, kind, tip in COLUMNS]
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>miripersist report: {html.escape(os.path.basename(info.get('store', '')))}"
        "</title>",
        f"<style>{CSS}</style></head><body>",
        "<header><h1>miripersist report</h1>",
        f"<p class='sub'>{html.escape(info.get('store', ''))} &middot; made {generated}"
        f"{' by miripersist ' + html.escape(version) if version else ''}</p></header>",
        _cards(info, table),
        "".join(f"<p class='warn'>{note}</p>" for note in _notes(info)),
        "<h2 id='run'>The run</h2><div class='grid'>",
        f"<div><h3>Parameters</h3>{_kv(_parameter_rows(params, info.get('user_mask', '')))}</div>",
        f"<div>{_record(info)}</div>",
        f"<div><h3>Versions</h3>{_kv(sorted(info.get('versions', {}).items()))}</div>",
        "</div>",
        "<h2 id='figures'>Figures</h2>",
        "".join(_figure(*f) for f in figures),
        "<h2 id='exposures-table'>Exposures</h2>",
        TABLE_TOOLS,
        "<noscript><p class='warn'>The table needs JavaScript; "
        "persistence_report.ecsv beside this page has the same rows.</p></noscript>",
        f"<div class='scroll'><table id='exposures' class='data'><thead><tr>{_head(params)}"
        "</tr></thead><tbody></tbody></table></div>",
        f"<h2 id='skipped'>Skipped inputs ({len(skipped)})</h2>",
        _skipped(skipped),
        "<footer>Made by <code>miripersist report</code>. The page is self-contained: it "
        "loads nothing from the network. Output links are relative to this page.</footer>",
        f"<script id='columns' type='application/json'>{_script_json(columns)}</script>",
        f"<script id='rows' type='application/json'>{_script_json(_rows(table, links))}</script>",
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


#: The exposure table's filter box and pager (the page's script drives them).
TABLE_TOOLS = (
    "<div class='tools'><input id='filter' type='search' "
    "placeholder='filter: any text, e.g. SUB256 or F770W' aria-label='filter the table'>"
    "<span class='pager'><button id='prev' type='button'>&lsaquo; previous</button> "
    "<button id='next' type='button'>next &rsaquo;</button> <label>rows per page "
    "<select id='page-size'>"
    + "".join(
        f"<option{' selected' if v == PAGE_SIZE else ''}>{v}</option>"
        for v in (100, PAGE_SIZE, 1000, "all")
    )
    + "</select></label></span><span id='count'></span><span>click a column header to "
    "sort; <a href='persistence_report.ecsv'>persistence_report.ecsv</a> has the same "
    "table</span></div>"
)


def _rows(table: Table, links: Sequence[Sequence[tuple[str, str, bool]]]) -> list[list]:
    """The exposure table's rows as the page's script takes them, one list per exposure."""
    data = {key: table[key] for key, *_ in COLUMNS if key in table.colnames}
    rows = []
    for i in range(len(table)):
        row: list = []
        for key, *_ in COLUMNS:
            if key == "index":
                row.append(i + 1)
            elif key == "output":
                files = links[i]
                row.append(
                    [
                        [name, href, bool(ok), _link_label(k, len(files))]
                        for k, (name, href, ok) in enumerate(files)
                    ]
                )
            else:
                row.append(_json_value(data[key][i]) if key in data else None)
        rows.append(row)
    return rows


def _notes(info: dict) -> list[str]:
    """Warnings for the top of the page: inputs skipped, exposures not complete."""
    notes = []
    skipped = info.get("skipped", [])
    if skipped:
        notes.append(
            f"{len(skipped)} input{'s were' if len(skipped) > 1 else ' was'} left out of the "
            "run (--skip-bad): their saturation is not propagated to later exposures. "
            "<a href='#skipped'>See why</a>."
        )
    if info.get("incomplete"):
        notes.append(
            f"{info['incomplete']} exposures are not complete: the run stopped before them "
            "(run the same command again to finish); their masks read as empty here."
        )
    return notes


def _cards(info: dict, table: Table) -> str:
    """The headline figures: exposures, detectors, flags written, inputs skipped, mode."""
    masked = int(np.sum(table["masked"])) if len(table) else 0
    cards = [
        (len(table), "exposures"),
        (", ".join(f"{d} ({c})" for d, c in info.get("detectors", [])) or "-", "detectors"),
        (f"{masked:,}", "pixel flags written"),
        (len(info.get("skipped", [])), "inputs skipped"),
        (info.get("parameters", {}).get("mode", "?"), "mode"),
    ]
    return (
        "<div class='cards'>"
        + "".join(
            f"<div class='card'><b>{html.escape(str(v))}</b><span>{html.escape(k)}</span></div>"
            for v, k in cards
        )
        + "</div>"
    )


def _record(info: dict) -> str:
    """The run's inputs, references and record (store, outputs, last run, mask, history)."""
    inputs = [(f"{c} files", d) for d, c in info.get("inputs", [])]
    refs = [(f"{c} exposures", r) for r, c in info.get("references", [])]
    others = [("store", info.get("store", "")), ("outputs", info.get("outputs", ""))]
    if info.get("last_run"):
        others.append(("last run", ", ".join(f"{v} {k}" for k, v in info["last_run"].items())))
    if info.get("user_mask"):
        others.append(("user mask", info["user_mask"]))
    if info.get("history"):
        others.append(("history", info["history"]))
    if info.get("memory"):
        others.append(("memory", info["memory"]))
    return (
        f"<h3>Inputs</h3>{_kv(inputs)}<h3 style='margin-top:1em'>SATURATION references"
        f"</h3>{_kv(refs)}<h3 style='margin-top:1em'>Record</h3>{_kv(others)}"
    )


def _skipped(skipped: list[dict]) -> str:
    """The inputs left out of the run, each with its problem."""
    if not skipped:
        return "<p class='sub'>No input was skipped.</p>"
    return (
        "<table class='kv'>"
        + "".join(
            f"<tr><td class='mono'>{html.escape(str(item.get('path', '')))}</td>"
            f"<td>{html.escape(_problem(item))}</td></tr>"
            for item in skipped
        )
        + "</table>"
    )


def _head(params: dict) -> str:
    """The exposure table's header cells, the output column naming what was written."""
    kind_of_output = {"copy": "masked copy", "sidecar": "DQ sidecar"}.get(params.get("mode"), "")
    return "".join(
        f"<th class='{kind}' title='{html.escape(tip)}' scope='col' tabindex='0'>"
        f"{html.escape(label)}"
        + (f"<br>({kind_of_output})" if key == "output" and kind_of_output else "")
        + "</th>"
        for key, label, kind, tip in COLUMNS
    )


FIGURE_TEXT = {
    "masked_fraction.png": (
        "Pixels flagged against time",
        "Per detector, the pixels flagged in each exposure's own frame, a marker per "
        "subarray (a SUB256 exposure flags only its 256 x 256 frame).",
    ),
    "final_mask.png": (
        "Final cumulative mask",
        "Per detector, every pixel flagged after its last exposure (sources, persistence "
        "mask and user mask), widened for the eye; subarray frames outlined.",
    ),
    "mask_strip.png": (
        "Masks per exposure",
        "Each exposure's persistence mask (grey) and what it gained from the exposure just "
        "before (red); the title says which exposures are shown.",
    ),
}


def output_links(ds: xr.Dataset, outputs: str, relative_to: str) -> list[list[tuple[str, str]]]:
    """Per exposure, its output files as (name, relative path), one per segment file.

    Parameters
    ----------
    ds : xarray.Dataset
        A store.
    outputs : str
        The run's output directory.
    relative_to : str
        The directory the paths are made relative to (the report's).

    Returns
    -------
    list of list of (str, str)
        The names come from :func:`miripersist.inventory.output_name` in the store's mode;
        paths use ``/``.
    """
    from .inventory import output_name

    mode = ds.attrs.get("parameters", {}).get("mode", "copy")
    keep = bool(ds.attrs.get("parameters", {}).get("keep_names", False))
    base = os.path.relpath(os.path.abspath(outputs), os.path.abspath(relative_to))
    files = ds["file"].values.astype(str)
    segments = (
        ds["segment_files"].values.astype(str)
        if "segment_files" in ds.variables
        else np.full(len(files), "")
    )
    links = []
    for name, segs in zip(files, segments, strict=True):
        names = [output_name(s, mode, keep) for s in (segs.split(",") if segs else [name])]
        links.append([(n, os.path.join(base, n).replace(os.sep, "/")) for n in names])
    return links


def write_page(
    ds: xr.Dataset, table: Table, figures: Sequence[str], path: str, store: str, outputs: str
) -> str:
    """Write the report's ``index.html`` for a store; return its path.

    Parameters
    ----------
    ds : xarray.Dataset
        The store.
    table : astropy.table.Table
        Its report table.
    figures : sequence of str
        PNG files to embed.
    path : str
        The page to write.
    store : str
        The store's path (shown on the page).
    outputs : str
        The run's output directory: the page links to the files in it.

    Returns
    -------
    str
        ``path``.
    """
    here = os.path.dirname(os.path.abspath(path))
    links = [
        [(name, href, os.path.exists(os.path.join(here, href))) for name, href in files]
        for files in output_links(ds, outputs, here)
    ]
    if links and not any(exists for files in links for _, _, exists in files):
        logging.getLogger(__name__).warning(
            "%s: none of the run's outputs is there, so the page's links to them lead nowhere "
            "(name the run's output directory with --outputs)",
            outputs,
        )
    figs = [(*FIGURE_TEXT.get(os.path.basename(p), (os.path.basename(p), "")), p) for p in figures]
    text = render(page_info(ds, store, outputs), table, links, figs)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path
