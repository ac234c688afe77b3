"""Workload rules kube-score found missing: replicas left to the autoscaler, CronJob start
deadlines, ephemeral-storage requests and limits, replicas spread across nodes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from policies.model import WORKLOAD_KINDS, KubeObject, RuleContext, containers, is_known, rule
from policies.rules.reliability import SCALABLE_KINDS, _autoscalers_of

HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"


def _enabled_autoscalers(obj: KubeObject, objects: Sequence[KubeObject]) -> list[KubeObject]:
    """HPAs that scale `obj` (one whose maxReplicas is 0 scales nothing)."""
    return [
        hpa
        for hpa in _autoscalers_of(obj, objects)
        if ((hpa.get("spec") or {}).get("maxReplicas") or 0) > 0
    ]


@rule(
    name="replicas-left-to-autoscaler",
    domain="reliability",
    scope="stack",
    kinds=SCALABLE_KINDS,
    description="A workload an enabled HorizontalPodAutoscaler scales sets no spec.replicas "
    "(every GitOps sync would reset what the autoscaler chose).",
    fix="leave spec.replicas out when liftlock:autoscaling.enabled is true (the program does); "
    "the autoscaler's minReplicas is the floor",
)
def replicas_left_to_autoscaler(
    objects: Sequence[KubeObject], ctx: RuleContext
) -> Iterator[tuple[KubeObject, str]]:
    for obj in objects:
        if obj.get("kind") not in SCALABLE_KINDS:
            continue
        replicas = (obj.get("spec") or {}).get("replicas")
        if replicas is not None and _enabled_autoscalers(obj, objects):
            yield obj, f"sets spec.replicas = {replicas} while a HorizontalPodAutoscaler scales it"


@rule(
    name="cronjob-starting-deadline",
    domain="reliability",
    scope="resource",
    kinds={"CronJob"},
    description="CronJobs set spec.startingDeadlineSeconds, so missed runs are skipped rather "
    "than piling up (and the controller never gives up on the schedule after 100 misses).",
    fix="set spec.startingDeadlineSeconds (e.g. 300) on the CronJob",
)
def cronjob_starting_deadline(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    deadline = (obj.get("spec") or {}).get("startingDeadlineSeconds")
    if deadline is None:
        yield "has no spec.startingDeadlineSeconds"
    elif not is_known(deadline):
        return
    # The engine hands numbers to the pack as floats (300.0); a manifest holds ints.
    elif isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0:
        yield f"spec.startingDeadlineSeconds = {deadline!r}: must be a positive number of seconds"


@rule(
    name="ephemeral-storage-set",
    domain="reliability",
    scope="resource",
    kinds=WORKLOAD_KINDS,
    description="Every container requests and limits ephemeral storage, so one pod's logs and "
    "scratch files cannot fill the node's disk and evict its neighbours.",
    fix='set resources.requests and resources.limits "ephemeral-storage" on every container',
)
def ephemeral_storage_set(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    for container in containers(obj):
        resources = container.get("resources") or {}
        missing = [
            group
            for group in ("requests", "limits")
            if not (resources.get(group) or {}).get("ephemeral-storage")
        ]
        if missing:
            yield (
                f"container {container.get('name')!r} has no ephemeral-storage "
                f"{' or '.join(missing)}"
            )


def _spreads(template_spec: Mapping[str, Any]) -> bool:
    if any(
        constraint.get("topologyKey")
        for constraint in template_spec.get("topologySpreadConstraints") or []
    ):
        return True
    anti = (template_spec.get("affinity") or {}).get("podAntiAffinity") or {}
    terms = [
        *(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []),
        *(
            (term.get("podAffinityTerm") or {})
            for term in anti.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ),
    ]
    return any(term.get("topologyKey") == HOSTNAME_TOPOLOGY for term in terms)


@rule(
    name="replicas-spread",
    domain="reliability",
    scope="stack",
    kinds=SCALABLE_KINDS,
    description="A workload that runs two or more replicas spreads them across nodes "
    "(topologySpreadConstraints or a podAntiAffinity on kubernetes.io/hostname), so one node "
    "going down does not take every replica with it.",
    fix="add topologySpreadConstraints (topologyKey kubernetes.io/hostname) or a podAntiAffinity "
    "to the pod template (the program does whenever it runs ≥ 2 replicas)",
)
def replicas_spread(
    objects: Sequence[KubeObject], ctx: RuleContext
) -> Iterator[tuple[KubeObject, str]]:
    for obj in objects:
        if obj.get("kind") not in SCALABLE_KINDS:
            continue
        spec = obj.get("spec") or {}
        replicas = spec.get("replicas")
        for hpa in _enabled_autoscalers(obj, objects):
            replicas = max(replicas or 0, (hpa.get("spec") or {}).get("minReplicas") or 1)
        # Numbers reach the pack as floats (3.0).
        if not isinstance(replicas, int | float) or isinstance(replicas, bool) or replicas < 2:
            continue
        replicas = int(replicas)
        template = (spec.get("template") or {}).get("spec") or {}
        if not _spreads(template):
            problem = (
                f"runs {replicas} replicas with no topologySpreadConstraints and no "
                "podAntiAffinity on kubernetes.io/hostname"
            )
            yield obj, problem


RULES = (
    replicas_left_to_autoscaler,
    cronjob_starting_deadline,
    ephemeral_storage_set,
    replicas_spread,
)
