"""The CrossGuard adapter without the engine: levels per stack from the stack the engine names,
plain objects, violations naming rule and resource (test_pack_engine runs the pack for real)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel, PolicyResource, ResourceValidationArgs
from pulumi_policy import policy as pulumi_policy_internals
from pulumi_policy.policy import StackValidationArgs, _NotApplicableError
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policies.crossguard import (
    RuleStackPolicy,
    StackContext,
    build_policies,
    kube_object,
    learn_stack_from_engine,
    plain,
)
from policies.gates import GATES_PATH, load_gates
from policies.model import UNKNOWN
from tests.policies import objects as k8s

DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def urn(stack: str, name: str = "model", kind: str = DEPLOYMENT) -> str:
    return f"urn:pulumi:{stack}::liftlock::{kind}::{name}"


def resource_args(
    stack: str, obj: dict[str, Any], kind: str = DEPLOYMENT
) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        kind, unknown_checking_proxy(obj), urn(stack), "model", None, None
    )


@pytest.fixture
def context(monkeypatch: pytest.MonkeyPatch) -> StackContext:
    monkeypatch.delenv("PULUMI_STACK", raising=False)
    return StackContext(load_gates())


@pytest.fixture
def policies(context: StackContext) -> dict[str, Any]:
    context.stack = "prod"
    return {policy.name: policy for policy in build_policies(Path(GATES_PATH), context)}


def test_plain_unwraps_proxies_and_marks_unknowns() -> None:
    raw = {"spec": {"containers": [{"image": UNKNOWN_STRING_VALUE, "name": "m"}]}, "n": 1}
    assert plain(unknown_checking_proxy(raw)) == {
        "spec": {"containers": [{"image": UNKNOWN, "name": "m"}]},
        "n": 1,
    }
    assert kube_object("kubernetes:core/v1:Service", {"spec": {}})["kind"] == "Service"
    assert kube_object("docker:index:Container", {}) is None


def test_levels_follow_the_stack_the_engine_names(
    context: StackContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    servicer = pulumi_policy_internals._PolicyAnalyzerServicer
    monkeypatch.setattr(servicer, "ConfigureStack", servicer.ConfigureStack)  # restored after
    built = {p.name: p for p in build_policies(Path(GATES_PATH), context)}
    # Before the engine names the stack the pack claims the strictest level.
    assert built["no-privileged-containers"].enforcement_level is EnforcementLevel.MANDATORY
    learn_stack_from_engine(context)
    request = analyzer_pb2.AnalyzerStackConfigureRequest(stack="dev", project="liftlock")
    servicer.ConfigureStack(SimpleNamespace(), request, None)
    assert context.stack == "dev"
    assert built["no-privileged-containers"].enforcement_level is EnforcementLevel.ADVISORY
    assert built["min-replicas"].enforcement_level is EnforcementLevel.ADVISORY
    context.stack = "staging"
    assert built["min-replicas"].enforcement_level is EnforcementLevel.ADVISORY  # override
    assert built["pss-restricted"].enforcement_level is EnforcementLevel.MANDATORY


def test_env_stack_is_used_when_the_engine_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_STACK", "prod")
    assert StackContext(load_gates()).level("pss-restricted") is EnforcementLevel.MANDATORY
    monkeypatch.setenv("PULUMI_STACK", "dev")
    assert StackContext(load_gates()).level("pss-restricted") is EnforcementLevel.ADVISORY


def test_resource_policy_reports_rule_resource_and_fix(policies: dict[str, Any]) -> None:
    obj = k8s.deployment()
    k8s.container_of(obj)["securityContext"]["privileged"] = True
    reported: list[tuple[str, str | None]] = []
    policies["no-privileged-containers"].validate(
        resource_args("prod", obj), lambda message, urn=None: reported.append((message, urn))
    )
    assert reported == [
        (
            "[no-privileged-containers] Deployment/liftlock-prod/model: container 'model' runs "
            "privileged\nfix: remove securityContext.privileged (or set it to false) on every "
            "container",
            urn("prod"),
        )
    ]


def test_resource_policy_is_not_applicable_to_other_types(policies: dict[str, Any]) -> None:
    args = ResourceValidationArgs("docker:index:Container", {}, urn("dev"), "c", None, None)
    with pytest.raises(_NotApplicableError) as caught:
        policies["pss-restricted"].validate(args, lambda *a: None)
    assert caught.value.reason == "pss-restricted judges Kubernetes objects of other kinds"


def test_stack_policy_names_the_resource_urn(policies: dict[str, Any]) -> None:
    single = k8s.deployment(replicas=1)
    resources = [
        PolicyResource(
            DEPLOYMENT,
            unknown_checking_proxy(single),
            urn("prod"),
            "model",
            None,
            None,
            None,
            [],
            {},
        )
    ]
    reported: list[tuple[str, str | None]] = []
    policy = policies["min-replicas"]
    assert isinstance(policy, RuleStackPolicy)
    policy.validate(StackValidationArgs(resources), lambda m, u=None: reported.append((m, u)))
    assert reported == [
        (
            "[min-replicas] Deployment/liftlock-prod/model: runs 1 replica(s); prod needs at "
            "least 2\nfix: raise liftlock:replicas (and autoscaling.minReplicas) in the stack file",
            urn("prod"),
        )
    ]
