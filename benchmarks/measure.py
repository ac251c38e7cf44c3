"""Run one command and measure it: wall time, peak RSS, bytes read and written.

The child is waited for without being reaped, so its /proc I/O counters can still be
read; then it is reaped with wait4 for its CPU times.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time


def _tree_hwm_kib(pid: int) -> int:
    """Sum of VmHWM (peak RSS since exec) over a process and its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return total


def measure(cmd: list[str], env: dict | None = None, interval: float = 0.02, preexec=None) -> dict:
    """Run ``cmd``; return wall seconds, peak RSS (MiB), bytes read and written.

    Peak RSS is sampled every ``interval`` seconds as the summed VmHWM of the process tree
    (ru_maxrss is useless here: Linux carries the parent's peak into a forked child).
    """
    # stderr to a file, not a pipe: a chatty child (jwst logs every step) would fill a pipe
    # nobody reads until it exits, and block.
    err_file = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=err_file, preexec_fn=preexec
    )
    peak = 0
    while True:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None:
            break
        peak = max(peak, _tree_hwm_kib(proc.pid))
        time.sleep(interval)
    wall = time.perf_counter() - t0
    counters = {}
    try:
        with open(f"/proc/{proc.pid}/io") as fh:
            counters = {k: int(v) for k, v in (line.split(": ") for line in fh)}
    except OSError:
        pass
    _, status, usage = os.wait4(proc.pid, 0)
    err_file.seek(0)
    err = err_file.read().decode(errors="replace")
    err_file.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    return {
        "wall_s": wall,
        "peak_rss_mib": peak / 1024.0,
        "read_bytes": counters.get("rchar", 0),
        "written_bytes": counters.get("wchar", 0),
        "user_s": usage.ru_utime,
        "system_s": usage.ru_stime,
    }
