"""Mermaid xychart-beta charts of base vs head, and the comment staying under GitHub's limit."""

from __future__ import annotations

import json
import re
from pathlib import Path

from liftlock.preview.charts import (
    ROC_GRID,
    comment_charts,
    confusion_chart,
    find_plot,
    metrics_chart,
    parse_plots_json,
    roc_points,
)
from liftlock.preview.markdown import GITHUB_COMMENT_LIMIT, render_markdown
from liftlock.preview.report import MetricDelta, MLDiff, PreviewReport, StackPreview

BASE, HEAD = "a" * 40, "workspace"


def plots_json() -> dict:
    """What `dvc plots diff <base> --json` prints: DVC's spec with both revisions' rows."""
    roc = [
        *({"fpr": f, "tpr": t, "rev": BASE} for f, t in [(0, 0), (0, 0.5), (0.2, 0.9), (1, 1)]),
        *({"fpr": f, "tpr": t, "rev": HEAD} for f, t in [(0, 0), (0, 0.8), (0.1, 1), (1, 1)]),
    ]
    confusion = [
        *({"actual": "0", "predicted": "0", "rev": BASE} for _ in range(8)),
        *({"actual": "1", "predicted": "0", "rev": BASE} for _ in range(2)),
        *({"actual": "0", "predicted": "0", "rev": HEAD} for _ in range(9)),
        {"actual": "1", "predicted": "1", "rev": HEAD},
    ]
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "mark": "line"}
    return {
        "data": {
            "dvc.yaml::eval/plots/roc.csv": [
                {"type": "vega", "content": {**spec, "data": {"values": roc}}}
            ],
            "eval/plots/roc.csv": [{"type": "vega", "content": {**spec, "data": {"values": []}}}],
            "dvc.yaml::eval/plots/confusion.csv": [
                {"type": "vega", "content": {**spec, "data": {"values": confusion}}}
            ],
        }
    }


METRICS = [
    MetricDelta("eval/metrics.json", "accuracy", 0.965, 0.951, -0.014),
    MetricDelta("eval/metrics.json", "roc_auc", 0.996, 0.99, -0.006),
    MetricDelta("eval/metrics.json", "note", "x", "y", None),
]


def series(chart: str, kind: str) -> list[list[float]]:
    return [json.loads(m) for m in re.findall(rf"^    {kind} (\[.*\])$", chart, re.M)]


def test_metrics_are_base_bars_and_a_head_line():
    chart = metrics_chart(METRICS)
    assert chart is not None and chart.startswith("```mermaid\nxychart-beta\n")
    assert 'x-axis ["accuracy", "roc_auc"]' in chart  # the non-numeric metric is left out
    assert series(chart, "bar") == [[0.965, 0.996]] and series(chart, "line") == [[0.951, 0.99]]
    assert 'y-axis "value" 0.9 --> 1' in chart


def test_roc_is_sampled_as_a_step_curve_on_a_fixed_fpr_grid():
    rows = [{"fpr": 0, "tpr": 0}, {"fpr": 0, "tpr": 0.5}, {"fpr": 0.2, "tpr": 0.9}]
    points = roc_points(rows)
    assert len(points) == len(ROC_GRID) == 21
    assert points[:5] == [0.5, 0.5, 0.5, 0.5, 0.9]  # FPR 0, .05, .1, .15, .2


def test_the_comment_charts_come_from_dvc_plots_of_both_revisions():
    plots = parse_plots_json(plots_json())
    assert find_plot(plots, "roc.csv").plot_id == "dvc.yaml::eval/plots/roc.csv"
    charts = comment_charts(METRICS, plots, BASE, HEAD)
    assert [c.splitlines()[2].split('"')[1].split(":")[0] for c in charts] == [
        "Metrics",
        "ROC (test split)",
        "Confusion matrix (test split)",
    ]
    base_roc, head_roc = series(charts[1], "line")
    assert base_roc[0] == 0.5 and head_roc[0] == 0.8 and head_roc[2] == 1
    confusion = confusion_chart(find_plot(plots, "confusion.csv"), BASE, HEAD)
    assert confusion is not None
    assert '"actual 0 / predicted 0", "actual 1 / predicted 0", "actual 1 / predicted 1"' in (
        confusion
    )
    assert series(confusion, "bar") == [[8, 2, 0]] and series(confusion, "line") == [[9, 0, 1]]


def test_no_chart_for_a_side_without_data():
    plots = parse_plots_json(plots_json())
    assert comment_charts([], plots, "other-rev", HEAD) == []


def big_report(charts: list[str]) -> PreviewReport:
    """Three stacks with hundreds of changed objects each, and the model with its charts."""
    from liftlock.preview.report import PropertyChange, ResourceChange

    resources = [
        ResourceChange(
            f"deploy/prod/{i}.yaml",
            "kubernetes:v1:ConfigMap",
            f"liftlock-prod/cm-{i:05d}",
            "update",
            (PropertyChange(f"data.key{i}", "update", "x" * 80, "y" * 80),),
            f"deploy/prod/{i}.yaml",
        )
        for i in range(600)
    ]
    stacks = [
        StackPreview(stack=s, affected_by=["params.yaml"], resources=resources)
        for s in ("dev", "staging", "prod")
    ]
    ml = MLDiff(metrics=METRICS, base_source="git", head_source="workspace", charts=charts)
    return PreviewReport(
        base="main",
        base_commit=BASE,
        head_commit="b" * 40,
        changed_files=["params.yaml"],
        affected={s.stack: ["params.yaml"] for s in stacks},
        stacks=stacks,
        gates={},
        ml=ml,
    )


def test_the_comment_keeps_its_charts_and_stays_under_githubs_limit():
    charts = comment_charts(METRICS, parse_plots_json(plots_json()), BASE, HEAD)
    text = render_markdown(big_report(charts))
    assert len(text) <= GITHUB_COMMENT_LIMIT, len(text)
    assert text.count("```mermaid") == 3  # the big stack sections were shortened, not the charts


def test_a_chart_never_breaks_out_of_its_fence(tmp_path: Path):
    tricky = [MetricDelta("m.json", 'odd "name"', 0.1, 0.2, 0.1)]
    chart = metrics_chart(tricky)
    assert chart is not None and "\"odd 'name'\"" in chart and chart.endswith("```")
