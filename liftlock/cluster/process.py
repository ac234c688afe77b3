"""The processes of the embedded cluster: started detached, tracked by PID file, stopped by PID.

Every component (registry, containerd, etcd, ...) runs in its own session with its output in
`logs/<component>.log`; `pids/<component>.pid` holds the PID it was started with and that
process's start time (stable across `exec`, unlike its command line), so a stale PID file never
makes `down` signal an unrelated process that reused the number. Waiting for a component polls
a check while the process is alive; an error names the component and the tail of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from liftlock.errors import LiftlockError

Log = Callable[[str], None]
LOG_TAIL_LINES = 12


class ClusterError(LiftlockError):
    """A component of the embedded cluster failed to start, stop or answer."""

    exit_code = 6


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Component:
    """One process of the cluster, known by name: where its PID file and log live."""

    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "pids" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The PID this setup started, when that process still runs (same start time)."""
        try:
            pid_text, _, started = self.pid_file.read_text(encoding="utf-8").partition("\n")
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        return (
            pid if started.strip() and start_time(pid) == started.strip() and _alive(pid) else None
        )

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, command: Sequence[str], *, env: dict[str, str] | None = None) -> int:
        """Start `command` detached (own session, so a Ctrl-C of `up` does not reach it)."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            try:
                process = subprocess.Popen(
                    list(command),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=env,
                )
            except OSError as error:
                raise ClusterError(f"{self.name}: cannot run {command[0]} ({error})") from error
        self.pid_file.write_text(f"{process.pid}\n{start_time(process.pid)}", encoding="utf-8")
        return process.pid

    def wait_until(self, ready: Callable[[], bool], *, what: str, timeout: float = 120) -> None:
        """Poll `ready` while the process lives; ClusterError naming the log when it dies."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                if ready():
                    return
            if not self.running():
                raise ClusterError(
                    f"{self.name} exited before {what}; its log {self.log_file} ends with:\n"
                    f"{log_tail(self.log_file)}"
                )
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{self.name}: not {what} after {timeout:.0f} s; its log {self.log_file} "
                    f"ends with:\n{log_tail(self.log_file)}"
                )
            time.sleep(0.1)

    def stop(self, *, grace: float = 15) -> int | None:
        """SIGTERM the process group this setup started, SIGKILL after `grace` seconds."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return pid


def start_time(pid: int) -> str:
    """When the process started, in clock ticks since boot (/proc/<pid>/stat field 22)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie child of ours has stopped already)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def run(
    command: Sequence[str], *, what: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """One short command of the set-up (ip, iptables, mount, openssl): failures name it."""
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, check=False, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ClusterError(f"{what}: {' '.join(command)} failed ({error})") from error
    if check and done.returncode != 0:
        raise ClusterError(
            f"{what}: `{' '.join(command)}` exited {done.returncode}: "
            f"{(done.stderr or done.stdout).strip()[-2000:]}"
        )
    return done
