"""git, as liftlock runs it: one command's output, and throwaway worktrees of the checkout.

A throwaway worktree is what demo and preview reproduce or change things in: the checkout itself
is never touched, and the worktree is removed (and git's record of it pruned) whatever happens.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from liftlock.errors import ExternalCommandError, ToolMissingError


def git_output(root: Path, *args: str, check: bool = True) -> str:
    """stdout of `git <args>` in `root`, stripped; with `check`, a failure names the command."""
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False, timeout=120
        )
    except FileNotFoundError as error:
        raise ToolMissingError("git is not installed") from error
    if check and result.returncode != 0:
        raise ExternalCommandError(
            f"`git {' '.join(args)}` failed in {root}: {result.stderr.strip()}"
        )
    return result.stdout.strip()


@contextlib.contextmanager
def detached_worktree(
    root: Path, tree: Path, commit: str, *, failure: type[Exception] = ExternalCommandError
) -> Iterator[Path]:
    """`commit` checked out, detached, at `tree`; `failure` is raised when git cannot make it."""
    added = subprocess.run(
        ["git", "worktree", "add", "--detach", "--force", str(tree), commit],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode != 0:
        raise failure(f"git worktree add {commit[:12]} failed: {added.stderr.strip()}")
    try:
        yield tree
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(tree)],
            cwd=root,
            capture_output=True,
            check=False,
        )
        subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True, check=False)
