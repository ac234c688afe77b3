"""tests/helpers/kube_apiserver.py starts a real API server that stores objects, and stops it."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.helpers.kube_apiserver import LocalCluster, local_cluster

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

        kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
        assert kubeconfig["current-context"] == "probe"
        (entry,) = kubeconfig["clusters"]
        assert entry["cluster"]["server"] == cluster.server
        assert cluster.server.startswith("https://127.0.0.1:")

    for name, url in (("kube-apiserver", cluster.server), ("etcd", cluster.etcd_url)):
        assert not _port_open(url), f"{name} still listening on {url} after the cluster stopped"
