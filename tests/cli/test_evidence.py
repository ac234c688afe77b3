"""Forged evidence is refused: the gate recomputes the metrics from the bundle's own model.

On a clone of the repository holding the real DVC outputs of `dvc repro` (its own copy of the
checkout's DVC cache, its own remote and signing key): no stub between the gate and DVC.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ml.bundle import sha256_file
from tests.cli.conftest import dvc, git

pytestmark = pytest.mark.slow

Run = Callable[..., tuple[int, str]]
IMAGE = "liftlock-model@sha256:" + "c" * 64


def _forge(bundle: Path, **claims: float) -> None:
    """Edit the claimed metrics in metrics.json and bundle.json, keeping bundle.json consistent."""
    manifest = json.loads((bundle / "bundle.json").read_text())
    metrics = json.loads((bundle / "metrics.json").read_text())
    metrics.update(claims)
    manifest["metrics"].update(claims)
    (bundle / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    manifest["files"]["metrics.json"] = sha256_file(bundle / "metrics.json")
    (bundle / "bundle.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def test_real_bundle_evidence_matches_and_forged_claims_are_refused(
    real_clone: Path, run: Run
) -> None:
    code, out = run("gate", "prod", "--no-preview", "--json", "--bundle", "bundle")
    report = json.loads(out[out.index("{") : out.rindex("}") + 1])
    evidence = [f for f in report["findings"] if f["rule"] == "evidence-matches"]
    assert [f["verdict"] for f in evidence] == ["pass"], evidence

    # A worse model's numbers made to look good, and committed to DVC as the package output.
    bundle = real_clone / "bundle"
    truth = json.loads((bundle / "metrics.json").read_text())["accuracy"]
    _forge(bundle, accuracy=0.999, f1=0.998)
    dvc(real_clone, "commit", "--force", "--quiet", "package")
    code, out = run("promote", "workspace", "prod", "--no-preview", "--image", IMAGE)
    assert code == 1, out
    assert "refused, no file changed: mandatory rule(s) failed: evidence-matches" in out
    assert not git(real_clone, "status", "--porcelain", "--", "stacks", "promotions")
    code, out = run("gate", "prod", "--no-preview", "--json", "--bundle", "bundle")
    assert code == 1
    report = json.loads(out[out.index("{") : out.rindex("}") + 1])
    refused = [f["message"] for f in report["findings"] if f["rule"] == "evidence-matches"]
    assert f"bundle.json claims accuracy 0.999000, the model scores {truth:.6f}" in refused
    assert any(m.startswith("metrics.json claims f1 0.998000") for m in refused), refused
