"""staging and prod on the real engine: rendered manifests, no-change re-runs, per-stack changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from infra.config import read_stack_file
from tests.infra.engine import PulumiProject, rendered_manifests
from tests.infra.fixtures import write_bundle
from tests.infra.pss import pod_spec_of, restricted_violations

pytestmark = [pytest.mark.slow, pytest.mark.engine]

RENDER_STACKS = ("staging", "prod")
#: Objects whose schema is not part of Kubernetes (validated by their own CRD in a cluster).
CUSTOM_KINDS = {"Application"}
KUBERNETES_VERSION = "1.33"


@pytest.fixture(scope="module")
def rendered(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulumiProject]:
    """A copy of the project with staging and prod up once, pointed at a test bundle."""
    project = PulumiProject.copy_of(repo_root, tmp_path_factory.mktemp("render"))
    digest = write_bundle(project.root / "bundle")
    for stack in RENDER_STACKS:
        values = read_stack_file(project.stack_file(stack))
        values["bundleDigest"] = digest
        project.write_stack_values(stack, values)
        project.init(stack)
        project.up(stack)
    yield project


def manifests_of(project: PulumiProject, stack: str) -> list[tuple[Path, dict[str, Any]]]:
    return rendered_manifests(project.root / "deploy" / stack)


def test_up_writes_each_stacks_manifests_under_deploy(rendered: PulumiProject) -> None:
    for stack in RENDER_STACKS:
        kinds = sorted(doc["kind"] for _, doc in manifests_of(rendered, stack))
        expected = {
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "Deployment",
            "Service",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "CronJob",
        }
        assert expected <= set(kinds), f"deploy/{stack}: {kinds}"
        assert ("HorizontalPodAutoscaler" in kinds) == (stack == "prod"), kinds
        assert all(
            doc["metadata"]["labels"]["liftlock.io/stack"] == stack
            for _, doc in manifests_of(rendered, stack)
        )
        # The embedded default's GitOps controller, Flux: what it pulls and how it applies it.
        synced = {
            doc["kind"]: doc
            for _, doc in rendered_manifests(rendered.root / "deploy" / "flux" / stack)
        }
        assert sorted(synced) == ["GitRepository", "Kustomization"], sorted(synced)
        assert synced["Kustomization"]["spec"]["path"] == f"./deploy/{stack}"
        outputs = rendered.outputs(stack)
        assert outputs["target"] == "render" and outputs["renderDir"] == f"deploy/{stack}"
        assert outputs["bundleDigest"].startswith("sha256:")


def test_second_up_and_preview_report_no_changes(rendered: PulumiProject) -> None:
    for stack in RENDER_STACKS:
        rendered.preview(stack, "--expect-no-changes")
        rendered.up(stack, "--expect-no-changes")


def test_every_manifest_validates_offline_and_meets_pod_security_restricted(
    rendered: PulumiProject,
) -> None:
    for stack in RENDER_STACKS:
        for path, manifest in manifests_of(rendered, stack):
            if manifest["kind"] in CUSTOM_KINDS:
                continue
            try:
                kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{path}: {error.message} at {list(error.path)}")
            assert manifest["kind"] != "Secret", f"{path}: never render a Secret"
            pod_spec = pod_spec_of(manifest)
            if pod_spec is not None:
                assert restricted_violations(pod_spec, str(path)) == []


def test_changing_replicas_changes_only_that_stacks_deployment(rendered: PulumiProject) -> None:
    values = read_stack_file(rendered.stack_file("staging"))
    values["replicas"] = values["replicas"] + 1
    rendered.write_stack_values("staging", values)
    steps = rendered.preview_steps("staging")
    changed = sorted((step["op"], step["urn"].rsplit("::", 1)[-1]) for step in steps)
    assert changed == [("update", "staging-model-deployment")], changed
    assert rendered.preview_steps("prod") == []
    rendered.up("staging")
    deployment = next(
        doc for _, doc in manifests_of(rendered, "staging") if doc["kind"] == "Deployment"
    )
    assert deployment["spec"]["replicas"] == values["replicas"]


def test_destroy_removes_only_that_stacks_manifests(rendered: PulumiProject) -> None:
    prod_before = {path: path.read_bytes() for path, _ in manifests_of(rendered, "prod")}
    rendered.destroy("staging")
    assert manifests_of(rendered, "staging") == [], "staging's manifests must be gone"
    assert rendered_manifests(rendered.root / "deploy" / "flux" / "staging") == []
    prod_after = {path: path.read_bytes() for path, _ in manifests_of(rendered, "prod")}
    assert prod_after == prod_before, "prod's manifests must be untouched"


def test_staging_as_committed_previews_with_its_cluster_down_and_up_names_the_fix(
    repo_root: Path, tmp_path: Path
) -> None:
    """The committed staging also applies to the embedded cluster (liftlock:applyTo). With no
    cluster on the machine (no kubeconfig yet), a preview, which PR previews and the gate run,
    still shows the render and the cluster copy; `up` fails before it changes anything, naming
    the context and `liftlock cluster up`."""
    committed = read_stack_file(repo_root / "stacks" / "Pulumi.staging.yaml")
    assert committed["applyTo"]["kubeContext"] == "liftlock-embedded", committed["applyTo"]
    project = PulumiProject.copy_of(repo_root, tmp_path)
    values = read_stack_file(project.stack_file("staging"))
    values.update(
        bundleDigest=write_bundle(project.root / "bundle"),
        applyTo={**committed["applyTo"], "kubeconfig": str(tmp_path / "no-cluster" / "kubeconfig")},
    )
    project.write_stack_values("staging", values)
    project.init("staging")
    steps = project.preview_steps("staging")
    creates = {step["urn"].rsplit("::", 1)[-1] for step in steps if step["op"] == "create"}
    assert {"staging-model-deployment", "staging-cluster-model-deployment"} <= creates, creates
    failed = project.run("up", "--stack", "staging", "--yes", "--skip-preview", check=False)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "kubeconfig context 'liftlock-embedded'" in output, output
    assert "liftlock cluster up" in output and "Traceback" not in output, output
    assert not (project.root / "deploy" / "staging").exists() or not any(
        (project.root / "deploy" / "staging").rglob("*.yaml")
    ), "a refused up renders nothing"
