"""The node's container runtime: Debian's containerd (it comes with docker.io) with a config,
root and socket of its own, separate from the Docker engine's, and the CNI bridge it attaches pods
to.

The CRI pulls from the embedded registry over plain HTTP (certs.d/<registry>/hosts.toml) and
uses the pause image `liftlock.cluster.pause` pushed there. The CNI bridge has no gateway and no
masquerading: pods cannot reach off the machine; the `firewall` plugin lets pod traffic through
the host's FORWARD chain (DROP when a Docker engine set it).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from liftlock.cluster.layout import BRIDGE, BRIDGE_ADDRESS, POD_SUBNET, Layout
from liftlock.cluster.process import ClusterError, Component, Log, run

CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PACKAGE = "containernetworking-plugins"
CNI_PLUGINS = ("bridge", "host-local", "loopback", "firewall")

CONTAINERD_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # No CAP_SYS_RESOURCE on this kind of machine: the sandbox's -998 oom_score_adj is refused.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
"""

HOSTS_TOML = """\
server = "http://{registry}"
[host."http://{registry}"]
  capabilities = ["pull", "resolve"]
"""


def containerd_component(layout: Layout) -> Component:
    return Component("containerd", layout.run_dir)


def socket_path(layout: Layout) -> Path:
    return layout.run_dir / "containerd.sock"


def cni_conflist(layout: Layout) -> dict[str, object]:
    return {
        "cniVersion": "0.4.0",
        "name": "liftlock",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                # The network rule: no gateway, no masquerading, no route off the machine.
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "rangeStart": "10.244.0.10"}]],
                    "dataDir": str(layout.state_dir / "cni" / "ipam"),
                },
            },
            {"type": "loopback"},
            {"type": "firewall", "backend": "iptables"},
        ],
    }


def ensure_cni_plugins() -> None:
    missing = [name for name in CNI_PLUGINS if not (CNI_BIN_DIR / name).is_file()]
    if missing:
        raise ClusterError(
            f"containerd: CNI plugins {', '.join(missing)} not in {CNI_BIN_DIR}",
            hint=f"apt-get install -y {CNI_PACKAGE}",
        )


def write_config(layout: Layout, pause_image: str) -> Path:
    registry_dir = layout.run_dir / "certs.d" / layout.registry
    registry_dir.mkdir(parents=True, exist_ok=True)
    (registry_dir / "hosts.toml").write_text(
        HOSTS_TOML.format(registry=layout.registry), encoding="utf-8"
    )
    cni_conf = layout.run_dir / "cni" / "net.d"
    cni_conf.mkdir(parents=True, exist_ok=True)
    (cni_conf / "10-liftlock.conflist").write_text(
        json.dumps(cni_conflist(layout), indent=2), encoding="utf-8"
    )
    config = layout.run_dir / "containerd.toml"
    config.write_text(
        CONTAINERD_CONFIG.format(
            root=layout.state_dir / "containerd",
            state=layout.run_dir / "containerd-state",
            socket=socket_path(layout),
            pause_image=pause_image,
            cni_bin=CNI_BIN_DIR,
            cni_conf=cni_conf,
            certs=layout.run_dir / "certs.d",
        ),
        encoding="utf-8",
    )
    return config


def bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


#: Below the bridge's own route (metric 0): a pod address never takes the default route, even
#: while the bridge is gone (a probe to a pod of a bridge someone deleted is dropped here).
POD_GUARD_METRIC = "4242"


def ensure_bridge() -> None:
    """The pod bridge with the node address (the kubelet's node IP; never a gateway)."""
    if not bridge_exists():
        run(["ip", "link", "add", BRIDGE, "type", "bridge"], what="pod bridge")
    addresses = run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE], what="pod bridge").stdout
    if f"{BRIDGE_ADDRESS}/" not in addresses:
        run(["ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE], what="pod bridge")
    run(["ip", "link", "set", BRIDGE, "up"], what="pod bridge")
    run(
        ["ip", "route", "replace", "blackhole", POD_SUBNET, "metric", POD_GUARD_METRIC],
        what="pod range guard route",
    )


def delete_bridge() -> bool:
    run(
        ["ip", "route", "del", "blackhole", POD_SUBNET, "metric", POD_GUARD_METRIC],
        what="pod range guard route",
        check=False,
    )
    if not bridge_exists():
        return False
    run(["ip", "link", "delete", BRIDGE], what="pod bridge")
    return True


def start_containerd(layout: Layout, pause_image: str, log: Log) -> None:
    containerd = containerd_component(layout)
    if containerd.running():
        log(f"[cluster] containerd: running ({socket_path(layout)})")
        return
    binary = shutil.which("containerd")
    if binary is None:
        raise ClusterError("containerd: not found", hint="apt-get install -y containerd runc")
    ensure_cni_plugins()
    started = time.monotonic()
    config = write_config(layout, pause_image)
    socket_path(layout).unlink(missing_ok=True)
    containerd.start([binary, "--config", str(config)])
    containerd.wait_until(
        lambda: socket_path(layout).is_socket(), what=f"listening on {socket_path(layout)}"
    )
    log(f"[cluster] containerd: ready in {time.monotonic() - started:.1f}s")


def stop_containerd(layout: Layout, log: Log) -> None:
    pid = containerd_component(layout).stop()
    if pid is not None:
        log(f"[cluster] containerd: stopped (pid {pid})")
