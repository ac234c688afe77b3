"""Pictures of the model side: base against head, from DVC's own plots data.

`dvc plots diff <base> --json` gives, per plot of dvc.yaml, DVC's Vega-Lite spec with the data
of both revisions inline (each row tagged `rev`). The comment draws them as Mermaid
`xychart-beta` charts (which GitHub renders in comments): metrics as bars (base) and a line
(head), the ROC curve as two lines on one false-positive-rate grid (xychart spaces points
evenly, so the step curve is sampled at fixed FPRs), and the confusion matrix's cells as bars
and a line. The HTML report (`html_report`) draws DVC's own specs to SVG, with no network.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from liftlock.preview.report import MetricDelta

#: FPR grid the ROC curve is sampled at (xychart-beta spaces points evenly).
ROC_GRID = tuple(round(i / 20, 2) for i in range(21))


@dataclass
class PlotData:
    """One plot of dvc.yaml: its rows per revision, and DVC's Vega-Lite spec."""

    plot_id: str  # `dvc.yaml::eval/plots/roc.csv`
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # rev -> rows
    spec: dict[str, Any] = field(default_factory=dict)


def parse_plots_json(data: Mapping[str, Any]) -> dict[str, PlotData]:
    """`dvc plots diff --json` -> PlotData per plot id."""
    plots: dict[str, PlotData] = {}
    for plot_id, entries in (data.get("data") or {}).items():
        for entry in entries or []:
            content = entry.get("content") or {}
            plot = plots.setdefault(plot_id, PlotData(plot_id, spec=content))
            for row in (content.get("data") or {}).get("values") or []:
                plot.rows.setdefault(str(row.get("rev", "")), []).append(row)
    return plots


def distinct_plots(plots: Mapping[str, PlotData]) -> dict[str, PlotData]:
    """One plot per file: dvc.yaml's top-level definition (`dvc.yaml::<file>`, with its template
    and title) over the stage output's default rendering of the same file."""
    chosen: dict[str, PlotData] = {}
    for plot_id in sorted(plots, key=lambda pid: "::" not in pid):
        chosen.setdefault(plot_id.split("::")[-1], plots[plot_id])
    return chosen


def find_plot(plots: Mapping[str, PlotData], file_name: str) -> PlotData | None:
    return next((p for f, p in distinct_plots(plots).items() if f.endswith(file_name)), None)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _series(values: Sequence[float | None]) -> str:
    return "[" + ", ".join("0" if v is None else f"{v:.4g}" for v in values) + "]"


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def xychart(
    title: str,
    categories: Sequence[str],
    base: Sequence[float | None],
    head: Sequence[float | None],
    *,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    base_as_line: bool = False,
) -> str:
    """A fenced Mermaid `xychart-beta`: base as bars (or a line), head as a line."""
    y_axis = f"y-axis {_quote(y_label)}"
    if y_range is not None:
        y_axis += f" {y_range[0]:.4g} --> {y_range[1]:.4g}"
    lines = [
        "```mermaid",
        "xychart-beta",
        f"    title {_quote(title)}",
        "    x-axis [" + ", ".join(_quote(c) for c in categories) + "]",
        f"    {y_axis}",
        f"    {'line' if base_as_line else 'bar'} {_series(base)}",
        f"    line {_series(head)}",
        "```",
    ]
    return "\n".join(lines)


def metrics_chart(metrics: Sequence[MetricDelta]) -> str | None:
    """Numeric metrics of both sides, or None when there are none to compare."""
    shown = [
        m
        for m in metrics
        if _number(m.old) is not None and _number(m.new) is not None and "/" not in m.name
    ]
    if not shown:
        return None
    low = min(min(_number(m.old) or 0.0, _number(m.new) or 0.0) for m in shown)
    floor = max(0.0, round(low - 0.05, 1)) if 0 <= low <= 1 else min(0.0, low)
    top = max(max(_number(m.old) or 0.0, _number(m.new) or 0.0) for m in shown)
    return xychart(
        "Metrics: base (bars) vs head (line)",
        [m.name for m in shown],
        [_number(m.old) for m in shown],
        [_number(m.new) for m in shown],
        y_label="value",
        y_range=(floor, 1.0 if top <= 1 else top),
    )


def roc_points(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """TPR at each FPR of ROC_GRID: the best TPR reached at or below that FPR (a step curve)."""
    points = sorted(
        (fpr, tpr)
        for row in rows
        if (fpr := _number(row.get("fpr"))) is not None
        and (tpr := _number(row.get("tpr"))) is not None
    )
    sampled = []
    for x in ROC_GRID:
        reached = [tpr for fpr, tpr in points if fpr <= x + 1e-9]
        sampled.append(max(reached) if reached else 0.0)
    return sampled


def roc_chart(plot: PlotData, base_rev: str, head_rev: str) -> str | None:
    base, head = plot.rows.get(base_rev), plot.rows.get(head_rev)
    if not base or not head:
        return None
    return xychart(
        "ROC (test split): base vs head, TPR by FPR",
        [f"{x:g}" for x in ROC_GRID],
        roc_points(base),
        roc_points(head),
        y_label="true positive rate",
        y_range=(0.0, 1.0),
        base_as_line=True,
    )


def confusion_cells(rows: Sequence[Mapping[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((str(r.get("actual")), str(r.get("predicted"))) for r in rows)


def confusion_chart(plot: PlotData, base_rev: str, head_rev: str) -> str | None:
    base, head = plot.rows.get(base_rev), plot.rows.get(head_rev)
    if not base or not head:
        return None
    base_cells, head_cells = confusion_cells(base), confusion_cells(head)
    cells = sorted(set(base_cells) | set(head_cells))
    return xychart(
        "Confusion matrix (test split): base (bars) vs head (line)",
        [f"actual {a} / predicted {p}" for a, p in cells],
        [float(base_cells[c]) for c in cells],
        [float(head_cells[c]) for c in cells],
        y_label="rows",
    )


def comment_charts(
    metrics: Sequence[MetricDelta],
    plots: Mapping[str, PlotData],
    base_rev: str,
    head_rev: str,
) -> list[str]:
    """The charts the comment shows, in order: metrics, ROC, confusion matrix."""
    charts = [metrics_chart(metrics)]
    roc = find_plot(plots, "roc.csv")
    confusion = find_plot(plots, "confusion.csv")
    charts.append(roc_chart(roc, base_rev, head_rev) if roc else None)
    charts.append(confusion_chart(confusion, base_rev, head_rev) if confusion else None)
    return [chart for chart in charts if chart]


def svg_of(spec: Mapping[str, Any]) -> str:
    """DVC's Vega-Lite spec drawn to SVG by vl-convert (Vega in-process, no network)."""
    import vl_convert

    return str(vl_convert.vegalite_to_svg(dict(spec)))


def html_report(
    title: str,
    metrics: Sequence[MetricDelta],
    plots: Mapping[str, PlotData],
    notes: Sequence[str] = (),
) -> str:
    """A self-contained HTML page: the metrics table and every DVC plot (base and head)."""
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(m.name),
            html.escape(json.dumps(m.old)),
            html.escape(json.dumps(m.new)),
            "—" if m.diff is None else f"{m.diff:+.4g}",
        )
        for m in metrics
    )
    figures = "".join(
        f'<figure id="{html.escape(pid)}"><figcaption>{html.escape(pid)}</figcaption>'
        f"{svg_of(plot.spec)}</figure>"
        for pid, plot in sorted(distinct_plots(plots).items())
    )
    notes_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:16px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px}figure{display:inline-block;margin:8px}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{notes_html}"
        "<table><tr><th>metric</th><th>base</th><th>head</th><th>change</th></tr>"
        f"{rows}</table>{figures}</body></html>"
    )
