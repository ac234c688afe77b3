"""The PR comment: summary first, details per stack, under GitHub's limit."""

from __future__ import annotations

import json

from liftlock.preview.markdown import GITHUB_COMMENT_LIMIT, MARKER, render_markdown, render_summary
from liftlock.preview.report import (
    GateVerdict,
    MetricDelta,
    MLDiff,
    ParamChange,
    PolicyViolation,
    PreviewReport,
    PropertyChange,
    ResourceChange,
    StackPreview,
)


def deployment_update(stack: str, old: int, new: int) -> ResourceChange:
    return ResourceChange(
        urn=f"urn:pulumi:{stack}::liftlock::liftlock:index:ModelService$kubernetes:apps/v1:Deployment::model",
        type="kubernetes:apps/v1:Deployment",
        name="model",
        op="update",
        properties=(PropertyChange("spec.replicas", "update", old, new),),
    )


def report(stacks, ml=None, gates=None, **kw) -> PreviewReport:
    return PreviewReport(
        base="main",
        base_commit="a" * 40,
        head_commit="b" * 40,
        changed_files=["params.yaml"],
        affected={s.stack: s.affected_by for s in stacks if s.affected_by},
        stacks=stacks,
        gates=gates or {},
        ml=ml,
        **kw,
    )


def small_report() -> PreviewReport:
    ml = MLDiff(
        params=[ParamChange("params.yaml", "train.logistic_regression.C", 1.0, 0.5)],
        metrics=[
            MetricDelta("eval/metrics.json", "accuracy", 0.965, 0.958, -0.007),
            MetricDelta("eval/metrics.json", "f1", 0.95, 0.95, 0.0),
        ],
        base_source="git",
        head_source="workspace",
    )
    stacks = [
        StackPreview("dev", ["params.yaml"], unchanged=4, policies_checked=True),
        StackPreview(
            "staging",
            ["params.yaml", "stacks/Pulumi.staging.yaml"],
            resources=[deployment_update("staging", 2, 3)],
            unchanged=5,
            policies_checked=True,
            policy_violations=[
                PolicyViolation("replicas-min", "liftlock", "advisory", "2 | 3 replicas")
            ],
        ),
        StackPreview("prod", [], status="not-affected"),
    ]
    gates = {
        "dev": GateVerdict("dev", "pass"),
        "staging": GateVerdict("staging", "fail", ("min-accuracy",), "accuracy 0.958 < 0.96"),
    }
    return report(stacks, ml, gates)


def test_marker_then_summary_table_with_one_row_per_stack():
    text = render_markdown(small_report())
    assert text.startswith(MARKER + "\n")
    table = [line for line in text.splitlines() if line.startswith("| **")]
    assert [row.split("|")[1].strip() for row in table] == ["**dev**", "**staging**", "**prod**"]
    staging = table[1]
    assert "1 update" in staging and "⚠️ advisory" in staging
    assert "❌ fail (min-accuracy)" in staging and "accuracy -0.007" in staging
    assert "not affected" in table[2]
    assert text.index("| **prod**") < text.index("<details>")


def test_details_show_property_values_and_escape_pipes():
    text = render_markdown(small_report())
    assert "`spec.replicas`: `2` → `3`" in text
    assert "2 \\| 3 replicas" in text


def test_unavailable_base_metrics_are_said_in_the_summary():
    rep = small_report()
    assert rep.ml is not None
    rep.ml.base_metrics_available = False
    rep.ml.base_source = "the base has no dvc.yaml"
    summary = render_summary(rep)
    assert "Metrics of the base `main` are unavailable" in summary
    assert "base metrics unavailable" in summary


def test_without_secrets_the_unknown_values_are_named():
    rep = small_report()
    rep.secrets_available = False
    rep.stacks[1].unknown_values = ["liftlock:registryToken"]
    assert "`liftlock:registryToken`" in render_summary(rep)


def many_resources_report(stacks: int = 3, per_stack: int = 1500) -> PreviewReport:
    previews = []
    for index in range(stacks):
        name = f"stack{index}"
        resources = [
            ResourceChange(
                urn=f"urn:pulumi:{name}::liftlock::kubernetes:core/v1:ConfigMap::cm-{n:05d}",
                type="kubernetes:core/v1:ConfigMap",
                name=f"cm-{n:05d}",
                op=("create", "update", "replace", "delete")[n % 4],
                properties=tuple(
                    PropertyChange(f"data.key{k}", "update", "x" * 40, "y" * 40) for k in range(3)
                ),
            )
            for n in range(per_stack)
        ]
        previews.append(StackPreview(name, ["infra/__main__.py"], resources=resources))
    gates = {p.stack: GateVerdict(p.stack, "pass") for p in previews}
    return report(previews, gates=gates)


def test_many_resources_stay_under_githubs_limit_with_the_whole_summary():
    rep = many_resources_report()
    text = render_markdown(rep)
    assert len(text) <= GITHUB_COMMENT_LIMIT, len(text)
    assert text.startswith(render_summary(rep))
    for preview in rep.stacks:
        assert f"| **{preview.stack}** | 375 create, 375 update, 375 replace, 375 delete |" in text
        assert f"<b>{preview.stack}</b>" in text  # every stack keeps its details block


def test_shortening_keeps_the_finest_level_that_fits():
    rep = many_resources_report(stacks=1, per_stack=120)
    full = render_markdown(rep, limit=10**9)
    assert "`x" in full  # values present when there is room
    shorter = render_markdown(rep, limit=len(full) - 1)
    assert len(shorter) < len(full)
    assert "cm-00119" in shorter  # names kept, only values dropped first


def test_json_carries_the_same_facts():
    data = json.loads(json.dumps(small_report().to_dict(), default=str))
    staging = next(s for s in data["stacks"] if s["stack"] == "staging")
    assert staging["counts"]["update"] == 1
    change = staging["resources"][0]["properties"][0]
    assert (change["path"], change["old"], change["new"]) == ("spec.replicas", 2, 3)
    assert staging["policy_verdict"] == "advisory"
    assert data["gates"]["staging"]["verdict"] == "fail"
    assert data["ml"]["delta_summary"] == "accuracy -0.007"
