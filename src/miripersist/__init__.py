"""Mask JWST MIRI persistence from saturation, out of core.

The public entry point is :func:`miripersist.run`, which returns the run's
:class:`xarray.Dataset` (the zarr store). The command line ``miripersist``
wraps it.
"""

from importlib.metadata import PackageNotFoundError, version

from .engine import Parameters, run
from .errors import ConfigError, InputError, MiripersistError

try:
    __version__ = version("miripersist")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ConfigError",
    "InputError",
    "MiripersistError",
    "Parameters",
    "__version__",
    "run",
]
