"""One run at a time per store and per output directory.

A run holds a lease (``filelock.SoftFileLease``: a marker file made by exclusive
creation, which local disks and the shared file systems of clusters, NFS, Lustre and GPFS,
all provide, refreshed by a heartbeat thread) on ``OUTPUT_DIR/.miripersist.lock`` and
on ``.STORE.lock`` beside the store. A second run is refused at once while the holder's
process lives on this host. A lease left by a run that died is taken over: at once when
its process is gone from this host, or once its marker has not been refreshed for the
lease's duration when it was held from another host (a second run on another host waits
that long before it is refused). Beside each marker a small JSON file says which run holds
it, for the message of a refused run. Reading a store takes no lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator

from .errors import ConfigError

log = logging.getLogger(__name__)

#: Seconds a holder's marker may go unrefreshed before a run on another host takes it over;
#: every run on a store must use the same value (environment ``MIRIPERSIST_LOCK_LEASE``).
DEFAULT_LEASE = 60.0


def lease_seconds() -> float:
    """The lease duration in force (``MIRIPERSIST_LOCK_LEASE``, else 60 s)."""
    text = os.environ.get("MIRIPERSIST_LOCK_LEASE", "")
    try:
        value = float(text) if text else DEFAULT_LEASE
    except ValueError:
        raise ConfigError(f"MIRIPERSIST_LOCK_LEASE={text!r} is not a number of seconds") from None
    if not 0 < value < 1e6:
        raise ConfigError(f"MIRIPERSIST_LOCK_LEASE={text!r} must be positive seconds")
    return value


def lock_paths(output_dir: str, store: str) -> list[str]:
    """The markers a run on ``output_dir`` with ``store`` holds, in the order it takes them."""
    parent, name = os.path.split(os.path.abspath(store))
    return [
        os.path.join(os.path.abspath(output_dir), ".miripersist.lock"),
        os.path.join(parent, f".{name}.lock"),
    ]


def _holder(marker: str) -> dict:
    """Who holds ``marker``, from its JSON note or, failing that, the marker itself."""
    with contextlib.suppress(OSError, ValueError):
        with open(marker + ".json") as fh:
            note = json.load(fh)
        if isinstance(note, dict):
            return note
    fields = {}
    with contextlib.suppress(OSError, UnicodeDecodeError):
        with open(marker) as fh:
            for line in fh:
                key, _, value = line.strip().partition("=")
                fields[key] = value
    return {"pid": fields.get("pid", "?"), "host": fields.get("host", "?"), "started": "?"}


def _describe(holder: dict) -> str:
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
        f"started {holder.get('started', '?')}"
    )


def _write_note(marker: str) -> None:
    note = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
    }
    tmp = f"{marker}.json.tmp-{socket.gethostname()}-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(note, fh)
    os.replace(tmp, marker + ".json")


def _acquire(marker: str, what: str, lease: float):
    from filelock import SoftFileLease, Timeout

    existed = os.path.exists(marker)
    before = _holder(marker) if existed else None
    lock = SoftFileLease(marker, lease_duration=lease, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _holder(marker)
        if holder.get("host") == socket.gethostname():
            raise ConfigError(
                f"{what}: in use by another run ({_describe(holder)}); "
                "run again once it has finished"
            ) from None
        # Held from another host: it may have died there. Its heartbeat refreshes the
        # marker every third of the lease; an unrefreshed marker for a whole lease is dead.
        log.warning(
            "%s: held by a run on %s; waiting up to %.0f s to see whether it is alive",
            what,
            holder.get("host"),
            1.5 * lease,
        )
        try:
            lock.acquire(timeout=1.5 * lease)
        except Timeout:
            raise ConfigError(
                f"{what}: in use by another run ({_describe(holder)}); "
                "run again once it has finished"
            ) from None
    if before is not None:
        log.warning("%s: took over the lock of a run that died (%s)", what, _describe(before))
    _write_note(marker)
    return lock


@contextlib.contextmanager
def exclusive(output_dir: str, store: str) -> Iterator[None]:
    """Hold the run's locks on ``output_dir`` and ``store`` for the duration of the block.

    Raises
    ------
    ConfigError
        If another run holds either (exit code 2); nothing is written then.
    """
    lease = lease_seconds()
    held: list = []
    try:
        for marker, what in zip(lock_paths(output_dir, store), (output_dir, store), strict=True):
            held.append((marker, _acquire(marker, what, lease)))
        yield
    finally:
        for marker, lock in reversed(held):
            with contextlib.suppress(OSError):
                os.unlink(marker + ".json")
            lock.release()
