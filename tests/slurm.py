"""A real single-node SLURM (Debian's slurm-wlm and munge) for the tests, started by hand.

Everything lives in one directory of its own: munge's key and socket, slurm.conf, the
state, spool, logs and pid files, on ports of its own, so it shares nothing with another
SLURM on the machine. Commands reach it through ``SLURM_CONF`` (:attr:`Slurm.env`). It is
stopped by the PIDs it started, never by name.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: What must be installed (``.ci/run`` installs it: apt-get install slurm-wlm munge).
PROGRAMS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "srun")

CONF = """\
ClusterName=miripersist-tests
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={root}/munge/socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=600
KillWait={kill_wait}
MpiDefault=none
SlurmdParameters=config_overrides
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory}
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""

#: The states a job ends in (GONE: no longer known).
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "GONE")

#: CPUs the node offers, more than a small machine has (SlurmdParameters=config_overrides):
#: a batch job and two one-core worker jobs run at once, as on a real cluster's nodes.
CPUS = 4

#: Seconds between SLURM's SIGTERM and its SIGKILL of a job (a site's KillWait is often 30).
KILL_WAIT = 10


def missing() -> list[str]:
    """The programs a SLURM needs that this machine lacks."""
    return [p for p in PROGRAMS if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _program(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _pid(path: Path, comm: str, timeout: float = 15.0) -> int:
    """The PID a daemon wrote, once it has, checked to be that daemon (PIDs are reused)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            pid = int(path.read_text())
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                return pid
        time.sleep(0.1)
    raise RuntimeError(f"{comm} did not start (pid file {path})")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: PID 1 here may not reap daemons)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@dataclass
class Slurm:
    """A running SLURM: its directory, environment for commands, and the daemons' PIDs."""

    root: Path
    env: dict[str, str]
    pids: dict[str, int]

    @classmethod
    def start(cls) -> Slurm:
        """munged, slurmctld and slurmd, started; returns once the node is idle."""
        root = Path(tempfile.mkdtemp(prefix="miripersist-slurm-"))
        root.chmod(0o755)  # munged runs as munge and must reach its socket
        munge = pwd.getpwnam("munge")
        (root / "munge").mkdir()
        os.chown(root / "munge", munge.pw_uid, munge.pw_gid)
        for name in ("state", "spool"):
            (root / name).mkdir()
        as_munge = ["runuser", "-u", "munge", "--"]
        subprocess.run(
            [*as_munge, _program("mungekey"), "--create", f"--keyfile={root}/munge/key"], check=True
        )
        subprocess.run(
            [
                *as_munge,
                _program("munged"),
                f"--socket={root}/munge/socket",
                f"--key-file={root}/munge/key",
                f"--pid-file={root}/munge/pid",
                f"--log-file={root}/munge/log",
                f"--seed-file={root}/munge/seed",
            ],
            check=True,
        )
        pids = {"munged": _pid(root / "munge" / "pid", "munged")}
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        conf = CONF.format(
            root=root,
            ctld_port=_free_port(),
            d_port=_free_port(),
            kill_wait=KILL_WAIT,
            cpus=CPUS,
            memory=int(memory * 0.85),
        )
        (root / "slurm.conf").write_text(conf)
        env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
        slurm = cls(root, env, pids)
        try:
            subprocess.run([_program("slurmctld"), "-c"], env=env, check=True)
            pids["slurmctld"] = _pid(root / "slurmctld.pid", "slurmctld")
            subprocess.run([_program("slurmd"), "-N", "localhost"], env=env, check=True)
            pids["slurmd"] = _pid(root / "slurmd.pid", "slurmd")
            slurm.wait_idle()
        except BaseException:
            slurm.stop()
            raise
        return slurm

    def run(self, *command: str, **kwargs) -> subprocess.CompletedProcess:
        """A SLURM command against this SLURM; its output as text."""
        return subprocess.run(command, env=self.env, capture_output=True, text=True, **kwargs)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Return once the node is idle (no job on it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run("sinfo", "-h", "-o", "%T").stdout.strip()
            if state == "idle":
                return
            time.sleep(0.2)
        raise RuntimeError(f"the SLURM node is {state!r}, not idle ({self.root}/slurmd.log)")

    def sbatch(self, script: Path, *options: str, cwd: Path | None = None) -> str:
        """Submit ``script``; its job id."""
        done = self.run("sbatch", "--parsable", *options, str(script), cwd=cwd, check=True)
        return done.stdout.strip().split(";")[0]

    def state(self, job: str) -> str:
        """A job's state (PENDING, RUNNING, COMPLETED, CANCELLED, FAILED, TIMEOUT ...)."""
        shown = self.run("scontrol", "show", "job", job).stdout
        found = re.search(r"JobState=(\S+)", shown)
        return found[1] if found else "GONE"

    def exit_code(self, job: str) -> int:
        """A finished job's exit code (its script's)."""
        shown = self.run("scontrol", "show", "job", job).stdout
        return int(re.search(r"ExitCode=(\d+):", shown)[1])

    def wait(self, job: str, until: tuple[str, ...] = ENDED, timeout: float = 300.0) -> str:
        """Wait for ``job`` to reach one of ``until``; that state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(job)
            if state in until:
                return state
            time.sleep(0.2)
        raise TimeoutError(f"job {job} is still {state} after {timeout:g} s")

    def queue(self) -> list[str]:
        """The jobs pending or running, as ``ID NAME STATE``."""
        shown = self.run("squeue", "-h", "-o", "%i %j %T").stdout
        return [line for line in shown.splitlines() if line.strip()]

    def stop(self) -> None:
        """Cancel every job, stop the daemons by their PIDs and remove the directory."""
        if "slurmctld" in self.pids:
            self.run("scancel", "--user", "root", "--full")
            deadline = time.monotonic() + KILL_WAIT + 10
            while self.queue() and time.monotonic() < deadline:
                time.sleep(0.2)
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)
