"""`liftlock gate`: judge a bundle for a stack — orchestration only.

It gathers facts (verifies the bundle, reads its metrics and model card, the data report, the
champion's record, runs `dvc status`), runs the ML rules on them (`policies.evaluate`), and runs
the infrastructure rules through the real engine: `pulumi preview --policy-pack policies` on the
stack, with the candidate bundle's digest (and image) in a temporary copy of the stack file, reading
the verdicts from the engine's event log. It judges nothing itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from liftlock.engine.env import engine_environment, pulumi_executable, run_pulumi
from liftlock.engine.preview import parse_event_lines, passed_policies, policy_events, run_preview
from liftlock.errors import BundleError, ConfigError, ExternalCommandError, ToolMissingError
from liftlock.records import latest_record
from liftlock.stackfile import stack_file_copy, stack_names, stack_path
from policies.evaluate import (
    Finding,
    blocking,
    evaluate_bundle,
    evaluate_objects,
    finding,
    verdict_for,
)
from policies.gates import Gates, GatesError, load_gates
from policies.model import Level
from policies.rules import rules_by_name

GATES_FILE = Path("policies") / "gates.yaml"
PACK_DIR = Path("policies")
MODEL_CARD_SCHEMA = Path("policies") / "schemas" / "model_card.schema.json"
DATA_REPORT = Path("reports") / "data_validation.json"
MODEL_CARD = "model_card.json"


@dataclass(kw_only=True)
class GateReport:
    """What `gate` found: every finding, and where the infrastructure verdicts came from."""

    stack: str
    bundle_dir: Path
    bundle_digest: str
    metrics: dict[str, Any]
    findings: list[Finding]
    infra_source: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def blocking(self) -> list[Finding]:
        return blocking(self.findings)

    @property
    def passed(self) -> bool:
        return not self.blocking

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "bundle": str(self.bundle_dir),
            "bundleDigest": self.bundle_digest,
            "passed": self.passed,
            "infraSource": self.infra_source,
            "metrics": self.metrics,
            "findings": [item.to_json() for item in self.findings],
            "timings": {key: round(value, 5) for key, value in self.timings.items()},
        }


# ---------------------------------------------------------------------------------------------
# Inputs


def read_gates(root: Path) -> Gates:
    try:
        return load_gates(root / GATES_FILE)
    except GatesError as error:
        raise ConfigError(str(error)) from error


def stack_file(root: Path, stack: str) -> Path:
    path = stack_path(root, stack)
    if not path.is_file():
        known = sorted(stack_names(root))
        raise ConfigError(
            f"{path}: no such stack file (stacks: {', '.join(known) or 'none'})",
            hint=f"create stacks/Pulumi.{stack}.yaml or pick one of the stacks above",
        )
    return path


def verify(bundle_dir: Path) -> str:
    """The bundle digest, after checking every file against bundle.json (BundleError if not)."""
    from ml.bundle import verify_bundle

    return verify_bundle(bundle_dir)


def _read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        raise BundleError(f"{path}: not valid JSON ({error})") from error


# ---------------------------------------------------------------------------------------------
# Lineage: dvc.lock and `dvc status`


def _dvc_executable() -> str:
    beside = Path(sys.executable).parent / "dvc"
    found = str(beside) if beside.is_file() else shutil.which("dvc")
    if not found:
        raise ToolMissingError("dvc is not installed", hint="make venv (installs liftlock[train])")
    return found


def _lock_out(root: Path, bundle_dir: Path) -> dict[str, Any] | None:
    """dvc.lock's record of the output folder `bundle_dir` (None when no stage outputs it)."""
    lock = root / "dvc.lock"
    with lock.open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    try:
        relative = bundle_dir.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
    for stage in (document.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if str(out.get("path", "")).rstrip("/") == relative:
                return dict(out)
    return None


def _mismatched_files(root: Path, bundle_dir: Path) -> list[str]:
    """Files of `bundle_dir` that differ from what dvc.lock records, as DVC itself reports them
    (`dvc data status --granular`; with no local cache DVC knows no file list, and `dvc status`
    still says whether the folder changed)."""
    relative = _display(root, bundle_dir).rstrip("/") + "/"
    try:
        result = subprocess.run(
            [_dvc_executable(), "data", "status", "--granular", "--json"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        status = json.loads(result.stdout or "{}") if result.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return []  # `dvc status` (collect_lineage) reports the failure
    uncommitted = status.get("uncommitted") or {}
    wording = {"deleted": " (missing)", "added": " (not in dvc.lock)", "modified": ""}
    problems = []
    for change, suffix in wording.items():
        for path in uncommitted.get(change) or []:
            name = str(path).removeprefix(relative)
            if str(path).startswith(relative) and name:
                problems.append(f"{name}{suffix}")
    return sorted(problems)


def dvc_status(root: Path) -> tuple[dict[str, Any] | None, str | None]:
    """`dvc status --json`: (stage -> changes, None) or (None, error)."""
    try:
        result = subprocess.run(
            [_dvc_executable(), "status", "--json"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, str(error)
    if result.returncode != 0:
        return None, (result.stderr.strip().splitlines() or ["exit " + str(result.returncode)])[-1]
    try:
        status = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        return None, f"unexpected output: {result.stdout[:200]!r}"
    return {str(stage): changes for stage, changes in status.items()}, None


def collect_lineage(root: Path, bundle_dir: Path) -> dict[str, Any]:
    lock_found = (root / "dvc.lock").is_file()
    out = _lock_out(root, bundle_dir) if lock_found else None
    stale, error = dvc_status(root) if lock_found else ({}, None)
    return {
        "lock_found": lock_found,
        "bundle_in_lock": out is not None,
        "mismatched": _mismatched_files(root, bundle_dir) if out else [],
        "stale": stale,
        "status_error": error,
    }


# ---------------------------------------------------------------------------------------------
# Bundle facts


def collect_bundle_facts(root: Path, bundle_dir: Path, digest: str, stack: str) -> dict[str, Any]:
    """Everything the ML rules judge, as a plain dict (see policies/rules/ml.py)."""
    manifest = _read_json(bundle_dir / "bundle.json") or {}
    metrics = manifest.get("metrics")
    if not isinstance(metrics, dict):
        metrics = _read_json(bundle_dir / "metrics.json") or {}
    report_path = next(
        (p for p in (bundle_dir / DATA_REPORT.name, root / DATA_REPORT) if p.is_file()),
        root / DATA_REPORT,
    )
    champion = latest_record(root, stack)
    return {
        "subject": _display(root, bundle_dir),
        "digest": digest,
        "metrics": metrics,
        "champion": (
            {
                "digest": champion.bundle_digest,
                "metrics": champion.metrics,
                "record": _display(root, champion.path),
            }
            if champion
            else None
        ),
        "data_report": _read_json(report_path),
        "data_report_path": _display(root, report_path),
        "model_card": _read_json(bundle_dir / MODEL_CARD),
        "model_card_schema": _read_json(root / MODEL_CARD_SCHEMA),
        "lineage": collect_lineage(root, bundle_dir),
    }


def _display(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# Infrastructure rules through the engine


_MESSAGE = re.compile(r"^\[(?P<rule>[^\]]+)\] (?P<subject>.+?): (?P<problem>.*)$")


def _urn_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else "stack"


def findings_from_events(
    events: Sequence[Mapping[str, Any]], gates: Gates, stack: str
) -> list[Finding]:
    """The engine's policy events -> findings: one per violation, one pass line per clean rule."""
    known = rules_by_name()
    findings: list[Finding] = []
    failed: set[str] = set()
    for policy in policy_events(events):
        rule = known.get(policy.policy)
        problem_line = next(
            (m for line in policy.message.splitlines() if (m := _MESSAGE.match(line))), None
        )
        subject = _urn_name(policy.urn)
        problem = policy.message
        if problem_line:
            subject = f"{subject} ({problem_line['subject']})"
            problem = problem_line["problem"]
        level = Level.MANDATORY if policy.enforcement == "mandatory" else Level.ADVISORY
        failed.add(policy.policy)
        findings.append(
            Finding(
                rule=policy.policy,
                domain=rule.domain if rule else "pack",
                subject=subject,
                level=level,
                verdict=verdict_for(level, failed=True),
                message=problem,
                fix=rule.fix if rule else "",
            )
        )
    for name, count in sorted(passed_policies(events).items()):
        if name in failed or name not in known:
            continue
        what = "stack" if known[name].scope == "stack" else f"{count} resource(s)"
        findings.append(
            finding(known[name], gates.level(stack, name), what, None, passed_note="no violation")
        )
    return findings


def parse_events(text: str) -> list[dict[str, Any]]:
    """Engine events of a streaming JSON preview's stdout (the engine module parses them)."""
    return parse_event_lines(text.splitlines())


def policy_preview(
    root: Path,
    stack: str,
    gates: Gates,
    *,
    overrides: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> list[Finding]:
    """`pulumi preview --policy-pack policies` on the stack; its policy verdicts as findings."""
    environment = engine_environment(root, env if env is not None else os.environ)
    pulumi_executable(  # missing: say so with the gate's way around it
        environment,
        hint="run `make toolchain`, or `liftlock gate --no-preview` for the rules alone",
    )
    stack_file(root, stack)  # a missing stack file: ConfigError naming the stacks there are
    with stack_file_copy(root, stack, overrides) as config_file:
        pack = root / PACK_DIR
        result = run_preview(root, stack, environment, policy_pack=pack, config_file=config_file)
        if result.returncode != 0 and "no stack named" in result.output_tail:
            create_stack(root, stack, environment, config_file.parent)
            result = run_preview(
                root, stack, environment, policy_pack=pack, config_file=config_file
            )
    findings = findings_from_events(result.events, gates, stack)
    if result.returncode != 0 and not blocking(findings):
        raise ExternalCommandError(
            f"`pulumi preview --stack {stack} --policy-pack policies` failed (exit "
            f"{result.returncode}):\n{result.output_tail}",
            hint=f"fix the program or stacks/Pulumi.{stack}.yaml; or `liftlock gate {stack} "
            "--no-preview` for the rules alone",
        )
    return findings


def create_stack(root: Path, stack: str, env: Mapping[str, str], scratch: Path) -> None:
    """Create the stack in the backend without touching the checkout.

    `pulumi stack init` run in the checkout would rewrite stacks/Pulumi.<stack>.yaml (a new
    encryption salt, re-quoted values), and the gate must change no file; so it runs on a copy of
    Pulumi.yaml in a scratch folder (same project, same backend).
    """
    project = scratch / "project"
    project.mkdir(exist_ok=True)
    shutil.copyfile(root / "Pulumi.yaml", project / "Pulumi.yaml")
    created = run_pulumi(["stack", "init", stack], cwd=project, env=env)
    if created.returncode != 0:
        raise ExternalCommandError(
            f"`pulumi stack init {stack}` failed: "
            f"{(created.stderr or created.stdout).strip()[-500:]}"
        )


def manifest_objects(folder: Path) -> list[dict[str, Any]]:
    """Kubernetes objects of the YAML manifests under `folder` (rendered by `pulumi up`)."""
    objects: list[dict[str, Any]] = []
    for path in sorted(folder.rglob("*.yaml")):
        with path.open(encoding="utf-8") as handle:
            objects.extend(doc for doc in yaml.safe_load_all(handle) if isinstance(doc, dict))
    return objects


# ---------------------------------------------------------------------------------------------
# The gate


def run_gate(
    root: Path,
    stack: str,
    bundle_dir: Path,
    *,
    preview: bool = True,
    overrides: Mapping[str, str] | None = None,
    now: datetime | None = None,
    manifests: Path | None = None,
) -> GateReport:
    """Judge `bundle_dir` for `stack`. Raises on bad input (gates.yaml, bundle, stack file).

    Without the engine's preview, the infrastructure rules judge `manifests` (a folder of
    rendered YAML; the preview passes its fresh render), else the committed deploy/<stack>/.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    gates = read_gates(root)
    stack_file(root, stack)
    digest = verify(bundle_dir)
    facts = collect_bundle_facts(root, bundle_dir, digest, stack)
    timings["facts"] = time.perf_counter() - started  # verify the bundle, dvc status, records
    started = time.perf_counter()
    findings = evaluate_bundle(facts, gates, stack, now=now or datetime.now(UTC))
    timings["rules"] = time.perf_counter() - started
    if preview:
        started = time.perf_counter()
        candidate = {"bundleDigest": digest, **(overrides or {})}
        findings += policy_preview(root, stack, gates, overrides=candidate)
        infra_source = "pulumi preview --policy-pack policies"
        timings["preview"] = time.perf_counter() - started
    else:
        rendered = manifests or root / "deploy" / stack
        if rendered.is_dir() and any(rendered.rglob("*.yaml")):
            started = time.perf_counter()
            findings += evaluate_objects(manifest_objects(rendered), gates, stack)
            timings["manifests"] = time.perf_counter() - started
            infra_source = (
                f"deploy/{stack}/ (manifests of the last `pulumi up`)"
                if manifests is None
                else f"{manifests} (the program's render of the change)"
            )
        else:
            infra_source = "not judged (--no-preview and no rendered manifests)"
    return GateReport(
        stack=stack,
        bundle_dir=bundle_dir,
        bundle_digest=digest,
        metrics=dict(facts["metrics"]),
        findings=findings,
        infra_source=infra_source,
        timings=timings,
    )
