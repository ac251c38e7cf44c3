"""Shared fixtures: offline jwst steps, reference files, and the pipeline as oracle."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

# jwst steps run offline when CRDS is never asked for parameters or references and a cache
# config names a context; set before anything imports stpipe.
_CRDS = tempfile.mkdtemp(prefix="miripersist-crds-")
atexit.register(shutil.rmtree, _CRDS, ignore_errors=True)
os.makedirs(os.path.join(_CRDS, "config", "jwst"))
with open(os.path.join(_CRDS, "config", "jwst", "server_config"), "w") as fh:
    fh.write(
        "{'observatory': 'jwst', 'operational_context': 'jwst_0000.pmap', "
        "'edit_context': 'jwst_0000.pmap', 'force_remote_mode': False, 'bad_files': '', "
        "'bad_files_list': [], 'last_synced': '2026-01-01 00:00:00', "
        "'crds_version': {'str': '14.0.3'}}"
    )
os.environ["CRDS_PATH"] = _CRDS
os.environ["CRDS_SERVER_URL"] = "http://127.0.0.1:9"  # nothing listens: never the network
os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "True"

from miripersist import simulate  # noqa: E402
from miripersist.flags import NO_SAT_CHECK, SATURATED_GROUP  # noqa: E402
from miripersist.inventory import DETECTOR_SHAPE  # noqa: E402


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def refdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("refs")


@pytest.fixture(scope="session")
def sat_thresholds() -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds (so equality is exercised) with NaN and NO_SAT_CHECK pixels."""
    rng = np.random.default_rng(7)
    thr = np.round(rng.uniform(30000, 50000, size=DETECTOR_SHAPE)).astype(np.float32)
    dq = np.zeros(DETECTOR_SHAPE, np.uint32)
    nan = rng.random(DETECTOR_SHAPE) < 0.03
    nosat = rng.random(DETECTOR_SHAPE) < 0.03
    thr[nan] = np.nan
    dq[nosat] |= NO_SAT_CHECK
    dq[:, :4] |= NO_SAT_CHECK
    return thr, dq


@pytest.fixture(scope="session")
def sat_ref(refdir, sat_thresholds) -> str:
    thr, dq = sat_thresholds
    return simulate.write_saturation_reference(str(refdir / "sat_mirimage.fits"), thr, dq)


@pytest.fixture(scope="session")
def mask_ref(refdir) -> str:
    dq = np.zeros(DETECTOR_SHAPE, np.uint32)
    dq[10:20, 30:40] = 2048 | 1  # HOT | DO_NOT_USE: must survive next to our flags
    return simulate.write_mask_reference(str(refdir / "mask_mirimage.fits"), dq)


def tricky_ramps(thr: np.ndarray, ngroups: int, nints: int, rng: np.random.Generator) -> np.ndarray:
    """Ramps that cross their threshold at random groups, sit exactly on it, dip back under
    it, hit the A/D floor, or never saturate; each integration different."""
    ny, nx = thr.shape
    finite = np.where(np.isfinite(thr), thr, 40000.0)
    out = np.empty((nints, ngroups, ny, nx), dtype=np.uint16)
    for i in range(nints):
        cross = rng.integers(0, ngroups + 3, size=(ny, nx))  # >= ngroups: never
        g = np.arange(ngroups)[:, None, None]
        below = finite - rng.integers(1, 3000, size=(ngroups, ny, nx))
        above = finite + rng.integers(0, 3000, size=(ngroups, ny, nx))
        ramp = np.where(g >= cross, above, below)
        dip = (g > cross) & (rng.random((ngroups, ny, nx)) < 0.3)
        ramp = np.where(dip, finite - 500, ramp)
        exact = rng.random((ngroups, ny, nx)) < 0.02
        ramp = np.where(exact, finite, ramp)
        floor = rng.random((ngroups, ny, nx)) < 0.01
        ramp = np.where(floor, 0, ramp)
        out[i] = np.clip(ramp, 0, 65535).astype(np.uint16)
    # never-check pixels get the largest values: they must still never saturate
    out[..., ~np.isfinite(thr)] = 65535
    return out


@pytest.fixture(scope="session")
def sub64_two_ints(tmp_path_factory, sat_thresholds):
    """A SUB64 exposure, two integrations that saturate differently, full-frame reference."""
    thr, _ = sat_thresholds
    xs, ys, nx, ny = simulate.SUBARRAYS["SUB64"]
    window = thr[ys - 1 : ys - 1 + ny, xs - 1 : xs - 1 + nx]
    data = tricky_ramps(window, ngroups=7, nints=2, rng=np.random.default_rng(3))
    path = tmp_path_factory.mktemp("oracle") / "sub64_uncal.fits"
    return simulate.write_uncal(str(path), data, start_mjd=60300.0, subarray="SUB64")


def pipeline_groupdq(uncal: str, sat_ref: str, mask_ref: str, n_pix_grow_sat: int) -> np.ndarray:
    """GROUPDQ after the real jwst DQInitStep + SaturationStep (offline)."""
    from jwst.dq_init import DQInitStep
    from jwst.saturation import SaturationStep

    model = DQInitStep.call(uncal, override_mask=mask_ref)
    model = SaturationStep.call(
        model,
        override_saturation=sat_ref,
        override_superbias="N/A",
        n_pix_grow_sat=n_pix_grow_sat,
    )
    gdq = np.array(model.groupdq)
    model.close()
    return gdq


def notebook_sources(groupdq: np.ndarray, n_unsat_threshold: int) -> np.ndarray:
    """The notebook's rule on the pipeline's flags: first integration, count unsaturated groups."""
    first = groupdq[0]
    unsat = np.sum((first & SATURATED_GROUP) == 0, axis=0)
    return (unsat <= n_unsat_threshold) & (unsat < first.shape[0])


@pytest.fixture(autouse=True)
def inputs_never_change(request, monkeypatch):
    """Every input the engine discovers in a test is byte-identical after the test."""
    import miripersist.engine as engine

    seen: dict[str, str] = {}
    real = engine.discover

    def recording(inputs):
        paths = real(inputs)
        for p in paths:
            if p not in seen and os.path.isfile(p):
                seen[p] = sha256(p)
        return paths

    monkeypatch.setattr(engine, "discover", recording)
    yield
    if request.node.get_closest_marker("modifies_inputs"):
        return
    changed = [p for p, digest in seen.items() if os.path.isfile(p) and sha256(p) != digest]
    assert not changed, f"inputs were modified: {changed}"


FLAGS = 1 | 32  # DO_NOT_USE | PERSISTENCE


@pytest.fixture(scope="session")
def program(tmp_path_factory):
    """FULL and subarray exposures, one and two integrations, names not in time order."""
    directory = tmp_path_factory.mktemp("program")
    prog = simulate.make_program(
        str(directory / "in"),
        n_exposures=6,
        ngroups=5,
        subarrays=("FULL", "SUB256", "FULL", "SUB64"),
        nints=(1, 2),
        seed=5,
    )
    return prog


@dataclass(frozen=True)
class Frame:
    """An exposure as astropy reads its headers, independently of the engine's reader."""

    path: str
    nints: int
    ysize: int
    xsize: int
    ystart: int
    xstart: int
    mid_mjd: float

    @classmethod
    def read(cls, path: str) -> Frame:
        with fits.open(path) as hdul:
            primary, sci = hdul[0].header, hdul["SCI"]
            nints, _, ny, nx = sci.shape
            mid = sci.header["MJD-AVG"]
            return cls(path, nints, ny, nx, primary["SUBSTRT2"], primary["SUBSTRT1"], mid)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def window(self) -> tuple[slice, slice]:
        """The frame on the detector, from SUBSTRT1/2 (1-indexed)."""
        y0, x0 = self.ystart - 1, self.xstart - 1
        return slice(y0, y0 + self.ysize), slice(x0, x0 + self.xsize)


@pytest.fixture(scope="session")
def expected_masks(program):
    """Per exposure (time order): detector-frame OR of the pipeline's sources of earlier ones."""
    exposures = sorted((Frame.read(p) for p in program.files), key=lambda e: e.mid_mjd)
    sources = []
    for e in exposures:
        gdq = pipeline_groupdq(e.path, program.saturation_ref, program.mask_ref, 1)
        placed = np.zeros(DETECTOR_SHAPE, dtype=bool)
        placed[e.window] = notebook_sources(gdq, 3)
        sources.append(placed)
    masks, seen = [], np.zeros(DETECTOR_SHAPE, dtype=bool)
    for e, src in zip(exposures, sources, strict=True):
        masks.append(seen[e.window].copy())
        seen |= src
    return exposures, sources, masks


@pytest.fixture(scope="session")
def mixed_program(tmp_path_factory):
    """FULL and SUB256 exposures of one and two integrations."""
    return simulate.make_program(
        str(tmp_path_factory.mktemp("beyond") / "in"),
        n_exposures=6,
        ngroups=4,
        subarrays=("FULL", "SUB256"),
        nints=(1, 2),
        seed=8,
    )


def jobqueue_or_skip():
    """dask_jobqueue, imported as the package imports it (Ctrl-C handling kept), or a skip."""
    from miripersist import ConfigError
    from miripersist.batch import import_jobqueue

    try:
        return import_jobqueue()
    except ConfigError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def slurm():
    """A real SLURM (tests/slurm.py), started for the session and stopped by its PIDs."""
    jobqueue_or_skip()
    from slurm import Slurm, missing

    lacking = missing()
    if lacking:
        pytest.skip(f"no SLURM here ({', '.join(lacking)}): apt-get install slurm-wlm munge")
    running = Slurm.start()
    yield running
    running.stop()


#: A site's dask-jobqueue settings, as an HPC centre writes them in jobqueue.yaml: small
#: one-core jobs on the test SLURM's partition, workers on loopback.
JOBQUEUE_YAML = """\
jobqueue:
  slurm:
    cores: 1
    processes: 1
    memory: 1GB
    interface: lo
    queue: debug
    walltime: "00:20:00"
    death-timeout: 30
"""


@pytest.fixture(scope="session")
def site(slurm, tmp_path_factory) -> dict[str, str]:
    """The environment of a user of the test SLURM: SLURM_CONF, and DASK_CONFIG's jobqueue.yaml.

    The SLURM's own commands (its jobs) get it too.
    """
    config = tmp_path_factory.mktemp("dask-config")
    # Worker jobs' logs go there, not into the directory a test ran in.
    logs = f"    log-directory: {config / 'logs'}\n"
    (config / "jobqueue.yaml").write_text(JOBQUEUE_YAML + logs)
    slurm.env["DASK_CONFIG"] = str(config)
    # Its shell finds miripersist and dask, as a user's with the package installed.
    slurm.env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])
    return slurm.env
