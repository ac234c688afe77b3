"""A throwaway git worktree of the checkout: what demo and preview reproduce or change in.

The checkout itself is never touched; the worktree is removed (and git's record of it pruned)
whatever happens inside.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from liftlock.errors import ExternalCommandError


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
