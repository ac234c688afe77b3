"""Where the embedded cluster keeps its files and which 127.0.0.1 ports it listens on."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

#: the one embedded cluster of this machine: a bridge, a pod range and a kubelet port are global
CLUSTER_NAME = "liftlock"
CONTEXT_NAME = "liftlock-embedded"


def loopback_hostname() -> str:
    """The node's name: the API server reaches the kubelet by it (it serves on 127.0.0.1 only),
    so it must resolve to loopback: this machine's hostname when it does, else `localhost`."""
    name = socket.gethostname().lower()
    try:
        resolved = socket.gethostbyname(name)
    except OSError:
        return "localhost"
    return name if resolved.startswith("127.") else "localhost"


NODE_NAME = loopback_hostname()
BRIDGE = "liftlock0"
#: pods get addresses here; the bridge holds .1 (the node IP), with no route off the machine
POD_SUBNET = "10.244.0.0/24"
BRIDGE_ADDRESS = "10.244.0.1"
SERVICE_SUBNET = "10.96.0.0/24"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"


def default_state_dir() -> Path:
    explicit = os.environ.get("LIFTLOCK_CLUSTER_DIR")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("LIFTLOCK_CACHE", Path.home() / ".cache" / "liftlock"))
    return base / "cluster"


@dataclass(frozen=True)
class Layout:
    """Files under `state_dir` (data that survives `down`: registry blobs, images) and
    `run_dir` (PIDs, sockets, logs: gone after `down`)."""

    state_dir: Path
    registry_port: int = 5000
    apiserver_port: int = 6443
    etcd_client_port: int = 12379
    etcd_peer_port: int = 12380

    @classmethod
    def default(cls) -> Layout:
        port = int(os.environ.get("LIFTLOCK_REGISTRY_PORT", "5000"))
        return cls(state_dir=default_state_dir(), registry_port=port)

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def registry(self) -> str:
        return f"127.0.0.1:{self.registry_port}"

    @property
    def registry_data(self) -> Path:
        return self.state_dir / "registry-data"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"
