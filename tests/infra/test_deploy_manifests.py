"""The committed deploy/ folder (what Argo CD pulls): valid, restricted, lineage-labelled, and in
step with the stack files."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest

from infra.config import load_stack_file
from tests.infra.engine import rendered_manifests
from tests.infra.pss import pod_spec_of, restricted_violations

KUBERNETES_VERSION = "1.33"
RENDER_STACKS = ("staging", "prod")


@pytest.mark.parametrize("stack", RENDER_STACKS)
def test_committed_manifests_validate_and_meet_pod_security_restricted(
    repo_root: Path, stack: str
) -> None:
    manifests = rendered_manifests(repo_root / "deploy" / stack)
    assert manifests, f"deploy/{stack} is empty: run `pulumi up --stack {stack}` and commit it"
    for path, manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path}: {error.message} at {list(error.path)}")
        assert manifest["kind"] != "Secret", f"{path}: a Secret must never be rendered"
        pod_spec = pod_spec_of(manifest)
        if pod_spec is not None:
            assert restricted_violations(pod_spec, str(path)) == []


@pytest.mark.parametrize("stack", RENDER_STACKS)
def test_committed_manifests_match_the_stack_file(repo_root: Path, stack: str) -> None:
    config = load_stack_file(repo_root / "stacks" / f"Pulumi.{stack}.yaml")
    for path, manifest in rendered_manifests(repo_root / "deploy" / stack):
        annotations = manifest["metadata"].get("annotations", {})
        assert annotations.get("liftlock.io/bundle-digest") == config.bundle_digest, (
            f"{path}: rendered for another bundle; re-run `pulumi up --stack {stack}`"
        )
        if manifest["kind"] == "Deployment":
            # An enabled autoscaler owns the count (replicas-left-to-autoscaler).
            expected = None if config.autoscaling.enabled else config.replicas
            assert manifest["spec"].get("replicas") == expected, path
            images = {c["image"] for c in manifest["spec"]["template"]["spec"]["containers"]}
            assert images == {config.image}, path
    synced = rendered_manifests(repo_root / "deploy" / "flux" / stack)
    paths = [doc["spec"]["path"] for _, doc in synced if doc["kind"] == "Kustomization"]
    assert paths == [f"./deploy/{stack}"], paths
