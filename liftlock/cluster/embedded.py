"""`liftlock cluster up | down | status`: the embedded registry and single-node cluster.

`up` starts, in order and each only when not running already (so it is idempotent): the
registry, the pause image, the pod bridge, containerd, etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kubelet, kube-proxy, then cluster DNS; it writes the
kubeconfig (context `liftlock-embedded`) the stacks use. `down` drains the node (so the runtime
tears every pod's network down), stops each process by the PID it was started with, runs
kube-proxy's iptables clean-up, unmounts the kubelet's root, removes the kubepods cgroups, the
bridge, the CNI chains, netns entries and log links that `up` made, and nothing else: the host is
left as it was. Data (registry blobs, etcd, images) stays in the state folder for the next `up`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from liftlock.cluster import flux, kubernetes, pause, registry, runtime
from liftlock.cluster.layout import BRIDGE, CONTEXT_NAME, NODE_NAME, Layout
from liftlock.cluster.process import ClusterError, Component, Log, run

#: iptables chains the CNI plugins, kube-proxy and the kubelet (canaries) create
CHAIN_PREFIXES = ("CNI-", "KUBE-")
IPTABLES_TABLES = ("filter", "nat", "mangle")
NETNS_DIR = Path("/run/netns")
CONTAINER_LOG_LINKS = Path("/var/log/containers")
CNI_CACHE = Path("/var/lib/cni")
CGROUP_ROOT = Path("/sys/fs/cgroup")
HOST_DIRS = (NETNS_DIR, CONTAINER_LOG_LINKS, CNI_CACHE)


@dataclass(frozen=True)
class HostBefore:
    """What the host had before the first `up`: `down` removes only what is new."""

    #: `table/chain` of every CNI-/KUBE- chain that existed
    chains: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    #: host folders the runtime and the kubelet create when missing (and which existed)
    existing_dirs: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> HostBefore | None:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.__dict__), encoding="utf-8")


def iptables_rules(table: str) -> list[str]:
    done = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
    return done.stdout.splitlines()


def cluster_chains() -> list[str]:
    """`table/chain` of the chains named like the cluster's (CNI-*, KUBE-*)."""
    return [
        f"{table}/{line.split()[1]}"
        for table in IPTABLES_TABLES
        for line in iptables_rules(table)
        if line.startswith("-N ") and line.split()[1].startswith(CHAIN_PREFIXES)
    ]


def netns_entries() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else []


def _before_path(layout: Layout) -> Path:
    return layout.run_dir / "host-before.json"


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    log: Path


@dataclass(frozen=True)
class ClusterStatus:
    components: list[ComponentStatus]
    registry: str
    kubeconfig: Path
    context: str
    node_ready: bool

    @property
    def running(self) -> bool:
        return all(c.pid is not None for c in self.components) and self.node_ready


def components(layout: Layout) -> list[Component]:
    """Every process of the cluster; Flux's once `up --gitops` started them."""
    return [
        registry.component(layout),
        runtime.containerd_component(layout),
        *(kubernetes.component(layout, name) for name in kubernetes.START_ORDER),
        *(flux.components(layout) if flux.enabled(layout) else []),
    ]


def status(layout: Layout) -> ClusterStatus:
    ready = False
    if kubernetes.component(layout, "kube-apiserver").running():
        with contextlib.suppress(ClusterError, OSError, subprocess.TimeoutExpired):
            ready = kubernetes.node_ready(layout)
    return ClusterStatus(
        components=[ComponentStatus(c.name, c.pid(), c.log_file) for c in components(layout)],
        registry=layout.registry,
        kubeconfig=layout.kubeconfig,
        context=CONTEXT_NAME,
        node_ready=ready,
    )


#: 127.0.0.1 ports every embedded cluster's kubelet listens on: one cluster per machine
KUBELET_PORTS = (10250, 10248)
#: The machine's one cluster: `up` and `down` hold the lock, the owner file names the state
#: folder whose cluster holds the bridge, the pod range and the kubelet's ports.
MACHINE_LOCK = Path("/run/lock/liftlock-cluster.lock")
MACHINE_OWNER = Path("/run/liftlock-cluster.owner")


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """One `up` or `down` at a time on this machine: a `down` still removing the bridge must
    not race an `up` of another state folder that found the bridge there."""
    MACHINE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with MACHINE_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def machine_owner() -> Path | None:
    """The state folder of the cluster that runs on this machine (None: none, or one whose
    processes are all gone)."""
    try:
        owner = Path(MACHINE_OWNER.read_text(encoding="utf-8").strip())
    except OSError:
        return None
    alive = any(c.running() for c in components(Layout(state_dir=owner)))
    return owner if alive else None


def owns_machine(layout: Layout) -> bool:
    """`down` removes what the machine shares (bridge, cgroups, chains) only for the owner."""
    owner = machine_owner()
    return owner is None or owner.resolve() == layout.state_dir.resolve()


def refuse_other_cluster(layout: Layout) -> None:
    """The bridge, the pod range and the kubelet's ports are the machine's: a second cluster
    (another state folder) would fight the first one for them."""
    if not owns_machine(layout):
        raise ClusterError(
            f"another cluster runs on this machine (state folder {machine_owner()}); one "
            "embedded cluster at a time: stop it with `liftlock cluster down` (with "
            f"LIFTLOCK_CLUSTER_DIR={machine_owner()} when it is not the default one)"
        )
    if kubernetes.component(layout, "kubelet").running():
        return
    for port in KUBELET_PORTS:
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise ClusterError(
                    f"kubelet: 127.0.0.1:{port} is taken, so another cluster runs on this "
                    f"machine (not the one in {layout.state_dir}); one embedded cluster at a "
                    "time: stop the other with `liftlock cluster down` (with its "
                    "LIFTLOCK_CLUSTER_DIR when it was started with one)"
                )


def up(layout: Layout, log: Log, *, registry_only: bool = False) -> ClusterStatus:
    if registry_only:
        return _up(layout, log, registry_only=True)
    with machine_lock():
        refuse_other_cluster(layout)
        MACHINE_OWNER.write_text(f"{layout.state_dir.resolve()}\n", encoding="utf-8")
        return _up(layout, log, registry_only=False)


def _up(layout: Layout, log: Log, *, registry_only: bool) -> ClusterStatus:
    started = time.monotonic()
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    if HostBefore.load(_before_path(layout)) is None:
        HostBefore(
            chains=cluster_chains(),
            netns=netns_entries(),
            existing_dirs=[str(d) for d in HOST_DIRS if d.exists()],
        ).save(_before_path(layout))
    registry.start(layout, log)
    if registry_only:
        return status(layout)
    pause_image = pause.push_pause_image(layout.registry, layout.run_dir / "pause")
    log(f"[cluster] pause image: {pause_image}")
    runtime.ensure_bridge()
    runtime.start_containerd(layout, pause_image, log)
    kubernetes.start_all(layout, log)
    # A node drained by `down` takes pods again.
    kubernetes.kubectl(layout, "uncordon", NODE_NAME)
    log(
        f"[cluster] up in {time.monotonic() - started:.1f}s: kubeconfig {layout.kubeconfig} "
        f"(context {CONTEXT_NAME}), registry {layout.registry}"
    )
    return status(layout)


def drain(layout: Layout, log: Log) -> None:
    """Delete every pod while the kubelet runs, so the runtime stops each sandbox and CNI
    releases its address, veth and netns; controllers recreate them Pending on the cordoned
    node, and the next `up` runs them again."""
    if not (
        kubernetes.component(layout, "kube-apiserver").running()
        and kubernetes.component(layout, "kubelet").running()
    ):
        return
    kubernetes.kubectl(layout, "cordon", NODE_NAME)
    kubernetes.kubectl(
        layout, "delete", "pods", "--all", "--all-namespaces", "--grace-period=5",
        "--wait=true", "--timeout=90s", timeout=120,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and running_sandboxes(layout):
        time.sleep(0.5)
    log("[cluster] node drained")


def running_sandboxes(layout: Layout) -> list[str]:
    done = subprocess.run(
        ["ctr", "--address", str(runtime.socket_path(layout)), "-n", "k8s.io", "tasks", "ls", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.split() if done.returncode == 0 else []


def stop_orphan_shims(layout: Layout, log: Log) -> None:
    """Shims of containerd tasks outlive containerd; ours name our socket on their command line."""
    socket = str(runtime.socket_path(layout))
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and socket.encode() in argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), 9)
                log(f"[cluster] stopped a leftover shim (pid {proc.name})")


def remove_cgroups() -> None:
    """kubepods cgroups (cgroupfs driver; v1 hierarchies and the unified one), deepest first."""
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else []:
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        folders = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for folder in [*folders, top]:
            with contextlib.suppress(OSError):
                folder.rmdir()


def remove_new_chains(before: HostBefore) -> None:
    """Chains that appeared since the first `up` (what kube-proxy's clean-up leaves: CNI's,
    the kubelet's canaries): unhook every jump to them, then flush and delete them."""
    new = [c for c in cluster_chains() if c not in before.chains]
    for table in IPTABLES_TABLES:
        names = {c.split("/", 1)[1] for c in new if c.startswith(f"{table}/")}
        if not names:
            continue
        for line in iptables_rules(table):
            words = shlex.split(line)  # -S quotes comments
            if not line.startswith("-A ") or words[1] in names or "-j" not in words:
                continue
            if words[words.index("-j") + 1] in names:
                run(["iptables", "-t", table, "-D", *words[1:]], what=f"iptables: unhook {line}")
        for name in names:
            run(["iptables", "-t", table, "-F", name], what=f"iptables: flush {table}/{name}")
        for name in names:
            run(["iptables", "-t", table, "-X", name], what=f"iptables: delete {table}/{name}")


def remove_pod_traces(layout: Layout, before: HostBefore) -> None:
    for name in set(netns_entries()) - set(before.netns):
        if name.startswith("cni-"):
            path = NETNS_DIR / name
            subprocess.run(["umount", str(path)], capture_output=True, check=False)
            path.unlink(missing_ok=True)
    logs = str(kubernetes.pod_logs_dir(layout).resolve())
    if CONTAINER_LOG_LINKS.is_dir():
        for link in CONTAINER_LOG_LINKS.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(logs):
                link.unlink()
    if CNI_CACHE.is_dir():
        for cached in CNI_CACHE.glob("results/liftlock-*"):
            cached.unlink(missing_ok=True)
    for folder in HOST_DIRS:
        if str(folder) in before.existing_dirs or not folder.is_dir():
            continue
        # Made by this cluster's runtime: gone again once nothing else lives in it.
        leftovers = [p for p in folder.rglob("*") if not p.is_dir()]
        if not leftovers:
            subprocess.run(["rm", "-r", str(folder)], check=False)


def mounts_under(folder: Path) -> list[str]:
    prefix = str(folder.resolve())
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            point = line.split()[4]
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def down(layout: Layout, log: Log) -> None:
    with machine_lock():
        shared = owns_machine(layout)
        _down(layout, log, remove_shared=shared)
        if shared:
            MACHINE_OWNER.unlink(missing_ok=True)


def _down(layout: Layout, log: Log, *, remove_shared: bool) -> None:
    started = time.monotonic()
    if not remove_shared:
        # Its own processes only: the bridge, chains and cgroups serve the cluster that runs.
        for component in reversed(components(layout)):
            pid = component.stop()
            if pid is not None:
                log(f"[cluster] {component.name}: stopped (pid {pid})")
        log(f"[cluster] down in {time.monotonic() - started:.1f}s (another cluster owns the node)")
        return
    before = HostBefore.load(_before_path(layout)) or HostBefore()
    # Flux first: nothing re-applies objects while the node drains.
    flux.down(layout, log)
    try:
        drain(layout, log)
    except (ClusterError, OSError, subprocess.TimeoutExpired) as error:
        log(f"[cluster] drain skipped ({error})")
    for name in reversed(kubernetes.START_ORDER):
        pid = kubernetes.component(layout, name).stop()
        if pid is not None:
            log(f"[cluster] {name}: stopped (pid {pid})")
    kubernetes.cleanup_kube_proxy_rules()
    runtime.stop_containerd(layout, log)
    stop_orphan_shims(layout, log)
    # Deepest first: overlay and tmpfs mounts of pods, then the kubelet root itself.
    for point in sorted(mounts_under(layout.state_dir), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    remove_cgroups()
    if runtime.delete_bridge():
        log(f"[cluster] bridge {BRIDGE}: deleted")
    remove_new_chains(before)
    remove_pod_traces(layout, before)
    registry.stop(layout, log)
    _before_path(layout).unlink(missing_ok=True)
    log(f"[cluster] down in {time.monotonic() - started:.1f}s")
