"""Start and stop the real server (`python -m ml.serve`, uvicorn) on 127.0.0.1 for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.serve.fixture_bundle import ROOT

STARTUP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    input_log: Path
    grpc_address: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(bundle: Path, workdir: Path, *extra: str) -> RunningServer:
    port = free_port()
    grpc_port = free_port()
    while grpc_port == port:
        grpc_port = free_port()
    log_path = workdir / "server.log"
    input_log = workdir / "inputs" / "inputs.jsonl"
    env = {**os.environ, "LIFTLOCK_BUNDLE": str(bundle), "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "-m", "ml.serve", "--host", "127.0.0.1", "--port", str(port),
        "--grpc-port", str(grpc_port), "--input-log", str(input_log), *extra,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = RunningServer(
        process, f"http://127.0.0.1:{port}", log_path, input_log, f"127.0.0.1:{grpc_port}"
    )
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(server.url + "/readyz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"server not ready after {STARTUP_SECONDS}s:\n{server.output()}")


def stop_server(server: RunningServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
