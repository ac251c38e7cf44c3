"""snowblind's ``PersistenceFlagStep`` rule (snowblind 1.0.1, ``snowblind/persist.py``).

Per detector, in start-time order, the sources of an exposure are the pixels SATURATED in
the last group of its last integration (after the saturation step, growth included); an
exposure is flagged where an earlier exposure that started less than the window (2500 s
by default) before it was a source: start to start, strictly less.

snowblind reads the sources from ``_jump`` files; here they come from the uncal files by
the saturation step's own rules. SATURATED is sticky, so the last group is flagged where
any group of the last integration reached its threshold: every group of that integration
is read, and its brightest value compared.
"""

from __future__ import annotations

from .base import Options
from .windowed import Windowed

#: snowblind's default ``time``.
DEFAULT_WINDOW_S = 2500.0


class Snowblind(Windowed):
    """snowblind's rule: last group of the last integration, start to start, strict."""

    name = "snowblind"
    # The last integration decides, saturated at all.
    options = Options(
        window_days=DEFAULT_WINDOW_S / 86400.0, ignores=("n_unsat_threshold", "integrations")
    )
    window_from = "start"
    strict = True

    def sources(self, exposure, read, params):
        """Saturated anywhere in the last integration of the exposure's last file."""
        last = exposure.files[-1]
        # At most ngroups - 1 unsaturated: saturated at all.
        return read.saturated([last], last.ngroups - 1, (last.nints - 1,))
