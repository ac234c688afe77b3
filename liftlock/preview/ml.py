"""The model side of a preview: params and metrics, base against head, via DVC.

Head is the checkout. When `dvc status` says its pipeline is out of date (params or code changed
without `dvc repro`, or outputs not pulled), the preview runs `dvc repro --pull`, which pulls what
the remote has and reproduces the rest — so the comment never shows stale head metrics.

Base metrics come from `dvc metrics diff <base>`: metrics are `cache: false` outputs committed to
git, so DVC reads them straight from the base commit. When the base commit has no metrics (they
were never committed, or the base predates the pipeline), the base is checked out into a
temporary `git worktree` sharing this checkout's DVC cache, pulled and reproduced there, and its
metrics read with `dvc metrics show`. If that fails too the comment says so: never skipped.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from liftlock.preview.report import MetricDelta, MLDiff, ParamChange

VALIDATION_REPORT = Path("reports") / "data_validation.json"


class DvcFailed(Exception):
    """A dvc command failed; the message holds the command and the tail of its output."""


def run_dvc(args: Sequence[str], cwd: Path, env: Mapping[str, str], timeout_s: float = 1800) -> str:
    """stdout of `dvc <args>` run in `cwd`; DvcFailed names the command on failure."""
    command = ["dvc", *args]
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
    except FileNotFoundError as missing:
        raise DvcFailed("dvc is not installed in this environment (pip install dvc)") from missing
    except subprocess.TimeoutExpired as slow:
        raise DvcFailed(f"`{' '.join(command)}` timed out after {timeout_s:.0f} s") from slow
    if completed.returncode != 0:
        tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-8:])
        raise DvcFailed(f"`{' '.join(command)}` in {cwd} exited {completed.returncode}: {tail}")
    return completed.stdout


def _json(text: str) -> Any:
    return json.loads(text) if text.strip() else {}


def parse_params_diff(data: Mapping[str, Any]) -> list[ParamChange]:
    """`dvc params diff --json` -> changes sorted by file and name."""
    changes = []
    for file, params in sorted(data.items()):
        for name, entry in sorted((params or {}).items()):
            changes.append(ParamChange(file, name, entry.get("old"), entry.get("new")))
    return changes


def parse_metrics_diff(data: Mapping[str, Any]) -> list[MetricDelta]:
    """`dvc metrics diff --json` -> deltas sorted by file and name (diff None if not numeric)."""
    deltas = []
    for file, metrics in sorted(data.items()):
        for name, entry in sorted((metrics or {}).items()):
            old, new = entry.get("old"), entry.get("new")
            diff = entry.get("diff")
            if diff is None and isinstance(old, int | float) and isinstance(new, int | float):
                diff = new - old
            deltas.append(MetricDelta(file, name, old, new, diff))
    return deltas


def flatten_metrics_show(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`dvc metrics show --json` (any of DVC 3's shapes) -> {file: {dotted name: value}}."""
    files: Mapping[str, Any] = data
    # DVC 3 nests as {"": {"data": {file: {"data": {...}}}}} or {rev: {"data": ...}}.
    if len(data) == 1:
        only = next(iter(data.values()))
        if isinstance(only, Mapping) and "data" in only:
            files = only["data"]
    flat: dict[str, dict[str, Any]] = {}
    for file, body in files.items():
        values = body.get("data", body) if isinstance(body, Mapping) else {}
        flat[file] = {}

        def walk(prefix: str, node: Any, into: dict[str, Any] = flat[file]) -> None:
            if isinstance(node, Mapping):
                for key, value in node.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), value)
            else:
                into[prefix] = node

        walk("", values)
    return flat


def diff_metric_values(
    base: Mapping[str, Mapping[str, Any]], head: Mapping[str, Mapping[str, Any]]
) -> list[MetricDelta]:
    deltas = []
    for file in sorted(set(base) | set(head)):
        old_values, new_values = base.get(file, {}), head.get(file, {})
        for name in sorted(set(old_values) | set(new_values)):
            old, new = old_values.get(name), new_values.get(name)
            numeric = isinstance(old, int | float) and isinstance(new, int | float)
            deltas.append(MetricDelta(file, name, old, new, (new - old) if numeric else None))
    return deltas


def head_is_stale(root: Path, env: Mapping[str, str]) -> bool:
    """True when `dvc status` lists any stage or output that differs from dvc.lock."""
    return bool(_json(run_dvc(["status", "--json"], root, env)))


def data_checks(root: Path) -> str:
    """The head's data validation verdict, from the validate stage's report."""
    path = root / VALIDATION_REPORT
    if not path.is_file():
        return f"no data validation report ({VALIDATION_REPORT} missing)"
    with path.open(encoding="utf-8") as handle:
        report = json.load(handle)
    rules = len(report.get("rules", []))
    violations = len(report.get("violations", []))
    verdict = "passed" if report.get("valid") else "FAILED"
    return f"{verdict}: {rules} rules, {violations} violations"


def base_metrics_from_worktree(
    root: Path, base_commit: str, workdir: Path, env: Mapping[str, str]
) -> tuple[dict[str, dict[str, Any]], str]:
    """Base metrics reproduced in a git worktree of the base commit sharing the DVC cache."""
    tree = workdir / "base-worktree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--force", str(tree), base_commit],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    try:
        if not (tree / "dvc.yaml").is_file():
            raise DvcFailed(f"the base commit {base_commit[:12]} has no dvc.yaml")
        # Share the checkout's cache: objects the checkout already has need no pull or rerun.
        run_dvc(["cache", "dir", "--local", str(root / ".dvc" / "cache")], tree, env)
        run_dvc(["repro", "--pull"], tree, env)
        shown = flatten_metrics_show(_json(run_dvc(["metrics", "show", "--json"], tree, env)))
        return shown, f"reproduced in a git worktree of {base_commit[:12]} (dvc repro --pull)"
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(tree)],
            cwd=root,
            capture_output=True,
            check=False,
        )


def ml_diff(
    root: Path, base_commit: str, workdir: Path, env: Mapping[str, str], *, reproduce: bool = True
) -> MLDiff:
    """Params and metrics of the checkout against `base_commit`."""
    result = MLDiff()
    try:
        result.params = parse_params_diff(
            _json(run_dvc(["params", "diff", base_commit, "--json"], root, env))
        )
    except DvcFailed as failed:
        result.notes.append(f"params diff failed: {failed}")

    result.head_source = "workspace (up to date with dvc.lock)"
    try:
        if head_is_stale(root, env):
            if not reproduce:
                result.head_metrics_available = False
                result.head_source = "the pipeline is out of date and --no-repro was given"
            else:
                run_dvc(["repro", "--pull"], root, env)
                result.head_source = "dvc repro --pull (dvc.lock was out of date)"
    except DvcFailed as failed:
        result.head_metrics_available = False
        result.head_source = f"dvc repro failed: {failed}"

    result.base_source = f"git ({base_commit[:12]}, committed metrics)"
    try:
        diff = _json(run_dvc(["metrics", "diff", base_commit, "--all", "--json"], root, env))
        result.metrics = parse_metrics_diff(diff)
    except DvcFailed as failed:
        result.notes.append(f"metrics diff failed: {failed}")
        result.metrics = []
    if result.metrics and all(m.old is None for m in result.metrics):
        try:
            base_values, result.base_source = base_metrics_from_worktree(
                root, base_commit, workdir, env
            )
            head_values = {
                m.file: {} for m in result.metrics
            }  # rebuild head values from the diff's "new" side
            for m in result.metrics:
                head_values[m.file][m.name] = m.new
            result.metrics = diff_metric_values(base_values, head_values)
        except (DvcFailed, subprocess.CalledProcessError) as failed:
            result.base_metrics_available = False
            reason = failed.stderr if isinstance(failed, subprocess.CalledProcessError) else failed
            result.base_source = f"not in git, and reproducing the base failed: {reason}"
    elif not result.metrics:
        result.base_metrics_available = False
        result.base_source = "no metrics found by `dvc metrics diff`"
    if not result.head_metrics_available:
        result.metrics = [m for m in result.metrics if m.old is not None]
    result.notes.append(f"Data checks (head): {data_checks(root)}")
    return result
