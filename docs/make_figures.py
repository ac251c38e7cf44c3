"""Make the figures in docs/images from the demo program: ``python docs/make_figures.py``.

Runs ``miripersist demo`` and ``miripersist report`` in a temporary directory and copies
``demo.png`` and the report's three figures into docs/images. With playwright and a
Chromium at /usr/bin/chromium (``apt-get install chromium``), it also takes the screenshots
of the report's page (``report_page.png``, ``report_table.png``). No network.
``benchmark_scaling.png`` comes from ``python -m benchmarks`` (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

IMAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "images")
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


def screenshots(page: str) -> list[str]:
    """The top of the report page, and its table sorted by pixels masked (descending)."""
    from playwright.sync_api import sync_playwright

    top, table = os.path.join(IMAGES, "report_page.png"), os.path.join(IMAGES, "report_table.png")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        view = browser.new_page(viewport={"width": 1280, "height": 860})
        view.goto("file://" + os.path.abspath(page))
        view.screenshot(path=top)
        header = view.locator("#exposures th", has_text="pixels masked")
        header.click()
        header.click()
        view.locator("#exposures-table").scroll_into_view_if_needed()
        view.evaluate("document.getElementById('exposures-table').scrollIntoView()")
        view.screenshot(path=table)
        browser.close()
    return [top, table]


def main() -> int:
    """Make the figures; return the exit code."""
    from miripersist.demo import demo
    from miripersist.report import report

    os.makedirs(IMAGES, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory(prefix="miripersist-docs-") as work:
        demo(os.path.join(work, "demo"), quiet=True)
        shutil.copy(os.path.join(work, "demo", "demo.png"), IMAGES)
        made.append(os.path.join(IMAGES, "demo.png"))
        done = report(os.path.join(work, "demo", "outputs", "persistence.zarr"))
        for path in done.figures:
            shutil.copy(path, IMAGES)
            made.append(os.path.join(IMAGES, os.path.basename(path)))
        if os.path.exists(CHROMIUM):
            made += screenshots(done.page)
        else:
            print(f"{CHROMIUM} not found: the screenshots of the page are not remade")
    print("\n".join(made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
