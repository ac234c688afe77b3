"""Lineage of a deployment: which bundle, which data, which reviewed commit.

Kubernetes label values cannot hold `sha256:` and are at most 63 characters, so labels carry the
first 32 hex characters and annotations the full values (the team contract).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config import StackConfig

APP_NAME = "liftlock-model"
PART_OF = "liftlock"
LABEL_HEX_CHARS = 32
UNKNOWN = "unknown"


class BundleNotFoundError(LookupError):
    """No bundle manifest with the configured digest is available to the program."""


@dataclass(frozen=True, kw_only=True)
class Lineage:
    bundle_digest: str
    data_digest: str
    git_commit: str


def short_digest(digest: str) -> str:
    """`sha256:<hex>` → the first 32 hex characters (a valid label value)."""
    hex_part = digest.split(":", 1)[-1]
    return hex_part[:LABEL_HEX_CHARS] if hex_part and hex_part != UNKNOWN else UNKNOWN


def data_digest_of(manifest: dict[str, Any]) -> str:
    """`sha256:<hex>` of the training data, as recorded by ml/package.py (`data.sha256`)."""
    data = manifest.get("data")
    value = data.get("sha256") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        return UNKNOWN
    return value if value.startswith("sha256:") else f"sha256:{value}"


def object_labels(config: StackConfig, lineage: Lineage) -> dict[str, str]:
    """Labels every Kubernetes object of the stack carries."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
        "liftlock.io/stack": config.stack,
        "liftlock.io/team": config.labels.team,
        "liftlock.io/owner": config.labels.owner,
        "liftlock.io/cost-center": config.labels.cost_center,
        "liftlock.io/bundle-digest": short_digest(lineage.bundle_digest),
        "liftlock.io/data-digest": short_digest(lineage.data_digest),
    }


def object_annotations(lineage: Lineage) -> dict[str, str]:
    return {
        "liftlock.io/bundle-digest": lineage.bundle_digest,
        "liftlock.io/data-digest": lineage.data_digest,
        "liftlock.io/git-commit": lineage.git_commit,
    }


def selector_labels(config: StackConfig) -> dict[str, str]:
    """The stable subset that selects the model's pods (never includes a digest)."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/component": "model-server",
        "liftlock.io/stack": config.stack,
    }


def _manifests_in_rendered_configmaps(deploy_dir: Path) -> Iterable[dict[str, Any]]:
    for path in sorted(deploy_dir.glob("*/1-manifest/*.yaml")):
        if "configmap" not in path.name:
            continue
        with path.open(encoding="utf-8") as handle:
            for document in yaml.safe_load_all(handle):
                data = (document or {}).get("data") or {}
                if "bundle.json" in data:
                    yield json.loads(data["bundle.json"])


def find_bundle_manifest(
    digest: str | None, *, bundle_dir: Path, deploy_dir: Path
) -> tuple[str, dict[str, Any]]:
    """(digest, manifest) of the bundle a stack deploys.

    The local bundle folder (what `dvc repro` made) when it matches; otherwise a manifest already
    rendered for some stack in deploy/ (committed, so staging and prod still render after dev moved
    on to a newer bundle). `digest` None means "whatever the bundle folder holds" (docker target).
    """
    from ml.bundle import bundle_digest, read_manifest, verify_bundle

    if digest is None:
        digest = verify_bundle(bundle_dir)
        return digest, read_manifest(bundle_dir)
    if (bundle_dir / "bundle.json").is_file() and bundle_digest(bundle_dir) == digest:
        return digest, read_manifest(bundle_dir)
    from ml.bundle import manifest_digest

    for manifest in _manifests_in_rendered_configmaps(deploy_dir):
        if manifest_digest(manifest) == digest:
            return digest, manifest
    raise BundleNotFoundError(
        f"liftlock:bundleDigest = {digest}: no bundle with this digest in {bundle_dir} "
        f"nor rendered under {deploy_dir}; fix: `dvc checkout` / `dvc repro` the commit that "
        "built it, or promote a bundle that exists (`liftlock promote`)"
    )


def git_commit_of_digest(repo_root: Path, stack_file: Path, digest: str) -> str:
    """The commit that put `digest` into the stack file: stable until the digest changes.

    (HEAD would change the rendered manifests on every commit, so a committed render would always
    be one commit behind.) "uncommitted" until the stack file with this digest is committed.
    """
    try:
        result = subprocess.run(
            ["git", "log", "-1", "--format=%H", f"-S{digest}", "--", str(stack_file)],
            cwd=repo_root,
            capture_output=True,
            text=True,
            check=False,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN
    commit = result.stdout.strip()
    if result.returncode != 0:
        return UNKNOWN
    return commit or "uncommitted"
