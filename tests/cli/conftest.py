"""Fixtures for the gate/promote/status command tests: a throwaway clone of the repository.

`promote` rewrites tracked stack files, so these tests never touch the real checkout: each works
on a `git clone` of it, with a small synthetic bundle in bundle/ (tests/policies/bundles.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from liftlock.cli import main
from tests.helpers.stacks import without_apply_to
from tests.policies.bundles import make_bundle

REPO = Path(__file__).resolve().parents[2]
CLEAN_LINEAGE = {
    "lock_found": True,
    "bundle_in_lock": True,
    "mismatched": [],
    "stale": {},
    "status_error": None,
}


def git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.strip()


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clone of the committed repository with a passing bundle in bundle/, set as the root.

    Its own DVC cache and remote (the gate stores and fetches bundles by hash through real DVC),
    its own signing key. The lineage facts (dvc.lock, `dvc status`) and the metrics recomputed
    from the model are stubbed here (the synthetic bundle has no real model or dvc.lock entry);
    both are tested on real DVC outputs on their own (test_lineage.py, test_evidence.py).
    """
    root = tmp_path / "repo"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(root)],
        check=True,
        timeout=120,
    )
    git(root, "config", "user.name", "Test Promoter")
    git(root, "config", "user.email", "promoter@example.com")
    make_bundle(root / "bundle")
    commit_test_settings(root)
    dvc(root, "remote", "modify", "--local", "local", "url", str(tmp_path / "dvc-remote"))
    monkeypatch.setenv("LIFTLOCK_ROOT", str(root))
    monkeypatch.setenv("LIFTLOCK_SIGNING_KEY", str(tmp_path / "keys" / "promotion_ed25519"))
    monkeypatch.setattr("liftlock.gate.collect_lineage", lambda root, bundle: dict(CLEAN_LINEAGE))
    monkeypatch.setattr("liftlock.gate.recompute_evidence", claimed_metrics)
    return root


def fresh_trust_root(root: Path) -> None:
    """No signers and no records: the clone's own key becomes each stack's first signer, as on
    a new project (the committed ones were signed by the maintainers' keys, not the test's)."""
    for folder in ("policies/allowed_signers", "promotions"):
        if (root / folder).exists():
            git(root, "rm", "-r", "--quiet", folder)


def claimed_metrics(candidate: Any) -> dict[str, Any]:
    """The synthetic bundle's own claims, as if its model scored them."""
    manifest = json.loads((candidate.bundle_dir / "bundle.json").read_text())
    return {"recomputed": dict(manifest["metrics"])}


def dvc(root: Path, *args: str) -> str:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return result.stdout.strip()


def edit_gates(root: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    path = root / "policies" / "gates.yaml"
    with path.open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    edit(document)
    with path.open("w", encoding="utf-8") as handle:
        yaml.safe_dump(document, handle, sort_keys=False)


def stack_values(root: Path, stack: str) -> dict[str, Any]:
    with (root / "stacks" / f"Pulumi.{stack}.yaml").open(encoding="utf-8") as handle:
        config: dict[str, Any] = yaml.safe_load(handle)["config"]
    return config


def commit_test_settings(root: Path) -> None:
    """What every clone here differs in from the checkout, committed: no prod freeze windows
    (the tests would depend on the date they run), a fresh trust root, staging rendered only."""
    edit_gates(root, lambda d: d["stacks"]["prod"].pop("freezeWindows", None))
    fresh_trust_root(root)
    without_apply_to(root)
    git(root, "commit", "--quiet", "-am", "test: no freeze windows, a fresh trust root, render")


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """Run `liftlock <args>` in-process: (exit code, stdout + stderr)."""

    def invoke(*args: str) -> tuple[int, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return invoke


def replace_bundle(root: Path, metrics: dict[str, float], tag: str) -> None:
    shutil.rmtree(root / "bundle")
    make_bundle(root / "bundle", metrics, tag=tag)


@pytest.fixture
def real_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clone holding the real DVC outputs of the checkout's `dvc repro` (a copy of its DVC
    cache), its own DVC remote and signing key; nothing stubbed."""
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
    commit_test_settings(root)
    monkeypatch.setenv("LIFTLOCK_ROOT", str(root))
    monkeypatch.setenv("LIFTLOCK_SIGNING_KEY", str(tmp_path / "keys" / "promotion_ed25519"))
    return root


def sign_verification(
    root: Path,
    stack: str,
    *,
    failed: tuple[str, ...] = (),
    when: Any = None,
) -> Path:
    """A signed verification of what `stack` pins, as `liftlock verify` writes it (its checks
    pass, but for `failed`), at `when` (default now); returns the verification file."""
    from datetime import UTC, datetime

    from liftlock.gate import pinned_values
    from liftlock.verify import CHECKS, Check, VerifyReport, write_verification
    from policies.promotion import check_pinned

    pinned = check_pinned(root, stack, *pinned_values(root, stack))
    assert pinned.ok and pinned.record is not None, pinned.message
    moment = when or datetime.now(UTC)
    checks = [
        Check(check=name, verdict="fail" if name in failed else "pass", measured="m", threshold="t")
        for name in CHECKS
    ]
    record = pinned.record
    report = VerifyReport(
        stack=stack, namespace=f"liftlock-{stack}", cluster="test", checks=checks,
        bundle_digest=record.bundle_digest, image=record.image, record=record.path.name,
        soak_seconds=0, started=moment, ended=moment, samples=2, expected="test rows",
    )  # fmt: skip
    written = write_verification(root, report, record.path, log=lambda _line: None)
    return next(path for path in written if path.suffix == ".json")
