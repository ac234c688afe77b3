"""`liftlock preview`: git -> affected stacks -> DVC diff -> engine previews + gates -> report.

What is compared: the checkout (committed or not) against the merge base of `--base` and HEAD,
as a pull request's diff is. The model side is diffed first (a stale side is reproduced in a
throwaway worktree, which takes the cores); then the affected stacks are previewed by the real
engine, at most `jobs` at a time, against each stack's state in the configured backend (what is
deployed, so the comment says what merging and deploying would do), and the gates run beside
them. Nothing in the checkout is modified: the engine reads copies of the stack files.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from liftlock.engine.env import run_pulumi
from liftlock.errors import ConfigError, ExternalCommandError
from liftlock.git import git_output
from liftlock.preview.affected import affected_stacks, touches_ml
from liftlock.preview.gates import run_gate
from liftlock.preview.infra import PreviewRun, run_stack_preview
from liftlock.preview.ml import ml_diff
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
    gate_engine_preview: bool = False  # let `liftlock gate` run its own engine preview too
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


def plan_stack_runs(
    root: Path,
    affected: Mapping[str, list[str]],
    env: Mapping[str, str],
    workdir: Path,
    options: PreviewOptions,
    policy_pack: Path | None,
) -> tuple[list[PreviewRun], dict[str, list[str]], dict[str, list[str]]]:
    """One PreviewRun per affected stack, plus per-stack notes and unknown values."""
    runs: list[PreviewRun] = []
    notes: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    present = existing_stacks(root, env)
    for stack, reasons in affected.items():
        notes[stack], unknown[stack] = [], []
        if not options.with_secrets:
            stand_in = prepare_stand_in(root, stack, env, workdir, stack in present)
            notes[stack] += stand_in.notes
            unknown[stack] = stand_in.unknown_values
            stack_env, config_file = stand_in.env, stand_in.config_file
        else:
            if stack not in present:
                init_stack(root, stack, env)
                notes[stack].append(
                    f"Stack `{stack}` had no state in the backend: every resource shows as a "
                    "create."
                )
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
    return runs, notes, unknown


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


def build_preview(root: Path, options: PreviewOptions, env: Mapping[str, str]) -> PreviewReport:
    """The whole preview of the checkout at `root` against `options.base`."""
    started = time.monotonic()
    base_commit, merge_base = resolve_base(root, options.base)
    head_commit = git_output(root, "rev-parse", "HEAD")
    changed = changed_files(root, merge_base)
    stacks = select_stacks(root, options.only_stacks)
    affected = affected_stacks(changed, stacks)
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
            ml = ml_diff(root, merge_base, workdir, env, reproduce=options.reproduce)
            if ml.head_source.startswith("dvc repro"):
                report_notes.append(
                    "The checkout's pipeline is out of date (`dvc status`): head metrics come "
                    "from reproducing it in a throwaway git worktree; commit the updated "
                    "`dvc.lock` (`dvc repro`) so deployments and gates use that model."
                )
        previews: dict[str, StackPreview] = {}
        gates: dict[str, GateVerdict] = {}
        if affected:
            runs, notes, unknown = plan_stack_runs(
                root, affected, env, workdir, options, policy_pack
            )
            with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
                preview_futures = {r.stack: pool.submit(run_stack_preview, r) for r in runs}
                gate_futures = (
                    {
                        s: pool.submit(
                            run_gate,
                            s,
                            root,
                            env,
                            engine_preview=options.gate_engine_preview,
                        )
                        for s in affected
                    }
                    if options.run_gates
                    else {}
                )
                for stack, future in preview_futures.items():
                    previews[stack] = future.result()
                    previews[stack].notes[:0] = notes[stack]
                    previews[stack].unknown_values = unknown[stack]
                for stack, gate_future in gate_futures.items():
                    gates[stack] = gate_future.result()
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


def cpu_bound_jobs() -> int:
    """Stacks previewed at once: one per core, at most 2 (the engine is CPU-heavy)."""
    return max(1, min(2, os.cpu_count() or 1))
