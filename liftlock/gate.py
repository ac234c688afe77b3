"""`liftlock gate`: judge a bundle for a stack — orchestration only.

What it judges is the bundle the stack pins, by digest: fetched through DVC by the hash the
promotion record names (`liftlock.dvcstore`), never whatever `bundle/` holds; `liftlock promote`
judges its candidate the same way, stored into DVC first. It gathers facts (verifies the bundle,
recomputes its metrics from its model on the test split it names, reads its model card, the data
report, the champion's record, whether a valid signed record backs the stack's pins, `dvc status`),
runs the ML rules on them (`policies.evaluate`), and runs
the infrastructure rules through the real engine: `pulumi preview --policy-pack policies` on the
stack, with the candidate bundle's digest (and image) in a temporary copy of the stack file, reading
the verdicts from the engine's event log. It judges nothing itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from liftlock.dvc import DvcFailed, locked_out_hash, run_dvc
from liftlock.dvcstore import checkout_by_hash, store_folders
from liftlock.engine.env import engine_environment, pulumi_executable, run_pulumi
from liftlock.engine.preview import (
    EnginePreview,
    parse_event_lines,
    passed_policies,
    policy_events,
    run_preview,
)
from liftlock.errors import (
    BundleError,
    ConfigError,
    ExternalCommandError,
    GateFailed,
    ToolMissingError,
)
from liftlock.records import champion_record
from liftlock.stackfile import read_stack_values, stack_file_copy, stack_names, stack_path
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
from policies.promotion import RecordCheck, check_pinned, record_problem, records
from policies.rules import all_rules, rules_by_name
from policies.rules.governance import PROMOTION_RULE

GATES_FILE = Path("policies") / "gates.yaml"
PACK_DIR = Path("policies")
MODEL_CARD_SCHEMA = Path("policies") / "schemas" / "model_card.schema.json"
DATA_REPORT = Path("reports") / "data_validation.json"
MODEL_CARD = "model_card.json"
PREPARED = "data/prepared"
TEST_SPLIT = "test.csv"
# Recomputed metrics are rounded to 6 digits like ml/evaluate.py writes them.
METRIC_TOLERANCE = 1e-6


@dataclass(kw_only=True)
class GateReport:
    """What `gate` found: every finding, and where the infrastructure verdicts came from."""

    stack: str
    bundle_dir: Path
    bundle_digest: str
    metrics: dict[str, Any]
    findings: list[Finding]
    infra_source: str
    origin: str = ""  # where the judged bundle came from
    dvc: dict[str, str] = field(default_factory=dict)  # DVC hashes of what was judged
    rule_inputs: dict[str, Any] = field(default_factory=dict)
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
            "origin": self.origin,
            "dvc": self.dvc,
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


def check_params(root: Path) -> None:
    """params.yaml must parse: `dvc status` would otherwise hide a syntax error in a verdict."""
    from ml.params import load_params

    if (root / "params.yaml").is_file():
        load_params(root / "params.yaml")


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
# What is judged: the candidate bundle, by digest, from DVC


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A bundle to judge: its digest, the folder DVC gave back for its hash, where it came from."""

    digest: str
    bundle_dir: Path
    prepared_dir: Path | None  # the data split it was evaluated on (None: not stored)
    dvc: dict[str, str]
    origin: str
    pinned_by: str | None  # the stack that pins it (judged for that stack: its record too)
    store_problem: str | None = None  # why the DVC remote lacks it (None: pushed or fetched)


def pinned_values(root: Path, stack: str) -> tuple[str | None, str | None]:
    """(bundleDigest, image) the stack file pins."""
    values = read_stack_values(stack_file(root, stack))
    digest, image = values.get("bundleDigest"), values.get("image")
    return (str(digest) if digest else None, str(image) if image else None)


def record_naming(root: Path, stack: str, digest: str) -> Any:
    """A valid record naming `digest` with its DVC hash: the stack's own first, then others'."""
    for name in [stack, *(s for s in stack_names(root) if s != stack)]:
        for item in records(root, name):
            if isinstance(item, BaseException) or item.bundle_digest != digest:
                continue
            if item.dvc.get("bundle") and record_problem(root, item, name) is None:
                return item
    return None


@contextlib.contextmanager
def pinned_candidate(root: Path, stack: str, *, push: bool = False) -> Iterator[Candidate]:
    """The bundle `stack` pins, fetched through DVC by the hash its promotion record names."""
    digest, _image = pinned_values(root, stack)
    where = f"stacks/Pulumi.{stack}.yaml"
    if digest is None:
        # A docker stack without a pin deploys its bundle folder: judge that, as stored in DVC.
        values = read_stack_values(stack_file(root, stack))
        if values.get("target") != "docker":
            raise ConfigError(
                f"{where}: liftlock:bundleDigest is not set: {stack} pins no bundle to judge",
                hint=f"promote one: `liftlock promote <from> {stack}`",
            )
        folder = root / str(values.get("bundleDir", "bundle"))
        origin = f"{folder.name}/ ({stack} deploys it)"
        with stored_candidate(root, folder, origin=origin, push=push) as found:
            yield found
        return
    record = record_naming(root, stack, digest)
    if record is None:
        raise GateFailed(
            f"{stack} pins bundle {digest} ({where} liftlock:bundleDigest) but no valid signed "
            "promotion record names it, so it cannot be fetched and judged (a hand-edited pin?)",
            hint=f"promote the bundle through the gate: `liftlock promote <from> {stack}` (or "
            f"`git checkout -- {where}`)",
        )
    with tempfile.TemporaryDirectory(prefix="liftlock-judged-") as scratch:
        wanted = {k: v for k, v in record.dvc.items() if k in ("bundle", PREPARED)}
        fetched = checkout_by_hash(root, wanted, Path(scratch))
        bundle_dir = fetched["bundle"]
        found_digest = verify(bundle_dir)
        if found_digest != digest:
            raise BundleError(
                f"DVC hash {record.dvc['bundle']} ({_display(root, record.path)}) holds bundle "
                f"{found_digest}, not the pinned {digest}",
                hint=f"promote the bundle again: `liftlock promote <from> {stack}`",
            )
        yield Candidate(
            digest=digest,
            bundle_dir=bundle_dir,
            prepared_dir=fetched.get(PREPARED),
            dvc=wanted,
            origin=f"{where} pin, DVC {record.dvc['bundle']} ({_display(root, record.path)})",
            pinned_by=stack,
        )


@contextlib.contextmanager
def stored_candidate(
    root: Path, folder: Path, *, origin: str, push: bool = False
) -> Iterator[Candidate]:
    """A bundle folder (the workspace's) put into DVC first, then judged as DVC holds it.

    The data split beside it (data/prepared) is stored too: the gate recomputes the metrics on it.
    """
    verify(folder)  # a tampered folder fails here, naming the file, before anything is stored
    folders = {"bundle": folder}
    if (root / PREPARED).is_dir():
        folders[PREPARED] = root / PREPARED
    with tempfile.TemporaryDirectory(prefix="liftlock-judged-") as scratch:
        stored = store_folders(root, folders, Path(scratch), push=push)
        copy = Path(scratch) / "bundle"
        yield Candidate(
            digest=verify(copy),
            bundle_dir=copy,
            prepared_dir=Path(scratch) / "data_prepared" if PREPARED in folders else None,
            dvc=stored.hashes,
            origin=f"{origin}, stored as DVC {stored.hashes['bundle']}",
            pinned_by=None,
            store_problem=stored.problem,
        )


# ---------------------------------------------------------------------------------------------
# Lineage: dvc.lock and `dvc status`


def _lock_hash(root: Path, out_path: str) -> str | None:
    """The md5 dvc.lock records for the output `out_path` (None when no stage outputs it)."""
    lock = root / "dvc.lock"
    try:
        with lock.open(encoding="utf-8") as handle:
            document = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        raise ConfigError(
            f"{lock}: {_yaml_where(error)}not valid YAML",
            hint="restore dvc.lock from git (`git checkout -- dvc.lock`) or rerun `dvc repro`",
        ) from error
    return locked_out_hash(document, out_path)


def _yaml_where(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""


def dvc_status(root: Path) -> tuple[dict[str, Any] | None, str | None]:
    """`dvc status --json`: (stage -> changes, None) or (None, error)."""
    try:
        output = run_dvc(["status", "--json"], root, timeout_s=300, what="read `dvc status`")
    except (DvcFailed, ToolMissingError) as error:  # the lineage rule reports it, naming it
        return None, str(error)
    try:
        status = json.loads(output or "{}")
    except json.JSONDecodeError:
        return None, f"unexpected output: {output[:200]!r}"
    return {str(stage): changes for stage, changes in status.items()}, None


def collect_lineage(root: Path, candidate: Candidate) -> dict[str, Any]:
    """dvc.lock against the judged bundle's DVC hash, and `dvc status` of the checkout.

    A pinned bundle was matched against dvc.lock when it was promoted (its record says so); a
    candidate must be what dvc.lock records now.
    """
    lock_found = (root / "dvc.lock").is_file()
    locked = _lock_hash(root, "bundle") if lock_found else None
    judged = candidate.dvc.get("bundle")
    mismatched = []
    if locked and judged and judged != locked and candidate.pinned_by is None:
        mismatched.append(
            f"the bundle (DVC hash {judged}) is not the one dvc.lock records ({locked}): "
            "edited after `dvc repro`?"
        )
    stale, error = dvc_status(root) if lock_found else ({}, None)
    return {
        "lock_found": lock_found,
        "bundle_in_lock": locked is not None or candidate.pinned_by is not None,
        "mismatched": mismatched,
        "stale": stale,
        "status_error": error,
    }


# ---------------------------------------------------------------------------------------------
# Evidence: the metrics, recomputed


def test_split(candidate: Candidate) -> tuple[Path | None, str | None]:
    """(the test split stored with the bundle, None) once checked against the sha256 its
    bundle.json names; else (None, why). The gate recomputes metrics on it, verify predictions."""
    manifest = _read_json(candidate.bundle_dir / "bundle.json") or {}
    test_info = (manifest.get("data") or {}).get("test") or {}
    if candidate.prepared_dir is None:
        return None, f"no test split was stored with the bundle ({PREPARED} missing)"
    test_csv = candidate.prepared_dir / TEST_SPLIT
    if not test_csv.is_file():
        return None, f"{PREPARED}/{TEST_SPLIT} is not in DVC {candidate.dvc.get(PREPARED)}"
    from ml.bundle import sha256_file

    if test_info.get("sha256") and sha256_file(test_csv) != test_info["sha256"]:
        return None, (
            f"{PREPARED}/{TEST_SPLIT} (sha256 {sha256_file(test_csv)[:12]}) is not the "
            f"test split bundle.json names ({str(test_info['sha256'])[:12]})"
        )
    return test_csv, None


def recompute_evidence(candidate: Candidate) -> dict[str, Any]:
    """The bundle's metrics recomputed from its model on the test split it names.

    Returns {"recomputed": {...}} or {"error": why}; the claims themselves are in the facts.
    """
    manifest = _read_json(candidate.bundle_dir / "bundle.json") or {}
    test_csv, problem = test_split(candidate)
    if test_csv is None:
        return {"error": str(problem)}
    try:
        import joblib

        from ml.dataset import read_split
        from ml.evaluate import compute_metrics, positive_scores

        model = joblib.load(candidate.bundle_dir / "model.joblib")
        frame = read_split(test_csv)
        features = frame[list(manifest["features"])].astype("float64").to_numpy()
        labels = frame[str(manifest["target"])].astype("int64").to_numpy()
        positive = int(
            ((manifest.get("params") or {}).get("evaluate") or {}).get("positive_label", 1)
        )
        predicted = model.predict(features)
        scores = positive_scores(model, features, positive)
        return {"recomputed": compute_metrics(labels, predicted, scores, positive)}
    except Exception as error:  # a broken model or split is a finding, not a crash
        return {"error": f"cannot recompute the metrics: {type(error).__name__}: {error}"}


# ---------------------------------------------------------------------------------------------
# Bundle facts


def collect_bundle_facts(root: Path, candidate: Candidate, stack: str) -> dict[str, Any]:
    """Everything the ML rules judge, as a plain dict (see policies/rules/ml.py)."""
    bundle_dir = candidate.bundle_dir
    manifest = _read_json(bundle_dir / "bundle.json") or {}
    metrics = manifest.get("metrics")
    if not isinstance(metrics, dict):
        metrics = _read_json(bundle_dir / "metrics.json") or {}
    bundled_report = bundle_dir / DATA_REPORT.name
    report_path = bundled_report if bundled_report.is_file() else root / DATA_REPORT
    pinned_digest, pinned_image = pinned_values(root, stack)
    champion = champion_record(root, stack, pinned_digest)
    promotion: RecordCheck | None = (
        check_pinned(root, stack, candidate.digest, pinned_image)
        if candidate.pinned_by == stack
        else None
    )
    return {
        "subject": "bundle",
        "digest": candidate.digest,
        "metrics": metrics,
        "metrics_file": _read_json(bundle_dir / "metrics.json"),
        "evidence": recompute_evidence(candidate),
        "promotion": (
            {"status": promotion.status, "message": promotion.message} if promotion else None
        ),
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
        "data_report_path": "bundle/data_validation.json"
        if report_path == bundled_report
        else _display(root, report_path),
        "model_card": _read_json(bundle_dir / MODEL_CARD),
        "model_card_schema": _read_json(root / MODEL_CARD_SCHEMA),
        "lineage": collect_lineage(root, candidate),
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
    judge_record: bool = True,
) -> list[Finding]:
    """`pulumi preview --policy-pack policies` on the stack; its policy verdicts as findings.

    `judge_record=False` previews a candidate: its signed record does not exist yet (the
    promotion writes it), so the pack's promotion-recorded policy is disabled through the
    engine's own `--policy-pack-config`.
    """
    environment = engine_environment(root, env if env is not None else os.environ)
    pulumi_executable(  # missing: say so with the gate's way around it
        environment,
        hint="run `make toolchain`, or `liftlock gate --no-preview` for the rules alone",
    )
    # The program refuses a mandatory stack's unrecorded pins, previews too, except the gate's
    # own preview: the gate judges the record itself (promotion-recorded).
    environment["LIFTLOCK_GATE_PREVIEW"] = "1"
    stack_file(root, stack)  # a missing stack file: ConfigError naming the stacks there are
    with stack_file_copy(root, stack, overrides) as config_file:
        pack = root / PACK_DIR
        pack_config = None
        if not judge_record:
            pack_config = config_file.parent / "policy-pack-config.json"
            pack_config.write_text(json.dumps({PROMOTION_RULE: "disabled"}), encoding="utf-8")

        def preview() -> EnginePreview:
            return run_preview(
                root,
                stack,
                environment,
                policy_pack=pack,
                policy_pack_config=pack_config,
                config_file=config_file,
            )

        result = preview()
        if result.returncode != 0 and "no stack named" in result.output_tail:
            create_stack(root, stack, environment, config_file.parent)
            result = preview()
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


def rule_inputs(facts: Mapping[str, Any], gates: Gates, stack: str) -> dict[str, Any]:
    """What the rules compared, for the promotion record (the facts, minus the bulky schema)."""
    thresholds = gates.for_stack(stack).thresholds
    return {
        "metrics": facts.get("metrics"),
        "recomputedMetrics": (facts.get("evidence") or {}).get("recomputed"),
        "champion": facts.get("champion"),
        "dataReportValid": (facts.get("data_report") or {}).get("valid"),
        "lineage": facts.get("lineage"),
        "thresholds": {
            "metrics": dict(thresholds.metrics),
            "maxRegression": thresholds.max_regression,
            "minReplicas": thresholds.min_replicas,
            "requireImageDigest": thresholds.require_image_digest,
            "allowedRegistries": list(thresholds.allowed_registries),
        },
    }


def run_gate(
    root: Path,
    stack: str,
    candidate: Candidate | None = None,
    *,
    preview: bool = True,
    overrides: Mapping[str, str] | None = None,
    now: datetime | None = None,
    manifests: Path | None = None,
) -> GateReport:
    """Judge `candidate` for `stack` (default: the bundle the stack pins, fetched by its hash).

    Raises on bad input (gates.yaml, bundle, stack file) and on a pin nothing can back. Without
    the engine's preview, the infrastructure rules judge `manifests` (a folder of rendered YAML;
    the preview passes its fresh render), else the committed deploy/<stack>/.
    """
    if candidate is None:
        stack_file(root, stack)
        with pinned_candidate(root, stack) as pinned:
            return run_gate(
                root,
                stack,
                pinned,
                preview=preview,
                overrides=overrides,
                now=now,
                manifests=manifests,
            )
    timings: dict[str, float] = {}
    started = time.perf_counter()
    gates = read_gates(root)
    stack_file(root, stack)
    check_params(root)
    facts = collect_bundle_facts(root, candidate, stack)
    timings["facts"] = time.perf_counter() - started  # the bundle, evidence, dvc status, records
    started = time.perf_counter()
    findings = evaluate_bundle(facts, gates, stack, now=now or datetime.now(UTC))
    timings["rules"] = time.perf_counter() - started
    if preview:
        started = time.perf_counter()
        pins = {"bundleDigest": candidate.digest, **(overrides or {})}
        findings += policy_preview(
            root, stack, gates, overrides=pins, judge_record=candidate.pinned_by == stack
        )
        infra_source = "pulumi preview --policy-pack policies"
        timings["preview"] = time.perf_counter() - started
    else:
        rendered = manifests or root / "deploy" / stack
        if rendered.is_dir() and any(rendered.rglob("*.yaml")):
            started = time.perf_counter()
            objects = manifest_objects(rendered)
            rules = [r for r in all_rules() if r.name != PROMOTION_RULE]  # judged above
            findings += evaluate_objects(objects, gates, stack, rules)
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
        bundle_dir=candidate.bundle_dir,
        bundle_digest=candidate.digest,
        metrics=dict(facts["metrics"]),
        findings=findings,
        infra_source=infra_source,
        origin=candidate.origin,
        dvc=dict(candidate.dvc),
        rule_inputs=rule_inputs(facts, gates, stack),
        timings=timings,
    )
