"""The four workload rules kube-score asked for: compliant, non-compliant, property missing, and
the gates' override, each through the same functions the pack and the offline gate run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from policies.evaluate import evaluate_objects
from policies.gates import Gates
from policies.model import Rule, Verdict
from policies.rules import rules_by_name, workloads
from tests.policies import objects as k8s

Objects = list[dict[str, Any]]
Mutation = Callable[[Objects], None]


def problems(rule: Rule, objects: Objects, gates: Gates) -> list[str]:
    ctx = gates.context("prod")
    if rule.scope == "stack":
        return [message for _obj, message in rule.check(objects, ctx)]
    return [message for obj in objects if rule.applies_to(obj) for message in rule.check(obj, ctx)]


def _pod(objects: Objects) -> dict[str, Any]:
    return k8s.pod_of(objects[0])


def _resources(objects: Objects) -> dict[str, Any]:
    resources: dict[str, Any] = k8s.container_of(objects[0])["resources"]
    return resources


# rule, compliant objects, a mutation that breaks it, words of its message, a mutation that
# removes what the rule reads, whether that removal is a violation.
CASES: list[tuple[Rule, Callable[[], Objects], Mutation, str, Mutation, bool]] = [
    (
        workloads.replicas_left_to_autoscaler,
        k8s.prod_stack,
        lambda objs: objs[0]["spec"].update(replicas=3),
        "sets spec.replicas = 3 while a HorizontalPodAutoscaler scales it",
        # no autoscaler at all: spec.replicas is the only count, and required
        lambda objs: objs.pop(),
        False,
    ),
    (
        workloads.cronjob_starting_deadline,
        lambda: [k8s.cron_job()],
        lambda objs: objs[0]["spec"].update(startingDeadlineSeconds=0),
        "must be a positive number of seconds",
        lambda objs: objs[0]["spec"].pop("startingDeadlineSeconds"),
        True,
    ),
    (
        workloads.ephemeral_storage_set,
        lambda: [k8s.deployment()],
        lambda objs: _resources(objs)["limits"].pop("ephemeral-storage"),
        "container 'model' has no ephemeral-storage limits",
        lambda objs: k8s.container_of(objs[0]).pop("resources"),
        True,
    ),
    (
        workloads.replicas_spread,
        k8s.prod_stack,
        lambda objs: _pod(objs).pop("topologySpreadConstraints"),
        "runs 3 replicas with no topologySpreadConstraints and no podAntiAffinity",
        # neither replicas nor an autoscaler: one pod, nothing to spread
        lambda objs: [objs.pop(), _pod(objs).pop("topologySpreadConstraints")],
        False,
    ),
]
IDS = [case[0].name for case in CASES]


def test_the_rules_are_registered_for_the_pack_and_the_gate() -> None:
    registered = rules_by_name()
    for rule in workloads.RULES:
        assert registered[rule.name] is rule
        assert "the program does" in rule.fix or "set " in rule.fix


@pytest.mark.parametrize(
    ("rule", "compliant", "breaker", "words", "remover", "fails"), CASES, ids=IDS
)
def test_compliant_then_non_compliant(
    gates: Gates, rule: Rule, compliant: Callable[[], Objects], breaker: Mutation, words: str,
    remover: Mutation, fails: bool,
) -> None:  # fmt: skip
    objects = compliant()
    assert problems(rule, objects, gates) == [], "the reference objects must comply"
    breaker(objects)
    found = problems(rule, objects, gates)
    assert found and words in " ".join(found), found


@pytest.mark.parametrize(
    ("rule", "compliant", "breaker", "words", "remover", "fails"), CASES, ids=IDS
)
def test_property_missing(
    gates: Gates, rule: Rule, compliant: Callable[[], Objects], breaker: Mutation, words: str,
    remover: Mutation, fails: bool,
) -> None:  # fmt: skip
    objects = compliant()
    remover(objects)
    assert bool(problems(rule, objects, gates)) is fails


@pytest.mark.parametrize(
    ("rule", "compliant", "breaker", "words", "remover", "fails"), CASES, ids=IDS
)
def test_override_levels(
    gates: Gates, gates_with: Callable[..., Gates], rule: Rule, compliant: Callable[[], Objects],
    breaker: Mutation, words: str, remover: Mutation, fails: bool,
) -> None:  # fmt: skip
    objects = compliant()
    breaker(objects)
    assert Verdict.FAIL in {f.verdict for f in evaluate_objects(objects, gates, "prod", [rule])}
    relaxed = gates_with("prod", **{rule.name: "advisory"})
    verdicts = {f.verdict for f in evaluate_objects(objects, relaxed, "prod", [rule])}
    assert Verdict.WARN in verdicts and Verdict.FAIL not in verdicts
    off = gates_with("prod", **{rule.name: "disabled"})
    assert {f.verdict for f in evaluate_objects(objects, off, "prod", [rule])} == {Verdict.SKIPPED}


def test_a_pod_anti_affinity_on_the_hostname_spreads_too(gates: Gates) -> None:
    objects = k8s.prod_stack()
    pod = _pod(objects)
    pod.pop("topologySpreadConstraints")
    pod["affinity"] = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": dict(k8s.POD_LABELS)},
                    },
                }
            ]
        }
    }
    assert problems(workloads.replicas_spread, objects, gates) == []
    pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0][
        "podAffinityTerm"
    ]["topologyKey"] = "topology.kubernetes.io/zone"
    assert problems(workloads.replicas_spread, objects, gates)


def test_an_autoscaler_with_no_room_scales_nothing(gates: Gates) -> None:
    objects = k8s.prod_stack()
    objects[0]["spec"]["replicas"] = 3
    objects[-1]["spec"]["maxReplicas"] = 0
    assert problems(workloads.replicas_left_to_autoscaler, objects, gates) == []


def test_numbers_the_engine_hands_over_as_floats_are_judged_like_ints(gates: Gates) -> None:
    # In `pulumi preview --policy-pack`, 300 arrives as 300.0 and 3 replicas as 3.0.
    cron = k8s.cron_job(starting_deadline=300)
    cron["spec"]["startingDeadlineSeconds"] = 300.0
    assert problems(workloads.cronjob_starting_deadline, [cron], gates) == []
    objects = k8s.deployment(replicas=None), k8s.hpa()
    deployment, hpa = (dict(o) for o in objects)
    hpa["spec"] = {**hpa["spec"], "minReplicas": 3.0}
    deployment["spec"]["template"]["spec"].pop("topologySpreadConstraints")
    found = problems(workloads.replicas_spread, [deployment, hpa], gates)
    assert found == [
        "runs 3 replicas with no topologySpreadConstraints and no podAntiAffinity on "
        "kubernetes.io/hostname"
    ]
