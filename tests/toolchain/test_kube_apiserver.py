"""tests/helpers/kube_apiserver.py starts a real API server that stores objects, and stops it."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.helpers.kube_apiserver import LocalCluster, local_cluster
from tests.helpers.pulumi_cli import PulumiCLI, write_python_project

CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "liftlock-probe", "namespace": "default"},
    "data": {"bundle": "sha256:" + "0" * 64},
}


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname or "", parts.port or 0)) == 0


def _gone(cluster: LocalCluster, path: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.request("GET", path).status_code == 404:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_session_cluster_serves_the_pinned_version(kube_apiserver: LocalCluster) -> None:
    response = kube_apiserver.request("GET", "/version")
    assert response.status_code == 200, response.text
    assert response.json()["gitVersion"] == "v1.37.2"


@pytest.mark.slow
def test_cluster_stores_objects_enforces_auth_and_stops(tmp_path: Path) -> None:
    with local_cluster(tmp_path / "kube", context="probe") as cluster:
        created = cluster.request("POST", "/api/v1/namespaces/default/configmaps", CONFIGMAP)
        assert created.status_code == 201, created.text
        stored = cluster.request("GET", "/api/v1/namespaces/default/configmaps/liftlock-probe")
        assert stored.status_code == 200, stored.text
        assert stored.json()["data"] == CONFIGMAP["data"]

        # A wrong token is refused; RBAC gives an unauthenticated caller no objects.
        refused = cluster.client()
        refused.headers["Authorization"] = "Bearer not-the-token"
        with refused:
            assert refused.get("/api/v1/namespaces").status_code == 401
        anonymous = cluster.client()
        del anonymous.headers["Authorization"]
        with anonymous:
            assert anonymous.get("/api/v1/namespaces/default/configmaps").status_code == 403

        # Deletions complete: the garbage collector clears a foreground deletion's finalizer,
        # the namespace controller empties and removes a deleted namespace.
        foreground = {"propagationPolicy": "Foreground"}
        path = "/api/v1/namespaces/default/configmaps/liftlock-probe"
        assert cluster.request("DELETE", path, foreground).status_code in (200, 202)
        assert _gone(cluster, path), f"{path} still there: is the garbage collector running?"
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "probe-ns"}}
        assert cluster.request("POST", "/api/v1/namespaces", namespace).status_code == 201
        assert cluster.request("DELETE", "/api/v1/namespaces/probe-ns").status_code == 200
        assert _gone(cluster, "/api/v1/namespaces/probe-ns"), "namespace probe-ns stuck deleting"

        kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
        assert kubeconfig["current-context"] == "probe"
        (entry,) = kubeconfig["clusters"]
        assert entry["cluster"]["server"] == cluster.server
        assert cluster.server.startswith("https://127.0.0.1:")

    for name, url in (("kube-apiserver", cluster.server), ("etcd", cluster.etcd_url)):
        assert not _port_open(url), f"{name} still listening on {url} after the cluster stopped"


PROGRAM = """
import pulumi
import pulumi_kubernetes as k8s

config = pulumi.Config()
provider = k8s.Provider(
    "local",
    kubeconfig=config.require("kubeconfig"),
    context=config.require("context"),
    enable_server_side_apply=True,
)
k8s.core.v1.ConfigMap(
    "probe",
    metadata={"name": "pulumi-probe", "namespace": "default"},
    data={"answer": "42"},
    opts=pulumi.ResourceOptions(provider=provider),
)
"""


@pytest.mark.slow
@pytest.mark.engine
def test_built_provider_applies_to_the_local_cluster(
    kube_apiserver: LocalCluster, pulumi_cli: Callable[..., PulumiCLI], tmp_path: Path
) -> None:
    pulumi = pulumi_cli(write_python_project(tmp_path / "project", PROGRAM))
    pulumi.set_config(
        {"kubeconfig": str(kube_apiserver.kubeconfig), "context": kube_apiserver.context}
    )
    pulumi("up", "--yes")
    stored = kube_apiserver.request("GET", "/api/v1/namespaces/default/configmaps/pulumi-probe")
    assert stored.status_code == 200, stored.text
    assert stored.json()["data"] == {"answer": "42"}

    pulumi("destroy", "--yes")
    gone = kube_apiserver.request("GET", "/api/v1/namespaces/default/configmaps/pulumi-probe")
    assert gone.status_code == 404, gone.text
