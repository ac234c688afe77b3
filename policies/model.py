"""What a rule is, what it is given, and what it returns.

A rule is written once, as a plain function, and used by both the CrossGuard pack
(`policies/__main__.py` via `policies.crossguard`) and the offline gate (`policies.evaluate`).
Rules never import pulumi: they take plain dicts (a Kubernetes object as the Kubernetes API spells
it, or the facts about a model bundle) and a `RuleContext` (the stack and its thresholds), and
return the problems they find as strings. Adapters turn those strings into violations at the
enforcement level `policies/gates.yaml` gives the rule on that stack.

Three scopes:
- `resource`: one Kubernetes object -> problems;
- `stack`: every Kubernetes object of the stack -> (object, problem) pairs;
- `bundle`: the facts about a model bundle (metrics, model card, data report, lineage) -> problems.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

Scope = Literal["resource", "stack", "bundle"]
KubeObject = Mapping[str, Any]

# Kinds whose objects carry a pod template (or are a pod).
WORKLOAD_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
)
# Long-running workloads: the ones that need probes and replicas.
SERVING_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"})

# During `pulumi preview` a value computed by another resource is not known yet; adapters put
# this marker in its place, and rules that judge a value let it pass (it is judged on `up`).
UNKNOWN = "<unknown during preview>"


class Level(StrEnum):
    """Enforcement level of a rule on a stack (policies/gates.yaml)."""

    ADVISORY = "advisory"
    MANDATORY = "mandatory"
    DISABLED = "disabled"


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"  # a mandatory rule failed: the gate refuses
    WARN = "warn"  # an advisory rule failed: reported, not blocking
    SKIPPED = "skipped"  # the rule is disabled on this stack


@dataclass(frozen=True, kw_only=True)
class FreezeWindow:
    """A time range in which promotions to the stack are refused (UTC)."""

    start: datetime
    end: datetime
    reason: str

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True, kw_only=True)
class VerifyThresholds:
    """`liftlock verify`'s soak window and limits, and whether promotions from the stack need it
    (policies/gates.yaml `thresholds.verify`)."""

    required: bool = False  # promotions from this stack need a passing verification
    soak_seconds: float = 30.0  # how long `liftlock verify` watches the rollout
    poll_seconds: float = 5.0  # how often it samples readiness and restarts in that window
    min_soak_seconds: float = 0.0  # promotions from this stack wait this long after verification
    max_error_rate: float = 0.0  # 5xx share of prediction requests in the window
    max_p99_latency_ms: float = 250.0  # of prediction requests in the window, from /metrics
    smoke_rows: int = 32  # rows of the bundle's test split sent to every replica


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Per-stack numbers and switches the rules compare against (policies/gates.yaml)."""

    metrics: Mapping[str, float] = field(default_factory=dict)
    max_regression: float = 0.0
    min_replicas: int = 1
    require_disruption_budget: bool = False
    require_autoscaler: bool = False
    require_image_digest: bool = False
    allowed_registries: tuple[str, ...] = ()
    allow_public_exposure: bool = False
    required_labels: tuple[str, ...] = ()
    freeze_windows: tuple[FreezeWindow, ...] = ()
    verify: VerifyThresholds = field(default_factory=VerifyThresholds)


@dataclass(frozen=True, kw_only=True)
class RuleContext:
    """What a rule knows besides its subject: the stack, its thresholds, and the time."""

    stack: str
    thresholds: Thresholds
    now: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A named check. `check` is the plain function; the other fields describe it."""

    name: str
    domain: str
    scope: Scope
    description: str
    fix: str
    check: Callable[..., Iterable[Any]]
    kinds: frozenset[str] | None = None  # resource/stack rules: the kinds judged; None = all
    # bundle rules: what they judge, formatted with the facts (e.g. "{subject}/model_card.json")
    artifact: str | None = None
    # bundle rules: what a pass looked at, for the table (e.g. "accuracy 0.9650 ≥ 0.95")
    summary: Callable[..., str] | None = None

    def applies_to(self, obj: KubeObject) -> bool:
        return self.kinds is None or obj.get("kind") in self.kinds


@dataclass(frozen=True, kw_only=True)
class Violation:
    """One problem one rule found in one subject (a Kubernetes object or a bundle artifact)."""

    rule: str
    subject: str
    message: str


def rule(
    *,
    name: str,
    domain: str,
    scope: Scope,
    description: str,
    fix: str,
    kinds: Iterable[str] | None = None,
    artifact: str | None = None,
    summary: Callable[..., str] | None = None,
) -> Callable[[Callable[..., Iterable[Any]]], Rule]:
    """Describe a plain check function as a `Rule` (the function stays callable as `.check`)."""

    def describe(check: Callable[..., Iterable[Any]]) -> Rule:
        return Rule(
            name=name,
            domain=domain,
            scope=scope,
            description=description,
            fix=fix,
            check=check,
            kinds=frozenset(kinds) if kinds is not None else None,
            artifact=artifact,
            summary=summary,
        )

    return describe


# ---------------------------------------------------------------------------------------------
# Helpers rules share to read Kubernetes objects


def object_name(obj: KubeObject) -> str:
    """`Kind/namespace/name` (or `Kind/name`) for messages."""
    metadata = obj.get("metadata") or {}
    kind = obj.get("kind") or "Object"
    name = metadata.get("name") or "<unnamed>"
    namespace = metadata.get("namespace")
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def pod_spec(obj: KubeObject) -> Mapping[str, Any] | None:
    """The pod spec of a workload object, wherever its kind keeps it."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    if kind in WORKLOAD_KINDS:
        return ((spec.get("template") or {}).get("spec")) or {}
    return None


def pod_template_labels(obj: KubeObject) -> Mapping[str, Any]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}


def containers(obj: KubeObject) -> Sequence[Mapping[str, Any]]:
    """Every container of a workload: init containers first, then app containers."""
    spec = pod_spec(obj) or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def is_known(value: Any) -> bool:
    return value != UNKNOWN
