"""The progress bar of ``miripersist run`` and ``demo``."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """A one-line progress bar on stderr, shown only on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.t0 = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        """Redraw the bar for ``done`` of ``total`` exposures."""
        if not self.enabled:
            return
        width = 30
        fill = int(width * done / max(total, 1))
        rate = done / max(time.monotonic() - self.t0, 1e-9)
        sys.stderr.write(
            f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} exposures ({rate:.1f}/s)"
        )
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
