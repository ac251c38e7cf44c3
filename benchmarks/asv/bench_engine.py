"""asv benchmarks of the engine at small scale (``asv run --python=same``).

The data are made once per environment by ``setup_cache`` with the project's simulator.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

# Imported here, not in the timed functions: asv would otherwise time the first import.
from miripersist import Parameters, run, simulate
from miripersist.inventory import read_exposure
from miripersist.saturation import sources_from_ramp
from miripersist.scan import exclusive_scan, new_carry


class Engine:
    """Full runs on 8 FULL-frame exposures of 30 groups."""

    timeout = 600
    params = (["sidecar", "copy"],)
    param_names = ["mode"]

    def setup_cache(self):
        directory = os.path.abspath("asv-data")
        program = simulate.make_program(directory, n_exposures=8, ngroups=30)
        return program.directory, program.saturation_ref

    def setup(self, cache, mode):
        self.out = tempfile.mkdtemp(prefix="asv-out-")

    def teardown(self, cache, mode):
        shutil.rmtree(self.out, ignore_errors=True)

    def _run(self, cache, mode):
        inputs, ref = cache
        run([inputs], self.out, [ref], Parameters(mode=mode), overwrite=True)

    def time_run(self, cache, mode):
        self._run(cache, mode)

    def peakmem_run(self, cache, mode):
        self._run(cache, mode)


class Inventory:
    """Describing uncal files from their headers (the one serial stage before the run)."""

    def setup_cache(self):
        program = simulate.make_program(os.path.abspath("asv-inventory"), n_exposures=4, ngroups=3)
        return program.files

    def time_read_exposure(self, files):
        for path in files:
            read_exposure(path)


class Science:
    """The pure functions on one full frame."""

    def setup(self):
        rng = np.random.default_rng(0)
        self.groups = rng.integers(0, 65535, size=(4, 1024, 1032), dtype=np.uint16)
        self.thr = np.full((1024, 1032), 65000, dtype=np.float32)
        self.sources = rng.random((16, 1024, 1032)) < 0.01

    def time_sources_from_ramp(self):
        sources_from_ramp(self.groups, self.thr, 1)

    def time_scan_block_of_16(self):
        t = np.arange(16.0)
        exclusive_scan(self.sources, t, t + 0.5, new_carry((1024, 1032)))
