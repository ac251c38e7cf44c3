"""Whether a process of this host still runs: what a temporary's owner is judged by."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host.

    Another user's process runs. A zombie does not: it has exited, and only waits for a
    parent to reap it, which a container whose first process is not an init may never do.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # no /proc (macOS), or it exited meanwhile
        return True
    return state != "Z"
