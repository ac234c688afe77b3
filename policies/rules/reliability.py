"""Reliability rules: probes, requests and limits, replicas, disruption budgets, autoscalers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from policies.model import (
    SERVING_KINDS,
    WORKLOAD_KINDS,
    KubeObject,
    RuleContext,
    containers,
    object_name,
    pod_spec,
    pod_template_labels,
    rule,
)

SCALABLE_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})


@rule(
    name="probes-present",
    domain="reliability",
    scope="resource",
    kinds=SERVING_KINDS,
    description="Every serving container has a readiness and a liveness probe.",
    fix="add readinessProbe (e.g. GET /readyz) and livenessProbe (e.g. GET /healthz) to the "
    "container",
)
def probes_present(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    for container in (pod_spec(obj) or {}).get("containers") or []:
        missing = [key for key in ("readinessProbe", "livenessProbe") if not container.get(key)]
        if missing:
            yield f"container {container.get('name')!r} has no {' and no '.join(missing)}"


@rule(
    name="resources-set",
    domain="reliability",
    scope="resource",
    kinds=WORKLOAD_KINDS,
    description="Every container sets CPU and memory requests and limits.",
    fix="set resources.requests and resources.limits (cpu and memory) on every container "
    "(stack config key liftlock:resources)",
)
def resources_set(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    for container in containers(obj):
        resources = container.get("resources") or {}
        missing = [
            f"{group}.{name}"
            for group in ("requests", "limits")
            for name in ("cpu", "memory")
            if not (resources.get(group) or {}).get(name)
        ]
        if missing:
            yield f"container {container.get('name')!r} has no resources {', '.join(missing)}"


def _autoscalers_of(obj: KubeObject, objects: Sequence[KubeObject]) -> list[KubeObject]:
    name = (obj.get("metadata") or {}).get("name")
    namespace = (obj.get("metadata") or {}).get("namespace")
    return [
        other
        for other in objects
        if other.get("kind") == "HorizontalPodAutoscaler"
        and (other.get("metadata") or {}).get("namespace") == namespace
        and ((other.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == name
        and ((other.get("spec") or {}).get("scaleTargetRef") or {}).get("kind") == obj.get("kind")
    ]


def _selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """Whether a label selector (matchLabels only; expressions count as a match) selects labels."""
    match = selector.get("matchLabels") or {}
    if not match and not selector.get("matchExpressions"):
        return False
    return all(labels.get(key) == value for key, value in match.items())


@rule(
    name="min-replicas",
    domain="reliability",
    scope="stack",
    kinds=SCALABLE_KINDS,
    description="Serving workloads run at least the stack's minimum number of replicas "
    "(thresholds.minReplicas in policies/gates.yaml).",
    fix="raise liftlock:replicas (and autoscaling.minReplicas) in the stack file",
)
def min_replicas(
    objects: Sequence[KubeObject], ctx: RuleContext
) -> Iterator[tuple[KubeObject, str]]:
    minimum = ctx.thresholds.min_replicas
    for obj in objects:
        if obj.get("kind") not in SCALABLE_KINDS:
            continue
        replicas = (obj.get("spec") or {}).get("replicas")
        autoscalers = _autoscalers_of(obj, objects)
        if replicas is None and autoscalers:
            replicas = (autoscalers[0].get("spec") or {}).get("minReplicas", 1)
        if replicas is None:
            replicas = 1  # the Kubernetes default
        if isinstance(replicas, int) and replicas < minimum:
            yield obj, f"runs {replicas} replica(s); {ctx.stack} needs at least {minimum}"


@rule(
    name="disruption-budget-present",
    domain="reliability",
    scope="stack",
    kinds=SCALABLE_KINDS,
    description="Serving workloads are covered by a PodDisruptionBudget where the stack requires "
    "one (thresholds.requireDisruptionBudget).",
    fix="run ≥ 2 replicas (liftlock:replicas) so the program declares a PodDisruptionBudget "
    "selecting the pods",
)
def disruption_budget_present(
    objects: Sequence[KubeObject], ctx: RuleContext
) -> Iterator[tuple[KubeObject, str]]:
    if not ctx.thresholds.require_disruption_budget:
        return
    budgets = [obj for obj in objects if obj.get("kind") == "PodDisruptionBudget"]
    for obj in objects:
        if obj.get("kind") not in SCALABLE_KINDS:
            continue
        namespace = (obj.get("metadata") or {}).get("namespace")
        labels = pod_template_labels(obj)
        covered = any(
            (budget.get("metadata") or {}).get("namespace") == namespace
            and _selects((budget.get("spec") or {}).get("selector") or {}, labels)
            for budget in budgets
        )
        if not covered:
            yield obj, "no PodDisruptionBudget selects its pods"


@rule(
    name="autoscaler-present",
    domain="reliability",
    scope="stack",
    kinds=SCALABLE_KINDS,
    description="Serving workloads have a HorizontalPodAutoscaler where the stack requires one "
    "(thresholds.requireAutoscaler).",
    fix="set liftlock:autoscaling.enabled: true (with minReplicas ≥ 2) in the stack file",
)
def autoscaler_present(
    objects: Sequence[KubeObject], ctx: RuleContext
) -> Iterator[tuple[KubeObject, str]]:
    if not ctx.thresholds.require_autoscaler:
        return
    for obj in objects:
        if obj.get("kind") in SCALABLE_KINDS and not _autoscalers_of(obj, objects):
            yield obj, f"no HorizontalPodAutoscaler targets {object_name(obj)}"


RULES = (probes_present, resources_set, min_replicas, disruption_budget_present, autoscaler_present)
