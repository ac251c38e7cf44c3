"""A fourth persistence rule, made outside miripersist and registered as a package would.

Any saturated group, in any integration, makes a source, which masks the exposures that
start within an hour after its exposure ends. tests/test_plugin.py installs it beside the
suite (a module and its ``.dist-info`` with the entry point) and runs it through the
command line, the Python API and ``strun``.
"""

from __future__ import annotations

from miripersist.methods import Method
from miripersist.scan import NEVER_SATURATED

HOUR_DAYS = 1.0 / 24.0


class AnySaturation(Method):
    """Any saturated group in any integration masks for an hour (end to start)."""

    name = "anysat"
    default_window_days = HOUR_DAYS
    ignores = ("n_unsat_threshold", "integrations")

    def lazy_sources(self, exposure, thresholds, params, reader):
        """Every integration of every file: at most NGROUPS - 1 unsaturated groups."""
        return [
            reader(
                f,
                thresholds,
                exposure.ngroups - 1,
                params.n_pix_grow_sat,
                params.tile,
                all_integrations=True,
            )  # fmt: skip
            for f in exposure.files
        ]

    def stamp(self, start_mjd, end_mjd):
        """A source records the end of its exposure."""
        return end_mjd

    def masked(self, carry, start_mjd, window_days):
        """Masked where an earlier source ended within the window before this start."""
        return (carry > NEVER_SATURATED) & (carry >= start_mjd - window_days)
