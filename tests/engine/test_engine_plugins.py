"""The plugins a killed engine leaves behind are stopped by the host that outlives it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from liftlock.engine.children import EnginePlugins, _stat


def test_orphaned_plugins_of_a_killed_engine_are_stopped(tmp_path: Path) -> None:
    plugin = tmp_path / "pulumi-resource-fake"
    plugin.symlink_to("/bin/sleep")  # its process name says it is a Pulumi plugin
    other = tmp_path / "not-a-plugin"
    other.symlink_to("/bin/sleep")
    engine = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            f"a = subprocess.Popen([{str(plugin)!r}, '600'])\n"
            f"b = subprocess.Popen([{str(other)!r}, '600'])\n"
            "print(a.pid, b.pid, flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert engine.stdout is not None
    plugin_pid, other_pid = (int(x) for x in engine.stdout.readline().split())
    try:
        plugins = EnginePlugins(engine.pid)
        plugins.remember()
        assert list(plugins.seen) == [plugin_pid]
        assert plugins.orphans() == []  # the engine still runs: not ours to stop

        engine.send_signal(signal.SIGKILL)
        engine.wait()
        started = time.monotonic()
        assert plugins.stop_orphans() == [plugin_pid]
        assert time.monotonic() - started < 5
        time.sleep(0.2)
        stat = _stat(plugin_pid)
        assert stat is None or (stat[1] != engine.pid and plugin_pid not in plugins.orphans())
        assert _stat(other_pid) is not None  # only pulumi plugins are stopped
    finally:
        for pid in (plugin_pid, other_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
