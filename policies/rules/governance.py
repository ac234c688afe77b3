"""Governance rules: ownership and lineage labels, public exposure, freeze windows, signed
promotion records."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from policies.model import KubeObject, RuleContext, rule

PUBLIC_SERVICE_TYPES = frozenset({"LoadBalancer", "NodePort"})
PROMOTION_RULE = "promotion-recorded"


@rule(
    name="required-labels",
    domain="governance",
    scope="resource",
    description="Every Kubernetes object carries the ownership and lineage labels (team, owner, "
    "bundle digest, data digest; thresholds.requiredLabels).",
    fix="set liftlock:labels (team, owner, costCenter) and liftlock:bundleDigest in the stack "
    "file; the program derives the labels from them",
)
def required_labels(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    missing = [key for key in ctx.thresholds.required_labels if not labels.get(key)]
    if missing:
        yield f"missing label(s) {', '.join(missing)}"


@rule(
    name="public-exposure-allowed",
    domain="governance",
    scope="resource",
    kinds={"Service", "Ingress"},
    description="Nothing is exposed outside the cluster (LoadBalancer/NodePort Service, Ingress) "
    "unless the stack allows it (thresholds.allowPublicExposure).",
    fix="set liftlock:exposure: internal in the stack file, or allow public exposure for this "
    "stack in policies/gates.yaml (a reviewed change)",
)
def public_exposure_allowed(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    if ctx.thresholds.allow_public_exposure:
        return
    if obj.get("kind") == "Ingress":
        yield f"an Ingress exposes the service publicly; {ctx.stack} does not allow it"
        return
    service_type = (obj.get("spec") or {}).get("type") or "ClusterIP"
    if service_type in PUBLIC_SERVICE_TYPES:
        yield f"Service type {service_type} exposes it publicly; {ctx.stack} does not allow it"


@rule(
    name="freeze-window",
    domain="governance",
    scope="bundle",
    artifact="promotion time",
    description="No promotion into the stack during one of its freeze windows "
    "(freezeWindows in policies/gates.yaml).",
    fix="wait until the freeze window ends, or (for an emergency) override the rule for this "
    "stack in policies/gates.yaml in a reviewed change",
)
def freeze_window(facts: Mapping[str, Any], ctx: RuleContext) -> Iterator[str]:
    if ctx.now is None:
        return
    for window in ctx.thresholds.freeze_windows:
        if window.contains(ctx.now):
            yield (
                f"{ctx.stack} is frozen from {window.start.isoformat()} to "
                f"{window.end.isoformat()} ({window.reason})"
            )


def _promotion_summary(facts: Mapping[str, Any], ctx: RuleContext) -> str:
    check = facts.get("promotion")
    if check is None:
        return "a candidate: the promotion writes its signed record"
    return str(check.get("message", "recorded"))


@rule(
    name=PROMOTION_RULE,
    domain="governance",
    scope="bundle",
    artifact="promotions/ (signed record)",
    summary=_promotion_summary,
    description="What the stack pins (bundle digest and image) is backed by a valid signed "
    "record of a passing gate for that stack (promotions/<stack>/, verified against "
    "policies/allowed_signers/<stack>).",
    fix="promote the bundle through the gate: `liftlock promote <from> <stack>`; never edit "
    "liftlock:bundleDigest or liftlock:image by hand",
)
def promotion_recorded(facts: Mapping[str, Any], ctx: RuleContext) -> Iterator[str]:
    """`facts["promotion"]`: policies.promotion.check_pinned's answer ({status, message}), or
    None for a candidate, whose record the promotion is about to write."""
    check = facts.get("promotion")
    if check is not None and check.get("status") != "recorded":
        yield f"{check.get('status')}: {check.get('message')}"


RULES = (required_labels, public_exposure_allowed, freeze_window, promotion_recorded)
