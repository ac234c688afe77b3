"""What a render stack's program writes, rendered with no backend state.

For a render target the engine's own diff is only as good as the backend's state (none in CI on
the embedded default: every object a create). The state of record is the committed tree
instead, so the preview renders the head program itself: in a throwaway git worktree of the
checkout, against a throwaway file:// backend, `pulumi up` writes the manifests the deploy
workflow would write, and they are read back as a tree. The checkout and its backend are never
touched. The stack's committed render folders are moved aside first (an object the program no
longer declares must not survive as a stale file), but kept where the program looks for bundle
manifests already rendered (a stack pinned to a bundle that `bundle/` no longer holds).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from liftlock.engine.env import run_pulumi
from liftlock.errors import ExternalCommandError
from liftlock.git import detached_worktree, git_output
from liftlock.preview.secretless import PASSPHRASE_VARIABLES, config_without_secrets
from liftlock.stackfile import stack_path

#: Where the committed render folders of the stack go in the worktree while it renders (still
#: under deploy/, where the program finds bundle manifests rendered before).
ASIDE_PREFIX = "liftlock-committed-"


@dataclass
class Render:
    """The files a render stack's program wrote, by repository-relative path."""

    stack: str
    folders: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    unknown_values: list[str] = field(default_factory=list)  # secrets not known (no passphrase)
    duration_s: float = 0.0


def read_tree(root: Path, folders: Iterable[str]) -> dict[str, bytes]:
    """The files under `folders` (relative to `root`) of a folder on disk."""
    tree: dict[str, bytes] = {}
    for folder in folders:
        base = root / folder
        if base.is_dir():
            for path in sorted(p for p in base.rglob("*") if p.is_file()):
                tree[path.relative_to(root).as_posix()] = path.read_bytes()
    return tree


def read_committed_tree(root: Path, commit: str, folders: Iterable[str]) -> dict[str, bytes]:
    """The files under `folders` as committed in `commit` (empty when the folders are not)."""
    wanted = list(folders)
    listed = git_output(root, "ls-tree", "-r", "--name-only", commit, "--", *wanted)
    tree: dict[str, bytes] = {}
    for path in listed.splitlines():
        # git_output strips the blob's last newline; YAML (and the digest, taken of renders
        # only) do not care, and the object diff compares parsed documents.
        tree[path] = (git_output(root, "show", f"{commit}:{path}") + "\n").encode("utf-8")
    return tree


def _link_outputs(root: Path, tree: Path) -> None:
    """The venv (Pulumi.yaml's virtualenv) and the DVC-built bundle, which git does not hold."""
    for name in (".venv", "bundle"):
        if (root / name).exists() and not (tree / name).exists():
            (tree / name).symlink_to(root / name)


def _move_aside(tree: Path, folders: Iterable[str]) -> None:
    for folder in folders:
        source = tree / folder
        if source.is_dir():
            source.rename(source.parent / f"{ASIDE_PREFIX}{source.name}")


def render_in(
    tree: Path, stack: str, folders: tuple[str, ...], env: Mapping[str, str], scratch: Path,
    *, with_secrets: bool = True, timeout_s: float = 900.0,
) -> Render:  # fmt: skip
    """`pulumi up` of `stack` in the worktree `tree` against a throwaway backend."""
    started = time.monotonic()
    render = Render(stack=stack, folders=folders)
    _move_aside(tree, folders)
    backend = scratch / f"backend-{stack}"
    backend.mkdir(parents=True, exist_ok=True)
    stack_env = dict(env)
    stack_env["PULUMI_BACKEND_URL"] = backend.resolve().as_uri()
    stack_file = stack_path(tree, stack)
    if not with_secrets:
        # No passphrase (a fork's pull request): secrets become placeholders, named as unknown.
        blanked, secret_keys = config_without_secrets(stack_file.read_text(encoding="utf-8"))
        stack_file.write_text(blanked, encoding="utf-8")
        stack_env = {k: v for k, v in stack_env.items() if k not in PASSPHRASE_VARIABLES}
        stack_env["PULUMI_CONFIG_PASSPHRASE"] = secrets.token_hex(16)
        render.unknown_values = [f"config: {key}" for key in dict.fromkeys(secret_keys)]
    created = run_pulumi(["stack", "init", stack, "--cwd", str(tree)], cwd=tree, env=stack_env)
    if created.returncode != 0:
        raise ExternalCommandError(
            f"`pulumi stack init {stack}` in a throwaway backend failed: "
            f"{(created.stderr or created.stdout).strip()[-500:]}"
        )
    command = ["up", "--yes", "--skip-preview", "--stack", stack, "--cwd", str(tree)]
    done = run_pulumi([*command, "--color", "never"], cwd=tree, env=stack_env, timeout=timeout_s)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        render.errors.append(f"rendering `{stack}` (pulumi up, no backend state) failed:\n{tail}")
    render.files = read_tree(tree, folders)
    render.duration_s = time.monotonic() - started
    return render


def render_stack(
    root: Path,
    commit: str,
    stack: str,
    folders: tuple[str, ...],
    env: Mapping[str, str],
    scratch: Path,
    *,
    with_secrets: bool = True,
) -> Render:
    """The render of `stack` at `commit` of the checkout at `root` (its own worktree, so stacks
    render in parallel without seeing each other's folders move)."""
    tree = scratch / f"render-{stack}"
    with detached_worktree(root, tree, commit):
        _link_outputs(root, tree)
        return render_in(tree, stack, folders, env, scratch, with_secrets=with_secrets)
