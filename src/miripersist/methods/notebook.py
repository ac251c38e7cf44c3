"""The STScI notebook's rule ("mask persistence from saturation in MIRI imaging").

A source is a pixel whose first integration has at most ``n_unsat_threshold`` unsaturated
groups (and that saturated at all); every later exposure on the detector is masked where
an earlier one was a source. With ``--window``, a source masks only exposures that start
within the window after its exposure ended.
"""

from __future__ import annotations

import numpy as np

from ..scan import NEVER_SATURATED, exclusive_scan
from .base import Method


class Notebook(Method):
    """The notebook's rule: first integration, at most N unsaturated groups, end to start."""

    name = "notebook"

    def lazy_sources(self, exposure, thresholds, params, reader):
        """First integration (first segment), or every integration with ``integrations="all"``."""
        every = params.integrations == "all"
        return [
            reader(
                f,
                thresholds,
                params.n_unsat_threshold,
                params.n_pix_grow_sat,
                params.tile,
                all_integrations=every,
            )
            for f in (exposure.files if every else exposure.files[:1])
        ]

    def scan(self, sources, start_mjd, end_mjd, carry, window_days, out=None):
        """The notebook's scan: a plain cumulative OR when the window never closes."""
        return exclusive_scan(sources, start_mjd, end_mjd, carry, window_days, out)

    def stamp(self, start_mjd, end_mjd):
        """A source records the end of its exposure."""
        return end_mjd

    def masked(self, carry, start_mjd, window_days):
        """Masked where an earlier source ended no more than the window before this start."""
        if np.isinf(window_days):
            return carry > NEVER_SATURATED
        return (carry > NEVER_SATURATED) & (carry >= start_mjd - window_days)
