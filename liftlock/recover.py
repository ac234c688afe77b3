"""`liftlock recover <stack>`: put a stack back in order after an engine was killed.

A `pulumi up` that dies (kill -9, a lost runner) leaves the stack locked in the backend, and may
leave operations it had started pending in the state. Recovery, in order:

1. find the stack's update locks in the backend and check that no update still runs: a lock whose
   process is alive on this machine (or was taken on another machine) is left alone — recovery
   refuses, naming it;
2. `pulumi cancel` clears the stale lock;
3. the pending operations the killed update left are dropped: docker and cluster targets by
   `pulumi refresh --clear-pending-creates` (which also reconciles the state with what exists);
   a render target has nothing live to refresh against (its "cluster" is deploy/, which the next
   `pulumi up` rewrites), so its state goes through `pulumi stack export`, loses its
   `pending_operations` and comes back with `pulumi stack import` (Pulumi's documented repair);
4. report what was found and done.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from liftlock.engine.env import engine_environment, pulumi_executable, run_pulumi
from liftlock.errors import ConfigError, ExternalCommandError
from liftlock.stackfile import read_stack_values, stack_file_copy, stack_path


@dataclass(frozen=True, kw_only=True)
class UpdateLock:
    path: Path
    pid: int | None
    host: str
    user: str
    time: str

    @property
    def on_this_machine(self) -> bool:
        return self.host == socket.gethostname()

    def running(self) -> bool:
        """Whether the update holding the lock may still run (unknowable on another machine)."""
        if not self.on_this_machine or self.pid is None:
            return not self.on_this_machine
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"pulumi" in cmdline

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} by {self.user} since {self.time} ({self.path.name})"


@dataclass(kw_only=True)
class Recovery:
    stack: str
    locks: list[UpdateLock] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


def backend_folder(env: dict[str, str]) -> Path | None:
    url = urlsplit(env.get("PULUMI_BACKEND_URL", ""))
    if url.scheme != "file":
        return None
    return Path(unquote(url.netloc + url.path)).expanduser()


def update_locks(backend: Path, stack: str) -> list[UpdateLock]:
    """The file:// backend's lock files for `stack` (.pulumi/locks/<org>/<project>/<stack>/)."""
    found = []
    for path in sorted((backend / ".pulumi" / "locks").glob(f"**/{stack}/*.json")):
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            data = {}
        pid = data.get("pid")
        found.append(
            UpdateLock(
                path=path,
                pid=int(pid) if isinstance(pid, int | str) and str(pid).isdigit() else None,
                host=str(data.get("hostname", "?")),
                user=str(data.get("username", "?")),
                time=str(data.get("timestamp", "?")),
            )
        )
    return found


def pending_operations(root: Path, stack: str, env: dict[str, str]) -> list[str]:
    """What the state says was in flight: `pulumi stack export` (secrets stay encrypted)."""
    result = run_pulumi(["stack", "export", "--stack", stack], cwd=root, env=env, timeout=300)
    if result.returncode != 0:
        raise ExternalCommandError(
            f"`pulumi stack export --stack {stack}` failed: {result.stderr.strip()[-400:]}",
            hint="check PULUMI_BACKEND_URL and that the stack exists (`pulumi stack ls`)",
        )
    deployment = (json.loads(result.stdout or "{}").get("deployment")) or {}
    return [
        f"{op.get('type', '?')} {(op.get('resource') or {}).get('urn', '?')}"
        for op in deployment.get("pending_operations") or []
    ]


def recover(root: Path, stack: str, *, log: Any = print) -> Recovery:
    env = engine_environment(root, os.environ)
    pulumi_executable(env)
    if not stack_path(root, stack).is_file():
        raise ConfigError(f"{stack_path(root, stack)}: no such stack file")
    found = Recovery(stack=stack)
    backend = backend_folder(env)
    found.locks = update_locks(backend, stack) if backend else []
    running = [lock for lock in found.locks if lock.running()]
    if running:
        raise ConfigError(
            f"an update of {stack} may still be running: "
            + "; ".join(lock.describe() for lock in running)
            + "; nothing was changed",
            hint="wait for it to finish (or stop that process), then `liftlock recover "
            f"{stack}` again",
        )
    log(f"[recover] {stack}: {len(found.locks)} stale lock(s) in the backend")
    found.pending = pending_operations(root, stack, env)
    log(f"[recover] {stack}: {len(found.pending)} pending operation(s) in the state")
    if found.locks or backend is None:
        cancelled = run_pulumi(["cancel", "--yes", "--stack", stack], cwd=root, env=env)
        said = (cancelled.stdout + cancelled.stderr).strip()
        if cancelled.returncode != 0 and "not currently locked" not in said:
            raise ExternalCommandError(f"`pulumi cancel --stack {stack}` failed: {said[-400:]}")
        found.actions.append(f"cleared {len(found.locks)} stale lock(s) (pulumi cancel)")
        log(f"[recover] {stack}: {found.actions[-1]}")
    target = str(read_stack_values(stack_path(root, stack)).get("target", ""))
    if target == "render":
        found.actions.append(drop_pending_operations(root, stack, env, len(found.pending)))
    else:
        found.actions.append(refresh(root, stack, env, len(found.pending)))
    log(f"[recover] {stack}: {found.actions[-1]}")
    return found


def drop_pending_operations(root: Path, stack: str, env: dict[str, str], count: int) -> str:
    if not count:
        return "no pending operation to drop (render target: nothing live to refresh)"
    exported = run_pulumi(["stack", "export", "--stack", stack], cwd=root, env=env, timeout=300)
    state = json.loads(exported.stdout)
    state["deployment"]["pending_operations"] = []
    with tempfile.TemporaryDirectory(prefix="liftlock-recover-") as scratch:
        path = Path(scratch) / "state.json"
        path.write_text(json.dumps(state), encoding="utf-8")
        imported = run_pulumi(
            ["stack", "import", "--stack", stack, "--file", str(path)], cwd=root, env=env
        )
    if imported.returncode != 0:
        raise ExternalCommandError(
            f"`pulumi stack import --stack {stack}` failed: {imported.stderr.strip()[-400:]}"
        )
    return f"dropped {count} pending operation(s) (stack export / import); the next up re-renders"


def refresh(root: Path, stack: str, env: dict[str, str], count: int) -> str:
    with stack_file_copy(root, stack) as config_file:
        refreshed = run_pulumi(
            ["refresh", "--yes", "--stack", stack, "--config-file", str(config_file),
             "--clear-pending-creates", "--skip-preview", "--color", "never"],
            cwd=root,
            env=env,
        )  # fmt: skip
    if refreshed.returncode != 0:
        tail = "\n".join((refreshed.stdout + refreshed.stderr).strip().splitlines()[-10:])
        raise ExternalCommandError(f"`pulumi refresh --stack {stack}` failed:\n{tail}")
    summary = [line.strip() for line in refreshed.stdout.splitlines() if line.strip()]
    resources = next((line for line in summary if "Resources:" in line), None)
    return f"refreshed the state ({count} pending operation(s) cleared)" + (
        f"; {resources}" if resources else ""
    )
