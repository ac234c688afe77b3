"""Every ML rule: compliant, non-compliant, property missing, and config override."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from policies.evaluate import evaluate_bundle
from policies.gates import GATES_PATH, Gates
from policies.model import Verdict
from policies.rules import ml
from tests.policies.bundles import GOOD_METRICS, POOR_METRICS, model_card

SCHEMA_PATH = GATES_PATH.parent / "schemas" / "model_card.schema.json"


@pytest.fixture(scope="module")
def card_schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


@pytest.fixture
def facts(card_schema: dict[str, Any]) -> dict[str, Any]:
    """Facts of a bundle every ML rule accepts on prod."""
    return {
        "subject": "bundle",
        "digest": "sha256:" + "1" * 64,
        "metrics": dict(GOOD_METRICS),
        "metrics_file": dict(GOOD_METRICS),
        "evidence": {"recomputed": dict(GOOD_METRICS)},
        "promotion": None,
        "champion": {"digest": "sha256:" + "2" * 64, "metrics": dict(GOOD_METRICS), "record": "r"},
        "data_report": {"valid": True, "violations": []},
        "data_report_path": "bundle/data_validation.json",
        "model_card": model_card(GOOD_METRICS),
        "model_card_schema": card_schema,
        "lineage": {
            "lock_found": True,
            "bundle_in_lock": True,
            "mismatched": [],
            "stale": {},
            "status_error": None,
        },
    }


def _problems(rule: Any, facts: dict[str, Any], gates: Gates, stack: str = "prod") -> list[str]:
    return list(rule.check(facts, gates.context(stack)))


def test_compliant_bundle_passes_every_ml_rule(gates: Gates, facts: dict[str, Any]) -> None:
    findings = evaluate_bundle(facts, gates, "prod")
    assert {f.rule for f in findings} >= {r.name for r in ml.RULES}
    assert [f for f in findings if f.verdict is not Verdict.PASS] == []
    notes = {f.rule: f.message for f in findings}
    assert notes["metrics-thresholds"] == (
        "accuracy 0.9650 ≥ 0.95, f1 0.9515 ≥ 0.93, recall 0.9245 ≥ 0.92, roc_auc 0.9962 ≥ 0.98"
    )
    assert notes["no-regression"] == "within 0.01 of champion 222222222222 (r)"


def test_metrics_below_prod_threshold_fail_prod_and_warn_dev(
    gates: Gates, facts: dict[str, Any]
) -> None:
    facts["metrics"] = dict(POOR_METRICS)
    facts["champion"] = None
    assert _problems(ml.metrics_thresholds, facts, gates) == [
        "accuracy 0.8200 < 0.95 required on prod",
        "f1 0.8100 < 0.93 required on prod",
        "recall 0.8000 < 0.92 required on prod",
        "roc_auc 0.8800 < 0.98 required on prod",
    ]
    prod = {f.rule: f.verdict for f in evaluate_bundle(facts, gates, "prod")}
    assert prod["metrics-thresholds"] is Verdict.FAIL
    # dev gates only accuracy ≥ 0.85 and roc_auc ≥ 0.90, and only advises.
    assert _problems(ml.metrics_thresholds, facts, gates, "dev") == [
        "accuracy 0.8200 < 0.85 required on dev",
        "roc_auc 0.8800 < 0.9 required on dev",
    ]
    dev = [f for f in evaluate_bundle(facts, gates, "dev") if f.rule == "metrics-thresholds"]
    assert [f.verdict for f in dev] == [Verdict.WARN, Verdict.WARN]


def test_missing_metric_is_a_violation(gates: Gates, facts: dict[str, Any]) -> None:
    del facts["metrics"]["recall"]
    assert _problems(ml.metrics_thresholds, facts, gates) == [
        "metric 'recall' is missing from the bundle (needs ≥ 0.92)"
    ]


def test_regression_against_champion(gates: Gates, facts: dict[str, Any]) -> None:
    facts["metrics"]["f1"] = GOOD_METRICS["f1"] - 0.005  # within prod's 0.01
    assert _problems(ml.no_regression, facts, gates) == []
    facts["metrics"]["f1"] = GOOD_METRICS["f1"] - 0.03
    (problem,) = _problems(ml.no_regression, facts, gates)
    assert problem.startswith("f1 0.9215 regresses 0.0300 from champion 222222222222")
    assert _problems(ml.no_regression, facts, gates, "dev") == []  # dev tolerates 0.05
    del facts["metrics"]["f1"]
    assert _problems(ml.no_regression, facts, gates) == [
        "metric 'f1' is missing (champion has 0.9515)"
    ]
    facts["champion"] = None  # first promotion: nothing to regress from
    assert _problems(ml.no_regression, facts, gates) == []


def test_data_validation_report(gates: Gates, facts: dict[str, Any]) -> None:
    facts["data_report"] = {"valid": False, "violations": ["column 'age': minimum 0, got -3"]}
    assert _problems(ml.data_validation_passed, facts, gates) == [
        "bundle/data_validation.json: 1 violation(s), first: column 'age': minimum 0, got -3"
    ]
    facts["data_report"] = None
    assert _problems(ml.data_validation_passed, facts, gates) == [
        "bundle/data_validation.json not found"
    ]


def test_model_card_complete(gates: Gates, facts: dict[str, Any]) -> None:
    del facts["model_card"]["owner"]
    facts["model_card"]["metrics"]["accuracy"] = 1.5
    problems = _problems(ml.model_card_complete, facts, gates)
    assert "model_card.json (top level): 'owner' is a required property" in problems
    assert any(p.startswith("model_card.json metrics.accuracy: 1.5 is greater") for p in problems)
    facts["model_card"] = None
    assert _problems(ml.model_card_complete, facts, gates) == [
        "model_card.json is missing from the bundle"
    ]


def test_lineage_rules(gates: Gates, facts: dict[str, Any]) -> None:
    facts["lineage"]["mismatched"] = ["model.onnx"]
    assert _problems(ml.lineage_matches_dvc_lock, facts, gates) == [
        "model.onnx differs from what dvc.lock recorded"
    ]
    facts["lineage"]["lock_found"] = False
    assert _problems(ml.lineage_matches_dvc_lock, facts, gates) == [
        "no dvc.lock: the bundle was not built by `dvc repro`"
    ]
    facts["lineage"]["stale"] = {"train": [{"changed deps": {"params.yaml": "modified"}}]}
    (problem,) = _problems(ml.pipeline_up_to_date, facts, gates)
    assert problem.startswith("stage 'train' changed: ") and "params.yaml" in problem
    facts["lineage"] = {}
    assert _problems(ml.lineage_matches_dvc_lock, facts, gates)


@pytest.mark.parametrize("rule", ml.RULES, ids=[r.name for r in ml.RULES])
def test_override_turns_each_ml_rule_advisory_or_off(
    gates_with: Callable[..., Gates], facts: dict[str, Any], rule: Any
) -> None:
    broken = copy.deepcopy(facts)
    broken.update(
        metrics={"accuracy": 0.1},
        data_report=None,
        model_card=None,
        evidence={},
        lineage={"stale": {"train": ["changed deps"]}},
    )
    relaxed = gates_with("prod", **{rule.name: "advisory"})
    verdicts = {f.verdict for f in evaluate_bundle(broken, relaxed, "prod", rules=[rule])}
    assert verdicts == {Verdict.WARN}
    off = gates_with("prod", **{rule.name: "disabled"})
    assert [f.verdict for f in evaluate_bundle(broken, off, "prod", rules=[rule])] == [
        Verdict.SKIPPED
    ]


def test_evidence_matches_refuses_claims_the_model_does_not_score(
    gates: Gates, facts: dict[str, Any]
) -> None:
    assert _problems(ml.evidence_matches, facts, gates) == []
    facts["metrics"] = dict(GOOD_METRICS, accuracy=0.99)
    facts["metrics_file"] = dict(GOOD_METRICS, f1=0.97)
    assert _problems(ml.evidence_matches, facts, gates) == [
        "bundle.json claims accuracy 0.990000, the model scores 0.965000",
        "metrics.json claims f1 0.970000, the model scores 0.951500",
    ]
    facts["evidence"] = {"error": "no test split was stored with the bundle"}
    assert _problems(ml.evidence_matches, facts, gates) == [
        "cannot check the claimed metrics: no test split was stored with the bundle"
    ]
    facts["evidence"] = {}
    (problem,) = _problems(ml.evidence_matches, facts, gates)
    assert "not recomputed" in problem


def test_promotion_recorded_judges_the_record_check(gates: Gates, facts: dict[str, Any]) -> None:
    from policies.rules.governance import promotion_recorded

    assert _problems(promotion_recorded, facts, gates) == []  # a candidate: no record yet
    facts["promotion"] = {"status": "recorded", "message": "ok"}
    assert _problems(promotion_recorded, facts, gates) == []
    facts["promotion"] = {"status": "unrecorded", "message": "prod pins bundle sha256:ab…"}
    assert _problems(promotion_recorded, facts, gates) == [
        "unrecorded: prod pins bundle sha256:ab…"
    ]
    dev = evaluate_bundle(facts, gates, "dev", rules=[promotion_recorded])
    assert [f.verdict for f in dev] == [Verdict.WARN]  # advisory in dev
