"""Where a stack's bundle manifest and lineage come from."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.kubeconfig import ClusterUnreachableError, context_server
from infra.lineage import (
    BundleNotFoundError,
    data_digest_of,
    find_bundle_manifest,
    git_commit_of_digest,
    short_digest,
)
from ml.bundle import read_manifest
from tests.infra.fixtures import write_bundle


def render_config_map(deploy_dir: Path, stack: str, manifest: dict[str, object]) -> None:
    folder = deploy_dir / stack / "1-manifest"
    folder.mkdir(parents=True)
    document = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "liftlock-model-bundle"},
        "data": {"bundle.json": json.dumps(manifest, indent=2)},
    }
    path = folder / f"v1-configmap-liftlock-{stack}-liftlock-model-bundle.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")


def test_manifest_comes_from_the_bundle_folder_when_digests_match(tmp_path: Path) -> None:
    digest = write_bundle(tmp_path / "bundle")
    found, manifest = find_bundle_manifest(
        digest, bundle_dir=tmp_path / "bundle", deploy_dir=tmp_path / "deploy"
    )
    assert found == digest and manifest == read_manifest(tmp_path / "bundle")
    assert data_digest_of(manifest).startswith("sha256:")


def test_an_older_promoted_bundle_is_read_from_the_rendered_config_map(tmp_path: Path) -> None:
    old = write_bundle(tmp_path / "old", seed="old")
    render_config_map(tmp_path / "deploy", "staging", read_manifest(tmp_path / "old"))
    write_bundle(tmp_path / "bundle", seed="new")  # dev moved on
    found, manifest = find_bundle_manifest(
        old, bundle_dir=tmp_path / "bundle", deploy_dir=tmp_path / "deploy"
    )
    assert found == old and manifest["params"] == {"seed": "old"}


def test_a_digest_found_nowhere_names_the_key_and_the_fix(tmp_path: Path) -> None:
    write_bundle(tmp_path / "bundle")
    with pytest.raises(BundleNotFoundError, match=r"liftlock:bundleDigest = sha256:f{64}.*dvc"):
        find_bundle_manifest(
            "sha256:" + "f" * 64, bundle_dir=tmp_path / "bundle", deploy_dir=tmp_path / "deploy"
        )


def test_label_values_are_the_first_32_hex() -> None:
    assert short_digest("sha256:" + "ab" * 32) == "ab" * 16
    assert short_digest("unknown") == "unknown"


def git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_git_commit_is_the_commit_that_put_the_digest_in_the_stack_file(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "README").write_text("x\n", encoding="utf-8")
    git(tmp_path, "add", "README")
    git(tmp_path, "commit", "-qm", "start")
    stack_file = tmp_path / "Pulumi.staging.yaml"
    digest = "sha256:" + "1" * 64
    stack_file.write_text(f"config:\n  liftlock:bundleDigest: {digest}\n", encoding="utf-8")
    assert git_commit_of_digest(tmp_path, stack_file, digest) == "uncommitted"
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "promote")
    promoted = git(tmp_path, "rev-parse", "HEAD")
    stack_file.write_text(
        stack_file.read_text(encoding="utf-8") + "  liftlock:replicas: 3\n", encoding="utf-8"
    )
    git(tmp_path, "commit", "-qam", "more replicas")
    # Unchanged until the digest changes: a re-render stays byte-identical.
    assert git_commit_of_digest(tmp_path, stack_file, digest) == promoted


def test_kubeconfig_context_that_does_not_exist_is_named(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "contexts: [{name: a, context: {cluster: c}}]\n"
        "clusters: [{name: c, cluster: {server: x}}]\n",
        encoding="utf-8",
    )
    assert context_server(kubeconfig, "a") == "x"
    with pytest.raises(
        ClusterUnreachableError, match=r"context 'b': not in .* \(contexts there: a\)"
    ):
        context_server(kubeconfig, "b")
    with pytest.raises(ClusterUnreachableError, match="no kubeconfig at"):
        context_server(tmp_path / "missing", "a")
