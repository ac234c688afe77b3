"""dvc.yaml stays honest: each stage depends on every ml module it imports and on real params."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.ml.dvc_repo import STAGES


@pytest.fixture(scope="module")
def pipeline(repo_root: Path) -> dict:
    with (repo_root / "dvc.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def param_keys(repo_root: Path) -> set[str]:
    with (repo_root / "params.yaml").open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)

    def leaves(node: dict, prefix: str = "") -> list[str]:
        keys = []
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            keys += leaves(value, dotted + ".") if isinstance(value, dict) else [dotted]
        return keys

    return set(leaves(raw))


def ml_imports(repo_root: Path, module: str) -> set[str]:
    """`ml/<x>.py` files `module` imports, transitively."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse((repo_root / path).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ml."):
                pending.append(node.module.replace(".", "/") + ".py")
    return seen


def test_stages_are_the_five_verbs_run_as_modules(pipeline: dict) -> None:
    assert list(pipeline["stages"]) == list(STAGES)
    for name, stage in pipeline["stages"].items():
        assert stage["cmd"] == f"python -m ml.{name}"


@pytest.mark.parametrize("stage", STAGES)
def test_deps_list_every_ml_module_the_stage_imports(repo_root: Path, pipeline: dict, stage):
    deps = set(pipeline["stages"][stage]["deps"])
    missing = ml_imports(repo_root, f"ml/{stage}.py") - deps
    assert not missing, f"stage {stage}: add {sorted(missing)} to its deps in dvc.yaml"


def test_params_name_existing_keys_and_package_records_all(pipeline: dict, param_keys) -> None:
    for name, stage in pipeline["stages"].items():
        unknown = set(stage.get("params", [])) - param_keys
        assert not unknown, f"stage {name} lists params not in params.yaml: {sorted(unknown)}"
    assert set(pipeline["stages"]["package"]["params"]) == param_keys


def test_metrics_and_plots_are_not_cached_and_the_bundle_is_an_artifact(pipeline: dict) -> None:
    evaluate = pipeline["stages"]["evaluate"]
    for entry in evaluate["metrics"] + evaluate["plots"]:
        ((path, options),) = entry.items()
        assert options == {"cache": False}, path
    assert pipeline["stages"]["package"]["outs"] == ["bundle"]
    assert pipeline["artifacts"]["breast-cancer-classifier"] == {
        **pipeline["artifacts"]["breast-cancer-classifier"],
        "path": "bundle",
        "type": "model",
    }


def test_committed_dvc_lock_matches_the_committed_code_and_params(repo_root: Path) -> None:
    """A code or params change committed without `dvc repro` leaves dvc.lock stale: the lineage
    gate would then refuse every promotion. Missing outputs (a fresh clone) are not staleness."""
    import json
    import shutil
    import subprocess
    import sys

    dvc = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    done = subprocess.run(
        [dvc, "status", "--json"], cwd=repo_root, capture_output=True, text=True, check=True
    )
    tracked = set(
        subprocess.run(
            ["git", "ls-files"], cwd=repo_root, capture_output=True, text=True, check=True
        ).stdout.split()
    )
    stale = []
    for stage, entries in json.loads(done.stdout or "{}").items():
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            for dep, state in entry.get("changed deps", {}).items():
                if isinstance(state, dict) or (state == "modified" and dep in tracked):
                    stale.append(f"{stage}: {dep} {state}")
    assert not stale, f"dvc.lock is stale; run `dvc repro` and commit dvc.lock: {stale}"
