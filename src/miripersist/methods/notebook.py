"""The STScI notebook's rule ("mask persistence from saturation in MIRI imaging").

A source is a pixel whose first integration has at most ``n_unsat_threshold`` unsaturated
groups (and that saturated at all); every later exposure on the detector is masked where
an earlier one was a source. With ``--window``, a source masks only exposures that start
within the window after its exposure ended.
"""

from __future__ import annotations

from .windowed import Windowed


class Notebook(Windowed):
    """The notebook's rule: first integration, at most N unsaturated groups, end to start."""

    name = "notebook"
    window_from = "end"

    def sources(self, exposure, read, params):
        """First integration (first segment), or every integration with ``integrations="all"``."""
        if params.integrations == "all":
            return read.saturated(exposure.files, params.n_unsat_threshold, "all")
        return read.saturated(exposure.files[:1], params.n_unsat_threshold)
