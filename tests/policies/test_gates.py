"""policies/gates.yaml: levels and thresholds per stack, and errors naming file and key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from policies.gates import GatesError, load_gates, parse_gates
from policies.model import Level


def test_levels_per_stack_and_overrides(gates_document: dict[str, Any]) -> None:
    gates = parse_gates(gates_document, path="gates.yaml")
    assert gates.level("dev", "pss-restricted") is Level.ADVISORY
    assert gates.level("staging", "pss-restricted") is Level.MANDATORY
    assert gates.level("staging", "min-replicas") is Level.ADVISORY  # per-rule override
    assert gates.level("prod", "metrics-thresholds") is Level.MANDATORY
    # A stack gates.yaml does not list is judged by the defaults: mandatory.
    assert gates.level("qa", "pss-restricted") is Level.MANDATORY
    assert gates.for_stack("prod").thresholds.min_replicas == 2
    assert gates.for_stack("dev").thresholds.require_image_digest is False
    assert gates.for_stack("staging").thresholds.require_image_digest is True  # from defaults


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (
            lambda d: d["stacks"]["prod"].update(enforcement="strict"),
            "stacks.prod.enforcement",
            "'strict' is not one of",
        ),
        (
            lambda d: (
                d["stacks"]["prod"]["overrides"].update({"no-such-rule": "advisory"})
                if "overrides" in d["stacks"]["prod"]
                else d["stacks"]["prod"].update(overrides={"no-such-rule": "advisory"})
            ),
            "stacks.prod.overrides.no-such-rule",
            "unknown rule 'no-such-rule'",
        ),
        (
            lambda d: d["defaults"].update(overrides={"typo-rule": "disabled"}),
            "defaults.overrides.typo-rule",
            "unknown rule 'typo-rule'",
        ),
        (
            lambda d: d["stacks"]["dev"]["thresholds"].update(minReplicas=0),
            "stacks.dev.thresholds.minReplicas",
            "less than the minimum of 1",
        ),
        (
            lambda d: d["stacks"]["dev"]["thresholds"]["metrics"].update(accuracy="high"),
            "stacks.dev.thresholds.metrics.accuracy",
            "'high' is not of type 'number'",
        ),
        (
            lambda d: d["stacks"]["prod"]["freezeWindows"][0].update(start="next friday"),
            "stacks.prod.freezeWindows.0.start",
            "not an ISO 8601 date-time",
        ),
        (
            lambda d: d["stacks"]["prod"]["freezeWindows"][0].update(
                end="2026-01-01T00:00:00+00:00"
            ),
            "stacks.prod.freezeWindows.0.end",
            "ends before it starts",
        ),
        (
            lambda d: d["stacks"]["prod"].update(thresholds={"maxRegresion": 0.1}),
            "stacks.prod.thresholds",
            "'maxRegresion' was unexpected",
        ),
        (lambda d: d.pop("version"), "(top level)", "'version' is a required property"),
    ],
)
def test_malformed_gates_name_file_and_key(
    gates_document: dict[str, Any], edit: Any, key: str, words: str
) -> None:
    document = copy.deepcopy(gates_document)
    edit(document)
    with pytest.raises(GatesError) as caught:
        parse_gates(document, path="policies/gates.yaml")
    assert caught.value.key == key
    assert words in caught.value.problem
    assert str(caught.value).startswith(f"policies/gates.yaml: {key}: ")


def test_unparsable_or_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "gates.yaml"
    broken.write_text("version: 1\nstacks: [unclosed\n", encoding="utf-8")
    with pytest.raises(GatesError, match=r"gates.yaml: line 3, column 1: not valid YAML"):
        load_gates(broken)
    with pytest.raises(GatesError, match=r"nowhere.yaml: \(file\): no such file"):
        load_gates(tmp_path / "nowhere.yaml")


def test_verify_thresholds_merge_key_by_key(gates_document: dict[str, Any]) -> None:
    gates = parse_gates(gates_document, path="gates.yaml")
    staging, prod, dev = (gates.for_stack(s).thresholds.verify for s in ("staging", "prod", "dev"))
    assert staging.required and prod.required and not dev.required
    assert staging.min_soak_seconds == 60 and prod.min_soak_seconds == 3600
    # staging sets only required and minSoakSeconds: the window and limits are the defaults'
    assert staging.soak_seconds == dev.soak_seconds == 30 and prod.soak_seconds == 60
    assert staging.smoke_rows == 32 and staging.max_p99_latency_ms == 250
    assert gates.for_stack("qa").thresholds.verify.required is False


@pytest.mark.parametrize(
    ("verify", "key", "words"),
    [
        ({"soakSecs": 5}, "stacks.staging.thresholds.verify", "'soakSecs' was unexpected"),
        ({"maxErrorRate": 2}, "stacks.staging.thresholds.verify.maxErrorRate", "maximum of 1"),
        ({"smokeRows": 0}, "stacks.staging.thresholds.verify.smokeRows", "minimum of 1"),
        ({"required": "yes"}, "stacks.staging.thresholds.verify.required", "not of type"),
        (
            {"soakSeconds": 10, "pollSeconds": 20},
            "stacks.staging.thresholds.verify.pollSeconds",
            "longer than soakSeconds (10)",
        ),
    ],
)
def test_malformed_verify_thresholds_name_the_key(
    gates_document: dict[str, Any], verify: dict[str, Any], key: str, words: str
) -> None:
    document = copy.deepcopy(gates_document)
    document["stacks"]["staging"]["thresholds"]["verify"] = verify
    with pytest.raises(GatesError) as raised:
        parse_gates(document, path="policies/gates.yaml")
    assert raised.value.key == key, str(raised.value)
    assert words in str(raised.value)
    assert str(raised.value).startswith(f"policies/gates.yaml: {key}: ")
