"""`liftlock doctor` finds the real tools, and names what is missing and the fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from liftlock.doctor import PULUMI_VERSION, run_checks
from liftlock.engine.env import engine_environment

LIFTLOCK = [sys.executable, "-m", "liftlock.cli"]


def _doctor(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIFTLOCK_ROOT": str(root), "COLUMNS": "200"}
    return subprocess.run(
        [*LIFTLOCK, "doctor", "--json"], env=env, capture_output=True, text=True, check=False
    )


def _checkout_without_tools(tmp_path: Path, repo_root: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("Pulumi.yaml", "pyproject.toml"):
        shutil.copy(repo_root / name, root / name)
    return root


def test_without_tools_doctor_exits_1_and_names_each_fix(tmp_path: Path, repo_root: Path) -> None:
    root = _checkout_without_tools(tmp_path, repo_root)
    done = _doctor(root)
    assert done.returncode == 1, done.stderr
    checks = {c["tool"]: c for c in json.loads(done.stdout)}
    for tool in (
        "pulumi",
        "language host (python)",
        "dynamic-provider launcher",
        "kubernetes provider",
    ):
        assert not checks[tool]["ok"], tool
        assert "make toolchain" in checks[tool]["fix"], checks[tool]


def test_the_table_names_what_is_missing(tmp_path: Path, repo_root: Path) -> None:
    root = _checkout_without_tools(tmp_path, repo_root)
    env = {**os.environ, "LIFTLOCK_ROOT": str(root), "COLUMNS": "200"}
    done = subprocess.run(
        [*LIFTLOCK, "doctor"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "missing" in done.stdout and "make toolchain" in done.stdout


@pytest.mark.engine
def test_in_the_checkout_every_required_tool_is_found(repo_root: Path) -> None:
    if not (repo_root / ".tools" / "bin" / "pulumi").exists():
        pytest.fail("toolchain not built: run `make toolchain` (make test does it)")
    checks = {c.tool: c for c in run_checks(repo_root, engine_environment(repo_root, os.environ))}
    missing = [f"{c.tool}: {c.problem}" for c in checks.values() if c.required and not c.ok]
    assert not missing, missing
    assert checks["pulumi"].version == PULUMI_VERSION
    assert checks["kubernetes provider"].version == "4.25.0"
    done = _doctor(repo_root)
    assert done.returncode == 0, done.stdout + done.stderr
