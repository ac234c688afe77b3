"""Every infrastructure rule: compliant, non-compliant, property missing, and config override."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from policies.evaluate import evaluate_objects
from policies.gates import Gates
from policies.model import UNKNOWN, Level, Rule, Verdict
from policies.rules import governance, reliability, security, supply_chain
from tests.policies import objects as k8s

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting a dotted path below the first container ('c.'), the pod ('p.') or the
    object itself."""

    def mutate(obj: dict[str, Any]) -> None:
        scope, _, rest = path.partition(".")
        target = {"c": k8s.container_of, "p": k8s.pod_of}.get(scope, lambda o: o)(obj)
        keys = rest.split(".") if scope in ("c", "p") else path.split(".")
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        if value is _DELETE:
            target.pop(keys[-1], None)
        else:
            target[keys[-1]] = value

    return mutate


_DELETE = object()

# rule, a mutation that breaks it, the words its message must contain, a mutation that removes the
# property it reads (None: removal is compliant), whether removal is a violation.
RESOURCE_CASES: list[tuple[Rule, Mutation, str, Mutation, bool]] = [
    (
        security.pss_restricted,
        _set("c.securityContext.allowPrivilegeEscalation", True),
        "allowPrivilegeEscalation",
        _set("c.securityContext", _DELETE),
        True,
    ),
    (
        security.no_privileged_containers,
        _set("c.securityContext.privileged", True),
        "privileged",
        _set("c.securityContext", _DELETE),
        False,
    ),
    (
        security.no_host_path_volumes,
        _set("p.volumes", [{"name": "host", "hostPath": {"path": "/"}}]),
        "hostPath '/'",
        _set("p.volumes", _DELETE),
        False,
    ),
    (
        security.no_host_namespaces,
        _set("p.hostNetwork", True),
        "hostNetwork",
        _set("p.hostNetwork", _DELETE),
        False,
    ),
    (
        security.no_plaintext_secrets,
        _set("c.env", [{"name": "API_TOKEN", "value": "s3cr3t-v4lue-123"}]),
        "API_TOKEN",
        _set("c.env", _DELETE),
        False,
    ),
    (
        reliability.probes_present,
        _set("c.readinessProbe", _DELETE),
        "readinessProbe",
        _set("c.livenessProbe", _DELETE),
        True,
    ),
    (
        reliability.resources_set,
        _set("c.resources.limits", {"cpu": "1"}),
        "limits.memory",
        _set("c.resources", _DELETE),
        True,
    ),
    (
        supply_chain.image_pinned_by_digest,
        _set("c.image", "ghcr.io/liftlock/model:latest"),
        "not pinned by digest",
        _set("c.image", _DELETE),
        True,
    ),
    (
        supply_chain.registry_allowed_rule,
        _set("c.image", "evil.example.com/model@" + k8s.DIGEST),
        "evil.example.com/model",
        _set("c.image", _DELETE),
        False,
    ),
    (
        governance.required_labels,
        _set("metadata.labels", {"liftlock.io/team": "ml"}),
        "liftlock.io/owner",
        _set("metadata.labels", _DELETE),
        True,
    ),
]
IDS = [case[0].name for case in RESOURCE_CASES]


@pytest.mark.parametrize(
    ("rule", "breaker", "words", "remover", "missing_fails"), RESOURCE_CASES, ids=IDS
)
def test_resource_rule_compliant_and_non_compliant(
    gates: Gates, rule: Rule, breaker: Mutation, words: str, remover: Mutation, missing_fails: bool
) -> None:
    ctx = gates.context("prod")
    obj = k8s.deployment()
    assert list(rule.check(obj, ctx)) == [], "the reference Deployment must comply"
    breaker(obj)
    problems = list(rule.check(obj, ctx))
    assert problems and words in " ".join(problems), problems


@pytest.mark.parametrize(
    ("rule", "breaker", "words", "remover", "missing_fails"), RESOURCE_CASES, ids=IDS
)
def test_resource_rule_property_missing(
    gates: Gates, rule: Rule, breaker: Mutation, words: str, remover: Mutation, missing_fails: bool
) -> None:
    obj = k8s.deployment()
    remover(obj)
    problems = list(rule.check(obj, gates.context("prod")))
    assert bool(problems) is missing_fails, problems


@pytest.mark.parametrize(
    ("rule", "breaker", "words", "remover", "missing_fails"), RESOURCE_CASES, ids=IDS
)
def test_resource_rule_override_and_stack_levels(
    gates: Gates,
    gates_with: Callable[..., Gates],
    rule: Rule,
    breaker: Mutation,
    words: str,
    remover: Mutation,
    missing_fails: bool,
) -> None:
    obj = k8s.deployment()
    breaker(obj)
    verdicts = {f.verdict for f in evaluate_objects([obj], gates, "prod", [rule])}
    assert verdicts == {Verdict.FAIL}
    # dev is advisory: a violation warns (when dev's thresholds judge it at all).
    assert {f.verdict for f in evaluate_objects([obj], gates, "dev", [rule])} <= {
        Verdict.WARN,
        Verdict.PASS,
    }
    relaxed = gates_with("prod", **{rule.name: "advisory"})
    assert {f.verdict for f in evaluate_objects([obj], relaxed, "prod", [rule])} == {Verdict.WARN}
    off = gates_with("prod", **{rule.name: "disabled"})
    assert [f.verdict for f in evaluate_objects([obj], off, "prod", [rule])] == [Verdict.SKIPPED]


def test_digest_pinning_and_exposure_follow_stack_thresholds(gates: Gates) -> None:
    obj = k8s.deployment()
    k8s.container_of(obj)["image"] = "ghcr.io/liftlock/model:1.0"
    assert list(supply_chain.image_pinned_by_digest.check(obj, gates.context("dev"))) == []
    assert list(supply_chain.image_pinned_by_digest.check(obj, gates.context("staging")))
    public = k8s.service("LoadBalancer")
    assert list(governance.public_exposure_allowed.check(public, gates.context("dev"))) == []
    problems = list(governance.public_exposure_allowed.check(public, gates.context("prod")))
    assert problems == ["Service type LoadBalancer exposes it publicly; prod does not allow it"]
    assert (
        list(governance.public_exposure_allowed.check(k8s.service(), gates.context("prod"))) == []
    )
    no_type = k8s.service()
    del no_type["spec"]["type"]
    assert list(governance.public_exposure_allowed.check(no_type, gates.context("prod"))) == []


def test_secrets_in_config_maps_by_shape_not_digests(gates: Gates) -> None:
    ctx = gates.context("prod")
    assert list(security.no_plaintext_secrets.check(k8s.config_map(), ctx)) == []
    assert list(security.no_plaintext_secrets.check(k8s.config_map({}), ctx)) == []
    leaked = k8s.config_map({"settings": "aws_key=AKIAIOSFODNN7EXAMPLE", "other": "x"})
    assert list(security.no_plaintext_secrets.check(leaked, ctx)) == [
        "data key 'settings' holds a AWS access key id"
    ]
    entropy = k8s.config_map({"blob": "q8Zr4LmW2xV9tYpB7nK3sD6fH1jG5cX0aE"})
    assert list(security.no_plaintext_secrets.check(entropy, ctx)) == [
        "data key 'blob' holds a high-entropy token"
    ]


def test_unknown_values_during_preview_are_not_judged(gates: Gates) -> None:
    obj = k8s.deployment()
    k8s.container_of(obj)["image"] = UNKNOWN
    ctx = gates.context("prod")
    assert list(supply_chain.image_pinned_by_digest.check(obj, ctx)) == []
    assert list(supply_chain.registry_allowed_rule.check(obj, ctx)) == []


def test_image_repository_normalisation() -> None:
    assert supply_chain.image_repository("nginx:1.27") == "docker.io/library/nginx"
    assert supply_chain.image_repository("acme/model") == "docker.io/acme/model"
    assert supply_chain.image_repository("localhost:5000/m:1@" + k8s.DIGEST) == "localhost:5000/m"
    assert supply_chain.registry_allowed("ghcr.io/liftlock/model:1", ("ghcr.io/liftlock",))
    assert not supply_chain.registry_allowed("ghcr.io/liftlockx/model", ("ghcr.io/liftlock",))


def test_prod_needs_replicas_pdb_and_hpa(gates: Gates, gates_with: Callable[..., Gates]) -> None:
    stack = k8s.prod_stack()
    ctx = gates.context("prod")
    for rule in (
        reliability.min_replicas,
        reliability.disruption_budget_present,
        reliability.autoscaler_present,
    ):
        assert list(rule.check(stack, ctx)) == [], rule.name
    single = [k8s.deployment(replicas=1), k8s.service()]
    found = {
        rule.name: [message for _obj, message in rule.check(single, ctx)]
        for rule in reliability.RULES
        if rule.scope == "stack"
    }
    assert found == {
        "min-replicas": ["runs 1 replica(s); prod needs at least 2"],
        "disruption-budget-present": ["no PodDisruptionBudget selects its pods"],
        "autoscaler-present": ["no HorizontalPodAutoscaler targets Deployment/liftlock-prod/model"],
    }
    # Property missing: no replicas and no HPA means Kubernetes' default, 1.
    no_replicas = k8s.deployment()
    del no_replicas["spec"]["replicas"]
    assert [m for _o, m in reliability.min_replicas.check([no_replicas], ctx)] == [
        "runs 1 replica(s); prod needs at least 2"
    ]
    # ... unless an HPA keeps at least minReplicas.
    assert list(reliability.min_replicas.check([no_replicas, k8s.hpa()], ctx)) == []
    # dev requires none of it; staging's override makes min-replicas advisory.
    dev = gates.context("dev")
    assert all(not list(rule.check(single, dev)) for rule in reliability.RULES[2:])
    assert gates.level("staging", "min-replicas") is Level.ADVISORY
    relaxed = gates_with("prod", disruption_budget_present="disabled")
    verdicts = {f.rule: f.verdict for f in evaluate_objects(single, relaxed, "prod")}
    assert verdicts["disruption-budget-present"] is Verdict.SKIPPED
    assert verdicts["min-replicas"] is Verdict.FAIL


def test_whole_prod_stack_passes_every_rule(gates: Gates) -> None:
    findings = evaluate_objects(k8s.prod_stack(), gates, "prod")
    failed = [f for f in findings if f.verdict is not Verdict.PASS]
    assert failed == []
