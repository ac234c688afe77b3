"""The Kubernetes processes of the embedded node, in start order: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kubelet, kube-proxy. Binaries come from the toolchain
(`toolchain/build.sh kube-apiserver etcd` links them into .tools/bin).

Host quirks of this kind of machine (see the README's cluster section):
- the kubelet and kube-proxy write host sysctls; each runs in its own mount namespace where
  /proc/sys is read-only and the files the kubelet insists on writing are bind-mounted copies;
- the kubelet's root is a shared bind mount, so the pod volumes it mounts in its namespace reach
  containerd in the host's;
- the node IP cannot be loopback: it is the pod bridge's address, the kubelet serves on
  127.0.0.1 and the API server reaches it by the node name, which resolves to 127.0.0.1;
- cgroup v1 needs `failCgroupV1: false`, no CAP_SYS_RESOURCE needs `oomScoreAdj: 0`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from liftlock.cluster.credentials import ensure_pki, ensure_tokens, kubeconfig_path, pki_dir
from liftlock.cluster.layout import (
    BRIDGE_ADDRESS,
    DNS_SERVICE_IP,
    NODE_NAME,
    POD_SUBNET,
    SERVICE_SUBNET,
    Layout,
)
from liftlock.cluster.process import ClusterError, Component, Log
from liftlock.cluster.runtime import socket_path

#: component name -> binary
BINARIES = {
    "etcd": "etcd",
    "kube-apiserver": "kube-apiserver",
    "kube-controller-manager": "kube-controller-manager",
    "kube-scheduler": "kube-scheduler",
    "kubelet": "kubelet",
    "kube-proxy": "kube-proxy",
}
START_ORDER = tuple(BINARIES)
#: the host sysctls the kubelet sets at start (it fails if it cannot): it gets copies
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


def tools_bin() -> Path:
    from liftlock.engine.env import TOOLS_BIN, find_project_root

    return find_project_root() / TOOLS_BIN


def binary(name: str) -> str:
    candidate = tools_bin() / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    component = "etcd" if name == "etcd" else "kube-apiserver"
    raise ClusterError(
        f"{name}: not built (looked in {tools_bin()} and PATH)",
        hint=f"bash toolchain/build.sh {component} (a cold build takes ~30 min; see README)",
    )


def component(layout: Layout, name: str) -> Component:
    return Component(name, layout.run_dir)


def kubectl(layout: Layout, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("kubectl"), f"--kubeconfig={layout.kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def _ok(layout: Layout, *args: str) -> bool:
    return kubectl(layout, *args, timeout=10).returncode == 0


def node_ready(layout: Layout) -> bool:
    done = kubectl(
        layout,
        "get",
        "node",
        NODE_NAME,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        timeout=10,
    )
    return done.stdout.strip() == "True"


def _namespace_script(mounts: Sequence[tuple[Path, str]], command: Sequence[str]) -> list[str]:
    """`unshare -m` running `command` with /proc/sys read-only and `mounts` bind-mounted over it
    (a private mount namespace: nothing of this reaches the host's mounts)."""
    steps = [
        "mount --bind /proc/sys /proc/sys",
        "mount -o remount,bind,ro /proc/sys",
        *(f"mount --bind {shlex.quote(str(src))} /proc/sys/{dst}" for src, dst in mounts),
        "exec " + shlex.join(command),
    ]
    return ["unshare", "-m", "--propagation", "unchanged", "--", "sh", "-ec", "; ".join(steps)]


def start_etcd(layout: Layout) -> None:
    etcd = component(layout, "etcd")
    data = layout.state_dir / "etcd"
    client = f"http://127.0.0.1:{layout.etcd_client_port}"
    peer = f"http://127.0.0.1:{layout.etcd_peer_port}"
    etcd.start(
        [
            binary("etcd"), "--name=liftlock", f"--data-dir={data}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=liftlock={peer}",
            "--log-level=warn", "--unsafe-no-fsync",
        ]
    )  # fmt: skip
    import httpx

    etcd.wait_until(
        lambda: httpx.get(f"{client}/health", timeout=1).status_code == 200, what="healthy"
    )


def start_apiserver(layout: Layout) -> None:
    pki = ensure_pki(layout)
    tokens = ensure_tokens(layout)
    apiserver = component(layout, "kube-apiserver")
    apiserver.start(
        [
            binary("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{layout.etcd_client_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none", f"--secure-port={layout.apiserver_port}",
            f"--cert-dir={pki}", f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}", f"--token-auth-file={tokens}",
            "--authorization-mode=Node,RBAC",
            # PodSecurity is on by default; NodeRestriction pairs with the Node authorizer.
            "--enable-admission-plugins=NodeRestriction,PodSecurity",
            f"--service-account-key-file={pki / 'sa.key'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-cluster-ip-range={SERVICE_SUBNET}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=Hostname", "--profiling=false",
        ]
    )  # fmt: skip
    apiserver.wait_until(lambda: _ok(layout, "get", "--raw", "/readyz"), what="ready (/readyz)")
    # The kubelet authorizes the API server's client certificate (logs, exec, port-forward).
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "liftlock-apiserver-kubelet-api"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:kubelet-api-admin",
        },
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "User",
                "name": "kube-apiserver-kubelet-client",
            }
        ],
    }
    apply_documents(layout, [binding], what="kube-apiserver: kubelet API binding")


def apply_documents(layout: Layout, documents: Sequence[object], *, what: str) -> None:
    done = subprocess.run(
        [binary("kubectl"), f"--kubeconfig={layout.kubeconfig}", "apply", "-f", "-"],
        input="\n---\n".join(json.dumps(d) for d in documents),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise ClusterError(f"{what}: kubectl apply failed: {done.stderr.strip()[-1500:]}")


def start_controller_manager(layout: Layout) -> None:
    pki = ensure_pki(layout)
    manager = component(layout, "kube-controller-manager")
    manager.start(
        [
            binary("kube-controller-manager"),
            f"--kubeconfig={kubeconfig_path(layout, 'controller-manager')}",
            "--controllers=*", "--leader-elect=false", "--secure-port=0",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_SUBNET}", "--profiling=false",
        ]
    )  # fmt: skip
    manager.wait_until(
        lambda: _ok(layout, "-n", "default", "get", "serviceaccount", "default"),
        what="running (the default service account exists)",
    )


def start_scheduler(layout: Layout) -> None:
    scheduler = component(layout, "kube-scheduler")
    scheduler.start(
        [
            binary("kube-scheduler"),
            f"--kubeconfig={kubeconfig_path(layout, 'scheduler')}",
            "--leader-elect=false", "--secure-port=0", "--profiling=false",
        ]
    )  # fmt: skip
    scheduler.wait_until(
        lambda: "Starting Kubernetes Scheduler" in scheduler.log_file.read_text(errors="replace"),
        what="started",
    )


def kubelet_root(layout: Layout) -> Path:
    return layout.state_dir / "kubelet"


def pod_logs_dir(layout: Layout) -> Path:
    return layout.state_dir / "pod-logs"


def pod_resolv_conf(layout: Layout) -> Path:
    return layout.run_dir / "pod-resolv.conf"


def kubelet_config(layout: Layout) -> dict[str, object]:
    pki = pki_dir(layout)
    resolv = pod_resolv_conf(layout)
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        "containerRuntimeEndpoint": f"unix://{socket_path(layout)}",
        "imageServiceEndpoint": f"unix://{socket_path(layout)}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "oomScoreAdj": 0,
        "podLogsDir": str(pod_logs_dir(layout).resolve()),
        "volumePluginDir": str(kubelet_root(layout) / "volume-plugins"),
        "maxPods": 30,
        "failSwapOn": False,
        "rotateCertificates": False,
        "serializeImagePulls": False,
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": "cluster.local",
        "resolvConf": str(resolv),
        "evictionHard": {
            "memory.available": "200Mi",
            "nodefs.available": "5%",
            "imagefs.available": "5%",
        },
    }


def kubelet_root_mounted(layout: Layout) -> bool:
    return (
        subprocess.run(["mountpoint", "-q", str(kubelet_root(layout))], check=False).returncode == 0
    )


def start_kubelet(layout: Layout) -> None:
    root = kubelet_root(layout)
    root.mkdir(parents=True, exist_ok=True)
    pod_logs_dir(layout).mkdir(parents=True, exist_ok=True)
    # A shared bind mount of its own: pod volumes the kubelet mounts in its namespace show in
    # the host's, where containerd runs.
    from liftlock.cluster.process import run

    if not kubelet_root_mounted(layout):
        run(["mount", "--bind", str(root), str(root)], what="kubelet: root bind mount")
    run(["mount", "--make-shared", str(root)], what="kubelet: root bind mount")
    fake = layout.run_dir / "kubelet-sysctl"
    fake.mkdir(parents=True, exist_ok=True)
    mounts = []
    for name, value in KUBELET_SYSCTLS.items():
        copy = fake / name.replace("/", ".")
        copy.write_text(value + "\n", encoding="utf-8")
        mounts.append((copy, name))
    ensure_pki(layout)
    pod_resolv_conf(layout).write_text(
        f"nameserver {DNS_SERVICE_IP}\nsearch svc.cluster.local cluster.local\n", encoding="utf-8"
    )
    config = layout.run_dir / "kubelet-config.yaml"
    config.write_text(yaml.safe_dump(kubelet_config(layout)), encoding="utf-8")
    kubelet = component(layout, "kubelet")
    kubelet.start(
        _namespace_script(
            mounts,
            [
                binary("kubelet"), f"--config={config}",
                f"--kubeconfig={kubeconfig_path(layout, 'kubelet')}", f"--root-dir={root}",
                f"--hostname-override={NODE_NAME}", f"--node-ip={BRIDGE_ADDRESS}", "--v=1",
            ],
        )
    )  # fmt: skip
    kubelet.wait_until(lambda: node_ready(layout), what=f"registered (node {NODE_NAME} Ready)")


def kube_proxy_config(layout: Layout) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig_path(layout, "kube-proxy"))},
        "mode": "iptables",
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "clusterCIDR": POD_SUBNET,
        "hostnameOverride": NODE_NAME,
        # Zeros keep kube-proxy from writing the host's conntrack sysctls; no localhost
        # NodePorts keeps it from turning on route_localnet.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
    }


def start_kube_proxy(layout: Layout) -> None:
    config = layout.run_dir / "kube-proxy-config.yaml"
    config.write_text(yaml.safe_dump(kube_proxy_config(layout)), encoding="utf-8")
    proxy = component(layout, "kube-proxy")
    proxy.start(_namespace_script([], [binary("kube-proxy"), f"--config={config}", "--v=1"]))
    import httpx

    proxy.wait_until(
        lambda: httpx.get("http://127.0.0.1:10256/healthz", timeout=1).status_code == 200,
        what="healthy (127.0.0.1:10256/healthz)",
    )


def cleanup_kube_proxy_rules() -> None:
    """kube-proxy's own clean-up of the iptables chains it made (KUBE-*)."""
    try:
        proxy = binary("kube-proxy")
    except ClusterError:
        return
    subprocess.run(
        _namespace_script([], [proxy, "--cleanup", "--proxy-mode=iptables"]),
        capture_output=True,
        check=False,
        timeout=60,
    )


STARTERS = {
    "etcd": start_etcd,
    "kube-apiserver": start_apiserver,
    "kube-controller-manager": start_controller_manager,
    "kube-scheduler": start_scheduler,
    "kubelet": start_kubelet,
    "kube-proxy": start_kube_proxy,
}


def start_all(layout: Layout, log: Log) -> None:
    for name in START_ORDER:
        if component(layout, name).running():
            log(f"[cluster] {name}: running")
            continue
        started = time.monotonic()
        STARTERS[name](layout)
        log(f"[cluster] {name}: ready in {time.monotonic() - started:.1f}s")


def pod_reasons(layout: Layout, namespace: str) -> list[str]:
    """Why the pods of `namespace` are not Ready, one line each (`pod: reason: message`): a
    waiting or crashed container's reason (ImagePullBackOff, CrashLoopBackOff, ...), an
    unschedulable pod, a failing readiness probe; empty when every pod is Ready."""
    done = kubectl(layout, "get", "pods", "-n", namespace, "-o", "json", timeout=20)
    if done.returncode != 0:
        return [f"pods of {namespace}: {done.stderr.strip()[-300:]}"]
    lines = []
    for pod in json.loads(done.stdout).get("items", []):
        name = pod["metadata"]["name"]
        status = pod.get("status", {})
        conditions = {c.get("type"): c for c in status.get("conditions", [])}
        if conditions.get("Ready", {}).get("status") == "True":
            continue
        found = []
        for container in status.get("containerStatuses", []) + status.get(
            "initContainerStatuses", []
        ):
            state = container.get("state", {})
            last = container.get("lastState", {}).get("terminated") or {}
            if "waiting" in state:
                detail = state["waiting"]
                found.append(f"{detail.get('reason', 'Waiting')}: {detail.get('message', '')}")
            elif "terminated" in state:
                detail = state["terminated"]
                reason = detail.get("reason", "Terminated")
                found.append(f"{reason} (exit {detail.get('exitCode')})")
            elif not container.get("ready"):
                found.append("running, not Ready (readiness probe failing)")
            if last and container.get("restartCount"):
                found.append(
                    f"restarted {container['restartCount']}x, last: {last.get('reason')} "
                    f"(exit {last.get('exitCode')})"
                )
        scheduled = conditions.get("PodScheduled", {})
        if scheduled.get("status") == "False":
            found.append(f"{scheduled.get('reason')}: {scheduled.get('message', '')}")
        why = "; ".join(found) or "not Ready"
        lines.append(f"pod {name} ({status.get('phase', '?')}): {why}")
    return lines
