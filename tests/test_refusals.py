"""What cannot be done is refused before anything is written: exit 2 (or 1), one line, no trace.

Each case is the command line a new user typed: a URL where a path goes, ``--history``
twice, ``--workers 0``, a scheduler with no worker; and the output directory where a
store is asked for, which is taken for the store it holds.
"""

from __future__ import annotations

import os

import pytest

from benchmarks.workers import command_line_cluster
from miripersist import simulate
from miripersist.cli import main


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    return simulate.make_program(
        str(tmp_path_factory.mktemp("refusals") / "obs1"), n_exposures=2, ngroups=4, seed=9
    )


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _nothing_in(directory) -> bool:
    return not os.path.exists(directory) or not os.listdir(directory)


@pytest.mark.parametrize(
    ("where", "url"),
    [
        ("--output-dir", "s3://bucket/masked"),
        ("--store", "s3://bucket/persistence.zarr"),
        ("input", "s3://bucket/obs1/"),
        ("input", "https://example.org/jw01234001001_02101_00001_mirimage_uncal.fits"),
        ("--saturation-ref", "https://example.org/sat.fits"),
        ("--history", "s3://bucket/first/persistence.zarr"),
        ("--user-mask", "file:///tmp/mask.csv"),
    ],
)
def test_a_url_where_a_path_goes_is_refused(tmp_path, prog, capsys, monkeypatch, where, url):
    monkeypatch.chdir(tmp_path)
    out = "masked"
    inputs = [url] if where == "input" else [prog.directory]
    args = ["run", *inputs, "--output-dir", url if where == "--output-dir" else out]
    args += ["--saturation-ref", url if where == "--saturation-ref" else prog.saturation_ref]
    if where not in ("input", "--output-dir", "--saturation-ref"):
        args += [where, url]
    assert main(args) == 2
    err = _one_line(capsys)
    assert err.startswith(f"miripersist: error: {url}: ") and "is a URL" in err
    assert os.listdir(tmp_path) == []  # no ./masked, no ./s3:


def test_report_and_demo_refuse_urls(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "s3://bucket/masked/persistence.zarr"]) == 2
    assert "is a URL" in _one_line(capsys)
    assert main(["demo", "s3://bucket/demo"]) == 2
    assert "is a URL" in _one_line(capsys)
    assert os.listdir(tmp_path) == []


def test_history_given_twice_is_refused(tmp_path, prog, capsys):
    first = tmp_path / "a"
    assert main(["run", prog.directory, "--output-dir", str(first), "--quiet",
                 "--saturation-ref", prog.saturation_ref]) == 0  # fmt: skip
    out = tmp_path / "visit4"
    store = str(first / "persistence.zarr")
    args = ["run", prog.directory, "--output-dir", str(out)]
    args += ["--saturation-ref", prog.saturation_ref, "--history", store, "--history", store]
    assert main(args) == 2
    err = _one_line(capsys)
    assert "--history given 2 times" in err
    assert not out.exists()


@pytest.mark.parametrize("count", ["0", "-1", "two"])
@pytest.mark.parametrize("option", ["--workers", "--threads-per-worker"])
def test_worker_counts_below_one_are_usage_errors(tmp_path, prog, capsys, option, count):
    out = tmp_path / "out"
    args = ["run", prog.directory, "--output-dir", str(out), option, count]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: " in err.splitlines()[-1]
    assert not out.exists()


def test_a_scheduler_with_no_worker_is_named_in_one_line(tmp_path, prog, capsys):
    out = tmp_path / "out"
    with command_line_cluster(tmp_path / "scheduler.json", 0, tmp_path) as scheduler_file:
        args = ["run", prog.directory, "--output-dir", str(out)]
        args += ["--saturation-ref", prog.saturation_ref, "--scheduler-file", scheduler_file]
        assert main([*args, "--wait-for-workers", "2s"]) == 1
    err = _one_line(capsys)
    assert "the dask scheduler has no worker (none joined in 2 s)" in err
    assert "--wait-for-workers" in err
    assert not out.exists()


def test_report_takes_the_output_directory_for_its_store(tmp_path, prog, capsys):
    out = tmp_path / "masked"
    assert main(["run", prog.directory, "--output-dir", str(out), "--quiet",
                 "--saturation-ref", prog.saturation_ref]) == 0  # fmt: skip
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"page: {out / 'report' / 'index.html'}" in printed
    assert (out / "report" / "index.html").is_file()
    # A directory that neither is nor holds a store is still named as not one.
    assert main(["report", str(tmp_path)]) == 2
    assert "not a miripersist store" in _one_line(capsys)
