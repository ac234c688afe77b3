"""The cluster target against a real kube-apiserver (no scheduler or kubelet: objects are stored,
no Pod ever runs, so readiness waiting is off for this stack only)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from infra.config import read_stack_file
from tests.infra.engine import PulumiProject, rendered_manifests
from tests.infra.fixtures import write_bundle

if TYPE_CHECKING:
    from tests.helpers.kube_apiserver import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.engine]

#: kind → (API group path, plural); namespaced unless kind is Namespace.
API_PATHS = {
    "Namespace": ("api/v1", "namespaces"),
    "ServiceAccount": ("api/v1", "serviceaccounts"),
    "ConfigMap": ("api/v1", "configmaps"),
    "Service": ("api/v1", "services"),
    "Deployment": ("apis/apps/v1", "deployments"),
    "HorizontalPodAutoscaler": ("apis/autoscaling/v2", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("apis/policy/v1", "poddisruptionbudgets"),
    "NetworkPolicy": ("apis/networking.k8s.io/v1", "networkpolicies"),
    "CronJob": ("apis/batch/v1", "cronjobs"),
}
#: Set only on the cluster stack (readiness waiting off), or by the engine when applying.
CLUSTER_ONLY_ANNOTATIONS = {
    "pulumi.com/skipAwait",
    "kubectl.kubernetes.io/last-applied-configuration",
}


def object_path(manifest: dict[str, Any]) -> str:
    group, plural = API_PATHS[manifest["kind"]]
    name = manifest["metadata"]["name"]
    if manifest["kind"] == "Namespace":
        return f"/{group}/{plural}/{name}"
    return f"/{group}/namespaces/{manifest['metadata']['namespace']}/{plural}/{name}"


def differences(rendered: Any, stored: Any, where: str) -> list[str]:
    """Fields of `rendered` that `stored` lacks or holds differently (server defaults ignored)."""
    if isinstance(rendered, dict) and isinstance(stored, dict):
        found: list[str] = []
        for key, value in rendered.items():
            if key not in stored:
                found.append(f"{where}.{key}: missing on the server")
            else:
                found.extend(differences(value, stored[key], f"{where}.{key}"))
        return found
    if isinstance(rendered, list) and isinstance(stored, list):
        if len(rendered) != len(stored):
            return [f"{where}: {len(rendered)} items rendered, {len(stored)} stored"]
        return [
            diff
            for index, (a, b) in enumerate(zip(rendered, stored, strict=True))
            for diff in differences(a, b, f"{where}[{index}]")
        ]
    if str(rendered) != str(stored):
        return [f"{where}: rendered {rendered!r}, stored {stored!r}"]
    return []


def cluster_values(repo_root: Path, digest: str, kubeconfig: Path, context: str) -> dict[str, Any]:
    """staging's committed config, applied to a cluster instead of rendered (render's gitops
    and applyTo keys are not the cluster target's)."""
    values = read_stack_file(repo_root / "stacks" / "Pulumi.staging.yaml")
    values.pop("gitops")
    values.pop("applyTo")
    return {
        **values,
        "bundleDigest": digest,
        "target": "cluster",
        "kubeconfig": str(kubeconfig),
        "kubeContext": context,
        "waitForReady": False,
    }


def test_cluster_stack_creates_what_render_writes_then_no_change_then_destroy(
    repo_root: Path, tmp_path: Path, kube_apiserver: LocalCluster
) -> None:
    # Same stack name in two projects, so labels match: one renders, one applies.
    render = PulumiProject.copy_of(repo_root, tmp_path / "render")
    digest = write_bundle(render.root / "bundle")
    staging = read_stack_file(render.stack_file("staging"))
    render.write_stack_values("staging", {**staging, "bundleDigest": digest})
    render.init("staging")
    render.up("staging")

    cluster = PulumiProject.copy_of(repo_root, tmp_path / "cluster")
    write_bundle(cluster.root / "bundle")
    cluster.write_stack_values(
        "staging",
        cluster_values(repo_root, digest, kube_apiserver.kubeconfig, kube_apiserver.context),
    )
    cluster.init("staging")
    cluster.up("staging")

    manifests = [doc for _, doc in rendered_manifests(render.root / "deploy" / "staging")]
    assert len(manifests) >= 8, [m["kind"] for m in manifests]
    with kube_apiserver.client() as client:
        for manifest in manifests:
            response = client.get(object_path(manifest))
            assert response.status_code == 200, f"{object_path(manifest)}: {response.text}"
            stored = response.json()
            for key in CLUSTER_ONLY_ANNOTATIONS:
                stored["metadata"].get("annotations", {}).pop(key, None)
            found = differences(
                manifest, stored, f"{manifest['kind']}/{manifest['metadata']['name']}"
            )
            assert found == [], "\n".join(found)

    cluster.up("staging", "--expect-no-changes")
    cluster.preview("staging", "--expect-no-changes")

    cluster.destroy("staging")
    with kube_apiserver.client() as client:
        for manifest in manifests:
            response = client.get(object_path(manifest))
            # A Namespace is finalised asynchronously (or never, without a controller manager).
            gone = response.status_code == 404 or bool(
                response.json()["metadata"].get("deletionTimestamp")
            )
            assert gone, f"{object_path(manifest)} still there after destroy"


def test_unreachable_api_server_fails_naming_the_context(repo_root: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: gone, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: nowhere, context: {cluster: gone, user: u}}]\n"
        "current-context: nowhere\n",
        encoding="utf-8",
    )
    project = PulumiProject.copy_of(repo_root, tmp_path / "unreachable")
    digest = write_bundle(project.root / "bundle")
    project.write_stack_values("staging", cluster_values(repo_root, digest, kubeconfig, "nowhere"))
    project.init("staging")
    result = project.preview("staging", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "kubeconfig context 'nowhere'" in output and f"127.0.0.1:{port}" in output, output
