"""The benchmark runner works at a tiny scale, and every method it times gives the same masks."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
from astropy.io import fits

from benchmarks.data import build
from benchmarks.measure import measure
from benchmarks.run import commands, offline_env


def _masked(path: str, ext: str | int) -> np.ndarray:
    return fits.getdata(path, ext) != 0


def test_every_timed_method_gives_identical_masks(tmp_path):
    program = build(str(tmp_path / "data"), n=8, ngroups=5, subarray="FULL")
    assert len(program.files) == 8
    env = offline_env(str(tmp_path))
    cmds = commands(program, str(tmp_path / "out"))
    stats = {name: measure(cmd, env) for name, cmd in cmds.items()}
    for s in stats.values():
        assert s["wall_s"] > 0 and s["peak_rss_mib"] > 0
    assert stats["cp"]["read_bytes"] >= sum(os.path.getsize(f) for f in program.files)

    total = 0
    for f in program.files:
        name = os.path.basename(f)
        stem = name.replace("_uncal.fits", "")
        nb = _masked(str(tmp_path / "out" / "notebook" / f"{stem}_nb_uncal.fits"), "PIXELDQ")
        side = _masked(str(tmp_path / "out" / "sidecar" / f"{stem}_persistence_dq.fits"), 0)
        copy = _masked(
            str(tmp_path / "out" / "copy" / f"{stem}_masked_persistence_uncal.fits"), "PIXELDQ"
        )
        floor = _masked(str(tmp_path / "out" / "floor" / f"{stem}_persistence_dq.fits"), 0)
        np.testing.assert_array_equal(side, nb, err_msg=name)
        np.testing.assert_array_equal(copy, nb, err_msg=name)
        np.testing.assert_array_equal(floor, nb, err_msg=name)
        total += int(nb.sum())
    assert total > 0, "the program must mask something"
    assert len(glob.glob(str(tmp_path / "out" / "cp" / "*_uncal.fits"))) == 8


def test_drop_empties_the_page_cache_of_a_file(tmp_path):
    from benchmarks.cold import drop, warm

    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(1 << 20))
    os.sync()  # dirty pages cannot be dropped
    warm([str(path)])
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(4096)
        assert os.preadv(fd, [buf], 0, os.RWF_NOWAIT) == 4096  # cached: no wait
        drop([str(path)])
        try:
            os.preadv(fd, [buf], 0, os.RWF_NOWAIT)
        except BlockingIOError:
            return  # not cached any more: a read would wait for the disk
        pytest.skip("this file system keeps the pages (tmpfs?): no cold reads here")
    finally:
        os.close(fd)


def test_cold_benchmark_reports_every_method_and_state(tmp_path):
    import json

    from benchmarks.cold import main

    out = tmp_path / "cold.json"
    argv = ["--exposures", "2,3", "--groups", "5", "--repeats", "1"]
    assert main([*argv, "--workdir", str(tmp_path), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {
        f"{m} {s}" for m in ("sidecar", "floor_sidecar", "bare_reads") for s in ("cold", "warm")
    }
    for name, row in rows.items():
        assert row["peak_rss_mib"] > 0 and len(row["marginal_samples_s"]) == 1, name
        assert ("over_bare_reads" in row) == (not name.startswith("bare_reads")), name
    # Every pass wrote a directory of its own, all kept to the end, then removed.
    assert not list(tmp_path.glob("cold-outputs-*"))


def test_cold_benchmark_times_the_notebook_in_its_process(tmp_path):
    import json

    from benchmarks.cold import main

    out = tmp_path / "cold.json"
    argv = ["--exposures", "2,3", "--groups", "5", "--repeats", "1", "--states", "warm"]
    argv += ["--methods", "sidecar,notebook", "--workdir", str(tmp_path), "--out", str(out)]
    assert main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"sidecar warm", "notebook warm"}
    assert rows["notebook warm"]["t_s"]["3"] > 0
    assert "notebook_over" not in rows["notebook warm"]
    (ratio,) = rows["sidecar warm"]["notebook_over_samples"]
    assert ratio == rows["notebook warm"]["marginal_s"] / rows["sidecar warm"]["marginal_s"]


def test_workers_benchmark_reports_threads_and_processes(tmp_path):
    import json

    from benchmarks.workers import main

    argv = ["--small", "2", "--large", "3", "--groups", "4", "--rounds", "1", "--workers", "1"]
    assert main([*argv, "--workdir", str(tmp_path), "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "workers.json").read_text())
    assert set(result["samples_s"]) == {"threads", "processes", "scheduler_file"}
    assert all(len(v) == 1 for v in result["samples_s"].values())
    t, p = result["samples_s"]["threads"][0], result["samples_s"]["processes"][0]
    assert result["ratios"] == [p / t]
    assert result["ratios_scheduler_file"] == [result["samples_s"]["scheduler_file"][0] / t]
    assert not list(tmp_path.glob("workers-*")), "every run's outputs are removed"
    assert not list(tmp_path.glob("scheduler-*")), "the scheduler's directory is removed"


def test_client_cost_benchmark_gives_each_process_s_share_and_the_model(tmp_path):
    import json

    from benchmarks.client_cost import SCALES, main

    argv = ["--small", "2", "--large", "6", "--groups", "4", "--rounds", "1"]
    main([*argv, "--data", str(tmp_path / "data"), "--out", str(tmp_path)])
    result = json.loads((tmp_path / "client_cost.json").read_text())
    per = result["per_exposure_median"]
    # Two tiles a full frame and a file-writing task for every four exposures.
    assert per["tasks"] == 2.25
    assert per["workers"]["read_bytes"] > 0 and per["loopback_bytes"] > 0
    assert set(per["client"]) >= {"cpu_s", "scan_cpu_s", "store_update_cpu_s", "assemble_cpu_s"}
    model = result["model"]
    warm = model["warm"]["exposures_per_s"]
    assert list(warm) == [str(w) for w in SCALES]
    ceiling = min(model["ceilings_exposures_per_s"].values())
    assert max(warm.values()) <= ceiling
