"""dvc, as liftlock runs it: one command, its stdout, and a failure that names the command.

The venv's own dvc (beside this interpreter) comes first, so a stage's `python` and the dvc that
runs it are the same install; otherwise the one on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from liftlock.errors import ExternalCommandError, ToolMissingError


class DvcFailed(ExternalCommandError):
    """A dvc command failed; the message holds the command and the tail of its output."""


def dvc_executable() -> str:
    beside = Path(sys.executable).parent / "dvc"
    found = str(beside) if beside.is_file() else shutil.which("dvc")
    if not found:
        raise ToolMissingError("dvc is not installed", hint="make venv (installs liftlock[train])")
    return found


def run_dvc(args: Sequence[str], cwd: Path, env: Mapping[str, str], timeout_s: float = 1800) -> str:
    """stdout of `dvc <args>` run in `cwd`; DvcFailed names the command on failure."""
    command = [dvc_executable(), *args]
    shown = " ".join(["dvc", *args])
    try:
        completed = subprocess.run(
            command,
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as slow:
        raise DvcFailed(f"`{shown}` in {cwd} timed out after {timeout_s:.0f} s") from slow
    if completed.returncode != 0:
        tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-8:])
        raise DvcFailed(f"`{shown}` in {cwd} exited {completed.returncode}: {tail}")
    return completed.stdout
