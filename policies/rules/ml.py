"""ML rules: they judge the model bundle, not the infrastructure.

They take the *facts* about a bundle, a plain dict gathered by the orchestration
(`liftlock.gate.collect_bundle_facts`, which runs dvc and reads files; the rules only judge):

    subject        str   how to name the bundle in messages (its folder)
    digest         str   the bundle digest (sha256:…)
    metrics        dict  metric name -> value (bundle.json)
    metrics_file   dict | None  the bundle's metrics.json
    evidence       dict  {recomputed: {metric: value}} from the bundle's model on its test split,
                         or {error: why it could not be recomputed}
    champion       dict | None  the target stack's current bundle: {digest, metrics, record}
    data_report    dict | None  the data validation report ({valid: bool, violations: [...]})
    data_report_path str
    model_card     dict | None  model_card.json of the bundle
    model_card_schema dict | None  policies/schemas/model_card.schema.json
    lineage        dict  {lock_found: bool, bundle_in_lock: bool, mismatched: [file, ...],
                          stale: {stage: [change, ...]} | None, status_error: str | None}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema

from policies.model import RuleContext, rule

Facts = Mapping[str, Any]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _metrics_summary(facts: Facts, ctx: RuleContext) -> str:
    metrics = facts.get("metrics") or {}
    return ", ".join(
        f"{name} {float(metrics[name]):.4f} ≥ {minimum}"
        for name, minimum in sorted(ctx.thresholds.metrics.items())
        if _number(metrics.get(name)) is not None
    )


def _champion_summary(facts: Facts, ctx: RuleContext) -> str:
    champion = facts.get("champion")
    if not champion:
        return "no champion yet (first promotion into this stack)"
    return (
        f"within {ctx.thresholds.max_regression} of champion {str(champion.get('digest'))[7:19]}"
        f" ({champion.get('record')})"
    )


@rule(
    name="metrics-thresholds",
    domain="ml",
    scope="bundle",
    artifact="{subject}/bundle.json (metrics)",
    summary=_metrics_summary,
    description="Every gated metric reaches the stack's minimum (thresholds.metrics in "
    "policies/gates.yaml).",
    fix="improve the model (params.yaml, ml/train.py) and rebuild with `dvc repro`",
)
def metrics_thresholds(facts: Facts, ctx: RuleContext) -> Iterator[str]:
    metrics = facts.get("metrics") or {}
    for name, minimum in sorted(ctx.thresholds.metrics.items()):
        value = _number(metrics.get(name))
        if value is None:
            yield f"metric {name!r} is missing from the bundle (needs ≥ {minimum})"
        elif value < minimum:
            yield f"{name} {value:.4f} < {minimum} required on {ctx.stack}"


@rule(
    name="no-regression",
    domain="ml",
    scope="bundle",
    artifact="{subject}/bundle.json (metrics)",
    summary=_champion_summary,
    description="No metric drops more than the tolerance (thresholds.maxRegression) below the "
    "champion: the bundle the target stack runs (its last promotion record).",
    fix="improve the model until it matches the champion, or raise maxRegression for the stack in "
    "policies/gates.yaml (a reviewed change)",
)
def no_regression(facts: Facts, ctx: RuleContext) -> Iterator[str]:
    champion = facts.get("champion")
    if not champion:
        return  # the first promotion into a stack has nothing to regress from
    metrics = facts.get("metrics") or {}
    tolerance = ctx.thresholds.max_regression
    for name, champion_value in sorted((champion.get("metrics") or {}).items()):
        old, new = _number(champion_value), _number(metrics.get(name))
        if old is None:
            continue
        if new is None:
            yield f"metric {name!r} is missing (champion has {old:.4f})"
        elif new < old - tolerance:
            yield (
                f"{name} {new:.4f} regresses {old - new:.4f} from champion "
                f"{str(champion.get('digest'))[7:19]} ({old:.4f}); tolerance {tolerance}"
            )


@rule(
    name="data-validation-passed",
    domain="ml",
    scope="bundle",
    artifact="{data_report_path}",
    description="The data the model was trained on passed the data contract (the validate stage's "
    "report).",
    fix="fix the data (or the contract, in a reviewed change) and rerun `dvc repro`",
)
def data_validation_passed(facts: Facts, ctx: RuleContext) -> Iterator[str]:
    report = facts.get("data_report")
    where = facts.get("data_report_path") or "data validation report"
    if report is None:
        yield f"{where} not found"
        return
    if report.get("valid") is not True:
        violations = report.get("violations") or []
        first = violations[0] if violations else "valid is not true"
        yield f"{where}: {len(violations)} violation(s), first: {first}"


@rule(
    name="model-card-complete",
    domain="ml",
    scope="bundle",
    artifact="{subject}/model_card.json",
    description="The bundle's model card is complete (policies/schemas/model_card.schema.json).",
    fix="fill the missing model card fields (params.yaml section package / ml/package.py) and "
    "rebuild with `dvc repro`",
)
def model_card_complete(facts: Facts, ctx: RuleContext) -> Iterator[str]:
    card, schema = facts.get("model_card"), facts.get("model_card_schema")
    if card is None:
        yield "model_card.json is missing from the bundle"
        return
    if schema is None:
        yield "policies/schemas/model_card.schema.json is missing: cannot judge the model card"
        return
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(card), key=lambda e: list(e.absolute_path)):
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        yield f"model_card.json {key}: {error.message}"


@rule(
    name="lineage-matches-dvc-lock",
    domain="ml",
    scope="bundle",
    artifact="dvc.lock",
    description="The bundle is the one `dvc repro` recorded in dvc.lock (same files, same hashes).",
    fix="rebuild the bundle with `dvc repro` (or restore it with `dvc checkout`) and commit "
    "dvc.lock",
)
def lineage_matches_dvc_lock(facts: Facts, ctx: RuleContext) -> Iterator[str]:
    lineage = facts.get("lineage") or {}
    if not lineage.get("lock_found"):
        yield "no dvc.lock: the bundle was not built by `dvc repro`"
        return
    if not lineage.get("bundle_in_lock"):
        yield "dvc.lock records no output for this bundle folder"
        return
    for name in lineage.get("mismatched") or []:
        yield f"{name} differs from what dvc.lock recorded"


@rule(
    name="pipeline-up-to-date",
    domain="ml",
    scope="bundle",
    artifact="dvc.yaml (dvc status)",
    description="The pipeline is up to date: `dvc status` reports no changed stage.",
    fix="run `dvc repro` and commit dvc.lock",
)
def pipeline_up_to_date(facts: Facts, ctx: RuleContext) -> Iterator[str]:
    lineage = facts.get("lineage") or {}
    if lineage.get("status_error"):
        yield f"`dvc status` failed: {lineage['status_error']}"
        return
    for stage, changes in sorted((lineage.get("stale") or {}).items()):
        yield f"stage {stage!r} changed: {'; '.join(str(change) for change in changes)}"


@rule(
    name="evidence-matches",
    domain="ml",
    scope="bundle",
    artifact="{subject}/bundle.json vs its model on the test split",
    summary=lambda facts, ctx: "metrics recomputed from the model on the test split match",
    description="The metrics the bundle claims (bundle.json, metrics.json) are the ones its own "
    "model scores on the test split it names, recomputed by the gate.",
    fix="rebuild the bundle with `dvc repro` (evaluate, package) instead of editing its files, "
    "and commit dvc.lock",
)
def evidence_matches(facts: Facts, ctx: RuleContext) -> Iterator[str]:
    evidence = facts.get("evidence") or {}
    if evidence.get("error"):
        yield f"cannot check the claimed metrics: {evidence['error']}"
        return
    recomputed = evidence.get("recomputed") or {}
    if not recomputed:
        yield "the metrics were not recomputed: nothing backs the bundle's claims"
        return
    claims = {"bundle.json": facts.get("metrics") or {}}
    if facts.get("metrics_file") is not None:
        claims["metrics.json"] = facts.get("metrics_file") or {}
    for where, claimed in claims.items():
        for name, actual in sorted(recomputed.items()):
            value = _number(claimed.get(name))
            if value is None:
                yield f"{where} has no {name} (recomputed {actual:.6f})"
            elif abs(value - actual) > 1e-6:
                yield f"{where} claims {name} {value:.6f}, the model scores {actual:.6f}"


RULES = (
    metrics_thresholds,
    evidence_matches,
    no_regression,
    data_validation_passed,
    model_card_complete,
    lineage_matches_dvc_lock,
    pipeline_up_to_date,
)
