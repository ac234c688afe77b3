"""Forged evidence is refused: the gate recomputes the metrics from the bundle's own model.

On a clone of the repository holding the real DVC outputs of `dvc repro` (its own copy of the
checkout's DVC cache, its own remote and signing key): no stub between the gate and DVC.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ml.bundle import sha256_file
from tests.cli.conftest import REPO, dvc, edit_gates, git

pytestmark = pytest.mark.slow

Run = Callable[..., tuple[int, str]]
IMAGE = "liftlock-model@sha256:" + "c" * 64


@pytest.fixture
def real_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not (REPO / "bundle" / "bundle.json").is_file():
        pytest.fail("no bundle in the checkout: run `make bundle` (dvc repro) first")
    root = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(root)], check=True, timeout=120)
    git(root, "config", "user.name", "Test Promoter")
    git(root, "config", "user.email", "promoter@example.com")
    shutil.copytree(Path(dvc(REPO, "cache", "dir")), tmp_path / "cache")
    dvc(root, "cache", "dir", "--local", str(tmp_path / "cache"))
    dvc(root, "remote", "modify", "--local", "local", "url", str(tmp_path / "dvc-remote"))
    dvc(root, "checkout", "--quiet")
    edit_gates(root, lambda d: d["stacks"]["prod"].pop("freezeWindows", None))
    git(root, "commit", "--quiet", "-am", "test: no freeze windows")
    monkeypatch.setenv("LIFTLOCK_ROOT", str(root))
    monkeypatch.setenv("LIFTLOCK_SIGNING_KEY", str(tmp_path / "keys" / "promotion_ed25519"))
    return root


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
    flat = " ".join(out.split())
    assert "evidence-matches" in flat
    assert f"bundle.json claims accuracy 0.999000, the model scores {truth:.6f}" in flat
    assert "metrics.json claims f1 0.998000" in flat
    assert not git(real_clone, "status", "--porcelain", "--", "stacks", "promotions")
