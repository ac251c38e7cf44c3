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

from ..scan import NEVER_SATURATED
from .base import Method

#: snowblind's default ``time``.
DEFAULT_WINDOW_S = 2500.0


class Snowblind(Method):
    """snowblind's rule: last group of the last integration, start to start, strict."""

    name = "snowblind"
    default_window_days = DEFAULT_WINDOW_S / 86400.0
    # The last integration decides, saturated at all.
    ignores = ("n_unsat_threshold", "integrations")

    def lazy_sources(self, exposure, thresholds, params, reader):
        """Saturated anywhere in the last integration of the exposure's last file."""
        last = exposure.files[-1]
        return [
            reader(
                last,
                thresholds,
                last.ngroups - 1,  # at most ngroups - 1 unsaturated: saturated at all
                params.n_pix_grow_sat,
                params.tile,
                integrations=(last.nints - 1,),
            )
        ]

    def stamp(self, start_mjd, end_mjd):
        """A source records the start of its exposure."""
        return start_mjd

    def masked(self, carry, start_mjd, window_days):
        """Masked where an earlier source started less than the window before this start."""
        return (carry > NEVER_SATURATED) & (start_mjd - carry < window_days)
