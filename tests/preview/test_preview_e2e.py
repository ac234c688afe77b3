"""`liftlock preview` end to end on a throwaway clone of the project with its own backend.

Base: staging and prod pinned to the bundle, all three stacks deployed (`pulumi up`). Head: a
train param and staging's replicas changed. The preview must show the metric deltas, the
staging Deployment's replicas update and nothing else for staging, no change for dev and prod,
and the gate verdicts; the JSON must carry the same facts; the clone must be left clean.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.preview.project_clone import ProjectClone

pytestmark = [pytest.mark.slow, pytest.mark.engine, pytest.mark.docker]

STACKS = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def previewed(tmp_path_factory: pytest.TempPathFactory, repo_root: Path):
    workdir = tmp_path_factory.mktemp("preview-e2e")
    clone = ProjectClone.make(repo_root, workdir)
    clone.dvc("repro", "--pull", timeout=1200)
    digest = clone.bundle_digest()
    for stack in ("staging", "prod"):
        clone.pin(stack, digest)
    clone.isolate_docker_stack("dev", "liftlock-model-preview-e2e")
    clone.commit_all("test: staging and prod run the workspace bundle; dev on its own port")
    for stack in STACKS:
        clone.pulumi("stack", "init", stack)
    try:
        for stack in STACKS:
            clone.pulumi("up", "--yes", "--stack", stack, "--policy-pack", "policies", timeout=1200)
        base = clone.commit_all("test: base (what pulumi wrote into the stack files)")

        clone.set_param("    C: 1.0\n", "    C: 0.05\n")
        clone.set_config_number("staging", "replicas", 3)
        clone.commit_all("test: head (train C 0.05, staging replicas 3)")

        out = workdir / "preview.md"
        json_out = workdir / "preview.json"
        clone.liftlock("preview", "--base", base, "--out", str(out), "--json-out", str(json_out))
        with json_out.open(encoding="utf-8") as handle:
            data = json.load(handle)
        yield clone, out.read_text(encoding="utf-8"), data
    finally:
        # The dev container and image live on the machine's Docker engine: take them away.
        clone.pulumi("destroy", "--yes", "--stack", "dev", check=False, timeout=600)


def stack(data, name):
    return next(s for s in data["stacks"] if s["stack"] == name)


def test_metric_deltas_for_the_train_param(previewed):
    _, markdown, data = previewed
    params = {p["name"]: (p["old"], p["new"]) for p in data["ml"]["params"]}
    assert params == {"train.logistic_regression.C": (1.0, 0.05)}
    deltas = {m["name"]: m["diff"] for m in data["ml"]["metrics"]}
    assert "accuracy" in deltas and any(d for d in deltas.values()), deltas
    assert data["ml"]["base_metrics_available"] and data["ml"]["head_metrics_available"]
    accuracy = data["ml"]["delta_summary"].split(",")[0]  # e.g. "accuracy +0.01399"
    assert accuracy.startswith("accuracy ") and accuracy in markdown
    assert "`train.logistic_regression.C` | `1.0` | `0.05`" in markdown


def test_staging_updates_only_the_deployment_replicas(previewed):
    _, markdown, data = previewed
    staging = stack(data, "staging")
    assert staging["status"] == "ok", staging["errors"]
    changed = [(r["op"], r["type"]) for r in staging["resources"]]
    assert changed == [("update", "kubernetes:apps/v1:Deployment")], staging["resources"]
    props = staging["resources"][0]["properties"]
    assert [(p["path"], p["old"], p["new"]) for p in props] == [("spec.replicas", 2, 3)]
    assert "| **staging** | 1 update |" in markdown
    assert "`spec.replicas`: `2` → `3`" in markdown


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_no_infrastructure_change_for_dev_and_prod(previewed, name):
    _, markdown, data = previewed
    preview = stack(data, name)
    assert preview["status"] == "ok", preview["errors"]
    assert preview["resources"] == [] and preview["unchanged"] > 0
    assert f"| **{name}** | no change |" in markdown


def test_gate_and_policy_verdicts_for_every_stack(previewed):
    _, markdown, data = previewed
    assert set(data["gates"]) == set(STACKS)
    for name in STACKS:
        gate = data["gates"][name]["verdict"]
        policy = stack(data, name)["policy_verdict"]
        assert gate in ("pass", "advisory", "fail"), data["gates"][name]
        assert policy in ("pass", "advisory", "fail"), stack(data, name)
        row = next(line for line in markdown.splitlines() if line.startswith(f"| **{name}**"))
        assert gate in row and policy in row


def test_the_clone_is_left_as_it_was(previewed):
    clone, _, _ = previewed
    assert clone.dirty() == []
