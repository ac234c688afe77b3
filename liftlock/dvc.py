"""dvc, as liftlock runs it: one command, its stdout, and a failure that names the command.

The venv's own dvc (beside this interpreter) comes first, so a stage's `python` and the dvc that
runs it are the same install; otherwise the one on PATH.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from liftlock.errors import ExternalCommandError, ToolMissingError
from liftlock.run import run_command


class DvcFailed(ExternalCommandError):
    """A dvc command failed; the message holds the command and the tail of its output."""


def dvc_executable() -> str:
    beside = Path(sys.executable).parent / "dvc"
    found = str(beside) if beside.is_file() else shutil.which("dvc")
    if not found:
        raise ToolMissingError("dvc is not installed", hint="make venv (installs liftlock[train])")
    return found


def run_dvc(
    args: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 1800,
    *,
    what: str | None = None,
) -> str:
    """stdout of `dvc <args>` run in `cwd`; DvcFailed names the command on failure."""
    completed = run_command(
        [dvc_executable(), *args],
        what=what or f"run `dvc {' '.join(args)}` in {cwd}",
        missing_hint="make venv (installs liftlock[train])",
        cwd=cwd,
        env=env,
        timeout=timeout_s,
        failure=DvcFailed,
    )
    return completed.stdout


def locked_out_hash(lock: Mapping[str, Any], out_path: str) -> str | None:
    """The md5 a parsed dvc.lock records for the output `out_path` (None when no stage does)."""
    for stage in (lock.get("stages") or {}).values():
        for out in (stage or {}).get("outs") or []:
            if str(out.get("path", "")).rstrip("/") == out_path:
                return str(out.get("md5", ""))
    return None
