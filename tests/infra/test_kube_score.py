"""kube-score v1.20.0 (toolchain/kube-score) on the committed deploy/prod and deploy/staging:
no critical finding but container-image-pull-policy (it does not know that an image pinned by
digest cannot change under IfNotPresent)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

IGNORED = "container-image-pull-policy"


def kube_score(repo_root: Path) -> Path:
    binary = repo_root / ".tools" / "bin" / "kube-score"
    if not binary.is_file():
        pytest.fail("kube-score is not built: bash toolchain/build.sh kube-score (~1 min)")
    return binary


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_kube_score_finds_no_critical_problem(repo_root: Path, stack: str) -> None:
    manifests = sorted(str(p) for p in (repo_root / "deploy" / stack).rglob("*.yaml"))
    assert manifests, f"deploy/{stack} is empty"
    done = subprocess.run(
        [str(kube_score(repo_root)), "score", "--output-format", "ci", *manifests],
        capture_output=True,
        text=True,
        timeout=120,
    )
    critical = [line for line in done.stdout.splitlines() if line.startswith("[CRITICAL]")]
    assert critical, "kube-score printed no finding at all: did it read the manifests?"
    unexpected = [line for line in critical if "ImagePullPolicy is not set to Always" not in line]
    assert unexpected == [], "\n".join(unexpected)
    ignoring = subprocess.run(
        [str(kube_score(repo_root)), "score", "--ignore-test", IGNORED, *manifests],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ignoring.returncode == 0, ignoring.stdout[-3000:]
