"""The embedded image registry: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1.

Debian's package also ships a systemd unit listening on every address; it is never used. This
module runs the binary itself with a config that binds 127.0.0.1 and keeps the blobs under the
cluster's state folder (they survive `down`, so a rebuilt image pushes only changed layers).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import httpx

from liftlock.cluster.layout import Layout
from liftlock.cluster.process import ClusterError, Component, Log

PACKAGE = "docker-registry"
BINARY = "docker-registry"

CONFIG_TEMPLATE = """\
version: 0.1
log:
  level: warn
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: {address}
  headers:
    X-Content-Type-Options: [nosniff]
"""


def component(layout: Layout) -> Component:
    return Component("registry", layout.run_dir)


def ensure_installed(log: Log) -> str:
    """The registry binary; `apt-get install docker-registry` when missing (we are root)."""
    found = shutil.which(BINARY)
    if found:
        return found
    log(f"[cluster] registry: installing {PACKAGE} (apt-get) ...")
    # policy-rc.d keeps Debian's unit (which would listen on 0.0.0.0:5000) from starting.
    done = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE],
        capture_output=True,
        text=True,
        check=False,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    found = shutil.which(BINARY)
    if done.returncode != 0 or not found:
        raise ClusterError(
            f"registry: apt-get install {PACKAGE} failed: {done.stderr.strip()[-1000:]}",
            hint=f"apt-get update && apt-get install -y {PACKAGE}",
        )
    return found


def answers(layout: Layout) -> bool:
    try:
        return httpx.get(f"http://{layout.registry}/v2/", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start(layout: Layout, log: Log) -> None:
    registry = component(layout)
    if registry.running() and answers(layout):
        log(f"[cluster] registry: running on {layout.registry}")
        return
    if answers(layout) or port_taken(layout.registry_port):
        raise ClusterError(
            f"registry: something else already listens on {layout.registry}",
            hint="stop it, or set LIFTLOCK_REGISTRY_PORT to a free port",
        )
    binary = ensure_installed(log)
    started = time.monotonic()
    layout.registry_data.mkdir(parents=True, exist_ok=True)
    config = layout.run_dir / "registry.yml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        CONFIG_TEMPLATE.format(data=layout.registry_data, address=layout.registry),
        encoding="utf-8",
    )
    registry.start([binary, "serve", str(config)])
    registry.wait_until(lambda: answers(layout), what=f"answering on {layout.registry}")
    log(f"[cluster] registry: ready on {layout.registry} in {time.monotonic() - started:.1f}s")


def stop(layout: Layout, log: Log) -> None:
    pid = component(layout).stop()
    if pid is not None:
        log(f"[cluster] registry: stopped (pid {pid})")
