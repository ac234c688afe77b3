"""The GitOps controller's objects a render stack declares: Flux's GitRepository + Kustomization
by default (deploy/flux/<stack>/), Argo CD's Application when liftlock:gitops.controller says so
(deploy/argocd/<stack>/); a bad controller key is refused naming it. The Kustomization the
embedded cluster applies (liftlock.cluster.flux) syncs the same way as the rendered one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.components.flux_sync import kustomization_spec
from infra.config import StackConfigError, parse_stack_config
from liftlock.cluster import flux
from tests.infra.fixtures import as_pulumi_config, stack_values, write_bundle
from tests.infra.mock_program import ProgramRun, run_program

APPLICATION = "kubernetes:argoproj.io/v1alpha1:Application"
GIT_REPOSITORY = "kubernetes:source.toolkit.fluxcd.io/v1:GitRepository"
KUSTOMIZATION = "kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization"
PROVIDER = "pulumi:providers:kubernetes"
REPO_URL = "https://example.invalid/liftlock.git"


def render(tmp_path: Path, **gitops: Any) -> ProgramRun:
    digest = write_bundle(tmp_path / "bundle")
    values = stack_values("render", digest, gitops={"repoUrl": REPO_URL, **gitops})
    return run_program("staging", as_pulumi_config(values), tmp_path)


def provider_of(run: ProgramRun, name: str) -> dict[str, Any]:
    return next(d.inputs for d in run.of_type(PROVIDER) if d.name == name)


def test_flux_is_the_default_controller_rendered_beside_the_manifests(tmp_path: Path) -> None:
    run = render(tmp_path, revision="release")
    directory = provider_of(run, "staging-flux-render")["renderYamlToDirectory"]
    assert directory == str(tmp_path / "deploy" / "flux" / "staging")
    assert run.of_type(APPLICATION) == []

    source = run.one(GIT_REPOSITORY)
    assert source.inputs["metadata"]["name"] == "liftlock-staging", source.urn
    assert source.inputs["metadata"]["namespace"] == "flux-system", source.urn
    assert source.inputs["spec"]["url"] == REPO_URL, source.urn
    assert source.inputs["spec"]["ref"] == {"branch": "release"}, source.urn

    kustomization = run.one(KUSTOMIZATION)
    spec = kustomization.inputs["spec"]
    assert spec["path"] == "./deploy/staging", kustomization.urn
    assert spec["prune"] is True and spec["wait"] is True, kustomization.urn
    assert spec["targetNamespace"] == "liftlock-test", kustomization.urn
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": "liftlock-staging"}
    labels = kustomization.inputs["metadata"]["labels"]
    assert labels["liftlock.io/stack"] == "staging", kustomization.urn


def test_flux_namespace_is_one_key(tmp_path: Path) -> None:
    run = render(tmp_path, fluxNamespace="gitops")
    for typ in (GIT_REPOSITORY, KUSTOMIZATION):
        assert run.one(typ).inputs["metadata"]["namespace"] == "gitops"


def test_argocd_renders_the_application_instead(tmp_path: Path) -> None:
    run = render(tmp_path, controller="argocd", argocdNamespace="argo")
    directory = provider_of(run, "staging-argocd-render")["renderYamlToDirectory"]
    assert directory == str(tmp_path / "deploy" / "argocd" / "staging")
    assert run.of_type(GIT_REPOSITORY) == [] and run.of_type(KUSTOMIZATION) == []
    application = run.one(APPLICATION)
    assert application.inputs["metadata"]["namespace"] == "argo", application.urn
    assert application.inputs["spec"]["source"]["path"] == "deploy/staging"


@pytest.mark.parametrize(
    ("gitops", "fragments"),
    [
        (
            {"controller": "fleet"},
            ['liftlock:gitops.controller = "fleet": not allowed', '"flux", "argocd"'],
        ),
        (
            {"controller": "argocd", "fluxNamespace": "flux-system"},
            ["liftlock:gitops.fluxNamespace: only the flux controller", "controller: flux"],
        ),
        (
            {"argocdNamespace": "argocd"},
            ["liftlock:gitops.argocdNamespace: only the argocd controller", "controller: argocd"],
        ),
    ],
)
def test_a_bad_controller_key_names_the_key_and_the_fix(
    gitops: dict[str, str], fragments: list[str]
) -> None:
    values = stack_values("render", "sha256:" + "0" * 64)
    values["gitops"] |= gitops
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config(values, stack="staging", decode=False)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "stacks/Pulumi.staging.yaml" in message


def test_gitops_render_dir_follows_the_controller() -> None:
    values = stack_values("render", "sha256:" + "0" * 64)
    assert parse_stack_config(values, stack="prod", decode=False).gitops_render_dir == (
        "deploy/flux/prod"
    )
    values["gitops"]["controller"] = "argocd"
    config = parse_stack_config(values, stack="prod", decode=False)
    assert config.gitops_render_dir == "deploy/argocd/prod"
    docker = parse_stack_config(stack_values("docker", ""), stack="dev", decode=False)
    assert docker.gitops_render_dir is None


def test_the_embedded_kustomization_syncs_like_the_rendered_one() -> None:
    """Two writers of one object (the program may not import liftlock, liftlock not the
    components): what decides the sync is held equal here; only the cadence and the source
    (one local GitRepository for every stack) differ."""
    embedded = flux.kustomization_document(flux.GitOpsStack(stack="prod", namespace="ns"))["spec"]
    rendered = kustomization_spec(path="deploy/prod", target_namespace="ns", source="x")
    assert set(embedded) == set(rendered)
    for key in ("path", "prune", "wait", "timeout", "targetNamespace"):
        assert embedded[key] == rendered[key], key
    assert embedded["sourceRef"]["kind"] == rendered["sourceRef"]["kind"]
