"""Small, real inputs for the infra tests: a bundle folder and stack values."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from ml.bundle import MANIFEST, manifest_digest, sha256_file

OWNERS = {"team": "ml-platform", "owner": "model-owners", "costCenter": "cc-1000"}
RESOURCES = {
    "requests": {"cpu": "250m", "memory": "256Mi"},
    "limits": {"cpu": "500m", "memory": "512Mi"},
}

#: The environments issue's broken stack configs: id -> (change, key the error names, text shown).
#: The config unit tests and the real-engine `pulumi preview` tests both run these.
BROKEN_CONFIGS: dict[str, tuple[dict[str, Any], str, str]] = {
    "unknown-key": ({"replica": 3}, "liftlock:replica", "unknown key"),
    "wrong-type": ({"replicas": "three"}, "liftlock:replicas", "wrong type"),
    "replicas-0": ({"replicas": 0}, "liftlock:replicas", "≥ 1"),
    "limits-below-requests": (
        {
            "resources": {
                "requests": {"cpu": "1", "memory": "1Gi"},
                "limits": {"cpu": "500m", "memory": "1Gi"},
            }
        },
        "liftlock:resources.limits.cpu",
        "below resources.requests.cpu",
    ),
    "malformed-digest": ({"bundleDigest": "sha256:1234"}, "liftlock:bundleDigest", "malformed"),
}


def write_bundle(bundle_dir: Path, *, seed: str = "one") -> str:
    """A minimal bundle (two files + bundle.json with a data digest); returns its digest."""
    bundle_dir.mkdir(parents=True, exist_ok=True)
    (bundle_dir / "model.onnx").write_bytes(f"onnx-{seed}".encode())
    (bundle_dir / "metrics.json").write_text(json.dumps({"accuracy": 0.9}), encoding="utf-8")
    files = {name: sha256_file(bundle_dir / name) for name in ("metrics.json", "model.onnx")}
    manifest = {
        "schema_version": 1,
        "files": files,
        "data": {"sha256": hashlib.sha256(f"data-{seed}".encode()).hexdigest()},
        "params": {"seed": seed},
    }
    (bundle_dir / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest_digest(manifest)


def stack_values(target: str, digest: str, **overrides: Any) -> dict[str, Any]:
    """`liftlock:` values (without the prefix) like those in stacks/Pulumi.<stack>.yaml."""
    base: dict[str, Any] = {"target": target, "labels": dict(OWNERS)}
    if target == "docker":
        base |= {"bundleDir": "bundle", "hostPort": 18787, "imageRepository": "liftlock-test"}
    else:
        base |= {
            "bundleDigest": digest,
            "image": "liftlock-model@sha256:" + "ab" * 32,
            "namespace": "liftlock-test",
            "replicas": 2,
            "resources": copy.deepcopy(RESOURCES),
        }
    if target == "render":
        base |= {"gitops": {"repoUrl": "https://example.invalid/liftlock.git"}}
    if target == "cluster":
        base |= {"kubeContext": "local"}
    base.update(overrides)
    return base


def as_pulumi_config(values: dict[str, Any]) -> dict[str, str]:
    """How the engine hands config to a program: `liftlock:key` → string (objects as JSON)."""
    return {
        f"liftlock:{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in values.items()
    }
