"""The documentation site as its reader meets it: built by Sphinx, opened in Chromium.

Needs the docs extra (``pip install -e ".[docs]"``; .ci/run installs it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_html_report import browser  # noqa: F401 - the fixture

pytest.importorskip("sphinx", reason="the site needs the docs extra: pip install -e '.[docs]'")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", "-d", str(out / ".trees")]
    done = subprocess.run([*build, str(ROOT / "docs"), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def test_the_front_page_is_the_readme_with_the_site_s_links(site, browser):  # noqa: F811
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    main = page.inner_text("article")
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert page.inner_text("article h1") == readme[0].removeprefix("# ")
    assert " ".join(readme[2:4]) in " ".join(main.split()), "the README's opening, shown"
    assert "{include}" not in main and "README.md is put here" not in main
    assert "front page of miripersist's documentation" not in main, "the note for GitHub only"
    # A link of the README to a page of the guide opens that page on the site.
    page.click("article a[href='how-it-works.html'] >> nth=0")
    assert page.url == (site / "how-it-works.html").as_uri()
    assert page.inner_text("article h1") == "How miripersist works"
    page.close()


def test_on_github_the_front_page_shows_no_directive():
    text = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    assert "{include}" not in text.split("```{toctree}")[0]
    assert "](../README.md)" in text, "GitHub's readers are sent to the README"
