"""`liftlock status`: where each stack stands. Orchestration only: stack files, records, engine."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from liftlock.engine.env import engine_environment, run_pulumi
from liftlock.records import PromotionRecord
from liftlock.stackfile import read_stack_values, stack_file_copy, stack_names, stack_path
from policies.promotion import (
    RecordCheck,
    VerificationStatus,
    check_pinned,
    latest_valid_record,
    verification_status,
)


@dataclass(frozen=True, kw_only=True)
class StackStatus:
    stack: str
    target: str
    bundle_digest: str | None
    last_record: PromotionRecord | None
    workspace_differs: bool | None  # None: no workspace bundle to compare
    pending: str  # what `pulumi preview` says, or why it was not asked
    record: RecordCheck  # is what the stack pins backed by a valid signed record?
    verification: VerificationStatus | None = None  # of that record (None: no valid record)
    preview_failed: bool = False

    @property
    def healthy(self) -> bool:
        return not self.preview_failed


def workspace_digest(root: Path) -> str | None:
    from ml.bundle import bundle_digest
    from ml.errors import BundleError

    try:
        return bundle_digest(root / "bundle")
    except BundleError:
        return None


def pending_changes(root: Path, stack: str, env: dict[str, str]) -> tuple[str, bool]:
    """(`pulumi preview --json` summary: 'none', 'N to create, …', or why it is unknown;
    whether the preview failed)."""
    # `status` changes no file: the engine reads a copy. Unrecorded pins are status's own
    # column (`record`), so the program only warns about them here, as in the gate's preview.
    with stack_file_copy(root, stack) as copy:
        result = run_pulumi(
            ["preview", "--stack", stack, "--config-file", str(copy), "--json"],
            cwd=root,
            env={**env, "LIFTLOCK_GATE_PREVIEW": "1"},
        )
    if "no stack named" in result.stderr + result.stdout:
        return "not deployed (no stack in the backend)", False
    try:
        document = json.loads(result.stdout)
        summary = document.get("changeSummary") or {}
    except (json.JSONDecodeError, AttributeError):
        document, summary = None, {}
    if result.returncode != 0 or document is None:
        return (
            f"preview failed: {_first_error(result.stdout, result.stderr, result.returncode)}",
            True,
        )
    changes = {op: n for op, n in summary.items() if op != "same" and n}
    return ", ".join(f"{n} to {op}" for op, n in sorted(changes.items())) or "none", False


def _first_error(stdout: str, stderr: str, code: int) -> str:
    """The engine's own error line (its JSON diagnostics, else the last line of stderr)."""
    try:
        document = json.loads(stdout)
        for diagnostic in document.get("diagnostics") or []:
            if diagnostic.get("severity") == "error":
                message = str(diagnostic.get("message", "")).strip()
                if message:
                    return message.splitlines()[0][:300] + (
                        " …" if len(message.splitlines()) > 1 else ""
                    )
    except (json.JSONDecodeError, AttributeError):
        pass
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else f"exit {code}"


def collect_status(root: Path, *, engine: bool = True) -> list[StackStatus]:
    env = engine_environment(root, os.environ)
    engine_built = shutil.which("pulumi", path=env["PATH"]) is not None
    current = workspace_digest(root)
    statuses = []
    for stack in stack_names(root):
        values = read_stack_values(stack_path(root, stack))
        pinned = values.get("bundleDigest")
        digest = pinned
        if digest is None and values.get("target") == "docker":
            digest = current if values.get("bundleDir", "bundle") == "bundle" else None
        failed = False
        if not engine:
            pending = "not asked (--no-engine)"
        elif not engine_built:
            pending = "unknown (engine not built: make toolchain)"
        else:
            pending, failed = pending_changes(root, stack, env)
        record = check_pinned(root, stack, digest, values.get("image"))
        statuses.append(
            StackStatus(
                stack=stack,
                target=str(values.get("target", "?")),
                bundle_digest=digest,
                last_record=latest_valid_record(root, stack),
                workspace_differs=None if current is None or digest is None else digest != current,
                pending=pending,
                record=record,
                verification=(
                    verification_status(root, stack, record.record) if record.record else None
                ),
                preview_failed=failed,
            )
        )
    return statuses
