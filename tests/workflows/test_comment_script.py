"""upsert-preview-comment.sh edits THE marker comment, or creates it (against a fake `gh`)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".github" / "scripts" / "upsert-preview-comment.sh"
MARKER = "<!-- liftlock-preview -->"

# Answers `gh api --paginate .../comments --jq ...` from $FAKE_COMMENTS (ids of marker comments,
# one per line) and logs every call to $FAKE_LOG.
FAKE_GH = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$FAKE_LOG"
case "$*" in
  *--paginate*) cat "$FAKE_COMMENTS" ;;
esac
"""


@pytest.fixture
def fake_gh(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH)
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "comments").write_text("")
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "calls"),
        "FAKE_COMMENTS": str(tmp_path / "comments"),
        "GITHUB_REPOSITORY": "liftlock/liftlock",
    }


def run(env: dict[str, str], pr: str, body: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), pr, str(body)], env=env, capture_output=True, text=True, check=False
    )


def calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def comment(tmp_path: Path, text: str = f"{MARKER}\n## liftlock preview\n") -> Path:
    body = tmp_path / "preview.md"
    body.write_text(text)
    return body


def test_creates_the_comment_when_none_has_the_marker(fake_gh, tmp_path):
    result = run(fake_gh, "42", comment(tmp_path))
    assert result.returncode == 0, result.stderr
    assert calls(fake_gh)[-1].startswith("api --method POST repos/liftlock/liftlock/issues/42/")


def test_edits_the_first_marker_comment_in_place(fake_gh, tmp_path):
    Path(fake_gh["FAKE_COMMENTS"]).write_text("1001\n1002\n")
    result = run(fake_gh, "42", comment(tmp_path))
    assert result.returncode == 0, result.stderr
    assert calls(fake_gh)[-1].startswith(
        "api --method PATCH repos/liftlock/liftlock/issues/comments/1001"
    )
    assert "startswith(" + json.dumps(MARKER) + ")" in calls(fake_gh)[0]


@pytest.mark.parametrize(
    ("pr", "text", "problem"),
    [
        ("42; rm -rf /", f"{MARKER}\n", "not a pull request number"),
        ("42", "## no marker\n", "does not start with the marker"),
        ("42", "", "empty or missing comment body"),
    ],
)
def test_bad_input_is_refused_before_any_call(fake_gh, tmp_path, pr, text, problem):
    result = run(fake_gh, pr, comment(tmp_path, text))
    assert result.returncode == 2
    assert problem in result.stderr
    assert calls(fake_gh) == []
