"""The GitHub workflows: actionlint-clean, actions pinned, secrets kept from untrusted code."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT = REPO / ".tools" / "bin" / "actionlint"
EXPECTED = {"pr-preview.yml", "pr-preview-comment.yml", "train.yml", "deploy.yml", "promote.yml"}
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(name: str) -> dict[Any, Any]:
    with (WORKFLOWS / name).open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_every_expected_workflow_exists():
    assert {p.name for p in WORKFLOWS.glob("*.yml")} >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_actionlint_passes(name: str):
    if not ACTIONLINT.exists():
        pytest.fail(f"{ACTIONLINT} is not built: run `make toolchain` (toolchain/actionlint)")
    result = subprocess.run(
        [str(ACTIONLINT), "-no-color", str(WORKFLOWS / name)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"actionlint {name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_action_is_pinned_by_full_commit_sha(name: str):
    for step in steps(load(name)):
        if "uses" in step:
            assert PINNED.match(step["uses"]), f"{name}: {step['uses']} is not pinned by a SHA"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_default_token_permissions_are_read_only(name: str):
    assert load(name)["permissions"] in ({"contents": "read"}, {}), name


def test_pr_preview_runs_preview_and_edits_one_comment():
    workflow = load("pr-preview.yml")
    assert "pull_request" in workflow["on"] and "pull_request_target" not in workflow["on"]
    text = "\n".join(s.get("run", "") for s in steps(workflow))
    assert "dvc pull" in text
    assert 'liftlock preview "${args[@]}"' in text and "--without-secrets" in text
    assert "upsert-preview-comment.sh" in text
    names = [s.get("name", "") for s in steps(workflow)]
    comment = names.index("Create or update the preview comment")
    verdict = next(i for i, n in enumerate(names) if n.startswith("Fail the check"))
    assert verdict > comment  # the comment is posted even when the check then fails
    script = (REPO / ".github" / "scripts" / "upsert-preview-comment.sh").read_text()
    assert "<!-- liftlock-preview -->" in script and "PATCH" in script


def test_fork_comments_come_from_trusted_code_that_checks_the_pull_request():
    workflow = load("pr-preview-comment.yml")
    assert workflow["on"]["workflow_run"]["workflows"] == ["pr-preview"]
    job = workflow["jobs"]["comment"]
    assert "head_repository.fork" in job["if"]
    checkout = next(s for s in job["steps"] if "checkout" in s.get("uses", ""))
    assert "ref" not in checkout.get("with", {})  # the default branch, never the fork's head
    run = "\n".join(s.get("run", "") for s in job["steps"])
    assert "RUN_HEAD_SHA" in run


def test_promote_runs_in_the_target_environment():
    workflow = load("promote.yml")
    assert "workflow_dispatch" in workflow["on"]
    assert workflow["jobs"]["promote"]["environment"] == "${{ inputs.to }}"
    assert workflow["on"]["workflow_dispatch"]["inputs"]["to"]["options"] == ["staging", "prod"]


def test_deploy_runs_pulumi_up_with_the_policy_pack_per_affected_stack():
    workflow = load("deploy.yml")
    up = workflow["jobs"]["up"]
    assert up["environment"] == "${{ matrix.stack }}"
    assert up["strategy"]["max-parallel"] == 1
    run = "\n".join(s.get("run", "") for s in up["steps"])
    assert "pulumi up --yes" in run and "--policy-pack policies" in run
    plan = "\n".join(s.get("run", "") for s in workflow["jobs"]["plan"]["steps"])
    assert "--list-affected" in plan


def test_train_reproduces_and_pushes_on_model_inputs():
    workflow = load("train.yml")
    paths = workflow["on"]["push"]["paths"]
    assert {"params.yaml", "ml/**"} <= set(paths)
    run = "\n".join(s.get("run", "") for s in steps(workflow))
    assert "dvc repro" in run and "dvc push" in run
