"""The policy pack on the real engine: `pulumi preview --policy-pack policies` on small programs
that render Kubernetes objects (render_yaml_to_directory, no cluster), and `liftlock gate`'s
reading of the engine's verdicts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from liftlock.gate import findings_from_events, parse_events
from policies.gates import load_gates
from policies.model import Verdict
from tests.helpers.pulumi_cli import PulumiCLI, write_python_project

pytestmark = [pytest.mark.slow, pytest.mark.engine]

PACK = Path(__file__).resolve().parents[2] / "policies"

# One program, the variant chosen by config: `good` meets every rule on prod; each other variant
# breaks exactly one mandatory rule.
PROGRAM = """
import copy
import json
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

variant = pulumi.Config().get("variant") or "good"
objects = json.loads((Path(__file__).parent / "objects.json").read_text())
deployment = objects["deployment"]
pod = deployment["spec"]["template"]["spec"]
container = pod["containers"][0]
if variant == "privileged":
    container["securityContext"]["privileged"] = True
elif variant == "hostpath":
    pod["volumes"] = [{"name": "host", "hostPath": {"path": "/var/run"}}]
elif variant == "unpinned":
    container["image"] = "ghcr.io/liftlock/model:latest"

render = k8s.Provider("render", render_yaml_to_directory=str(Path.cwd() / "rendered"))
opts = pulumi.ResourceOptions(provider=render)
kinds = {
    "deployment": k8s.apps.v1.Deployment,
    "service": k8s.core.v1.Service,
    "pdb": k8s.policy.v1.PodDisruptionBudget,
    "hpa": k8s.autoscaling.v2.HorizontalPodAutoscaler,
}
for key, kind in kinds.items():
    kind("model", metadata=objects[key]["metadata"], spec=objects[key]["spec"], opts=opts)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    from tests.policies import objects as k8s

    payload = {
        # The HPA below scales it: no replicas field (replicas-left-to-autoscaler).
        "deployment": k8s.deployment(replicas=None),
        "service": k8s.service(),
        "pdb": k8s.pdb(),
        "hpa": k8s.hpa(),
    }
    for item in payload.values():
        item.pop("apiVersion"), item.pop("kind")
    return write_python_project(
        tmp_path / "program", PROGRAM, files={"objects.json": json.dumps(payload)}
    )


def _preview(pulumi: PulumiCLI, tmp_path: Path) -> tuple[Any, list[dict[str, Any]]]:
    """`pulumi preview --policy-pack policies`, streaming its engine events as JSON lines."""
    result = pulumi(
        "preview",
        "--policy-pack",
        str(PACK),
        "--json",
        check=False,
        env={"PULUMI_ENABLE_STREAMING_JSON_PREVIEW": "true"},
    )
    return result, parse_events(result.stdout)


@pytest.mark.parametrize(
    ("variant", "rule"),
    [
        ("privileged", "no-privileged-containers"),
        ("hostpath", "no-host-path-volumes"),
        ("unpinned", "image-pinned-by-digest"),
    ],
)
def test_prod_preview_fails_naming_rule_and_resource(
    pulumi_cli: Callable[..., PulumiCLI], project: Path, tmp_path: Path, variant: str, rule: str
) -> None:
    pulumi = pulumi_cli(project, stack="prod", config={"variant": variant})
    result, events = _preview(pulumi, tmp_path)
    assert result.returncode != 0, result.describe()
    assert rule in result.output and "Deployment/liftlock-prod/model" in result.output
    assert "mandatory" in result.output
    findings = findings_from_events(events, load_gates(), "prod")
    failed = [(f.rule, f.verdict) for f in findings if f.verdict is not Verdict.PASS]
    assert failed == [(rule, Verdict.FAIL)], result.describe()
    (violation,) = [f for f in findings if f.rule == rule]
    assert violation.subject == "model (Deployment/liftlock-prod/model)"
    if variant == "privileged":
        # What a person running the plain command sees.
        plain = pulumi("preview", "--policy-pack", str(PACK), check=False)
        assert plain.returncode != 0
        assert (
            "[mandatory]  no-privileged-containers  (kubernetes:apps/v1:Deployment: model)"
            in plain.output
        ), plain.describe()
        assert (
            "[no-privileged-containers] Deployment/liftlock-prod/model: container 'model' runs"
            in plain.output
        )


def test_compliant_program_passes_prod_and_dev_only_warns(
    pulumi_cli: Callable[..., PulumiCLI], project: Path, tmp_path: Path
) -> None:
    prod = pulumi_cli(project, stack="prod", config={"variant": "good"})
    result, events = _preview(prod, tmp_path)
    assert result.returncode == 0, result.describe()
    findings = findings_from_events(events, load_gates(), "prod")
    assert [f for f in findings if f.verdict is not Verdict.PASS] == []
    assert {f.rule for f in findings} >= {"pss-restricted", "required-labels", "min-replicas"}

    # The same privileged Deployment on dev: the pack reads dev's level (advisory) from gates.yaml.
    dev = pulumi_cli(project, stack="dev", config={"variant": "privileged"})
    result, events = _preview(dev, tmp_path)
    assert result.returncode == 0, result.describe()
    findings = findings_from_events(events, load_gates(), "dev")
    assert [(f.rule, f.verdict) for f in findings if f.verdict is not Verdict.PASS] == [
        ("no-privileged-containers", Verdict.WARN)
    ]
