"""The engine's preview JSON and event log -> per-resource changes and policy verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liftlock.preview.infra import (
    parse_property_path,
    read_event_log,
    split_urn,
    summarise_preview,
    summarise_steps,
    value_at,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture
def recorded():
    with (DATA / "staging-replicas.preview.json").open(encoding="utf-8") as handle:
        digest = json.load(handle)
    return digest, read_event_log(DATA / "staging-replicas.events.jsonl")


def by_type(preview, rtype):
    found = [r for r in preview.resources if r.type == rtype]
    assert len(found) == 1, f"expected one {rtype}, got {[r.urn for r in preview.resources]}"
    return found[0]


def test_update_names_the_changed_property_with_old_and_new_values(recorded):
    preview = summarise_preview("staging", ["stacks/Pulumi.staging.yaml"], *recorded)
    deployment = by_type(preview, "kubernetes:apps/v1:Deployment")
    assert deployment.op == "update"
    assert [(p.path, p.old, p.new) for p in deployment.properties] == [("spec.replicas", 2, 3)]


def test_replace_steps_collapse_into_one_replace_naming_the_replacing_property(recorded):
    preview = summarise_preview("staging", [], *recorded)
    service = by_type(preview, "kubernetes:core/v1:Service")
    assert service.op == "replace"
    props = {p.path: p for p in service.properties}
    assert props["spec.type"].forces_replacement
    assert (props["spec.type"].old, props["spec.type"].new) == ("ClusterIP", "LoadBalancer")
    assert props['metadata.labels["liftlock.io/owner"]'].kind == "add"


def test_counts_and_unchanged_leave_out_the_stack_root(recorded):
    preview = summarise_preview("staging", [], *recorded)
    assert preview.counts() == {"create": 1, "update": 1, "replace": 1, "delete": 1}
    assert preview.unchanged == 1  # the ModelService component; the Stack root is not counted


def test_policy_events_become_violations_with_liftlock_enforcement_names(recorded):
    preview = summarise_preview("staging", [], *recorded)
    levels = {v.policy: v.enforcement for v in preview.policy_violations}
    assert levels == {"no-public-exposure": "advisory", "disruption-budget": "mandatory"}
    assert preview.policies_checked
    assert preview.policy_verdict == "fail"


def test_no_events_and_no_changes_is_a_clean_pass():
    digest = {
        "steps": [{"op": "same", "urn": "urn:pulumi:prod::liftlock::a:b:C::x"}],
        "changeSummary": {"same": 1},
    }
    events = [{"policyLoadEvent": {}}, {"summaryEvent": {}}]
    preview = summarise_preview("prod", ["params.yaml"], digest, events)
    assert preview.resources == [] and preview.unchanged == 1
    assert preview.policy_verdict == "pass"
    assert preview.status == "ok"


def test_error_diagnostics_mark_the_stack_failed():
    digest = {
        "diagnostics": [
            {
                "message": "liftlock:replicas must be >= 1 (stacks/Pulumi.prod.yaml)",
                "severity": "error",
            },
            {"message": "just info", "severity": "info"},
        ]
    }
    preview = summarise_preview("prod", [], digest, [])
    assert preview.status == "error"
    assert preview.errors == ["liftlock:replicas must be >= 1 (stacks/Pulumi.prod.yaml)"]


def test_property_paths_with_indexes_and_quoted_keys():
    path = 'spec.template.spec.containers[0].env["A.B"]'
    assert parse_property_path(path) == ["spec", "template", "spec", "containers", 0, "env", "A.B"]
    document = {"spec": {"template": {"spec": {"containers": [{"env": {"A.B": "1"}}]}}}}
    assert value_at(document, path) == "1"


def test_urn_split_takes_the_last_type_of_the_parent_chain():
    urn = (
        "urn:pulumi:dev::liftlock::liftlock:index:LocalService"
        "$docker:index/container:Container::api"
    )
    assert split_urn(urn) == ("docker:index/container:Container", "api")


def test_unknown_outputs_are_shown_as_known_after_up():
    steps = [
        {
            "op": "update",
            "urn": "urn:pulumi:dev::p::t:m:R::r",
            "oldState": {"outputs": {"image": "old"}},
            "newState": {"inputs": {"image": "04da6b54-80e4-46f7-96ec-b56ff0331ba9"}},
            "detailedDiff": {"image": {"kind": "update", "inputDiff": False}},
        }
    ]
    resources, _ = summarise_steps(steps)
    assert resources[0].properties[0].new == "(known after up)"


def test_a_recorded_engine_stream_gives_the_replicas_update_and_a_clean_policy_pass():
    """`PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true pulumi preview --json --stack staging
    --policy-pack policies` on the real engine (debug diagnostics dropped), head = replicas 3."""
    events = read_event_log(DATA / "staging-replicas.stream.jsonl")
    preview = summarise_preview("staging", ["stacks/Pulumi.staging.yaml"], {}, events)
    assert preview.status == "ok", preview.errors
    assert [(r.op, r.type, r.name) for r in preview.resources] == [
        ("update", "kubernetes:apps/v1:Deployment", "staging-model-deployment")
    ]
    (change,) = preview.resources[0].properties
    assert (change.path, change.kind, change.old, change.new) == ("spec.replicas", "update", 2, 3)
    assert preview.unchanged == 15  # every other resource but the stack root
    assert preview.policies_checked and preview.policy_verdict == "pass"
