"""What a method may read of an exposure's files, lazily: the argument of its ``sources``.

A :class:`Reads` carries what every read of the run shares (the thresholds of the
exposure's frame, the saturation step's growth, the tile), so that a method names only
what its rule decides: which files, which integrations, how many unsaturated groups.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dask.array as da
    from dask.delayed import Delayed

    from .inventory import Exposure


@dataclass(frozen=True)
class Reads:
    """The lazy reads of one exposure's files.

    Attributes
    ----------
    thresholds : object
        The exposure's SATURATION thresholds, shared by the graph (a ``dask.delayed``
        :class:`~miripersist.thresholds.Window`), or None for files that carry GROUPDQ.
    n_pix_grow_sat : int
        Growth of saturated pixels, as the saturation step's parameter.
    tile : tuple of int
        Tile shape (rows, columns): the chunks of every array read.
    """

    thresholds: Delayed | None
    n_pix_grow_sat: int
    tile: tuple[int, int]

    def saturated(
        self,
        files: Sequence[Exposure],
        n_unsat: int,
        integrations: str | Sequence[int] = "first",
    ) -> da.Array:
        """Pixels with at most ``n_unsat`` unsaturated groups (and saturated at all).

        In any of ``files``; per file in its first integration (``"first"``), in any
        (``"all"``) or in those named (0-indexed). A boolean (ysize, xsize) array.
        """
        from .reader import lazy_sources

        every = integrations == "all"
        chosen = None if isinstance(integrations, str) else tuple(integrations)
        parts = [
            lazy_sources(
                f,
                self.thresholds,
                n_unsat,
                self.n_pix_grow_sat,
                self.tile,
                all_integrations=every,
                integrations=chosen,
            )
            for f in files
        ]
        return functools.reduce(operator.or_, parts)

    def first_saturated(self, file: Exposure) -> da.Array:
        """Each pixel's first SATURATED group per integration of ``file`` (int16, nints x y x x)."""
        from .reader import lazy_first_saturated

        return lazy_first_saturated(file, self.thresholds, self.n_pix_grow_sat, self.tile)

    def group_times(self, file: Exposure) -> da.Array:
        """The times (Unix s) of every group of ``file``, (nints, ngroups) float64."""
        import dask
        import dask.array as da
        import numpy as np

        from .grouptimes import file_group_times

        # An array rather than a plain delayed object: dask's compute regroups nested lists
        # that mix arrays with delayed objects (arrays first), which would pair them wrongly.
        return da.from_delayed(
            dask.delayed(file_group_times, pure=True)(file.path, file.nints, file.ngroups),
            (file.nints, file.ngroups),
            np.float64,
        )
