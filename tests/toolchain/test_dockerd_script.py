"""toolchain/dockerd.sh: quick when the engine answers, overlay2 -> vfs fallback, clear failures.

The start-up paths run against stand-in `docker` and `dockerd` commands on PATH (so a test never
touches the machine's real engine); one test checks the real engine the suite uses.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "toolchain" / "dockerd.sh"

# `docker info` answers once the fake engine wrote its state file.
FAKE_DOCKER = """#!/bin/sh
[ -f "$FAKE_STATE/up" ] || exit 1
echo "server fake, storage driver $(cat "$FAKE_STATE/up")"
"""
# Records each start; fails with the drivers listed in $FAKE_FAILING; hangs without answering
# when $FAKE_SILENT is set.
FAKE_DOCKERD = """#!/bin/sh
for arg in "$@"; do
  case $arg in --storage-driver=*) driver=${arg#*=} ;; --pidfile=*) pidfile=${arg#*=} ;; esac
done
echo $$ > "$pidfile"
echo "$driver" >> "$FAKE_STATE/starts"
case " $FAKE_FAILING " in
  *" $driver "*) echo "error initializing graphdriver: driver not supported: $driver"; exit 1 ;;
esac
[ -n "$FAKE_SILENT" ] || echo "$driver" > "$FAKE_STATE/up"
exec sleep 60
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dockerd.sh starts dockerd as root")


def _fake_engine(tmp_path: Path, **settings: str) -> dict[str, str]:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name, text in (("docker", FAKE_DOCKER), ("dockerd", FAKE_DOCKERD)):
        (fake_bin / name).write_text(text)
        (fake_bin / name).chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    return {
        **os.environ,
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "TMPDIR": str(tmp_path),
        "FAKE_STATE": str(state),
        "FAKE_FAILING": "",
        "FAKE_SILENT": "",
        "LIFTLOCK_DOCKERD_LOG": str(tmp_path / "log" / "dockerd.log"),
        "LIFTLOCK_DOCKERD_PIDFILE": str(tmp_path / "docker.pid"),
        "LIFTLOCK_DOCKERD_TIMEOUT": "5",
        **settings,
    }


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _starts(env: dict[str, str]) -> list[str]:
    path = Path(env["FAKE_STATE"]) / "starts"
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def stop_fake(tmp_path: Path) -> Iterator[None]:
    yield
    pidfile = tmp_path / "docker.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_running_engine_is_left_alone(tmp_path: Path) -> None:
    env = _fake_engine(tmp_path)
    (Path(env["FAKE_STATE"]) / "up").write_text("overlay2")
    result = _run(env)
    assert result.returncode == 0, result.stderr
    assert "Docker engine running" in result.stdout
    assert _starts(env) == []


def test_overlay2_failure_falls_back_to_vfs(tmp_path: Path, stop_fake: None) -> None:
    env = _fake_engine(tmp_path, FAKE_FAILING="overlay2")
    result = _run(env)
    assert result.returncode == 0, result.stderr
    assert _starts(env) == ["overlay2", "vfs"]
    assert "storage driver vfs" in result.stdout
    assert "driver not supported: overlay2" in result.stdout  # the log tail explains the retry
    # A second run finds it answering and starts nothing.
    assert _run(env).returncode == 0
    assert _starts(env) == ["overlay2", "vfs"]


def test_no_storage_driver_works_fails_naming_the_log(tmp_path: Path) -> None:
    env = _fake_engine(tmp_path, FAKE_FAILING="overlay2 vfs")
    result = _run(env)
    assert result.returncode == 1
    assert "failed to start with overlay2 and with vfs" in result.stderr
    assert env["LIFTLOCK_DOCKERD_LOG"] in result.stderr


def test_engine_that_never_answers_times_out_clearly(tmp_path: Path, stop_fake: None) -> None:
    env = _fake_engine(tmp_path, FAKE_SILENT="1", LIFTLOCK_DOCKERD_TIMEOUT="2")
    start = time.monotonic()
    result = _run(env)
    assert result.returncode == 1
    assert "did not answer 'docker info' within 2s" in result.stderr
    assert time.monotonic() - start < 20


@pytest.mark.docker
def test_real_engine_answers() -> None:
    # `make test` runs the script before the suite; this run must find the engine at once.
    start = time.monotonic()
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Docker engine running" in result.stdout
    assert time.monotonic() - start < 10
