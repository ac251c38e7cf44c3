"""A fourth persistence rule, made outside miripersist and registered as a package would.

Any saturated group, in any integration, makes a source, which masks the exposures that
start within an hour after its exposure ends. tests/test_plugin.py installs it beside the
suite (a module and its ``.dist-info`` with the entry point) and runs it through the
command line, the Python API and ``strun``.
"""

from __future__ import annotations

from miripersist.methods import Options, Windowed

HOUR_DAYS = 1.0 / 24.0


class AnySaturation(Windowed):
    """Any saturated group in any integration masks for an hour (end to start)."""

    name = "anysat"
    options = Options(window_days=HOUR_DAYS, ignores=("n_unsat_threshold", "integrations"))
    window_from = "end"

    def sources(self, exposure, read, params):
        """Every integration of every file: at most NGROUPS - 1 unsaturated groups."""
        return read.saturated(exposure.files, exposure.ngroups - 1, "all")
