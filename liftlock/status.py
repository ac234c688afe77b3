"""`liftlock status`: where each stack stands. Orchestration only: stack files, records, engine."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from liftlock.engine.env import engine_environment, run_pulumi
from liftlock.records import PromotionRecord, latest_record
from liftlock.stackfile import stack_file_copy, stack_names, stack_path


@dataclass(frozen=True, kw_only=True)
class StackStatus:
    stack: str
    target: str
    bundle_digest: str | None
    last_record: PromotionRecord | None
    workspace_differs: bool | None  # None: no workspace bundle to compare
    pending: str  # what `pulumi preview` says, or why it was not asked


def workspace_digest(root: Path) -> str | None:
    from ml.bundle import bundle_digest
    from ml.errors import BundleError

    try:
        return bundle_digest(root / "bundle")
    except BundleError:
        return None


def pending_changes(root: Path, stack: str, env: dict[str, str]) -> str:
    """`pulumi preview --json` summary: 'none', 'N to create, …', or why it is unknown."""
    # `status` changes no file: the engine reads a copy.
    with stack_file_copy(root, stack) as copy:
        result = run_pulumi(
            ["preview", "--stack", stack, "--config-file", str(copy), "--json"], cwd=root, env=env
        )
    if "no stack named" in result.stderr + result.stdout:
        return "not deployed (no stack in the backend)"
    try:
        summary = json.loads(result.stdout).get("changeSummary") or {}
    except json.JSONDecodeError:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return f"preview failed: {lines[-1] if lines else 'exit ' + str(result.returncode)}"
    changes = {op: n for op, n in summary.items() if op != "same" and n}
    return ", ".join(f"{n} to {op}" for op, n in sorted(changes.items())) or "none"


def collect_status(root: Path, *, engine: bool = True) -> list[StackStatus]:
    from infra.config import read_stack_file

    env = engine_environment(root, os.environ)
    engine_built = shutil.which("pulumi", path=env["PATH"]) is not None
    current = workspace_digest(root)
    statuses = []
    for stack in stack_names(root):
        values = read_stack_file(stack_path(root, stack))
        digest = values.get("bundleDigest")
        if digest is None and values.get("target") == "docker":
            digest = current if values.get("bundleDir", "bundle") == "bundle" else None
        if not engine:
            pending = "not asked (--no-engine)"
        elif not engine_built:
            pending = "unknown (engine not built: make toolchain)"
        else:
            pending = pending_changes(root, stack, env)
        statuses.append(
            StackStatus(
                stack=stack,
                target=str(values.get("target", "?")),
                bundle_digest=digest,
                last_record=latest_record(root, stack),
                workspace_differs=None if current is None or digest is None else digest != current,
                pending=pending,
            )
        )
    return statuses
