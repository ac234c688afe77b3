"""Changed paths -> affected stacks."""

from __future__ import annotations

from liftlock.preview.affected import affected_stacks, touches_ml
from liftlock.stackfile import order_stacks

STACKS = ["dev", "staging", "prod"]


def test_a_stack_file_affects_only_its_stack():
    assert affected_stacks(["stacks/Pulumi.staging.yaml", "README.md"], STACKS) == {
        "staging": ["stacks/Pulumi.staging.yaml"]
    }


def test_pipeline_program_and_policy_changes_affect_every_stack():
    for path in [
        "params.yaml",
        "dvc.yaml",
        "ml/train.py",
        "infra/__main__.py",
        "policies/gates.yaml",
    ]:
        assert affected_stacks([path], STACKS) == {s: [path] for s in STACKS}, path


def test_reasons_accumulate_per_stack_sorted():
    result = affected_stacks(["stacks/Pulumi.prod.yaml", "params.yaml"], STACKS)
    assert result["prod"] == ["params.yaml", "stacks/Pulumi.prod.yaml"]
    assert result["dev"] == ["params.yaml"]


def test_docs_tests_and_workflows_affect_nothing():
    assert affected_stacks(["README.md", "tests/x.py", ".github/workflows/a.yml"], STACKS) == {}


def test_a_deleted_stack_and_lookalike_paths_are_ignored():
    changed = ["stacks/Pulumi.qa.yaml", "mlx/notes.txt", "stacks/Pulumi.dev.yaml.bak"]
    assert affected_stacks(changed, STACKS) == {}


def test_ml_inputs_are_recognised():
    assert touches_ml(["params.yaml"]) and touches_ml(["data/raw.dvc"]) and touches_ml(["ml/a.py"])
    assert not touches_ml(["stacks/Pulumi.dev.yaml", "infra/__main__.py"])


def test_promotion_order_first():
    assert order_stacks(["prod", "qa", "dev", "staging"]) == ["dev", "staging", "prod", "qa"]


def test_a_change_to_rendered_manifests_affects_that_stack():
    changed = [
        "deploy/prod/1-manifest/apps_v1-deployment-liftlock-prod-liftlock-model.yaml",
        "deploy/argocd/staging/1-manifest/application.yaml",
    ]
    result = affected_stacks(changed, STACKS)
    assert result == {"staging": [changed[1]], "prod": [changed[0]]}


def test_an_engine_diff_says_which_state_it_was_measured_against(tmp_path):
    from liftlock.preview.run import diff_source

    local = {"PULUMI_BACKEND_URL": (tmp_path / ".pulumi-state").as_uri()}
    shared = {"PULUMI_BACKEND_URL": "s3://team-state"}
    assert diff_source(tmp_path, "dev", local, has_state=False).startswith(
        "no shared backend: showing the desired state only"
    )
    assert diff_source(tmp_path, "dev", local, has_state=True) == (
        "the state of `dev` in this checkout's local backend"
    )
    assert diff_source(tmp_path, "dev", shared, has_state=True) == (
        "the state of `dev` in s3://team-state"
    )
    assert diff_source(tmp_path, "dev", shared, has_state=False) == (
        "no state for `dev` in s3://team-state: showing the desired state only"
    )
