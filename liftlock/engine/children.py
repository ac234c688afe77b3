"""The processes the language host starts (programs, policy packs, plugins, pip), and their end.

Each child gets its own process group: the engine stops the host by interrupting the host's
group, and the host then stops its children itself, in order and without tracebacks (SIGTERM,
then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

STOP_GRACE_SECONDS = 3.0
_CHUNK = 64 * 1024


class ChildProcesses:
    """Starts children and stops all of them on shutdown or cancellation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen[bytes]] = set()
        self._closed = False

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None,
        capture: bool,
    ) -> subprocess.Popen[bytes]:
        """Start `argv`; with `capture`, its stdout/stderr are pipes, else the host's own."""
        with self._lock:
            if self._closed:
                raise ChildrenClosedError("the language host is shutting down")
            pipe = subprocess.PIPE if capture else None
            process = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=str(cwd) if cwd else None,
                stdin=subprocess.DEVNULL,
                stdout=pipe,
                stderr=pipe,
                process_group=0,
            )
            self._live.add(process)
        return process

    def wait(self, process: subprocess.Popen[bytes]) -> int:
        try:
            return process.wait()
        finally:
            with self._lock:
                self._live.discard(process)

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """Terminate `process` (and its group) if it still runs; kill it after the grace period."""
        if process.poll() is not None:
            return
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()

    def stop_all(self, *, close: bool = False) -> None:
        with self._lock:
            live = list(self._live)
            self._closed = self._closed or close
        threads = [threading.Thread(target=self.stop, args=(p,), daemon=True) for p in live]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


class ChildrenClosedError(RuntimeError):
    """A child was requested after shutdown began."""


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stream_output(process: subprocess.Popen[bytes]) -> Iterator[tuple[str, bytes]]:
    """("stdout"|"stderr", chunk) as the child writes them, until both pipes close.

    Chunks are forwarded as soon as they are read (not per line): an analyzer plugin's first
    stdout line is the port the engine waits for.
    """
    chunks: queue.Queue[tuple[str, bytes | None]] = queue.Queue()

    def pump(name: str, fd: int) -> None:
        try:
            while chunk := os.read(fd, _CHUNK):
                chunks.put((name, chunk))
        except OSError:
            pass
        finally:
            chunks.put((name, None))

    pipes = {"stdout": process.stdout, "stderr": process.stderr}
    open_pipes = 0
    for name, pipe in pipes.items():
        if pipe is not None:
            threading.Thread(target=pump, args=(name, pipe.fileno()), daemon=True).start()
            open_pipes += 1
    while open_pipes:
        name, chunk = chunks.get()
        if chunk is None:
            open_pipes -= 1
            continue
        yield name, chunk


def exit_status(returncode: int) -> int:
    """A shell-style status: 128+N when the child died of signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(command name, parent pid, start time) of a process from /proc, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, int(fields[1]), int(fields[19])


class EnginePlugins:
    """The plugins the engine started beside this host (providers, analyzers).

    When the engine is killed (SIGKILL, a lost runner) nothing stops them: the engine's Go
    providers only notice after their minutes-long health-check interval. The host outlives the
    engine by a second or two (it watches it), so it remembers the engine's `pulumi-*` children
    while the engine runs and, once the engine is gone, stops those that are still orphans.
    Linux only (/proc); elsewhere it does nothing.
    """

    def __init__(self, engine_pid: int) -> None:
        self.engine_pid = engine_pid
        self.seen: dict[int, int] = {}  # pid -> start time (a reused pid is not ours)

    def remember(self) -> None:
        try:
            pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
        except OSError:
            return
        for pid in pids:
            stat = _stat(pid)
            plugin = stat is not None and stat[0].startswith("pulumi-") and pid != os.getpid()
            if plugin and stat is not None and stat[1] == self.engine_pid:
                self.seen[pid] = stat[2]

    def orphans(self) -> list[int]:
        """Remembered plugins still running, no longer children of the engine."""
        found = []
        for pid, started in self.seen.items():
            stat = _stat(pid)
            if stat and stat[2] == started and stat[1] != self.engine_pid:
                found.append(pid)
        return found

    def stop_orphans(self) -> list[int]:
        stopped = self.orphans()
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = STOP_GRACE_SECONDS
        while stopped and deadline > 0 and any(pid in self.orphans() for pid in stopped):
            threading.Event().wait(0.1)
            deadline -= 0.1
        for pid in self.orphans():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return stopped
