"""What `liftlock cluster down` must leave as `up` found it: processes, mounts, network links,
routes, iptables chains and rules, network namespaces, cgroups and the sysctls the node would
touch."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

#: sysctls the kubelet and kube-proxy write on a default install (and the bridge plugin with a
#: gateway): none may change
WATCHED_SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/netfilter/nf_conntrack_max",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return "(absent)"


def _iptables_rules() -> list[str]:
    rules: list[str] = []
    for table in ("filter", "nat", "mangle"):
        done = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        rules += [f"{table}: {line}" for line in done.stdout.splitlines()]
    return rules


def processes_mentioning(folder: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(folder) in cmdline:
                found.append(f"{proc.name}: {cmdline[:200]}")
    return found


@dataclass(frozen=True)
class HostState:
    links: list[str]
    mounts: list[str]
    iptables: list[str]
    netns: list[str]
    cgroups: list[str]
    sysctls: dict[str, str]
    #: folders the runtime or the kubelet would create: there or not
    folders: dict[str, bool]
    #: the main IPv4 routing table (the bridge's route and the pod range's guard come and go)
    routes: list[str]

    @classmethod
    def capture(cls) -> HostState:
        links = sorted(p.name for p in Path("/sys/class/net").iterdir())
        mounts = sorted(
            line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
        )
        netns_dir = Path("/run/netns")
        netns = sorted(p.name for p in netns_dir.iterdir()) if netns_dir.is_dir() else []
        cgroups = sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods"))
        sysctls = {name: _read(Path("/proc/sys") / name) for name in WATCHED_SYSCTLS}
        folders = {
            name: Path(name).exists()
            for name in ("/run/netns", "/var/log/containers", "/var/lib/cni", "/var/lib/kubelet")
        }
        listed = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True)
        routes = sorted(line.strip() for line in listed.stdout.splitlines())
        return cls(links, mounts, _iptables_rules(), netns, cgroups, sysctls, folders, routes)
