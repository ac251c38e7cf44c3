"""A rule from another package: registered as an entry point, run by every front end.

``tests/plugins/miripersist_anysat.py`` defines the rule (any saturated group in any
integration masks for an hour) outside ``src/``; it is installed the way pip would (the
module and a ``.dist-info`` naming it in the ``miripersist.methods`` group), on the path of
fresh processes, which run it through the command line, the Python API and ``strun``. Its
answer must be the notebook rule's with the same choices made by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from miripersist import Parameters, run, simulate
from miripersist.store import open_store

PLUGIN = Path(__file__).parent / "plugins" / "miripersist_anysat.py"
NGROUPS = 8


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    return simulate.make_program(
        str(tmp_path_factory.mktemp("plugin") / "obs"),
        n_exposures=4,
        ngroups=NGROUPS,
        nints=(1, 2),
        subarrays=("FULL", "SUB256"),
        seed=12,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder with the rule's module and its distribution's metadata, as pip leaves them."""
    root = tmp_path_factory.mktemp("site")
    shutil.copy(PLUGIN, root)
    info = root / "miripersist_anysat-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: miripersist-anysat\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[miripersist.methods]\nanysat = miripersist_anysat:AnySaturation\n"
    )
    return root


def _env(site: Path) -> dict:
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))
    return dict(os.environ, PYTHONPATH=path, STPIPE_DISABLE_CRDS_STEPPARS="True")


def _run(argv: list[str], site: Path) -> None:
    done = subprocess.run(argv, env=_env(site), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _answer(out: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The store's masks, and each output's PIXELDQ by input name."""
    ds = open_store(str(out / "persistence.zarr"))
    pixeldq = {}
    for path in sorted(out.glob("*_masked_persistence_uncal.fits")):
        with fits.open(path) as hdul:
            pixeldq[path.name] = np.array(hdul["PIXELDQ"].data)
    return ds["mask"].values, pixeldq


def test_a_registered_rule_runs_through_cli_api_and_strun(prog, site, tmp_path):
    outs = {name: tmp_path / name for name in ("cli", "api", "strun")}
    _run([sys.executable, "-m", "miripersist", "run", prog.directory, "--output-dir",
          str(outs["cli"]), "--saturation-ref", prog.saturation_ref, "--method", "anysat",
          "--quiet"], site)  # fmt: skip
    script = (
        "import sys; from miripersist import Parameters, run; "
        "run([sys.argv[1]], sys.argv[2], [sys.argv[3]], Parameters(method='anysat'))"
    )
    _run([sys.executable, "-c", script, prog.directory, str(outs["api"]), prog.saturation_ref],
         site)  # fmt: skip
    strun = os.path.join(os.path.dirname(sys.executable), "strun")
    _run([strun, "persistence_mask", prog.directory, f"--saturation_ref={prog.saturation_ref}",
          f"--output_dir={outs['strun']}", "--method=anysat"], site)  # fmt: skip

    # The same rule by hand: any saturated group (at most NGROUPS - 1 unsaturated), every
    # integration, an hour from the end of the source's exposure.
    by_hand = tmp_path / "by_hand"
    rule = Parameters(n_unsat_threshold=NGROUPS - 1, integrations="all", window_days=1 / 24)
    run([prog.directory], str(by_hand), [prog.saturation_ref], rule)
    expected_mask, expected_dq = _answer(by_hand)
    assert expected_mask.any()
    default = tmp_path / "default"
    run([prog.directory], str(default), [prog.saturation_ref], Parameters())
    assert not np.array_equal(_answer(default)[0], expected_mask), "the rule must matter"
    for name, out in outs.items():
        mask, dq = _answer(out)
        np.testing.assert_array_equal(mask, expected_mask, err_msg=name)
        assert dq.keys() == expected_dq.keys()
        for file, values in dq.items():
            np.testing.assert_array_equal(values, expected_dq[file], err_msg=f"{name}: {file}")


def test_a_name_nobody_registered_is_refused_in_one_line(prog, site, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "miripersist", "run", prog.directory, "--output-dir",
         str(tmp_path / "o"), "--saturation-ref", prog.saturation_ref, "--method", "nosuch"],
        env=_env(site), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "'nosuch'" in done.stderr, done.stderr
    assert "notebook, pipeline, snowblind, anysat" in done.stderr
    assert not (tmp_path / "o").exists()
