"""The one place that sets the engine's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from liftlock.engine.env import (
    EMBEDDED_DEFAULT_PASSPHRASE,
    engine_environment,
    find_project_root,
    shell_exports,
)
from liftlock.errors import ConfigError


def test_defaults_point_the_engine_at_the_checkout(tmp_path: Path) -> None:
    env = engine_environment(tmp_path, {"PATH": "/usr/bin"})
    assert env["PULUMI_BACKEND_URL"] == (tmp_path / ".pulumi-state").as_uri()
    assert env["PULUMI_CONFIG_PASSPHRASE"] == EMBEDDED_DEFAULT_PASSPHRASE
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    # The tools come first so the pinned engine wins over any pulumi on the user's PATH.
    assert env["PATH"].split(":")[0] == str(tmp_path / ".tools" / "bin")
    assert env["PATH"].split(":")[-1] == "/usr/bin"


@pytest.mark.parametrize("variable", ["PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"])
def test_a_users_passphrase_is_never_replaced(tmp_path: Path, variable: str) -> None:
    env = engine_environment(tmp_path, {"PATH": "", variable: "mine"})
    assert env[variable] == "mine"
    if variable == "PULUMI_CONFIG_PASSPHRASE_FILE":
        assert "PULUMI_CONFIG_PASSPHRASE" not in env


def test_a_users_backend_wins_unless_a_test_backend_is_given(tmp_path: Path) -> None:
    users = {"PATH": "", "PULUMI_BACKEND_URL": "s3://bucket"}
    assert engine_environment(tmp_path, users)["PULUMI_BACKEND_URL"] == "s3://bucket"
    throwaway = tmp_path / "state"
    env = engine_environment(tmp_path, users, backend_dir=throwaway)
    assert env["PULUMI_BACKEND_URL"] == throwaway.resolve().as_uri()


def test_path_entries_are_not_repeated(tmp_path: Path) -> None:
    once = engine_environment(tmp_path, {"PATH": "/usr/bin"})
    twice = engine_environment(tmp_path, once)
    assert twice["PATH"] == once["PATH"]


def test_shell_exports_quote_values(tmp_path: Path) -> None:
    env = engine_environment(tmp_path / "dir with space", {"PATH": "/bin"})
    text = shell_exports(env)
    assert "export PULUMI_SKIP_UPDATE_CHECK=true" in text
    assert "export LIFTLOCK_ROOT='" in text  # quoted, because the path has a space


def test_project_root_is_found_from_a_subfolder(repo_root: Path, monkeypatch) -> None:
    monkeypatch.delenv("LIFTLOCK_ROOT", raising=False)
    assert find_project_root(repo_root / "liftlock" / "engine") == repo_root


def test_outside_a_checkout_the_error_says_what_was_looked_for(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LIFTLOCK_ROOT", raising=False)
    with pytest.raises(ConfigError, match=r"Pulumi\.yaml beside pyproject\.toml"):
        find_project_root(tmp_path)


def test_liftlock_env_creates_the_local_backend_folder(tmp_path: Path, repo_root: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys

    root = tmp_path / "my checkout"
    root.mkdir()
    for name in ("Pulumi.yaml", "pyproject.toml"):
        shutil.copy(repo_root / name, root / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    done = subprocess.run(
        [sys.executable, "-m", "liftlock.cli", "env"],
        cwd=root,
        env={**env, "LIFTLOCK_ROOT": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "export PULUMI_BACKEND_URL=" in done.stdout
    assert (root / ".pulumi-state").is_dir()  # `pulumi stack init` refuses a missing folder
