"""The report: its web page in a real headless browser, mask ages, the strip's title, errors.

The browser is the system's Chromium (``apt-get install chromium``; .ci/run installs it),
driven by playwright's Python API; playwright's own browser downloads are never used.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import xarray as xr
from astropy.table import Table

from miripersist import Parameters, run, simulate
from miripersist.cli import main
from miripersist.figures import strip_title
from miripersist.html_report import COLUMNS, render
from miripersist.report import mask_ages

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: What "opens in a couple of seconds" means for 10,000 exposures (measured: about 0.5 s).
OPEN_10K_S = 3.0


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A run with segmented exposures, a subarray and a skipped input, and its report."""
    root = tmp_path_factory.mktemp("html")
    prog = simulate.make_program(
        str(root / "in"),
        n_exposures=5,
        ngroups=4,
        subarrays=("FULL", "SUB256"),
        nints=(2, 1),
        segments=2,
        seed=4,
        archive=False,
    )
    (root / "in" / "jw09999001001_02101_00001_mirimage_uncal.fits").write_bytes(b"not FITS")
    ds = run(
        [prog.directory],
        str(root / "out"),
        [prog.saturation_ref],
        Parameters(mode="sidecar"),
        skip_bad=True,
    )
    gone = sorted((root / "out").glob("*-seg002_*_persistence_dq.fits"))[0]
    gone.unlink()  # the page marks an output that is missing
    code = main(["report", str(root / "out" / "persistence.zarr"), "--out", str(root / "rep")])
    assert code == 0
    return ds, root / "rep", gone


def _rows(page: Path) -> list[list]:
    text = page.read_text()
    m = re.search(r"<script id='rows' type='application/json'>(.*?)</script>", text, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_the_page_is_self_contained(reported):
    ds, rep, gone = reported
    page = rep / "index.html"
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//)""", text), "nothing from the net"
    assert text.count("src='data:image/png;base64,") == 3
    rows = _rows(page)
    assert len(rows) == ds.sizes["exposure"]
    links = [link for row in rows for link in row[-1]]
    n_files = sum(len(s.split(",")) if s else 1 for s in ds["segment_files"].values.astype(str))
    assert len(links) == n_files > ds.sizes["exposure"], "a link per segment file"
    for name, href, exists, _label in links:
        assert (rep / href).resolve() == (rep.parent / "out" / name).resolve()
        assert exists == (rep / href).exists()
        assert exists != (name == gone.name)
    assert "not a FITS file" in text and "jw09999001001_02101_00001_mirimage_uncal.fits" in text
    assert "user_mask_sha256" not in text, "no digest of a user mask the run did not have"


def test_the_parameters_name_the_user_masks_digest_when_there_was_one():
    from miripersist.html_report import _parameter_rows

    parameters = {"mode": "copy", "user_mask_sha256": "ab12"}
    assert ("--user-mask (its sha256)", "ab12") in _parameter_rows(parameters, "mask.csv")
    assert [key for key, _ in _parameter_rows(parameters, "")] == ["--mode"]


def test_the_parameters_are_shown_as_the_options_a_user_types():
    from miripersist import Parameters
    from miripersist.html_report import _parameter_rows

    record = Parameters(window_days="2500s", batch=8, dilate=2).record()
    rows = dict(_parameter_rows(record, ""))
    assert rows["--window"] == "2500 s (41.7 min)"
    assert rows["--batch"] == 8 and rows["--dilate"] == 2
    assert rows["--flags"] == "DO_NOT_USE,PERSISTENCE (33)"
    assert rows["tile (Python: Parameters.tile)"] == "512 x 1032"
    assert not any("_" in key.split(" ")[0] for key in rows)  # no internal field names


def test_the_report_writes_every_file(reported):
    _, rep, _ = reported
    for name in ("index.html", "persistence_report.ecsv", "masked_fraction.png"):
        assert (rep / name).stat().st_size > 0
    table = Table.read(rep / "persistence_report.ecsv")
    assert {"subarray", "duration_s", "mask_age_min_h"} <= set(table.colnames)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def _open(browser, path: Path, width: int = 1400):
    """A new page on ``path``, recording console errors, page errors and requests."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    seen = {"errors": [], "requests": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    t0 = time.monotonic()
    page.goto(path.as_uri())
    page.wait_for_selector("#exposures tbody tr")
    seen["open_s"] = time.monotonic() - t0
    return page, seen


def _column(page, label: str) -> list[str]:
    j = [c[1] for c in COLUMNS].index(label) + 1
    return page.eval_on_selector_all(
        f"#exposures tbody tr td:nth-child({j})", "cells => cells.map(c => c.textContent)"
    )


def _number(text: str) -> float:
    return float("inf") if text == "n/a" else float(text)


def test_the_page_in_a_browser(reported, browser, tmp_path):
    ds, rep, gone = reported
    page, seen = _open(browser, rep / "index.html")
    n = ds.sizes["exposure"]
    assert page.locator("#exposures tbody tr").count() == n
    assert _column(page, "file") == list(ds["file"].values.astype(str))
    assert page.inner_text("#count") == f"{n} exposures"
    # every figure loads
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
    assert len(widths) == 3 and all(w > 0 for w in widths)
    # a click on a header sorts by it, a second the other way; n/a stays last
    header = page.locator("#exposures th", has_text="pixels masked")
    header.click()
    masked = [int(v) for v in _column(page, "pixels masked")]
    assert masked == sorted(masked) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert [int(v) for v in _column(page, "pixels masked")] == sorted(masked, reverse=True)
    page.locator("#exposures th", has_text="age max").click()
    ages = [_number(v) for v in _column(page, "age max (h)")]
    assert ages == sorted(ages) and ages[-1] == float("inf"), "n/a (nothing masked) last"
    page.locator("#exposures th", has_text="file").first.click()
    files = _column(page, "file")
    assert files == sorted(files)
    # and from the keyboard
    subarray = page.locator("#exposures th", has_text="subarray")
    subarray.focus()
    page.keyboard.press("Enter")
    assert subarray.get_attribute("aria-sort") == "ascending"
    assert _column(page, "subarray") == sorted(_column(page, "subarray"))
    # the filter keeps the matching rows
    page.fill("#filter", "SUB256")
    assert set(_column(page, "subarray")) == {"SUB256"}
    assert "(filtered from" in page.inner_text("#count")
    page.fill("#filter", "")
    # links: relative, to the outputs; the missing one is marked
    hrefs = page.eval_on_selector_all(
        "#exposures a", "as => as.map(a => [a.href, a.className, a.title])"
    )
    assert hrefs
    for href, cls, title in hrefs:
        target = Path(unquote(urlparse(href).path))
        assert target.parent == rep.parent / "out"
        assert (cls == "missing") == (not target.exists()) == (target.name == gone.name)
        assert title.startswith(target.name)
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert not seen["errors"], seen["errors"]
    assert all(u.startswith(("file:", "data:")) for u in seen["requests"]), seen["requests"]
    page.close()


def _fake_table(n: int) -> tuple[Table, list]:
    rng = np.random.default_rng(1)
    start = 60300.0 + np.sort(rng.uniform(0, 30, n))
    table = Table(
        {
            "file": [f"jw{i + 1:05d}001001_02101_00001_mirimage_uncal.fits" for i in range(n)],
            "detector": rng.choice(["MIRIMAGE", "MIRIFULONG", "MIRIFUSHORT"], n),
            "filter": rng.choice(["F770W", "F1800W", "F2100W"], n),
            "subarray": rng.choice(["FULL", "SUB256", "BRIGHTSKY"], n),
            "start": [f"2023-12-{22 + int(s - 60300) // 10:02d}T00:00:00" for s in start],
            "mid_mjd": start,
            "end": ["2023-12-22T00:01:00"] * n,
            "duration_s": np.round(rng.uniform(3, 300, n), 1),
            "new_sources": rng.integers(0, 500, n),
            "masked": rng.integers(0, 5000, n),
            "masked_pct": np.round(rng.uniform(0, 1, n), 4),
            "mask_age_min_h": np.round(rng.uniform(0, 20, n), 3),
            "mask_age_median_h": np.where(rng.random(n) < 0.1, np.nan, np.round(rng.random(n), 3)),
            "mask_age_max_h": np.round(rng.uniform(0, 40, n), 3),
        }
    )
    links = [[(f"x{i}_dq.fits", f"../x{i}_dq.fits", True)] for i in range(n)]
    return table, links


def test_ten_thousand_exposures_open_in_a_couple_of_seconds(reported, browser, tmp_path):
    _, rep, _ = reported
    n = 10_000
    table, links = _fake_table(n)
    figures = [("masked fraction", "", str(rep / "masked_fraction.png"))]
    page_path = tmp_path / "index.html"
    page_path.write_text(render({"parameters": {"mode": "sidecar"}}, table, links, figures))
    assert page_path.stat().st_size < 5e6
    page, seen = _open(browser, page_path)
    assert seen["open_s"] < OPEN_10K_S, f"{n} rows took {seen['open_s']:.2f} s to open"
    rows = page.locator("#exposures tbody tr").count()
    assert 0 < rows < n, "rows come a page at a time"
    assert page.inner_text("#count") == f"rows 1-{rows} of {n} exposures"
    t0 = time.monotonic()
    page.locator("#exposures th", has_text="pixels masked").click()
    page.locator("#exposures th[aria-sort]").wait_for()
    sort_s = time.monotonic() - t0
    assert sort_s < OPEN_10K_S, f"sorting {n} rows took {sort_s:.2f} s"
    first = [int(v) for v in _column(page, "pixels masked")]
    assert first[0] == int(np.min(table["masked"])) and first == sorted(first)
    page.click("#next")
    second = [int(v) for v in _column(page, "pixels masked")]
    assert second[0] >= first[-1]
    assert page.inner_text("#count").startswith(f"rows {rows + 1}-{2 * rows} of {n}")
    assert not seen["errors"], seen["errors"]
    print(f"\n{n} rows: opened in {seen['open_s']:.2f} s, sorted in {sort_s:.2f} s")
    page.close()


# --- the report's numbers and messages --------------------------------------------------------


def _store(frames, sources, masks, start, end):
    """A minimal store: one detector, the given frames (xstart, ystart, xsize, ysize)."""
    n = len(frames)
    shape = (64, 64)
    frames = np.array(frames)
    return xr.Dataset(
        {
            "source": (("exposure", "y", "x"), np.array(sources)),
            "mask": (("exposure", "y", "x"), np.array(masks)),
        },
        coords={
            "detector": ("exposure", np.array(["MIRIMAGE"] * n)),
            "start_mjd": ("exposure", np.array(start)),
            "end_mjd": ("exposure", np.array(end)),
            "xstart": ("exposure", frames[:, 0]),
            "ystart": ("exposure", frames[:, 1]),
            "xsize": ("exposure", frames[:, 2]),
            "ysize": ("exposure", frames[:, 3]),
        },
        attrs={"detector_shape": list(shape)},
    )


def test_mask_ages_count_only_the_exposure_s_frame():
    shape = (64, 64)
    src0 = np.zeros(shape, bool)
    src0[5, 5] = True  # outside the subarray below
    src0[40, 40] = True  # inside it
    empty = np.zeros(shape, bool)
    seen = src0.copy()
    hour = 1 / 24
    ds = _store(
        frames=[(1, 1, 64, 64), (37, 37, 8, 8), (51, 51, 8, 8), (1, 1, 64, 64)],
        sources=[src0, empty, empty, empty],
        masks=[empty, seen, seen, seen],
        start=[0.0, 1 * hour, 2 * hour, 4 * hour],
        end=[0.5 * hour, 1.5 * hour, 2.5 * hour, 4.5 * hour],
    )
    ages = mask_ages(ds)
    assert np.isnan(ages[0]).all(), "nothing before the first exposure"
    np.testing.assert_allclose(ages[1], [0.5, 0.5, 0.5])  # only (40, 40) is in its frame
    assert np.isnan(ages[2]).all(), "a frame with nothing masked has no age"
    np.testing.assert_allclose(ages[3], [3.5, 3.5, 3.5])


def test_the_strip_says_which_exposures_it_shows():
    n = 12
    ds = xr.Dataset(coords={"detector": ("exposure", np.array(["MIRIMAGE"] * n))})
    assert "MIRIMAGE exposures 1-8 of 12 (the first 8;" in strip_title(ds, np.arange(8))
    assert "all 12 MIRIMAGE exposures" in strip_title(ds, np.arange(12))
    detectors = np.array(["MIRIFULONG"] * 3 + ["MIRIMAGE"])
    two = xr.Dataset(coords={"detector": ("exposure", detectors)})
    assert "MIRIMAGE: not shown" in strip_title(two, np.arange(3))


@pytest.mark.parametrize("what", ["empty directory", "plain file", "other zarr group", "nothing"])
def test_a_path_that_is_not_a_store_is_one_line_naming_it(tmp_path, capsys, what):
    path = tmp_path / "thing"
    if what == "empty directory":
        path.mkdir()
    elif what == "plain file":
        path.write_text("hello")
    elif what == "other zarr group":
        xr.Dataset({"a": ("x", np.arange(3))}).to_zarr(path, zarr_format=2)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    expected = "no such store" if what == "nothing" else "not a miripersist store ("
    assert err[0].startswith(f"miripersist: error: {path}: {expected}"), err[0]


def test_outputs_that_are_not_there_are_said(reported, tmp_path, capsys):
    _, rep, _ = reported
    store = rep.parent / "out" / "persistence.zarr"
    args = ["report", str(store), "--out", str(tmp_path / "rep")]
    assert main([*args, "--outputs", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"miripersist: warning: {tmp_path}: none of the run's outputs is there" in err
    assert main([*args, "--outputs", str(rep.parent / "out")]) == 0
    assert "none of the run's outputs" not in capsys.readouterr().err
