"""`liftlock preview` refuses bad input with a message naming the culprit, before any work."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from liftlock.cli import main


@pytest.fixture
def tiny_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    (root / "stacks").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: x\nruntime: python\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "stacks" / "Pulumi.dev.yaml").write_text("config: {}\n")
    (root / "stacks" / "Pulumi.prod.yaml").write_text("config: {}\n")
    for command in (
        ["git", "init", "--quiet", "-b", "main"],
        ["git", "add", "--all"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "base"],
    ):
        subprocess.run(command, cwd=root, check=True)
    monkeypatch.setenv("LIFTLOCK_ROOT", str(root))
    return root


def test_an_unknown_base_is_named_with_the_fix(tiny_checkout, capsys):
    assert main(["preview", "--base", "no-such-branch"]) == 2
    err = capsys.readouterr().err
    assert "--base 'no-such-branch' is not a commit" in err and "git fetch" in err


def test_an_unknown_format_is_refused(tiny_checkout, capsys):
    assert main(["preview", "--base", "main", "--format", "html"]) == 2
    assert "--format 'html' is not supported" in capsys.readouterr().err


def test_an_unknown_stack_is_named_with_the_known_ones(tiny_checkout, capsys):
    assert main(["preview", "--base", "main", "--stack", "qa", "--list-affected"]) == 2
    err = capsys.readouterr().err
    assert "--stack qa" in err and "dev, prod" in err


def test_list_affected_needs_no_engine(tiny_checkout, capsys):
    (tiny_checkout / "stacks" / "Pulumi.prod.yaml").write_text("config: {a: 1}\n")
    assert main(["preview", "--base", "main", "--list-affected"]) == 0
    assert capsys.readouterr().out.strip() == '["prod"]'
