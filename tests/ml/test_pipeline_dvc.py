"""The whole pipeline under real `dvc repro`, in temporary copies with their own DVC caches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ml.bundle import sha256_file, verify_bundle
from ml.prepare import load_builtin
from tests.ml.dvc_repo import STAGES, DvcRun, PipelineCopy

pytestmark = pytest.mark.slow


def _fingerprint(root: Path) -> dict[str, object]:
    bundle = root / "bundle"
    return {
        "model": sha256_file(bundle / "model.joblib"),
        "onnx": sha256_file(bundle / "model.onnx"),
        "metrics": json.loads((root / "eval" / "metrics.json").read_text(encoding="utf-8")),
        "digest": verify_bundle(bundle),
    }


@pytest.fixture(scope="module")
def reproduced(repo_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """One fresh copy, reproduced once: (copy, output of the first repro, its fingerprint)."""
    base = tmp_path_factory.mktemp("pipeline-a")
    copy = PipelineCopy.create(repo_root, base / "repo", base / "cache")
    first = copy.dvc("repro")
    return copy, first, _fingerprint(copy.root)


def test_fresh_repro_runs_every_stage_then_nothing(reproduced) -> None:
    copy, first, fingerprint = reproduced
    assert first.stages_run == list(STAGES)
    for stage in STAGES:
        assert f"[{stage}] " in first.output, f"stage {stage} printed no summary"

    second = copy.dvc("repro")
    assert second.stages_run == [], second.output
    assert "Data and pipelines are up to date." in copy.dvc("status").output

    bundle = copy.root / "bundle"
    assert {p.name for p in bundle.iterdir()} >= {
        "model.joblib",
        "model.onnx",
        "metrics.json",
        "model_card.json",
        "data_validation.json",
        "data_contract.json",
        "reference.csv",
        "bundle.json",
    }
    assert fingerprint["metrics"]["roc_auc"] > 0.95
    assert "roc_auc" in copy.dvc("metrics", "show").output
    assert copy.dvc("plots", "show", "--out", "plots-html").returncode == 0
    shutil.rmtree(copy.root / "plots-html")


def test_fresh_clone_reproduces_the_same_bundle_from_an_empty_cache(
    reproduced, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Commit the first copy (dvc.lock, metrics), clone it, reproduce with an empty cache."""
    copy, _, fingerprint = reproduced
    copy.commit_all("reproduced once")
    base = tmp_path_factory.mktemp("pipeline-b")
    clone = copy.clone(base / "repo", base / "cache")
    run = clone.dvc("repro")
    assert run.stages_run == list(STAGES), run.output
    assert _fingerprint(clone.root) == fingerprint
    assert clone.git_changes() == "", "reproducing changed committed files (dvc.lock, metrics)"


def test_push_and_pull_through_an_overridden_local_remote(reproduced, tmp_path: Path) -> None:
    copy, _, fingerprint = reproduced
    remote = tmp_path / "remote"
    copy.dvc("remote", "modify", "--local", "local", "url", str(remote))
    assert "local" in copy.dvc("remote", "default").output
    copy.dvc("push")
    shutil.rmtree(copy.cache)
    shutil.rmtree(copy.root / "bundle")
    copy.dvc("pull")
    assert verify_bundle(copy.root / "bundle") == fingerprint["digest"]
    assert "Data and pipelines are up to date." in copy.dvc("status").output


def test_changing_a_train_param_reruns_train_evaluate_package_only(reproduced) -> None:
    copy, _, fingerprint = reproduced
    copy.set_param("train.logistic_regression.C", 0.5)
    run = copy.dvc("repro")
    assert run.stages_run == ["train", "evaluate", "package"], run.output
    assert _fingerprint(copy.root)["digest"] != fingerprint["digest"]


def _break_type(frame: pd.DataFrame) -> pd.DataFrame:
    frame["mean_radius"] = frame["mean_radius"].astype(object)
    frame.loc[10, "mean_radius"] = "twelve"
    return frame


def _break_range(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[20, "worst_area"] = 1e6
    return frame


def _break_nulls(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.index % 5 == 0, "mean_texture"] = None
    return frame


@pytest.fixture(scope="module")
def bad_data_copy(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> PipelineCopy:
    base = tmp_path_factory.mktemp("pipeline-bad")
    copy = PipelineCopy.create(repo_root, base / "repo", base / "cache")
    copy.set_param("prepare.source", "data/raw/patients.csv")
    return copy


@pytest.mark.parametrize(
    ("corrupt", "column", "rule"),
    [
        (_break_type, "mean_radius", "type"),
        (_break_range, "worst_area", "maximum"),
        (lambda frame: frame.drop(columns=["mean_area"]), "mean_area", "required"),
        (_break_nulls, "mean_texture", "max_null_fraction"),
    ],
    ids=["wrong-type", "out-of-range", "missing-column", "too-many-nulls"],
)
def test_contract_breach_stops_repro_at_validate(
    bad_data_copy: PipelineCopy, corrupt, column, rule
):
    corrupt(load_builtin()).to_csv(bad_data_copy.root / "data/raw/patients.csv", index=False)
    run: DvcRun = bad_data_copy.dvc("repro", check=False)
    assert run.returncode != 0
    assert f"column '{column}', rule '{rule}'" in run.output, run.output
    assert run.stages_run == ["prepare", "validate"], run.output
    assert not (bad_data_copy.root / "model").exists()
    assert not (bad_data_copy.root / "bundle").exists()
    report = json.loads((bad_data_copy.root / "reports/data_validation.json").read_text())
    assert report["valid"] is False
    assert {(v["column"], v["rule"]) for v in report["violations"]} >= {(column, rule)}
