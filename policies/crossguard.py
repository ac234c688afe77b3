"""The CrossGuard adapter: the infrastructure rules as Pulumi policies.

Each resource rule becomes a `ResourceValidationPolicy`, each stack rule a
`StackValidationPolicy`; both call the same rule function the offline gate calls.

The enforcement level depends on the stack (advisory in dev, mandatory in staging and prod, per
`policies/gates.yaml`). A pack cannot read stack config, and the engine fixes every policy's level
from the pack's `GetAnalyzerInfo` answer, which it asks for once, right after `ConfigureStack`
told the pack which stack it analyzes. pulumi-policy 1.21 keeps only the tags of that request, so
`learn_stack_from_engine` wraps its handler to record the stack name first; the policies' levels
then come from gates.yaml for that stack. Old engines that launch packs through
`pulumi-analyzer-policy-python` set $PULUMI_STACK instead. `--policy-pack-config` still wins over
gates.yaml (the engine applies it on top of the pack's levels).
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
    proxy,
)

from policies.gates import Gates, load_gates
from policies.model import UNKNOWN, Level, Rule, RuleContext, containers, object_name
from policies.promotion import check_pinned
from policies.rules import all_rules
from policies.rules.governance import promotion_recorded

REPOSITORY = Path(__file__).resolve().parent.parent
BUNDLE_ANNOTATION = "liftlock.io/bundle-digest"

KUBERNETES_PREFIX = "kubernetes:"
_LEVELS = {
    Level.ADVISORY: EnforcementLevel.ADVISORY,
    Level.MANDATORY: EnforcementLevel.MANDATORY,
    Level.DISABLED: EnforcementLevel.DISABLED,
}
# pulumi-policy's markers for values not known during preview.
_UNKNOWN_SENTINELS = frozenset(
    {
        proxy.UNKNOWN_BOOLEAN_VALUE,
        proxy.UNKNOWN_NUMBER_VALUE,
        proxy.UNKNOWN_STRING_VALUE,
        proxy.UNKNOWN_ARRAY_VALUE,
        proxy.UNKNOWN_ASSET_VALUE,
        proxy.UNKNOWN_ARCHIVE_VALUE,
        proxy.UNKNOWN_OBJECT_VALUE,
    }
)


def plain(value: Any) -> Any:
    """pulumi-policy's property proxies -> plain dicts/lists, unknowns -> `UNKNOWN`."""
    if isinstance(value, Mapping):
        try:
            target = value["__target"]  # the proxy's raw dict, unknowns included
        except KeyError:
            target = value
        return {str(key): plain(item) for key, item in target.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        try:
            items = value["__target"]  # type: ignore[call-overload]
        except (KeyError, TypeError, IndexError):
            items = value
        return [plain(item) for item in items]
    if isinstance(value, str) and value in _UNKNOWN_SENTINELS:
        return UNKNOWN
    return value


def kube_object(resource_type: str, props: Any) -> dict[str, Any] | None:
    """A Kubernetes resource's properties as the Kubernetes object (None for other types)."""
    if not resource_type.startswith(KUBERNETES_PREFIX):
        return None
    obj = plain(props)
    obj.setdefault("kind", resource_type.rsplit(":", 1)[-1])
    return obj


class StackContext:
    """The stack this pack judges: named by the engine (ConfigureStack) or $PULUMI_STACK."""

    def __init__(self, gates: Gates) -> None:
        self.gates = gates
        self.stack: str | None = os.environ.get("PULUMI_STACK") or None

    def level(self, rule_name: str) -> EnforcementLevel:
        # A stack nobody named is judged as strictly as possible.
        if self.stack is None:
            return EnforcementLevel.MANDATORY
        return _LEVELS[self.gates.level(self.stack, rule_name)]

    def rule_context(self) -> RuleContext:
        return self.gates.context(self.stack or "")


def _message(rule: Rule, subject: str, problem: str) -> str:
    return f"[{rule.name}] {subject}: {problem}\nfix: {rule.fix}"


class _GatedRulePolicy(Policy):
    """What both policy kinds share: built from a rule, at the stack's level for that rule.

    Listed before the resource or stack policy class, so `super().__init__` reaches that class's
    constructor and this `enforcement_level` property hides the attribute it would set.
    """

    rule: Rule
    context: StackContext

    def __init__(self, rule: Rule, context: StackContext) -> None:
        self.rule, self.context = rule, context
        # The next class in the MRO is Resource/StackValidationPolicy, which takes `validate`.
        super().__init__(  # type: ignore[call-arg]
            name=rule.name,
            description=rule.description,
            validate=self._validate,
            remediation_steps=rule.fix,
        )

    @property
    def enforcement_level(self) -> EnforcementLevel:
        return self.context.level(self.rule.name)

    @enforcement_level.setter
    def enforcement_level(self, _value: EnforcementLevel | None) -> None:
        """The level comes from gates.yaml per stack; the constructor's value is ignored."""

    @abstractmethod
    def _validate(self, args: Any, report: ReportViolation) -> None: ...


class RuleResourcePolicy(_GatedRulePolicy, ResourceValidationPolicy):
    """A resource rule on each Kubernetes resource, at the stack's level for that rule."""

    def _validate(self, args: ResourceValidationArgs, report: ReportViolation) -> None:
        obj = kube_object(args.resource_type, args.props)
        if obj is None or not self.rule.applies_to(obj):
            args.not_applicable(f"{self.rule.name} judges Kubernetes objects of other kinds")
            return
        for problem in self.rule.check(obj, self.context.rule_context()):
            report(_message(self.rule, object_name(obj), problem), args.urn)


class RuleStackPolicy(_GatedRulePolicy, StackValidationPolicy):
    """A stack rule across every Kubernetes resource of the stack."""

    def _validate(self, args: StackValidationArgs, report: ReportViolation) -> None:
        objects: list[dict[str, Any]] = []
        urns: dict[int, str] = {}
        for resource in args.resources:
            obj = kube_object(resource.resource_type, resource.props)
            if obj is not None:
                objects.append(obj)
                urns[id(obj)] = resource.urn
        for obj, problem in self.rule.check(objects, self.context.rule_context()):
            report(_message(self.rule, object_name(obj), problem), urns.get(id(obj)))


def pinned_by_objects(objects: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """(bundle digest, image) the stack's model Deployment carries: what it would deploy."""
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        digest = ((obj.get("metadata") or {}).get("annotations") or {}).get(BUNDLE_ANNOTATION)
        if digest:
            images = [c.get("image") for c in containers(obj) if c.get("image")]
            return str(digest), (str(images[0]) if images else None)
    return None, None


class PromotionRecordPolicy(_GatedRulePolicy, StackValidationPolicy):
    """promotion-recorded in the engine: the digest and image the rendered Deployment carries
    must have a valid signed record of a passing gate for this stack (policies.promotion)."""

    def _validate(self, args: StackValidationArgs, report: ReportViolation) -> None:
        objects, urns = [], {}
        for resource in args.resources:
            obj = kube_object(resource.resource_type, resource.props)
            if obj is not None:
                objects.append(obj)
                urns[str(obj.get("kind"))] = resource.urn
        digest, image = pinned_by_objects(objects)
        if digest is None or digest == UNKNOWN or self.context.stack is None:
            return  # not a liftlock model deployment (or not known during this preview)
        check = check_pinned(REPOSITORY, self.context.stack, digest, image)
        facts = {"promotion": {"status": check.status, "message": check.message}}
        for problem in self.rule.check(facts, self.context.rule_context()):
            report(_message(self.rule, "Deployment", problem), urns.get("Deployment"))


def build_policies(gates_path: Path, context: StackContext | None = None) -> list[Policy]:
    """The pack's policies: every resource and stack rule, at the stack's levels."""
    context = context or StackContext(load_gates(gates_path))
    policies: list[Policy] = [PromotionRecordPolicy(promotion_recorded, context)]
    for rule in all_rules():
        if rule.scope == "resource":
            policies.append(RuleResourcePolicy(rule, context))
        elif rule.scope == "stack":
            policies.append(RuleStackPolicy(rule, context))
    return policies


def learn_stack_from_engine(context: StackContext) -> None:
    """Record the stack the engine names in `ConfigureStack` (see the module docstring)."""
    from pulumi_policy import policy as pulumi_policy_internals

    servicer = pulumi_policy_internals._PolicyAnalyzerServicer
    original = servicer.ConfigureStack

    def configure_stack(self: Any, request: Any, grpc_context: Any) -> Any:
        context.stack = request.stack or context.stack
        return original(self, request, grpc_context)

    servicer.ConfigureStack = configure_stack  # type: ignore[method-assign, assignment]


def pack_policies(gates_path: Path) -> list[Policy]:
    """What policies/__main__.py assembles: the policies, levels learned from the engine."""
    context = StackContext(load_gates(gates_path))
    learn_stack_from_engine(context)
    return build_policies(gates_path, context)
