"""gitleaks v8.30.1 (toolchain/gitleaks, rules policies/gitleaks.toml) over the tracked tree.

The rendered manifests (deploy/) are part of the tree; `pulumi stack export` of deployed stacks and
the backend's state files are scanned by tests/cli/test_deploy_engine.py on the real engine.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GITLEAKS = REPO / ".tools" / "bin" / "gitleaks"
RULES = REPO / "policies" / "gitleaks.toml"


def scan(target: Path) -> subprocess.CompletedProcess[str]:
    if not GITLEAKS.exists():
        pytest.fail("gitleaks is not built: make toolchain (toolchain/gitleaks)")
    return subprocess.run(
        [str(GITLEAKS), "dir", str(target), "-c", str(RULES), "--no-banner", "--redact"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def tracked_copy(destination: Path) -> Path:
    """The files git tracks (what a clone holds), without the untracked venv, tools and state."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file() and not source.is_symlink():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination / name)
    return destination


def test_tracked_tree_and_rendered_manifests_hold_no_secret(tmp_path: Path) -> None:
    tree = tracked_copy(tmp_path / "tree")
    assert (tree / "deploy").is_dir()
    result = scan(tree)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scan_finds_a_planted_token(tmp_path: Path) -> None:
    """The scan can fail: a token in a rendered manifest is found (and the Pulumi constants in a
    state export are not)."""
    folder = tmp_path / "deploy"
    folder.mkdir()
    constants = '{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}'
    (folder / "export.json").write_text(constants)
    assert scan(folder).returncode == 0
    token = "ghp_" + "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zQc"
    (folder / "app.yaml").write_text(
        f"spec:\n  source:\n    repoURL: https://bot:{token}@github.com/x/y\n"
    )
    result = scan(folder)
    assert result.returncode == 1, result.stdout + result.stderr
    assert token not in result.stdout + result.stderr  # --redact
