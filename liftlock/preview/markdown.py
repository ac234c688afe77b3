"""The pull-request comment: a summary table first, then `<details>` per stack.

GitHub refuses comments over 65,536 characters. The summary (table, notes, verdicts) is never
shortened; when the whole does not fit, the longest detail section is rendered at the next
coarser level (values dropped, then resources cut to a list head, then counts per type, then
one line pointing at the JSON) until it fits.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from liftlock.preview.report import (
    OPS,
    GateVerdict,
    MLDiff,
    PreviewReport,
    ResourceChange,
    StackPreview,
)

#: The hidden marker the workflow looks for to edit the same comment in place.
MARKER = "<!-- liftlock-preview -->"
#: Starts the hidden record of what each render stack rendered (the deploy workflow checks it).
RENDERED_RECORD = "<!-- liftlock-rendered "
_MANIFESTS = {
    "in-sync": "✅ in sync",
    "rendered-at-merge": "rendered at merge",
    "out-of-sync": "❌ hand edited",
}
#: GitHub's limit on an issue comment body, in characters.
GITHUB_COMMENT_LIMIT = 65_536
#: Detail levels, finest first.
LEVELS = ("full", "names", "head", "counts", "omitted")
HEAD_ROWS = 25
VALUE_WIDTH = 60

_VERDICT_ICONS = {
    "pass": "✅ pass",
    "advisory": "⚠️ advisory",
    "fail": "❌ fail",
    "error": "💥 error",
    "not run": "—",
}


def cell(text: Any) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def short_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def changes_phrase(stack: StackPreview) -> str:
    if stack.status == "not-affected":
        return "not affected"
    if stack.status == "error" and not stack.resources:
        return "preview failed"
    counts = stack.counts()
    parts = [f"{counts[op]} {op}" for op in OPS if counts[op]]
    return ", ".join(parts) if parts else "no change"


def verdict_cell(verdict: str) -> str:
    return _VERDICT_ICONS.get(verdict, verdict)


def render_summary(report: PreviewReport) -> str:
    """Title, summary table and notes: always rendered whole."""
    head = report.head_commit[:12] or "workspace"
    lines = [
        MARKER,
        f"## liftlock preview: `{cell(report.base)}` ({report.base_commit[:12]}) → {head}",
        "",
        "| stack | changes | policy pack | gate | metric deltas | manifests |",
        "|---|---|---|---|---|---|",
    ]
    ml_touched = report.ml is not None
    for stack in report.stacks:
        gate = report.gates.get(stack.stack)
        gate_text = verdict_cell(gate.verdict) if gate else "—"
        if gate and gate.failed_rules:
            gate_text += f" ({', '.join(gate.failed_rules[:3])})"
        deltas = report.ml.delta_summary() if ml_touched and report.ml else "—"
        if stack.status == "not-affected":
            deltas = "—"
        lines.append(
            f"| **{cell(stack.stack)}** | {cell(changes_phrase(stack))} | "
            f"{cell(verdict_cell(stack.policy_verdict))} | {cell(gate_text)} | {cell(deltas)} | "
            f"{_MANIFESTS.get(stack.manifests_verdict or '', '—')} |"
        )
    notes = list(report.notes)
    if not report.secrets_available:
        unknown = sorted({v for s in report.stacks for v in s.unknown_values})
        notes.append(
            "Previewed **without the stack passphrase** (fork pull request): secret config "
            "values could not be decrypted"
            + (f" — not known: {', '.join(f'`{v}`' for v in unknown)}." if unknown else ".")
        )
    if report.ml is not None:
        if not report.ml.base_metrics_available:
            notes.append(
                f"**Metrics of the base `{cell(report.base)}` are unavailable** "
                f"({cell(report.ml.base_source)}): metric deltas cannot be shown."
            )
        if not report.ml.head_metrics_available:
            notes.append(
                f"**Metrics of the head are unavailable** ({cell(report.ml.head_source)})."
            )
    for stack in report.stacks:
        if stack.status == "error":
            first = stack.errors[0] if stack.errors else "unknown error"
            notes.append(f"**{cell(stack.stack)}**: the preview failed — {cell(first[:300])}")
        if stack.diff_source.startswith("no "):
            notes.append(f"**{cell(stack.stack)}**: {cell(stack.diff_source)}.")
        if stack.manifest_problems:
            notes.append(
                f"**{cell(stack.stack)}**: the committed manifests are not what the program "
                "renders (a hand edit Argo CD / Flux would apply): "
                + "; ".join(f"`{cell(p)}`" for p in stack.manifest_problems[:5])
                + f". Fix: undo the edit, or change stacks/Pulumi.{cell(stack.stack)}.yaml "
                "and let the deploy workflow render it."
            )
    if notes:
        lines.append("")
        lines.extend(f"> {note}" for note in notes)
    record = rendered_record(report)
    if record:
        lines += ["", record]
    return "\n".join(lines)


def rendered_record(report: PreviewReport) -> str:
    """The hidden line the deploy workflow reads: per render stack, the digest and files of the
    render this preview showed (`.github/scripts/check-preview-digest.sh`)."""
    stacks = {
        s.stack: {
            "digest": s.rendered_digest,
            "folders": s.render_folders,
            "files": s.rendered_files,
        }
        for s in report.stacks
        if s.rendered_digest
    }
    if not stacks:
        return ""
    record = {"head": report.head_commit, "base": report.base_commit, "stacks": stacks}
    return RENDERED_RECORD + json.dumps(record, sort_keys=True, separators=(",", ":")) + " -->"


def _property_text(resource: ResourceChange, level: str) -> str:
    parts = []
    for prop in resource.properties:
        flag = " (replaces)" if prop.forces_replacement else ""
        if level != "full":
            parts.append(f"`{prop.path}`{flag}")
        elif prop.kind == "add":
            parts.append(f"`{prop.path}` = `{short_value(prop.new)}`{flag}")
        elif prop.kind == "delete":
            parts.append(f"`{prop.path}` removed (was `{short_value(prop.old)}`){flag}")
        else:
            parts.append(
                f"`{prop.path}`: `{short_value(prop.old)}` → `{short_value(prop.new)}`{flag}"
            )
    return cell("<br>".join(parts)) if parts else "—"


def _resource_table(resources: list[ResourceChange], level: str) -> list[str]:
    lines = ["| op | type | name | changed properties |", "|---|---|---|---|"]
    shown = resources if level in ("full", "names") else resources[:HEAD_ROWS]
    for resource in shown:
        lines.append(
            f"| {resource.op} | `{cell(resource.type)}` | {cell(resource.name)} | "
            f"{_property_text(resource, level)} |"
        )
    if len(shown) < len(resources):
        lines.append(f"| … | | {len(resources) - len(shown)} more resources | |")
    return lines


def _counts_table(resources: list[ResourceChange]) -> list[str]:
    counted = Counter((r.op, r.type) for r in resources)
    lines = ["| op | type | resources |", "|---|---|---|"]
    for (op, rtype), n in sorted(counted.items()):
        lines.append(f"| {op} | `{cell(rtype)}` | {n} |")
    return lines


def render_stack_details(stack: StackPreview, gate: GateVerdict | None, level: str = "full") -> str:
    """One stack's `<details>` block at a detail level (see LEVELS)."""
    lines = [f"<details><summary><b>{cell(stack.stack)}</b>: {changes_phrase(stack)}</summary>", ""]
    if stack.status == "not-affected":
        lines += ["No changed file affects this stack; it was not previewed.", "", "</details>"]
        return "\n".join(lines)
    if stack.affected_by:
        shown = stack.affected_by[:10]
        more = f" and {len(stack.affected_by) - 10} more" if len(stack.affected_by) > 10 else ""
        lines.append("Affected by: " + ", ".join(f"`{p}`" for p in shown) + more)
        lines.append("")
    if stack.diff_source:
        lines += [f"Changes against: {stack.diff_source}.", ""]
    if stack.manifests_verdict:
        lines += [_manifests_text(stack), ""]
    if level == "omitted":
        lines += [
            f"Details left out to fit GitHub's comment limit ({len(stack.resources)} changed "
            "resources); the workflow's `preview.json` artifact has them all.",
            "",
            "</details>",
        ]
        return "\n".join(lines)
    if stack.resources:
        table = _counts_table(stack.resources) if level == "counts" else None
        lines += table or _resource_table(stack.resources, level)
        lines.append("")
    lines.append(f"{stack.unchanged} resources unchanged. Preview took {stack.duration_s:.1f} s.")
    lines.append("")
    for note in stack.notes:
        lines += [f"> {note}", ""]
    if stack.unknown_values:
        lines += [
            "Not known without the passphrase: "
            + ", ".join(f"`{v}`" for v in stack.unknown_values),
            "",
        ]
    if stack.policy_violations:
        lines.append("**Policy violations**")
        lines.append("")
        for violation in stack.policy_violations[: None if level == "full" else HEAD_ROWS]:
            where = f" on `{violation.urn.split('::')[-1]}`" if violation.urn else ""
            message = violation.message if level == "full" else violation.message[:200]
            lines.append(
                f"- **{violation.enforcement}** `{cell(violation.policy)}`{where}: {cell(message)}"
            )
        lines.append("")
    if gate is not None and (gate.failed_rules or gate.message):
        lines.append(f"**Gate** {verdict_cell(gate.verdict)}: {cell(gate.message)}")
        lines.append("")
    for error in stack.errors:
        lines += ["```", error[: 4000 if level == "full" else 500], "```", ""]
    lines.append("</details>")
    return "\n".join(lines)


def _manifests_text(stack: StackPreview) -> str:
    digest = f" Rendered digest `{stack.rendered_digest}` (what the deploy workflow must apply)."
    if stack.manifests_verdict == "in-sync":
        return "Manifests: the committed tree is what the program renders." + digest
    if stack.manifests_verdict == "rendered-at-merge":
        return (
            "Manifests: this change leaves the committed tree alone; the deploy workflow renders "
            f"the {len(stack.manifest_differences)} object change(s) below at merge." + digest
        )
    problems = "; ".join(f"`{cell(p)}`" for p in stack.manifest_problems[:HEAD_ROWS])
    return f"Manifests: **hand edited** — {problems}." + digest


def render_ml(ml: MLDiff, level: str = "full") -> str:
    lines = ["<details><summary><b>Model</b>: params and metrics</summary>", ""]
    if ml.model_verdict:
        lines += [f"**Bundle:** {cell(ml.model_verdict)}", ""]
    lines.append(
        f"Base metrics from: {cell(ml.base_source)}. Head metrics from: {cell(ml.head_source)}."
    )
    lines.append("")
    limit = None if level in ("full", "names") else HEAD_ROWS
    if level == "omitted":
        lines += [
            f"{len(ml.params)} params and {len(ml.metrics)} metrics changed; the "
            "`preview.json` artifact lists them.",
            "",
            "</details>",
        ]
        return "\n".join(lines)
    if ml.params:
        lines += ["| param | base | head |", "|---|---|---|"]
        for param in ml.params[:limit]:
            lines.append(
                f"| `{cell(param.name)}` | `{cell(short_value(param.old))}` | "
                f"`{cell(short_value(param.new))}` |"
            )
        if limit is not None and len(ml.params) > limit:
            lines.append(f"| … {len(ml.params) - limit} more | | |")
        lines.append("")
    else:
        lines += ["No param changed.", ""]
    if ml.metrics:
        lines += ["| metric | base | head | change |", "|---|---|---|---|"]
        for metric in ml.metrics[:limit]:
            diff = "—" if metric.diff is None else f"{metric.diff:+.4g}"
            lines.append(
                f"| `{cell(metric.name)}` | {cell(short_value(metric.old))} | "
                f"{cell(short_value(metric.new))} | {diff} |"
            )
        lines.append("")
    if ml.charts and level in ("full", "names"):
        # Charts go before anything is cut: they are a few hundred characters each.
        for chart in ml.charts:
            lines += [chart, ""]
    for note in ml.notes:
        lines += [f"> {cell(note)}", ""]
    lines.append("</details>")
    return "\n".join(lines)


def render_markdown(report: PreviewReport, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """The whole comment, at most `limit` characters (the summary is never shortened)."""
    summary = render_summary(report)
    renderers: list[Callable[[str], str]] = []
    if report.ml is not None:
        renderers.append(functools.partial(render_ml, report.ml))
    for stack in report.stacks:
        renderers.append(
            functools.partial(render_stack_details, stack, report.gates.get(stack.stack))
        )
    levels = [0] * len(renderers)
    sections = [render(LEVELS[0]) for render in renderers]
    footer = "\n\n<sub>Generated by `liftlock preview`; edited in place on every push.</sub>\n"

    def assemble() -> str:
        return "\n\n".join([summary, *sections]) + footer

    text = assemble()
    while len(text) > limit:
        coarsenable = [i for i in range(len(sections)) if levels[i] < len(LEVELS) - 1]
        if not coarsenable:
            break
        largest = max(coarsenable, key=lambda i: len(sections[i]))
        levels[largest] += 1
        sections[largest] = renderers[largest](LEVELS[levels[largest]])
        text = assemble()
    if len(text) > limit:
        # Only the summary is left and it alone is too long: say so rather than cut it.
        text = summary[: limit - 200] + "\n\n> The summary itself exceeds GitHub's limit.\n"
    return text
