"""staging on the real embedded cluster: `pulumi up --stack staging` renders deploy/staging and
applies the same objects to the cluster (liftlock:applyTo), waits for every replica to be Ready
and gets one prediction through a port-forward; a broken image fails `up` naming
CrashLoopBackOff, an unpullable digest naming ImagePullBackOff (or ErrImagePull)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.components.image_builder import (
    build_image,
    push_image,
    registry_repository,
)
from infra.config import read_stack_file
from liftlock.cluster import kubernetes
from liftlock.cluster.layout import CONTEXT_NAME
from ml.bundle import verify_bundle
from ml.errors import BundleError
from tests.helpers.embedded_cluster import RunningCluster, running_cluster
from tests.helpers.registry import image_with_entrypoint
from tests.infra.engine import PulumiProject, rendered_manifests

pytestmark = [pytest.mark.slow, pytest.mark.engine, pytest.mark.docker, pytest.mark.cluster]

ROLLOUT_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def image(repo_root: Path, cluster: RunningCluster) -> str:
    try:
        verify_bundle(repo_root / "bundle")
    except BundleError as error:
        pytest.fail(f"no model bundle in the checkout ({error}); run `make bundle` (dvc repro)")
    repository = registry_repository(cluster.layout.registry, "liftlock-model")
    built = build_image(repo_root / "bundle", repository=repository, log=lambda line: None)
    return push_image(built.tag, log=lambda line: None)


@pytest.fixture(scope="module")
def staging(
    repo_root: Path, cluster: RunningCluster, image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PulumiProject]:
    project = PulumiProject.copy_of(repo_root, tmp_path_factory.mktemp("staging"))
    shutil.copytree(repo_root / "bundle", project.root / "bundle")
    (project.root / "deploy").mkdir()
    values = read_stack_file(project.stack_file("staging"))
    values.update(
        bundleDigest=verify_bundle(repo_root / "bundle"),
        image=image,
        applyTo={
            "kubeconfig": str(cluster.layout.kubeconfig),
            "kubeContext": CONTEXT_NAME,
            "rolloutTimeoutSeconds": ROLLOUT_TIMEOUT_SECONDS,
        },
    )
    project.write_stack_values("staging", values)
    project.init("staging")
    yield project
    project.run("destroy", "--stack", "staging", "--yes", "--skip-preview", check=False)


def deployment_status(cluster: RunningCluster, namespace: str) -> dict[str, Any]:
    done = kubernetes.kubectl(
        cluster.layout, "-n", namespace, "get", "deployment", "liftlock-model", "-o", "json"
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_up_renders_applies_rolls_out_and_answers(
    staging: PulumiProject, cluster: RunningCluster, image: str
) -> None:
    staging.up("staging")
    outputs = staging.outputs("staging")
    values = read_stack_file(staging.stack_file("staging"))
    rendered = [doc for _, doc in rendered_manifests(staging.root / "deploy" / "staging")]
    assert {doc["kind"] for doc in rendered} >= {"Deployment", "Service", "CronJob"}
    deployment = deployment_status(cluster, values["namespace"])
    assert deployment["status"]["readyReplicas"] == values["replicas"]
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == [image]
    # The rendered Deployment and the applied one are the same object.
    (rendered_deployment,) = [doc for doc in rendered if doc["kind"] == "Deployment"]
    assert rendered_deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert outputs["image"] == image
    steps = staging.run("stack", "export", "--stack", "staging").stdout
    assert "liftlock:SmokeCheck" in steps and outputs["bundleDigest"] in steps


def broken_entrypoint_image(image: str, registry: str) -> str:
    """The model image whose entrypoint exits at once: pods crash-loop."""
    return image_with_entrypoint(
        image, registry, ["python", "-c", "raise SystemExit(3)"], "broken-entrypoint"
    )


@pytest.mark.parametrize("failure", ["CrashLoopBackOff", "ImagePullBackOff"])
def test_a_failed_rollout_fails_up_naming_the_pods_reason(
    staging: PulumiProject, cluster: RunningCluster, image: str, failure: str
) -> None:
    good = read_stack_file(staging.stack_file("staging"))
    if failure == "CrashLoopBackOff":
        bad = broken_entrypoint_image(image, cluster.layout.registry)
    else:
        bad = image.split("@", 1)[0] + "@sha256:" + "0" * 64
    staging.write_stack_values("staging", {**good, "image": bad})
    staging.record_pins("staging")  # the rollout is under test here, not the promotion record
    try:
        result = staging.run("up", "--stack", "staging", "--yes", "--skip-preview", check=False)
        assert result.returncode != 0, result.stdout[-3000:]
        said = result.stdout + result.stderr
        reasons = (failure,) if failure == "CrashLoopBackOff" else (failure, "ErrImagePull")
        assert any(reason in said for reason in reasons), said[-4000:]
    finally:
        staging.write_stack_values("staging", good)
        staging.up("staging")


def test_the_cluster_target_rolls_out_on_the_embedded_cluster(
    repo_root: Path,
    cluster: RunningCluster,
    image: str,
    tmp_path: Path,
) -> None:
    """The `cluster` target (any kubeconfig) with readiness waiting on: Ready pods, no change on
    a second up, nothing left after destroy."""
    project = PulumiProject.copy_of(repo_root, tmp_path)
    shutil.copytree(repo_root / "bundle", project.root / "bundle")
    values = read_stack_file(project.stack_file("staging"))
    values.pop("gitops")
    values.update(
        target="cluster",
        namespace="liftlock-cluster-target",
        bundleDigest=verify_bundle(repo_root / "bundle"),
        image=image,
        replicas=1,
        kubeconfig=str(cluster.layout.kubeconfig),
        kubeContext=CONTEXT_NAME,
    )
    values.pop("driftSchedule", None)
    project.write_stack_values("staging", values)
    project.init("staging")
    try:
        project.up("staging")
        assert deployment_status(cluster, "liftlock-cluster-target")["status"]["readyReplicas"] == 1
        project.up("staging", "--expect-no-changes")
    finally:
        project.destroy("staging")
    gone = kubernetes.kubectl(cluster.layout, "get", "namespace", "liftlock-cluster-target")
    assert gone.returncode != 0 or "Terminating" in gone.stdout
