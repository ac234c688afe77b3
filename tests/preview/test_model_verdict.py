"""The preview's bundle line speaks ml.reproduction's words, from dvc.lock at base and head."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from liftlock.preview.ml import model_verdict

LOCK = "schema: '2.0'\nstages:\n  package:\n    outs:\n    - path: bundle\n      md5: {md5}.dir\n"


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    _git(tmp_path, "init", "-q")
    (tmp_path / "dvc.lock").write_text(LOCK.format(md5="a" * 32), encoding="utf-8")
    _git(tmp_path, "add", "dvc.lock")
    _git(tmp_path, "commit", "-qm", "base")
    return tmp_path, _git(tmp_path, "rev-parse", "HEAD")


def test_the_same_bundle_hash_is_unchanged_bit_identical(repo) -> None:
    root, base = repo
    assert model_verdict(root, base, params_changed=False) == "model unchanged (bit-identical)"


def test_a_new_bundle_hash_is_re_trained_and_says_why(repo) -> None:
    root, base = repo
    (root / "dvc.lock").write_text(LOCK.format(md5="b" * 32), encoding="utf-8")
    assert model_verdict(root, base, params_changed=True) == (
        "re-trained: new params, a different bundle"
    )
    same_params = model_verdict(root, base, params_changed=False)
    assert same_params.startswith("re-trained: same params") and "repro-check" in same_params


def test_a_broken_lock_is_named_not_a_crash(repo) -> None:
    root, base = repo
    (root / "dvc.lock").write_text("stages: [unclosed\n", encoding="utf-8")
    assert "dvc.lock is not valid YAML" in model_verdict(root, base, params_changed=False)
