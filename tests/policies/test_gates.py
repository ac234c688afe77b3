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
