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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from liftlock.dvc import DvcFailed, locked_out_hash, run_dvc
from liftlock.git import detached_worktree, git_output
from liftlock.preview.charts import PlotData, comment_charts, parse_plots_json
from liftlock.preview.report import MetricDelta, MLDiff, ParamChange

VALIDATION_REPORT = Path("reports") / "data_validation.json"


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
            diff = None
            if isinstance(old, int | float) and isinstance(new, int | float):
                diff = new - old
            deltas.append(MetricDelta(file, name, old, new, diff))
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


def plots_diff(cwd: Path, base_commit: str, env: Mapping[str, str]) -> dict[str, PlotData]:
    """DVC's plots of the base commit and of the workspace at `cwd` (`dvc plots diff --json`)."""
    return parse_plots_json(_json(run_dvc(["plots", "diff", base_commit, "--json"], cwd, env)))


def metrics_from_worktree(
    root: Path,
    commit: str,
    tree: Path,
    env: Mapping[str, str],
    *,
    plots_against: str | None = None,
) -> tuple[dict[str, dict[str, Any]], str, dict[str, PlotData]]:
    """Metrics, data checks and (against `plots_against`) plots of `commit`, reproduced in a
    throwaway worktree sharing the cache.

    Stages whose inputs the cache (or its run cache) already knows are restored, not rerun;
    what is missing is pulled from the remote (`dvc repro --pull`), the rest reproduced.
    """
    with detached_worktree(root, tree, commit, failure=DvcFailed):
        if not (tree / "dvc.yaml").is_file():
            raise DvcFailed(f"commit {commit[:12]} has no dvc.yaml")
        cache = run_dvc(["cache", "dir"], root, env).strip() or str(root / ".dvc" / "cache")
        run_dvc(["cache", "dir", "--local", cache], tree, env)
        run_dvc(["repro", "--pull"], tree, env)
        shown = _json(run_dvc(["metrics", "show", "--json"], tree, env))
        plots = plots_diff(tree, plots_against, env) if plots_against else {}
        return flatten_metrics_show(shown), data_checks(tree), plots


def working_tree_commit(root: Path) -> str:
    """A commit of the checkout as it is (uncommitted changes to tracked files included).

    `git stash create` makes that commit without touching the working tree, the index or the
    stash list; with nothing uncommitted it prints nothing and HEAD is the answer.
    """
    created = subprocess.run(
        ["git", "stash", "create"], cwd=root, capture_output=True, text=True, check=False
    )
    sha = created.stdout.strip()
    if created.returncode == 0 and sha:
        return sha
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    )
    return head.stdout.strip()


def _split_diff(
    deltas: list[MetricDelta],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    old: dict[str, dict[str, Any]] = {}
    new: dict[str, dict[str, Any]] = {}
    for delta in deltas:
        if delta.old is not None:
            old.setdefault(delta.file, {})[delta.name] = delta.old
        if delta.new is not None:
            new.setdefault(delta.file, {})[delta.name] = delta.new
    return old, new


def ml_diff(
    root: Path, base_commit: str, workdir: Path, env: Mapping[str, str], *, reproduce: bool = True
) -> MLDiff:
    """Params and metrics of the checkout against `base_commit`; the checkout is not modified.

    Metrics are `cache: false` outputs committed to git, so `dvc metrics diff` reads the base's
    from git and the head's from the workspace. A side whose numbers are not there — the base
    commit has none, or the checkout's pipeline is out of date (`dvc status`) — is reproduced in a
    throwaway git worktree sharing the DVC cache. A side that cannot be had is reported as
    unavailable, never left out silently.

    The gates still judge the checkout's own bundle: with a stale pipeline their
    `pipeline-up-to-date` rule says so, which is the verdict the pull request deserves.
    """
    result = MLDiff()
    try:
        result.params = parse_params_diff(
            _json(run_dvc(["params", "diff", base_commit, "--json"], root, env))
        )
    except DvcFailed as failed:
        result.notes.append(f"params diff failed: {failed}")

    try:
        committed = parse_metrics_diff(
            _json(run_dvc(["metrics", "diff", base_commit, "--all", "--json"], root, env))
        )
    except DvcFailed as failed:
        result.notes.append(f"metrics diff failed: {failed}")
        committed = []
    base_values, head_values = _split_diff(committed)

    result.base_source = f"git ({base_commit[:12]}, committed metrics)"
    if not base_values:
        if not reproduce:
            result.base_metrics_available = False
            result.base_source = f"{base_commit[:12]} has no committed metrics (--no-repro)"
        else:
            try:
                base_values, _, _ = metrics_from_worktree(root, base_commit, workdir / "base", env)
                result.base_source = f"dvc repro --pull in a git worktree of {base_commit[:12]}"
            except DvcFailed as failed:
                result.base_metrics_available = False
                result.base_source = f"none committed, and reproducing the base failed: {failed}"

    result.head_source = "workspace (dvc status: up to date)"
    plots: dict[str, PlotData] = {}
    checks = data_checks(root)
    try:
        stale = head_is_stale(root, env)
    except DvcFailed as failed:
        stale = True
        result.notes.append(f"dvc status failed: {failed}")
    if stale:
        if not reproduce:
            result.head_metrics_available = False
            result.head_source = "the pipeline is out of date (dvc status) and --no-repro was given"
        else:
            commit = working_tree_commit(root)
            try:
                head_values, checks, plots = metrics_from_worktree(
                    root, commit, workdir / "head", env, plots_against=base_commit
                )
                result.head_source = (
                    "dvc repro --pull in a git worktree of the checkout "
                    "(its pipeline is out of date; the checkout itself is left as it is)"
                )
            except DvcFailed as failed:
                result.head_metrics_available = False
                result.head_source = (
                    f"the pipeline is out of date and reproducing it failed: {failed}"
                )
    if not stale:
        try:
            plots = plots_diff(root, base_commit, env)
        except DvcFailed as failed:
            result.notes.append(f"plots diff failed: {failed}")
    if not head_values:
        result.head_metrics_available = False
        result.head_source = result.head_source or "no metrics in the checkout"
    result.metrics = diff_metric_values(base_values, head_values)
    result.plots = plots
    result.charts = comment_charts(result.metrics, plots, base_commit, "workspace")
    result.notes.append(f"Data checks (head): {checks}")
    result.model_verdict = model_verdict(root, base_commit, params_changed=bool(result.params))
    if stale:
        result.model_verdict = "re-trained in a worktree: the head's dvc.lock is out of date"
    return result


def model_verdict(root: Path, base_commit: str, *, params_changed: bool) -> str:
    """The bundle of record at base and head, by the hash dvc.lock gives it (ml.reproduction's
    words): equal hashes are the same bytes, so no spurious "changed" from another machine."""
    base_lock = git_output(root, "show", f"{base_commit}:dvc.lock", check=False)
    head_lock = root / "dvc.lock"
    try:
        base = locked_out_hash(yaml.safe_load(base_lock) or {}, "bundle") if base_lock else None
        head_text = head_lock.read_text(encoding="utf-8") if head_lock.is_file() else ""
        head = locked_out_hash(yaml.safe_load(head_text) or {}, "bundle")
    except yaml.YAMLError as error:
        return f"bundle of record unknown: dvc.lock is not valid YAML ({error})"
    if head is None:
        return "no bundle of record at the head (dvc.lock names no bundle)"
    if base == head:
        return "model unchanged (bit-identical)"
    if base is None:
        return "re-trained: the base has no bundle of record"
    if params_changed:
        return "re-trained: new params, a different bundle"
    return (
        "re-trained: same params, a different bundle (code or data changed); "
        "`liftlock repro-check` says whether it is equivalent"
    )
