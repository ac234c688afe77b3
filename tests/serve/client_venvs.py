"""Real V2 clients, each in its own pinned venv (they pin versions that conflict with ours and
with each other), created once under ~/.cache/liftlock/clients/<name>-<version> and reused.

A test runs client code in that venv through a script in tests/serve/v2_clients/ (`run_client`):
the script reads a JSON document on stdin and prints one JSON document; the test compares it with
what /v1 answered.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).with_name("v2_clients")
CACHE = Path(os.environ.get("LIFTLOCK_CLIENTS_CACHE", Path.home() / ".cache/liftlock/clients"))
INSTALL_SECONDS = 1200


@dataclass(frozen=True)
class ClientVenv:
    name: str
    pins: tuple[str, ...]

    @property
    def path(self) -> Path:
        return CACHE / self.name

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


TRITON = ClientVenv("tritonclient-2.73.0", ("tritonclient[http,grpc]==2.73.0",))
KSERVE = ClientVenv("kserve-0.21.0", ("kserve==0.21.0",))
MLSERVER = ClientVenv("mlserver-1.7.1", ("mlserver==1.7.1",))
# protoc for ml/serve/v2/grpc_predict_v2.proto: 1.70 bundles protoc 29, matching our protobuf 5.29.
GRPC_TOOLS = ClientVenv("grpcio-tools-1.70.0", ("grpcio-tools==1.70.0",))


def ensure_venv(venv: ClientVenv) -> Path:
    """The venv's python, installing the pins the first time (a lock makes parallel runs wait)."""
    stamp = venv.path / ".liftlock-installed"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == "\n".join(venv.pins):
            return venv.python
        shutil.rmtree(venv.path, ignore_errors=True)
        print(f"[clients] installing {' '.join(venv.pins)} into {venv.path} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv.path)], check=True)
        subprocess.run(
            [
                str(venv.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                *venv.pins,
            ],
            check=True, timeout=INSTALL_SECONDS,
        )  # fmt: skip
        stamp.write_text("\n".join(venv.pins))
    return venv.python


def run_client(venv: ClientVenv, script: str, payload: Any, timeout: float = 180) -> Any:
    """Run v2_clients/`script` with the venv's python, `payload` as JSON on stdin; its last
    stdout line as JSON."""
    python = ensure_venv(venv)
    result = subprocess.run(
        [str(python), str(SCRIPTS / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{venv.name} client script failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":  # warm the cache: python -m tests.serve.client_venvs
    for each in (TRITON, KSERVE, MLSERVER, GRPC_TOOLS):
        print(ensure_venv(each))
