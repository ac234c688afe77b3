"""`liftlock preview`: git -> affected stacks -> DVC diff -> renders / engine previews + gates.

What is compared: the checkout (committed or not) against the merge base of `--base` and HEAD,
as a pull request's diff is. The model side is diffed first (a stale side is reproduced in a
throwaway worktree, which takes the cores). Then, at most `jobs` stacks at a time:

- a render stack (`target: render`) is rendered by the real engine with no backend state (a
  throwaway worktree and backend, `preview.render`) and diffed object by object against the
  base commit's committed deploy/<stack>/, its state of record (`preview.manifests`); the same
  render says whether the committed tree is in sync, and its digest is what deploy applies;
- a docker or cluster stack is previewed by the engine against its state in the configured
  backend, and the comment says which state that was (or that there was none);

and the gate judges each stack in-process (a render stack's fresh manifests). Nothing in the
checkout or its backend is modified: the engine reads copies of the stack files.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liftlock.engine.env import STATE_DIRNAME, run_pulumi
from liftlock.errors import ConfigError, DomainError, ExternalCommandError
from liftlock.git import git_output
from liftlock.preview.affected import affected_stacks, touches_ml
from liftlock.preview.gates import infra_violations, run_gate
from liftlock.preview.infra import PreviewRun, run_stack_preview
from liftlock.preview.manifests import (
    ManifestError,
    diff_trees,
    file_digests,
    sync_verdict,
    tree_digest,
    unchanged_objects,
)
from liftlock.preview.ml import ml_diff, working_tree_commit
from liftlock.preview.render import read_committed_tree, read_tree, render_stack
from liftlock.preview.report import GateVerdict, PreviewReport, StackPreview
from liftlock.preview.secretless import prepare_stand_in
from liftlock.stackfile import restored, stack_names, stack_path


@dataclass(frozen=True)
class PreviewOptions:
    base: str
    policy_pack: Path | None = None  # default: <root>/policies when it holds PulumiPolicy.yaml
    with_secrets: bool = True
    reproduce: bool = True
    run_gates: bool = True
    jobs: int = 2
    only_stacks: tuple[str, ...] = ()


def resolve_base(root: Path, base: str) -> tuple[str, str]:
    """(base commit as given, merge base with HEAD) — the PR diff starts at the merge base."""
    try:
        base_commit = git_output(root, "rev-parse", "--verify", f"{base}^{{commit}}")
    except ExternalCommandError as missing:
        raise ConfigError(
            f"--base {base!r} is not a commit in {root}",
            hint="fetch it first (git fetch origin main) or pass a branch, tag or SHA",
        ) from missing
    merge_base = git_output(root, "merge-base", base_commit, "HEAD")
    return base_commit, merge_base


def changed_files(root: Path, base_commit: str) -> list[str]:
    """Tracked files that differ from `base_commit` (committed or not) plus untracked files."""
    tracked = git_output(root, "diff", "--name-only", "--no-renames", base_commit, "--")
    untracked = git_output(root, "ls-files", "--others", "--exclude-standard")
    return sorted({p for p in [*tracked.splitlines(), *untracked.splitlines()] if p})


def existing_stacks(root: Path, env: Mapping[str, str]) -> set[str]:
    completed = run_pulumi(["stack", "ls", "--json", "--cwd", str(root)], cwd=root, env=env)
    if completed.returncode != 0:
        raise ExternalCommandError(
            f"`pulumi stack ls` failed: {completed.stderr.strip()[-500:]}",
            hint="check PULUMI_BACKEND_URL and the passphrase (liftlock env)",
        )
    return {str(s.get("name", "")).split("/")[-1] for s in json.loads(completed.stdout or "[]")}


def init_stack(root: Path, stack: str, env: Mapping[str, str]) -> None:
    """Create an empty stack in the backend, leaving its stack file exactly as it was."""
    with restored(stack_path(root, stack)):
        completed = run_pulumi(["stack", "init", stack, "--cwd", str(root)], cwd=root, env=env)
    if completed.returncode != 0:
        raise ExternalCommandError(
            f"`pulumi stack init {stack}` failed: {completed.stderr.strip()[-500:]}"
        )


def diff_source(root: Path, stack: str, env: Mapping[str, str], has_state: bool) -> str:
    """What an engine diff is measured against, in the comment's words."""
    url = env.get("PULUMI_BACKEND_URL", "")
    here = url == (root / STATE_DIRNAME).as_uri()
    if not has_state:
        if url.startswith("file://"):  # the embedded default: a backend of this machine only
            return (
                "no shared backend: showing the desired state only (every resource a create; "
                f"the local backend {url} has no state for `{stack}`)"
            )
        return f"no state for `{stack}` in {url}: showing the desired state only"
    where = "this checkout's local backend" if here else url
    return f"the state of `{stack}` in {where}"


def stack_has_state(root: Path, stack: str, env: Mapping[str, str]) -> bool:
    with restored(stack_path(root, stack)):
        exported = run_pulumi(
            ["stack", "export", "--stack", stack, "--cwd", str(root)], cwd=root, env=env
        )
    if exported.returncode != 0:
        return False
    resources = (json.loads(exported.stdout or "{}").get("deployment") or {}).get("resources")
    return any(
        not str(r.get("type", "")).startswith(("pulumi:pulumi:Stack", "pulumi:providers:"))
        for r in resources or []
    )


def plan_stack_runs(
    root: Path,
    affected: Mapping[str, list[str]],
    env: Mapping[str, str],
    workdir: Path,
    options: PreviewOptions,
    policy_pack: Path | None,
) -> tuple[list[PreviewRun], dict[str, list[str]], dict[str, list[str]], dict[str, str]]:
    """One PreviewRun per affected stack, plus per-stack notes, unknown values, diff sources."""
    runs: list[PreviewRun] = []
    notes: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    sources: dict[str, str] = {}
    present = existing_stacks(root, env) if affected else set()
    for stack, reasons in affected.items():
        notes[stack], unknown[stack] = [], []
        sources[stack] = diff_source(
            root, stack, env, stack in present and stack_has_state(root, stack, env)
        )
        if not options.with_secrets:
            stand_in = prepare_stand_in(root, stack, env, workdir, stack in present)
            notes[stack] += stand_in.notes
            unknown[stack] = stand_in.unknown_values
            stack_env, config_file = stand_in.env, stand_in.config_file
        else:
            if stack not in present:
                init_stack(root, stack, env)
            # The engine reads a copy: it may write into a stack file (an encryption salt, its
            # own formatting), and a preview must leave the checkout as it found it.
            source = stack_path(root, stack)
            config_file = workdir / source.name
            config_file.write_bytes(source.read_bytes())
            stack_env = dict(env)
        runs.append(
            PreviewRun(
                root=root,
                stack=stack,
                affected_by=tuple(reasons),
                env=stack_env,
                workdir=workdir,
                policy_pack=policy_pack,
                config_file=config_file,
            )
        )
    return runs, notes, unknown, sources


def default_policy_pack(root: Path) -> Path | None:
    pack = root / "policies"
    return pack if (pack / "PulumiPolicy.yaml").is_file() else None


def select_stacks(root: Path, only: tuple[str, ...]) -> list[str]:
    stacks = stack_names(root)
    if only:
        unknown = sorted(set(only) - set(stacks))
        if unknown:
            raise ConfigError(
                f"--stack {', '.join(unknown)}: no stacks/Pulumi.<stack>.yaml for it",
                hint=f"known stacks: {', '.join(stacks)}",
            )
        stacks = [s for s in stacks if s in only]
    return stacks


def affected_since(root: Path, base: str, only: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Affected stacks (promotion order) of the change from the merge base of `base` and HEAD."""
    _, merge_base = resolve_base(root, base)
    return affected_stacks(changed_files(root, merge_base), select_stacks(root, only))


def stack_target(root: Path, stack: str) -> tuple[str, tuple[str, ...]]:
    """(target, render folders) of a stack file; ConfigError naming the file and keys."""
    from infra.config import StackConfigError, load_stack_file

    try:
        config = load_stack_file(stack_path(root, stack), stack=stack)
    except StackConfigError as error:
        problems = "; ".join(getattr(error, "problems", []) or [str(error)])
        raise ConfigError(
            f"stacks/Pulumi.{stack}.yaml: {problems}", hint="fix the stack file"
        ) from error
    folders = tuple(f for f in (config.render_dir, config.gitops_render_dir) if f)
    return config.target, folders


def _difference_record(change: Any) -> dict[str, Any]:
    return {
        "file": change.file,
        "object": f"{change.type.split(':')[-1]} {change.name}",
        "op": change.op,
        "fields": [p.path for p in change.properties],
    }


def preview_render_stack(
    root: Path,
    stack: str,
    reasons: list[str],
    folders: tuple[str, ...],
    env: Mapping[str, str],
    workdir: Path,
    *,
    base_commit: str,
    render_commit: str,
    options: PreviewOptions,
) -> tuple[StackPreview, GateVerdict | None]:
    """Render the head program, diff it against the base's committed tree, judge the sync."""
    shown = ", ".join(f"`{f}/`" for f in folders)
    preview = StackPreview(
        stack=stack,
        affected_by=list(reasons),
        target="render",
        diff_source=f"the committed {shown} of {base_commit[:12]} (the state of record; "
        "rendered with no backend state)",
        render_folders=list(folders),
    )
    try:
        render = render_stack(
            root, render_commit, stack, folders, env, workdir, with_secrets=options.with_secrets
        )
    except DomainError as error:  # no throwaway stack, no worktree: say so in the comment
        preview.status, preview.errors = "error", [str(error)]
        return preview, None
    preview.duration_s = render.duration_s
    preview.unknown_values = render.unknown_values
    if render.errors:
        preview.status, preview.errors = "error", render.errors
        return preview, None
    try:
        base_tree = read_committed_tree(root, base_commit, folders)
        head_tree = read_tree(root, folders)
        preview.resources = diff_trees(base_tree, render.files)
        preview.unchanged = unchanged_objects(base_tree, render.files)
        sync = sync_verdict(base_tree, head_tree, render.files)
    except ManifestError as error:
        preview.status, preview.errors = "error", [str(error)]
        return preview, None
    preview.rendered_digest = tree_digest(render.files)
    preview.rendered_files = file_digests(render.files)
    preview.rendered_in_sync = sync.in_sync
    preview.manifests_verdict = sync.verdict
    preview.manifest_differences = [_difference_record(c) for c in sync.differences]
    preview.manifest_problems = sync.problems() if sync.fails else []
    if not options.run_gates:
        return preview, None
    # The gate judges the render (what merging deploys), not the committed tree.
    judged = workdir / f"judged-{stack}"
    for path, content in render.files.items():
        if path.startswith(folders[0] + "/"):
            (judged / path).parent.mkdir(parents=True, exist_ok=True)
            (judged / path).write_bytes(content)
    verdict, findings = run_gate(stack, root, manifests=judged / folders[0])
    preview.policy_violations = infra_violations(findings, "policies (rules on the render)")
    preview.policies_checked = verdict.verdict != "error"
    return preview, verdict


def build_preview(root: Path, options: PreviewOptions, env: Mapping[str, str]) -> PreviewReport:
    """The whole preview of the checkout at `root` against `options.base`."""
    started = time.monotonic()
    base_commit, merge_base = resolve_base(root, options.base)
    head_commit = git_output(root, "rev-parse", "HEAD")
    changed = changed_files(root, merge_base)
    stacks = select_stacks(root, options.only_stacks)
    affected = affected_stacks(changed, stacks)
    targets = {stack: stack_target(root, stack) for stack in affected}
    report_notes = []
    if merge_base != base_commit:
        report_notes.append(
            f"Compared with the merge base {merge_base[:12]} of `{options.base}` and HEAD."
        )
    policy_pack = options.policy_pack or default_policy_pack(root)
    if policy_pack is None:
        report_notes.append("No policy pack (policies/PulumiPolicy.yaml): policies not run.")

    with tempfile.TemporaryDirectory(prefix="liftlock-preview-") as tmp:
        workdir = Path(tmp)
        ml = None
        if touches_ml(changed):
            print_step(f"model: params, metrics and plots against {merge_base[:12]} (DVC) ...")
            ml = ml_diff(root, merge_base, workdir, env, reproduce=options.reproduce)
            if ml.head_source.startswith("dvc repro"):
                report_notes.append(
                    "The checkout's pipeline is out of date (`dvc status`): head metrics come "
                    "from reproducing it in a throwaway git worktree; commit the updated "
                    "`dvc.lock` (`dvc repro`) so deployments and gates use that model."
                )
        previews: dict[str, StackPreview] = {}
        gates: dict[str, GateVerdict] = {}
        rendered = {s: r for s, r in affected.items() if targets[s][0] == "render"}
        engine = {s: r for s, r in affected.items() if targets[s][0] != "render"}
        if affected:
            print_step(
                "stacks: "
                + ", ".join(
                    f"{s} ({'render, no backend' if s in rendered else 'engine preview'})"
                    for s in affected
                )
                + " ..."
            )
            runs, notes, unknown, sources = plan_stack_runs(
                root, engine, env, workdir, options, policy_pack
            )
            render_commit = working_tree_commit(root) if rendered else ""
            with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
                render_futures = {
                    s: pool.submit(
                        preview_render_stack,
                        root,
                        s,
                        reasons,
                        targets[s][1],
                        env,
                        workdir,
                        base_commit=merge_base,
                        render_commit=render_commit,
                        options=options,
                    )
                    for s, reasons in rendered.items()
                }
                preview_futures = {r.stack: pool.submit(run_stack_preview, r) for r in runs}
                gate_futures = (
                    {s: pool.submit(run_gate, s, root) for s in engine} if options.run_gates else {}
                )
                for stack, render_future in render_futures.items():
                    previews[stack], verdict = render_future.result()
                    if verdict is not None:
                        gates[stack] = verdict
                    print_step(f"{stack}: {_phrase(previews[stack])}")
                for stack, future in preview_futures.items():
                    previews[stack] = future.result()
                    previews[stack].notes[:0] = notes[stack]
                    previews[stack].unknown_values = unknown[stack]
                    previews[stack].target = targets[stack][0]
                    previews[stack].diff_source = sources[stack]
                    print_step(f"{stack}: {_phrase(previews[stack])}")
                for stack, gate_future in gate_futures.items():
                    gates[stack] = gate_future.result()[0]
    ordered = [
        previews.get(s) or StackPreview(stack=s, affected_by=[], status="not-affected")
        for s in stacks
    ]
    return PreviewReport(
        base=options.base,
        base_commit=merge_base,
        head_commit=head_commit,
        changed_files=changed,
        affected=dict(affected),
        stacks=ordered,
        gates=gates,
        ml=ml,
        secrets_available=options.with_secrets,
        duration_s=time.monotonic() - started,
        notes=report_notes,
    )


def _phrase(stack: StackPreview) -> str:
    from liftlock.preview.markdown import changes_phrase

    took = f" in {stack.duration_s:.1f} s"
    return (
        changes_phrase(stack)
        + took
        + (f" ({stack.manifests_verdict})" if stack.manifests_verdict else "")
    )


def print_step(line: str) -> None:
    """A progress line on stderr (stdout may be the comment itself)."""
    print(f"[preview] {line}", file=sys.stderr, flush=True)


def cpu_bound_jobs() -> int:
    """Stacks previewed at once: one per core, at most 2 (the engine is CPU-heavy)."""
    return max(1, min(2, os.cpu_count() or 1))
