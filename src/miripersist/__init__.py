"""Mask JWST MIRI persistence from saturation, out of core.

The public entry point is :func:`miripersist.run`, which returns the run's
:class:`xarray.Dataset` (the zarr store). The command line ``miripersist``
wraps it. Heavy modules load on first use, so the command line starts fast.
"""

from .errors import ConfigError, InputError, MiripersistError

__all__ = [
    "Batch",
    "ConfigError",
    "InputError",
    "MiripersistError",
    "Parameters",
    "PersistenceMaskStep",
    "__version__",
    "add_to_memory",
    "batch_client",
    "memory_status",
    "run",
]


def __getattr__(name: str):
    import importlib

    if name == "__version__":  # importlib.metadata costs 40-80 ms: not for ``--help``
        from importlib.metadata import PackageNotFoundError, version

        try:
            globals()["__version__"] = version("miripersist")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            globals()["__version__"] = "0.0.0"
        return globals()["__version__"]
    if name in ("Parameters", "run", "add_to_memory"):
        return getattr(importlib.import_module(".engine", __name__), name)
    if name == "Batch":
        return importlib.import_module(".batch", __name__).Batch
    if name == "batch_client":
        return importlib.import_module(".cluster", __name__).batch_client
    if name == "memory_status":
        return importlib.import_module(".remember", __name__).status
    if name in ("simulate", "report"):
        return importlib.import_module(f".{name}", __name__)
    if name == "PersistenceMaskStep":
        return importlib.import_module(".step", __name__).PersistenceMaskStep
    raise AttributeError(f"module 'miripersist' has no attribute {name!r}")
