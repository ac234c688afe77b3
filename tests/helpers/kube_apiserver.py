"""A real Kubernetes API server on 127.0.0.1 for tests: etcd + kube-apiserver from the toolchain.

Objects are stored and served, but no Pod starts: no scheduler, kubelet or workload controllers
run. A kube-controller-manager runs only the garbage collector and the namespace controller, so
deletions complete as in a real cluster (the Pulumi provider deletes with foreground propagation,
which waits for the collector; a deleted Namespace waits for the namespace controller).
Independent of pytest (the session fixture `kube_apiserver` in tests/conftest.py wraps it):

    with local_cluster(Path("/tmp/k")) as cluster:
        cluster.request("GET", "/api/v1/namespaces")   # admin token, TLS verified
        # or: KUBECONFIG=cluster.kubeconfig, context cluster.context

The binaries come from `toolchain/build.sh kube-apiserver etcd` (linked into .tools/bin).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
BUILD_HINT = "build them with: bash toolchain/build.sh kube-apiserver etcd"

#: The kubeconfig context the tests (and stacks under test) select.
DEFAULT_CONTEXT = "liftlock-local"
#: Service IPs are allocated from here; nothing routes them (no kube-proxy).
SERVICE_CIDR = "10.96.0.0/24"
#: The only controllers that run: what deletions need, nothing that would start workloads.
CONTROLLERS = ("garbage-collector-controller", "namespace-controller")


class ClusterError(RuntimeError):
    """The local API server could not be started; the message says which part and why."""


@dataclass(frozen=True)
class LocalCluster:
    """A running local API server and how to reach it."""

    server: str  # https://127.0.0.1:<port>
    etcd_url: str  # http://127.0.0.1:<port>
    token: str  # bearer token of a user in system:masters
    ca_file: Path  # CA that signed the serving certificate
    kubeconfig: Path
    context: str
    workdir: Path

    def client(self) -> httpx.Client:
        """An HTTP client authenticated as the admin user, verifying the server's certificate."""
        return httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            timeout=10.0,
        )

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """One API call, e.g. `request("GET", "/api/v1/namespaces/default/configmaps/x")`."""
        with self.client() as client:
            return client.request(method, path, json=body)


def find_tool(name: str) -> Path:
    """A toolchain binary: .tools/bin first, then PATH; the error says how to build it."""
    candidate = TOOLS_BIN / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ClusterError(f"{name} not found in {TOOLS_BIN} nor on PATH; {BUILD_HINT}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ClusterError(f"openssl {args[0]} failed in {cwd}: {result.stderr.strip()}")


def write_certificates(pki: Path) -> None:
    """A throwaway CA, a serving certificate for 127.0.0.1 and a service-account signing key."""
    pki.mkdir(parents=True, exist_ok=True)
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ca = ["-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=liftlock-test-ca", "-days", "2"]
    _openssl("req", "-x509", *new_key, *ca, cwd=pki)
    csr = ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver"]
    _openssl("req", "-new", *new_key, *csr, cwd=pki)
    (pki / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n"
    )
    serial = str(int.from_bytes(os.urandom(8), "big"))
    sign = ["-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", serial, "-days", "2"]
    files = ["-in", "server.csr", "-extfile", "server.ext", "-out", "server.crt"]
    _openssl("x509", "-req", *sign, *files, cwd=pki)
    # The API server signs service-account tokens with it and verifies them with the same file.
    rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    _openssl("genpkey", *rsa, "-out", "sa.key", cwd=pki)


def write_token_file(path: Path, token: str) -> None:
    """Static token auth: one admin user in system:masters (full access under RBAC)."""
    path.write_text(f'{token},liftlock-admin,liftlock-admin,"system:masters"\n')
    path.chmod(0o600)


def write_kubeconfig(path: Path, *, server: str, ca_file: Path, token: str, context: str) -> None:
    """A kubeconfig whose only context is `context`, selected by default."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": context, "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": f"{context}-admin", "user": {"token": token}}],
        "contexts": [
            {"name": context, "context": {"cluster": context, "user": f"{context}-admin"}}
        ],
        "current-context": context,
    }
    with path.open("w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    path.chmod(0o600)


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        # Own process group: stopping the cluster never signals the test runner.
        return subprocess.Popen(
            args, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def _log_tail(log: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def start_etcd(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """etcd on free 127.0.0.1 ports; returns the process and its client URL."""
    client_url = f"http://127.0.0.1:{free_port()}"
    peer_url = f"http://127.0.0.1:{free_port()}"
    args = [
        str(find_tool("etcd")),
        "--name=liftlock-test",
        f"--data-dir={workdir / 'etcd-data'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=liftlock-test={peer_url}",
        "--log-level=warn",
        # Throwaway data: skipping fsync makes every write much faster on a shared disk.
        "--unsafe-no-fsync",
    ]
    return _start(args, workdir / "etcd.log"), client_url


def start_apiserver(
    workdir: Path, etcd_url: str, token: str
) -> tuple[subprocess.Popen[bytes], str]:
    """kube-apiserver on a free 127.0.0.1 port backed by `etcd_url`; returns it and its URL."""
    pki = workdir / "pki"
    write_certificates(pki)
    write_token_file(workdir / "tokens.csv", token)
    port = free_port()
    args = [
        str(find_tool("kube-apiserver")),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        # With the default reconciler the server refuses a loopback advertise address.
        "--endpoint-reconciler-type=none",
        f"--secure-port={port}",
        f"--cert-dir={pki}",
        f"--tls-cert-file={pki / 'server.crt'}",
        f"--tls-private-key-file={pki / 'server.key'}",
        f"--token-auth-file={workdir / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        f"--service-account-key-file={pki / 'sa.key'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--profiling=false",
    ]
    return _start(args, workdir / "kube-apiserver.log"), f"https://127.0.0.1:{port}"


def start_controller_manager(kubeconfig: Path, workdir: Path) -> subprocess.Popen[bytes]:
    """kube-controller-manager with CONTROLLERS only; it waits for the API server by itself."""
    args = [
        str(find_tool("kube-controller-manager")),
        f"--kubeconfig={kubeconfig}",
        f"--controllers={','.join(CONTROLLERS)}",
        "--leader-elect=false",
        # No serving port: nothing needs its metrics, and it would be one more listener.
        "--secure-port=0",
        "--use-service-account-credentials=false",
        "--profiling=false",
    ]
    return _start(args, workdir / "kube-controller-manager.log")


def wait_ready(
    cluster: LocalCluster,
    processes: dict[str, subprocess.Popen[bytes]],
    timeout: float = 90.0,
) -> float:
    """Poll /readyz until it answers 200; returns the seconds waited. Fails if a process dies."""
    start = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - start < timeout:
        for name, process in processes.items():
            if process.poll() is not None:
                log = cluster.workdir / f"{name}.log"
                raise ClusterError(
                    f"{name} exited with code {process.returncode} before the API server was "
                    f"ready; last lines of {log}:\n{_log_tail(log)}"
                )
        try:
            response = cluster.request("GET", "/readyz")
            if response.status_code == 200:
                return time.monotonic() - start
            last = f"HTTP {response.status_code}: {response.text[-300:]}"
        except httpx.HTTPError as error:
            last = f"{type(error).__name__}: {error}"
        time.sleep(0.25)
    log = cluster.workdir / "kube-apiserver.log"
    raise ClusterError(
        f"kube-apiserver at {cluster.server} not ready after {timeout:.0f} s ({last}); "
        f"last lines of {log}:\n{_log_tail(log)}"
    )


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


@contextlib.contextmanager
def local_cluster(
    workdir: Path, *, context: str = DEFAULT_CONTEXT, timeout: float = 90.0
) -> Iterator[LocalCluster]:
    """Start etcd, kube-apiserver and the controller manager under `workdir`, yield the ready
    cluster, stop them all."""
    workdir.mkdir(parents=True, exist_ok=True)
    token = os.urandom(16).hex()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        processes["etcd"], etcd_url = start_etcd(workdir)
        processes["kube-apiserver"], server = start_apiserver(workdir, etcd_url, token)
        cluster = LocalCluster(
            server=server,
            etcd_url=etcd_url,
            token=token,
            ca_file=workdir / "pki" / "ca.crt",
            kubeconfig=workdir / "kubeconfig",
            context=context,
            workdir=workdir,
        )
        write_kubeconfig(
            cluster.kubeconfig, server=server, ca_file=cluster.ca_file, token=token, context=context
        )
        processes["kube-controller-manager"] = start_controller_manager(cluster.kubeconfig, workdir)
        wait_ready(cluster, processes, timeout)
        yield cluster
    finally:
        # Clients of the API server first; the API server must not outlive its storage.
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            if name in processes:
                stop(processes[name])
