"""The real embedded cluster on this machine: `up` to a Ready node, idempotent; the model image
pulled by digest from the embedded registry, Ready under the restricted profile and answering
through a port-forward; admission refusing a privileged pod; a kubelet restart keeping the pods;
`down` leaving the host as `up` found it. One cluster for the module (the bridge, the pod range
and the kubelet's ports are the machine's), in a temporary state folder, registry and API server
on free ports."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.components.image_builder import build_image, push_image, registry_repository
from infra.components.smoke_check import port_forward, predict_through, reference_row
from liftlock.cluster import embedded, kubernetes
from liftlock.cluster.layout import BRIDGE, CONTEXT_NAME, POD_SUBNET, Layout
from liftlock.cluster.process import ClusterError
from tests.helpers.embedded_cluster import RunningCluster, running_cluster
from tests.helpers.host_state import HostState, processes_mentioning
from tests.serve.fixture_bundle import FixtureBundle, build_fixture_bundle

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

NAMESPACE = "liftlock-cluster-test"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


def kubectl(layout: Layout, *args: str, check: bool = True) -> str:
    done = kubernetes.kubectl(layout, *args, timeout=120)
    if check:
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout if done.returncode == 0 else done.stderr


def apply(layout: Layout, *documents: dict[str, Any], check: bool = True) -> str:
    import subprocess

    done = subprocess.run(
        [kubernetes.binary("kubectl"), f"--kubeconfig={layout.kubeconfig}", "apply", "-f", "-"],
        input="\n---\n".join(json.dumps(d) for d in documents),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def restricted_namespace() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }


def model_deployment(image: str, replicas: int = 2) -> dict[str, Any]:
    labels = {"app": "model"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "model", "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "runAsGroup": 65534,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "model",
                            "image": image,
                            "env": [{"name": "LIFTLOCK_HOST", "value": "0.0.0.0"}],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "http"},
                                "periodSeconds": 2,
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


@pytest.fixture(scope="module")
def fixture_bundle(tmp_path_factory: pytest.TempPathFactory) -> FixtureBundle:
    return build_fixture_bundle(tmp_path_factory.mktemp("cluster-bundle") / "bundle")


@pytest.fixture(scope="module")
def model_image(cluster: RunningCluster, fixture_bundle: FixtureBundle) -> str:
    repository = registry_repository(cluster.layout.registry, "liftlock-model")
    built = build_image(fixture_bundle.path, repository=repository, log=lambda line: None)
    return push_image(built.tag, log=lambda line: None)


@pytest.fixture(scope="module")
def model_rollout(cluster: RunningCluster, model_image: str) -> str:
    layout = cluster.layout
    apply(layout, restricted_namespace(), model_deployment(model_image))
    kubectl(layout, "-n", NAMESPACE, "rollout", "status", "deployment/model", "--timeout=180s")
    return model_image


def test_up_reaches_a_ready_node_and_is_idempotent(cluster: RunningCluster) -> None:
    layout = cluster.layout
    state = embedded.status(layout)
    assert state.node_ready and state.running, state
    pids = {c.name: c.pid for c in state.components}
    lines: list[str] = []
    again = embedded.up(layout, lines.append)
    assert {c.name: c.pid for c in again.components} == pids, "a second up restarts nothing"
    assert any("kube-apiserver: running" in line for line in lines), lines
    kubeconfig = layout.kubeconfig.read_text()
    assert f"current-context: {CONTEXT_NAME}" in kubeconfig
    assert f"https://127.0.0.1:{layout.apiserver_port}" in kubeconfig
    assert any("kubelet: ready in" in line for line in cluster.lines), cluster.lines


def test_a_second_cluster_on_the_same_machine_is_refused_before_it_starts(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    """One cluster per machine: `up` in another state folder names the one running and starts
    nothing (no registry, no PKI) rather than fighting it for the kubelet's ports; `down` of
    that other folder leaves the running cluster's bridge and routes alone."""
    other = Layout(state_dir=tmp_path / "other")
    with pytest.raises(ClusterError, match=r"another cluster runs on this machine") as refused:
        embedded.up(other, lambda line: None)
    assert str(cluster.layout.state_dir.resolve()) in str(refused.value)
    assert not other.run_dir.exists() or not any(other.run_dir.iterdir())
    embedded.down(other, lambda line: None)
    assert embedded.status(cluster.layout).running
    routes = HostState.capture().routes
    assert any(route.startswith(f"{POD_SUBNET} dev {BRIDGE}") for route in routes), routes
    assert f"blackhole {POD_SUBNET} metric 4242" in routes, "pods never take the default route"


def test_the_model_image_pulled_by_digest_serves_through_a_port_forward(
    cluster: RunningCluster, model_rollout: str, fixture_bundle: FixtureBundle
) -> None:
    layout = cluster.layout
    pods = json.loads(kubectl(layout, "-n", NAMESPACE, "get", "pods", "-o", "json"))["items"]
    assert len(pods) == 2
    for pod in pods:
        status = pod["status"]["containerStatuses"][0]
        assert status["ready"] is True
        # Pulled by the digest the registry returned, from the embedded registry.
        assert status["imageID"].endswith(model_rollout.split("@", 1)[1]), status
        assert pod["status"]["podIP"].startswith("10.244.0.")
    with port_forward(
        kubeconfig=str(layout.kubeconfig),
        context=CONTEXT_NAME,
        namespace=NAMESPACE,
        target="deployment/model",
        port=8080,
    ) as local_port:
        answer = predict_through(
            f"http://127.0.0.1:{local_port}", reference_row(fixture_bundle.path)
        )
    assert answer["model"] == fixture_bundle.digest


def test_admission_refuses_a_pod_that_breaks_the_restricted_profile(
    cluster: RunningCluster, model_rollout: str
) -> None:
    # As root, with privilege escalation and every capability (privileged: true itself is
    # refused earlier, by the API server's --allow-privileged=false).
    unrestricted = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unrestricted", "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "x", "image": model_rollout}]},
    }
    answer = apply(cluster.layout, unrestricted, check=False)
    assert 'violates PodSecurity "restricted:latest"' in answer, answer
    assert "allowPrivilegeEscalation != false" in answer and "runAsNonRoot" in answer
    listed = kubectl(cluster.layout, "-n", NAMESPACE, "get", "pods", "-o", "name")
    assert "pod/unrestricted" not in listed


def test_a_kubelet_restart_keeps_the_pods(cluster: RunningCluster, model_rollout: str) -> None:
    layout = cluster.layout

    def pods() -> dict[str, tuple[str, int]]:
        items = json.loads(kubectl(layout, "-n", NAMESPACE, "get", "pods", "-o", "json"))["items"]
        return {
            p["metadata"]["uid"]: (
                p["status"]["containerStatuses"][0]["containerID"],
                p["status"]["containerStatuses"][0]["restartCount"],
            )
            for p in items
        }

    before = pods()
    kubernetes.component(layout, "kubelet").stop()
    kubernetes.start_kubelet(layout)
    kubectl(layout, "-n", NAMESPACE, "rollout", "status", "deployment/model", "--timeout=120s")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = kubectl(layout, "-n", NAMESPACE, "get", "pods", "-o", "json")
        if all(
            c["ready"] for p in json.loads(ready)["items"] for c in p["status"]["containerStatuses"]
        ):
            break
        time.sleep(1)
    assert pods() == before, "same pods, same containers, no restart"


def test_down_leaves_the_host_as_it_was(cluster: RunningCluster, model_rollout: str) -> None:
    layout = cluster.layout
    embedded.down(layout, cluster.lines.append)
    after = HostState.capture()
    assert processes_mentioning(layout.state_dir) == []
    assert after.links == cluster.before.links, "no bridge or veth left"
    assert after.mounts == cluster.before.mounts, "no mount left"
    assert after.iptables == cluster.before.iptables, "no chain or rule left"
    assert after.netns == cluster.before.netns
    assert after.cgroups == cluster.before.cgroups
    assert after.sysctls == cluster.before.sysctls
    assert after.folders == cluster.before.folders
    assert after.routes == cluster.before.routes, "no route left (bridge, pod range guard)"
    assert not embedded.MACHINE_OWNER.exists(), "the machine is free for the next cluster"
    assert not embedded.status(layout).running
    # ... and the data stays: the next up is warm.
    assert any(Path(layout.registry_data).iterdir())
