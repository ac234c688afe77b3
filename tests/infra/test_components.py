"""Each component, for each committed stack, under Pulumi mocks (no engine, no Docker)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config import StackConfigError, read_stack_file
from infra.lineage import BundleNotFoundError
from tests.infra.fixtures import as_pulumi_config, stack_values, write_bundle
from tests.infra.mock_program import Declared, ProgramRun, run_program
from tests.infra.pss import pod_spec_of, restricted_violations

CONTRACT_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "liftlock.io/stack",
    "liftlock.io/team",
    "liftlock.io/owner",
    "liftlock.io/cost-center",
    "liftlock.io/bundle-digest",
    "liftlock.io/data-digest",
)
CONTRACT_ANNOTATIONS = (
    "liftlock.io/bundle-digest",
    "liftlock.io/data-digest",
    "liftlock.io/git-commit",
)
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CRON_JOB = "kubernetes:batch/v1:CronJob"
APPLICATION = "kubernetes:argoproj.io/v1alpha1:Application"
GIT_REPOSITORY = "kubernetes:source.toolkit.fluxcd.io/v1:GitRepository"
KUSTOMIZATION = "kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization"
GITOPS_OBJECTS = (APPLICATION, GIT_REPOSITORY, KUSTOMIZATION)
PROVIDER = "pulumi:providers:kubernetes"


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    """A throwaway project root holding a bundle; returns (root, bundle digest)."""
    digest = write_bundle(tmp_path / "bundle")
    return tmp_path, digest


def committed_values(repo_root: Path, stack: str, digest: str) -> dict[str, Any]:
    """The committed stack file's values, pointed at the test bundle, rendered only: staging's
    copy on the cluster (applyTo) is tested on a real one (test_engine_staging_cluster.py)."""
    values = read_stack_file(repo_root / "stacks" / f"Pulumi.{stack}.yaml")
    values.pop("applyTo", None)
    if "bundleDigest" in values:
        values["bundleDigest"] = digest
    return values


def kubernetes_objects(run: ProgramRun) -> list[Declared]:
    return [d for d in run.declared if d.typ.startswith("kubernetes:")]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_render_stack_declares_the_model_service_through_its_render_provider(
    repo_root: Path, project: tuple[Path, str], stack: str
) -> None:
    root, digest = project
    values = committed_values(repo_root, stack, digest)
    run = run_program(stack, as_pulumi_config(values), root)

    providers = {d.name: d for d in run.of_type(PROVIDER)}
    render = providers[f"{stack}-kubernetes"]
    assert render.inputs.get("renderYamlToDirectory") == str(root / "deploy" / stack), render.urn
    assert "kubeconfig" not in render.inputs, f"{render.urn}: render mode must get no kubeconfig"
    # The embedded default's controller: Flux, rendered apart from what it applies.
    flux = providers[f"{stack}-flux-render"]
    assert flux.inputs["renderYamlToDirectory"] == str(root / "deploy" / "flux" / stack)
    assert f"{stack}-argocd-render" not in providers

    for resource in kubernetes_objects(run):
        expected = flux if resource.typ in GITOPS_OBJECTS else render
        assert resource.provider and f"::{expected.name}::" in resource.provider, (
            f"{resource.urn}: explicit provider {expected.name} expected, got {resource.provider}"
        )
    deployment = run.one(DEPLOYMENT)
    # An enabled autoscaler owns the count: no replicas field for it to fight (prod).
    expected = None if values["autoscaling"]["enabled"] else values["replicas"]
    assert deployment.inputs["spec"].get("replicas") == expected, deployment.urn
    spread = deployment.inputs["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = spread["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname", deployment.urn
    assert run.outputs == {
        "target": "render",
        "service_url": f"http://liftlock-model.{values['namespace']}.svc.cluster.local:8080",
        "bundle_digest": digest,
        "image": values["image"],
        "render_dir": f"deploy/{stack}",
        "applied_to": None,
    }
    kustomization = run.one(KUSTOMIZATION)
    spec = kustomization.inputs["spec"]
    assert spec["path"] == f"./deploy/{stack}", kustomization.urn
    assert spec["targetNamespace"] == values["namespace"], kustomization.urn
    assert run.of_type(APPLICATION) == [], "one controller per stack"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_object_carries_the_lineage_labels_and_annotations(
    repo_root: Path, project: tuple[Path, str], stack: str
) -> None:
    root, digest = project
    run = run_program(stack, as_pulumi_config(committed_values(repo_root, stack, digest)), root)
    for resource in kubernetes_objects(run):
        metadata = resource.inputs["metadata"]
        missing = [key for key in CONTRACT_LABELS if key not in metadata.get("labels", {})]
        assert not missing, f"{resource.urn}: labels {missing} missing"
        assert metadata["labels"]["liftlock.io/bundle-digest"] == digest[7:39], resource.urn
        assert all(len(v) <= 63 for v in metadata["labels"].values()), resource.urn
        annotations = metadata.get("annotations", {})
        assert [key for key in CONTRACT_ANNOTATIONS if key not in annotations] == [], resource.urn
        assert annotations["liftlock.io/bundle-digest"] == digest, resource.urn


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_workloads_meet_pod_security_restricted(
    repo_root: Path, project: tuple[Path, str], stack: str
) -> None:
    root, digest = project
    run = run_program(stack, as_pulumi_config(committed_values(repo_root, stack, digest)), root)
    workloads = [d for d in kubernetes_objects(run) if d.typ in (DEPLOYMENT, CRON_JOB)]
    assert {d.typ for d in workloads} == {DEPLOYMENT, CRON_JOB}, "model + drift monitor expected"
    for workload in workloads:
        manifest = {"kind": workload.typ.rsplit(":", 1)[-1], **workload.inputs}
        pod_spec = pod_spec_of(manifest)
        assert pod_spec is not None
        assert restricted_violations(pod_spec, workload.urn) == []
        assert pod_spec["automountServiceAccountToken"] is False, workload.urn
    namespace = run.one("kubernetes:core/v1:Namespace")
    labels = namespace.inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted", namespace.urn
    account = run.one("kubernetes:core/v1:ServiceAccount")
    assert account.inputs["automountServiceAccountToken"] is False, account.urn


def test_model_deployment_probes_resources_and_bundle_manifest(
    repo_root: Path, project: tuple[Path, str]
) -> None:
    root, digest = project
    values = committed_values(repo_root, "staging", digest)
    run = run_program("staging", as_pulumi_config(values), root)
    deployment = run.one(DEPLOYMENT)
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready", deployment.urn
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live", deployment.urn
    assert [port["name"] for port in container["ports"]] == ["http", "grpc"], deployment.urn
    assert container["resources"] == {
        group: {**values["resources"][group], "ephemeral-storage": storage}
        for group, storage in (("requests", "64Mi"), ("limits", "256Mi"))
    }, deployment.urn
    assert container["image"] == values["image"], deployment.urn
    config_map = run.one("kubernetes:core/v1:ConfigMap")
    assert '"files"' in config_map.inputs["data"]["bundle.json"], config_map.urn
    selector = deployment.inputs["spec"]["selector"]["matchLabels"]
    assert "liftlock.io/bundle-digest" not in selector, f"{deployment.urn}: selector is immutable"


def test_network_policies_deny_by_default_and_open_only_the_service_port(
    repo_root: Path, project: tuple[Path, str]
) -> None:
    root, digest = project
    run = run_program("prod", as_pulumi_config(committed_values(repo_root, "prod", digest)), root)
    policies = {d.inputs["metadata"]["name"]: d for d in run.of_type(NETWORK_POLICY)}
    deny = policies["default-deny"]
    assert deny.inputs["spec"]["podSelector"] == {}, deny.urn
    assert sorted(deny.inputs["spec"]["policyTypes"]) == ["Egress", "Ingress"], deny.urn
    allow = policies["liftlock-model-allow-http"]
    ports = [p["port"] for rule in allow.inputs["spec"]["ingress"] for p in rule["ports"]]
    assert ports == [8080, 8081], f"{allow.urn}: HTTP and V2 gRPC"
    service = run.one("kubernetes:core/v1:Service")
    assert service.inputs["spec"]["type"] == "ClusterIP", f"{service.urn}: internal exposure"
    assert [p["port"] for p in service.inputs["spec"]["ports"]] == [8080, 8081], service.urn


def test_prod_scales_and_keeps_a_disruption_budget(
    repo_root: Path, project: tuple[Path, str]
) -> None:
    root, digest = project
    run = run_program("prod", as_pulumi_config(committed_values(repo_root, "prod", digest)), root)
    hpa = run.one(HPA)
    assert hpa.inputs["spec"]["minReplicas"] >= 3, hpa.urn
    assert hpa.inputs["spec"]["scaleTargetRef"]["name"] == "liftlock-model", hpa.urn
    pdb = run.one(PDB)
    assert pdb.inputs["spec"]["maxUnavailable"] == 1, pdb.urn


def test_staging_has_a_budget_but_no_autoscaler(repo_root: Path, project: tuple[Path, str]) -> None:
    root, digest = project
    run = run_program(
        "staging", as_pulumi_config(committed_values(repo_root, "staging", digest)), root
    )
    assert run.of_type(HPA) == [], "staging keeps autoscaling off"
    assert len(run.of_type(PDB)) == 1, "2 replicas: a PodDisruptionBudget"


def test_single_replica_gets_no_disruption_budget(project: tuple[Path, str]) -> None:
    root, digest = project
    values = stack_values("render", digest, replicas=1)
    run = run_program("staging", as_pulumi_config(values), root)
    assert run.of_type(PDB) == [], [d.urn for d in run.of_type(PDB)]


def test_drift_monitor_runs_liftlock_drift_on_the_schedule(
    repo_root: Path, project: tuple[Path, str]
) -> None:
    root, digest = project
    values = committed_values(repo_root, "prod", digest)
    run = run_program("prod", as_pulumi_config(values), root)
    cron = run.one(CRON_JOB)
    assert cron.inputs["spec"]["schedule"] == values["driftSchedule"], cron.urn
    container = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["liftlock", "drift"], cron.urn
    egress = {d.inputs["metadata"]["name"]: d for d in run.of_type(NETWORK_POLICY)}
    assert "liftlock-drift-allow-egress" in egress


def test_dev_builds_the_image_from_the_bundle_and_runs_it_locally(
    repo_root: Path, project: tuple[Path, str]
) -> None:
    root, digest = project
    values = committed_values(repo_root, "dev", digest)
    run = run_program("dev", as_pulumi_config(values), root)
    assert kubernetes_objects(run) == [] and run.of_type(PROVIDER) == [], "dev needs no cluster"
    image = run.one("pulumi-python:dynamic/liftlock:ModelImage")
    registry = values.get("registry", "127.0.0.1:5000")
    assert image.inputs["tag"] == f"{registry}/{values['imageRepository']}:b-{digest[7:19]}", (
        image.urn
    )
    assert image.inputs["registry"] == registry, image.urn
    assert image.inputs["bundle_digest"] == digest, image.urn
    assert image.inputs["context_hash"].startswith("sha256:"), image.urn
    container = run.one("pulumi-python:dynamic/liftlock:LocalService")
    assert container.inputs["image_id"] == "sha256:" + "1" * 64, f"{container.urn}: image output"
    assert int(container.inputs["host_port"]) == values["hostPort"], container.urn
    assert run.outputs["service_url"] == f"http://127.0.0.1:{values['hostPort']}"
    assert run.outputs["bundle_digest"] == digest and run.outputs["render_dir"] is None


def test_new_bundle_changes_the_image_tag_and_context_hash(project: tuple[Path, str]) -> None:
    root, first = project
    before = run_program("dev", as_pulumi_config(stack_values("docker", first)), root)
    second = write_bundle(root / "bundle", seed="two")
    after = run_program("dev", as_pulumi_config(stack_values("docker", second)), root)
    kind = "pulumi-python:dynamic/liftlock:ModelImage"
    assert before.one(kind).inputs["tag"] != after.one(kind).inputs["tag"]
    assert before.one(kind).inputs["context_hash"] != after.one(kind).inputs["context_hash"]


def test_dev_with_a_pinned_digest_that_is_not_the_bundle_fails_naming_the_key(
    project: tuple[Path, str],
) -> None:
    root, _digest = project
    values = stack_values("docker", "", bundleDigest="sha256:" + "e" * 64)
    with pytest.raises(StackConfigError, match="liftlock:bundleDigest"):
        run_program("dev", as_pulumi_config(values), root)


def test_broken_config_fails_before_any_resource_is_declared(project: tuple[Path, str]) -> None:
    root, digest = project
    values = stack_values("render", digest, replicas=0)
    declared: list[Declared] = []
    with pytest.raises(StackConfigError, match="liftlock:replicas") as caught:
        run_program("staging", as_pulumi_config(values), root, declared=declared)
    assert "liftlock:replicas = 0" in str(caught.value)
    assert declared == [], f"declared before validation: {[d.urn for d in declared]}"


def test_unknown_bundle_digest_names_the_key(project: tuple[Path, str]) -> None:
    root, _digest = project
    values = stack_values("render", "sha256:" + "f" * 64)
    with pytest.raises(BundleNotFoundError, match="liftlock:bundleDigest"):
        run_program("prod", as_pulumi_config(values), root)


@pytest.fixture
def listening_api_server() -> Iterator[int]:
    """A socket that accepts connections (the program only checks the server is reachable)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


def write_kubeconfig(path: Path, port: int, context: str = "local") -> Path:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}
users:
- name: admin
  user: {{token: test}}
contexts:
- name: {context}
  context: {{cluster: local, user: admin}}
current-context: {context}
""",
        encoding="utf-8",
    )
    return path


def test_cluster_target_uses_kubeconfig_and_context_and_can_skip_waiting(
    project: tuple[Path, str], listening_api_server: int
) -> None:
    root, digest = project
    kubeconfig = write_kubeconfig(root / "kubeconfig", listening_api_server)
    values = stack_values(
        "cluster", digest, kubeconfig=str(kubeconfig), waitForReady=False, replicas=1
    )
    run = run_program("cluster-test", as_pulumi_config(values), root)
    provider = run.one(PROVIDER)
    assert provider.inputs["kubeconfig"] == str(kubeconfig), provider.urn
    assert provider.inputs["context"] == "local", provider.urn
    assert "renderYamlToDirectory" not in provider.inputs, provider.urn
    assert run.of_type(APPLICATION) == [], "no Argo CD Application when applying directly"
    for resource in kubernetes_objects(run):
        annotations = resource.inputs["metadata"]["annotations"]
        assert annotations["pulumi.com/skipAwait"] == "true", resource.urn
        assert annotations["pulumi.com/deletionPropagationPolicy"] == "background", resource.urn


def test_unreachable_cluster_fails_naming_the_context(project: tuple[Path, str]) -> None:
    from infra.kubeconfig import ClusterUnreachableError

    root, digest = project
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = int(probe.getsockname()[1])
    kubeconfig = write_kubeconfig(root / "kubeconfig", free_port, context="far-away")
    values = stack_values("cluster", digest, kubeconfig=str(kubeconfig), kubeContext="far-away")
    with pytest.raises(ClusterUnreachableError, match="kubeconfig context 'far-away'"):
        run_program("cluster-test", as_pulumi_config(values), root)
