"""Running an external command the way liftlock reports it: named, timed out, tail of its output.

(git has `liftlock.git.git_output`, the engine `liftlock.engine.env.run_pulumi`; anything else
liftlock runs — ssh-keygen, dvc — goes through `run_command`.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from liftlock.errors import ExternalCommandError, ToolMissingError


def run_command(
    args: Sequence[str],
    *,
    what: str,
    missing_hint: str,
    cwd: Path | None = None,
    timeout: float = 300,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    failure: type[ExternalCommandError] = ExternalCommandError,
) -> subprocess.CompletedProcess[str]:
    """Run `args`; with `check`, a failure raises `failure` naming `what` and the output's tail."""
    try:
        result = subprocess.run(
            list(args),
            cwd=cwd,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as error:
        raise ToolMissingError(
            f"{args[0]} is not installed: cannot {what}", hint=missing_hint
        ) from error
    except subprocess.TimeoutExpired as error:
        raise failure(f"`{' '.join(args)}` timed out after {timeout:g}s ({what})") from error
    if check and result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise failure(
            f"could not {what}: `{' '.join(args)}` exited {result.returncode}"
            + (f":\n{tail}" if tail else "")
        )
    return result
