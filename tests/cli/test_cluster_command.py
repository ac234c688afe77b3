"""`liftlock cluster`: status of a cluster that is not running, the registry alone up and down,
and a component that cannot start named with its fix; in a temporary state folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.serve.server_process import free_port

Run = Callable[..., tuple[int, str]]


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIFTLOCK_CLUSTER_DIR", str(tmp_path / "cluster"))
    monkeypatch.setenv("LIFTLOCK_REGISTRY_PORT", str(free_port()))
    return tmp_path / "cluster"


def test_status_of_a_stopped_cluster_lists_every_component(state: Path, run: Run) -> None:
    code, out = run("cluster", "status")
    assert code == 1
    for name in ("registry", "containerd", "etcd", "kube-apiserver", "kubelet", "kube-proxy"):
        assert f"{name} " in out and "stopped" in out
    assert "node Ready: False" in out


def test_the_registry_alone_comes_up_idempotently_and_goes_down(state: Path, run: Run) -> None:
    import os

    import httpx

    port = os.environ["LIFTLOCK_REGISTRY_PORT"]
    code, out = run("cluster", "up", "--registry-only")
    assert code == 0, out
    assert f"registry: ready on 127.0.0.1:{port}" in out
    assert httpx.get(f"http://127.0.0.1:{port}/v2/").status_code == 200
    code, out = run("cluster", "up", "--registry-only")
    assert code == 0 and "registry: running" in out, out
    code, out = run("cluster", "down")
    assert code == 0 and "registry: stopped" in out, out
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)


def test_a_port_taken_by_something_else_is_named(state: Path, run: Run) -> None:
    import os
    import subprocess
    import sys
    import time

    port = os.environ["LIFTLOCK_REGISTRY_PORT"]
    squatter = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            str(state.parent),
            port,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import httpx

        for _ in range(50):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        code, out = run("cluster", "up", "--registry-only")
        assert code == 6, out
        assert "registry:" in out and f"127.0.0.1:{port}" in out and "fix:" in out
    finally:
        squatter.kill()
        squatter.wait()
