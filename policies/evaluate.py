"""The offline adapter: run rules on plain data and turn what they find into findings.

`liftlock gate` uses it for the ML rules (on bundle facts) and, without the engine, for the
infrastructure rules on Kubernetes objects (e.g. manifests rendered into deploy/<stack>/). The
CrossGuard adapter (`policies.crossguard`) runs the very same rule functions inside the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policies.gates import Gates
from policies.model import KubeObject, Level, Rule, RuleContext, Verdict, object_name
from policies.rules import all_rules


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One line of the gate's table."""

    rule: str
    domain: str
    subject: str
    level: Level
    verdict: Verdict
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "domain": self.domain,
            "subject": self.subject,
            "level": str(self.level),
            "verdict": str(self.verdict),
            "message": self.message,
            "fix": self.fix,
        }


def verdict_for(level: Level, failed: bool) -> Verdict:
    if level is Level.DISABLED:
        return Verdict.SKIPPED
    if not failed:
        return Verdict.PASS
    return Verdict.FAIL if level is Level.MANDATORY else Verdict.WARN


def finding(
    rule: Rule, level: Level, subject: str, problem: str | None, *, passed_note: str = ""
) -> Finding:
    return Finding(
        rule=rule.name,
        domain=rule.domain,
        subject=subject,
        level=level,
        verdict=verdict_for(level, problem is not None),
        message=problem if problem is not None else passed_note,
        fix=rule.fix if problem is not None else "",
    )


def resource_problems(rule: Rule, obj: KubeObject, ctx: RuleContext) -> list[str]:
    """What a resource rule finds in one object ([] when it does not apply)."""
    return list(rule.check(obj, ctx)) if rule.applies_to(obj) else []


def stack_problems(
    rule: Rule, objects: Sequence[KubeObject], ctx: RuleContext
) -> list[tuple[KubeObject, str]]:
    return list(rule.check(objects, ctx))


def evaluate_objects(
    objects: Sequence[KubeObject], gates: Gates, stack: str, rules: Iterable[Rule] | None = None
) -> list[Finding]:
    """Resource and stack rules over a stack's Kubernetes objects."""
    ctx = gates.context(stack)
    findings: list[Finding] = []
    for rule in rules if rules is not None else all_rules():
        if rule.scope == "bundle":
            continue
        level = gates.level(stack, rule.name)
        if level is Level.DISABLED:
            findings.append(finding(rule, level, "*", None, passed_note="disabled on this stack"))
            continue
        if rule.scope == "resource":
            pairs = [(obj, p) for obj in objects for p in resource_problems(rule, obj, ctx)]
        else:
            pairs = stack_problems(rule, objects, ctx)
        findings.extend(finding(rule, level, object_name(obj), problem) for obj, problem in pairs)
        if not pairs:
            judged = sum(1 for obj in objects if rule.applies_to(obj))
            findings.append(
                finding(rule, level, f"{judged} object(s)", None, passed_note="no violation")
            )
    return findings


def evaluate_bundle(
    facts: Mapping[str, Any],
    gates: Gates,
    stack: str,
    *,
    now: datetime | None = None,
    rules: Iterable[Rule] | None = None,
) -> list[Finding]:
    """Bundle-scope rules (ML, freeze windows) over the facts about one bundle."""
    ctx = gates.context(stack, now=now)
    findings: list[Finding] = []
    for rule in rules if rules is not None else all_rules():
        if rule.scope != "bundle":
            continue
        subject = artifact_name(rule, facts)
        level = gates.level(stack, rule.name)
        if level is Level.DISABLED:
            findings.append(finding(rule, level, subject, None, passed_note="disabled"))
            continue
        problems = list(rule.check(facts, ctx))
        findings.extend(finding(rule, level, subject, problem) for problem in problems)
        if not problems:
            note = rule.summary(facts, ctx) if rule.summary else "ok"
            findings.append(finding(rule, level, subject, None, passed_note=note))
    return findings


def artifact_name(rule: Rule, facts: Mapping[str, Any]) -> str:
    """What a bundle rule judged, for the table: its `artifact` filled in from the facts."""
    values = {"subject": "bundle", "data_report_path": "data report", **facts}
    try:
        return (rule.artifact or "{subject}").format_map(values)
    except (KeyError, ValueError):
        return str(values["subject"])


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that refuse a promotion: failed mandatory rules."""
    return [item for item in findings if item.verdict is Verdict.FAIL]
