"""The test suite cleans up after itself: no kept temporary programs, no CRDS cache left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_passing_session_leaves_no_data_and_no_crds_cache(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp), PYTEST_DEBUG_TEMPROOT=str(temp))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_store.py::test_stored_view_reads_what_xarray_reads"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    left = [p for p in temp.rglob("*") if p.is_file()]
    assert left == [], left[:5]
    assert not list(temp.glob("*crds*"))
