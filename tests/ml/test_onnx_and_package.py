"""ONNX export matches sklearn for every estimator; package builds a verifiable bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline

from ml.bundle import bundle_digest, sha256_file, verify_bundle
from ml.contract import load_contract
from ml.dataset import read_split
from ml.errors import BundleError, DataContractError, ExportError
from ml.onnx_export import check_onnx, export_onnx, run_onnx
from ml.package import package, reference_sample
from ml.params import ESTIMATORS, Params
from ml.prepare import load_builtin, split_data
from ml.train import features_and_labels, fit, save_model
from tests.ml.conftest import stage_outputs


class MajorityClass(ClassifierMixin, BaseEstimator):
    """A classifier skl2onnx has no converter for."""

    def fit(self, features, labels):
        self.classes_ = np.unique(labels)
        return self

    def predict(self, features):
        return np.full(len(features), self.classes_[0])


@pytest.fixture(scope="module")
def breast_cancer(repo_root: Path):
    """The default dataset and contract, split as `prepare` does."""
    contract = load_contract(repo_root / "ml" / "contract" / "breast_cancer.json")
    train_frame, test_frame = split_data(load_builtin(), "malignant", 0.25, seed=42)
    return (
        contract,
        features_and_labels(train_frame, contract),
        features_and_labels(test_frame, contract),
    )


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_onnx_matches_sklearn_on_the_test_split(repo_params: Params, breast_cancer, estimator):
    contract, (x_train, y_train), (x_test, _) = breast_cancer
    pipeline = fit(replace(repo_params.train, estimator=estimator), 42, x_train, y_train)
    onnx_bytes = export_onnx(pipeline, len(contract.features))
    check = check_onnx(onnx_bytes, pipeline, x_test, repo_params.package.onnx_tolerance)
    assert check.rows == len(x_test)
    assert check.max_prob_diff <= repo_params.package.onnx_tolerance
    assert export_onnx(pipeline, len(contract.features)) == onnx_bytes  # stable bytes


def test_onnx_disagreement_fails_loudly(repo_params: Params, breast_cancer) -> None:
    contract, (x_train, y_train), (x_test, _) = breast_cancer
    pipeline = fit(repo_params.train, 42, x_train, y_train)
    onnx_bytes = export_onnx(pipeline, len(contract.features))
    with pytest.raises(
        ExportError, match=r"differ from sklearn by up to .*onnx_tolerance is 1e-15"
    ):
        check_onnx(onnx_bytes, pipeline, x_test, 1e-15)
    other = fit(repo_params.train, 42, x_train, 1 - y_train)  # predicts the opposite class
    with pytest.raises(ExportError, match="ONNX predictions differ from sklearn"):
        check_onnx(export_onnx(other, len(contract.features)), pipeline, x_test, 1.0)


def test_unsupported_model_is_an_export_error(breast_cancer) -> None:
    _, (x_train, y_train), _ = breast_cancer
    pipeline = Pipeline([("model", MajorityClass())]).fit(x_train, y_train)
    with pytest.raises(ExportError, match=r"cannot export pipeline steps \['MajorityClass'\]"):
        export_onnx(pipeline, 30)


def test_onnx_imputes_nulls_like_sklearn(repo_params: Params, breast_cancer) -> None:
    contract, (x_train, y_train), (x_test, _) = breast_cancer
    pipeline = fit(repo_params.train, 42, x_train, y_train)
    holes = x_test.copy()
    holes[::3, 0] = np.nan
    labels, _ = run_onnx(export_onnx(pipeline, len(contract.features)), holes)
    assert (labels == pipeline.predict(holes.astype(np.float32).astype(np.float64))).all()


def test_package_builds_a_verifiable_content_addressed_bundle(
    tmp_path: Path, repo_root: Path, small_params: Params, contract_path: Path, splits
) -> None:
    inputs = stage_outputs(tmp_path, small_params, contract_path, splits)
    inputs = replace(
        inputs, model_card_schema=repo_root / "policies/schemas/model_card.schema.json"
    )
    first, second = tmp_path / "bundle-a", tmp_path / "bundle-b"
    package(small_params, contract_path, first, inputs)
    package(small_params, contract_path, second, inputs)

    manifest = json.loads((first / "bundle.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {
        "model.joblib",
        "model.onnx",
        "metrics.json",
        "model_card.json",
        "data_validation.json",
        "data_contract.json",
        "reference.csv",
    }
    assert manifest["features"] == ["size", "texture", "count"] and manifest["classes"] == [0, 1]
    assert manifest["data"]["train"] == {"sha256": sha256_file(splits["train"]), "rows": 90}
    assert manifest["onnx"]["probabilities_within_tolerance"] is True
    # The measured gap depends on ONNX Runtime's per-CPU kernels: never part of the digest.
    assert "max_prob_diff" not in manifest["onnx"]
    assert manifest["model"]["estimator"] == small_params.train.estimator
    assert manifest["params"]["base"]["seed"] == small_params.base.seed
    assert verify_bundle(first) == verify_bundle(second) == bundle_digest(first)
    contract = json.loads((first / "data_contract.json").read_text(encoding="utf-8"))
    assert [f["name"] for f in contract["features"]] == manifest["features"]
    assert list(pd.read_csv(first / "reference.csv").columns) == manifest["features"]

    (first / "metrics.json").write_text("{}", encoding="utf-8")
    with pytest.raises(BundleError, match=r"metrics\.json: sha256 .* does not match"):
        verify_bundle(first)


def test_package_refuses_data_that_failed_validation(
    tmp_path: Path, small_params: Params, contract_path: Path, splits
) -> None:
    inputs = stage_outputs(tmp_path, small_params, contract_path, splits)
    report = json.loads(inputs.validation_report.read_text(encoding="utf-8"))
    inputs.validation_report.write_text(json.dumps({**report, "valid": False}), encoding="utf-8")
    with pytest.raises(DataContractError, match="did not pass validation; refusing to package"):
        package(small_params, contract_path, tmp_path / "bundle", inputs)
    assert not (tmp_path / "bundle").exists()


def test_model_card_is_checked_against_its_schema(
    tmp_path: Path, repo_root: Path, small_params: Params, contract_path: Path, splits
) -> None:
    inputs = stage_outputs(tmp_path, small_params, contract_path, splits)
    inputs = replace(
        inputs, model_card_schema=repo_root / "policies/schemas/model_card.schema.json"
    )
    card = replace(small_params.package.model_card, name="Not A Slug")
    params = replace(small_params, package=replace(small_params.package, model_card=card))
    with pytest.raises(BundleError, match=r"model_card\.json: 'name'"):
        package(params, contract_path, tmp_path / "bundle", inputs)


def test_reference_sample_is_capped_and_deterministic(contract_path: Path, splits) -> None:
    contract = load_contract(contract_path)
    train_frame = read_split(splits["train"])
    first = reference_sample(train_frame, contract, 25, seed=5)
    assert len(first) == 25 and first.equals(reference_sample(train_frame, contract, 25, seed=5))
    assert first.index.is_monotonic_increasing
    assert len(reference_sample(train_frame, contract, 5000, seed=5)) == len(train_frame)


EXPORT_HASHES = """
import hashlib, sys
from pathlib import Path
import joblib
from ml.onnx_export import export_onnx
for path in sys.argv[1:]:
    print(hashlib.sha256(export_onnx(joblib.load(path), 30)).hexdigest())
"""


def test_the_onnx_bytes_do_not_depend_on_python_hash_randomisation(
    repo_params: Params, breast_cancer, tmp_path: Path
) -> None:
    """skl2onnx orders some graph fields by hash: gradient boosting's export differed between
    PYTHONHASHSEED 3 and 6 before the export sorted them. Each seed runs in its own process."""
    _, (x_train, y_train), _ = breast_cancer
    models = []
    for estimator in ESTIMATORS:
        path = tmp_path / f"{estimator}.joblib"
        save_model(fit(replace(repo_params.train, estimator=estimator), 42, x_train, y_train), path)
        models.append(str(path))
    hashes = {}
    for seed in ("3", "6", "9"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", EXPORT_HASHES, *models],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        hashes[seed] = done.stdout.split()
    assert len(hashes["3"]) == len(ESTIMATORS)
    assert hashes["3"] == hashes["6"] == hashes["9"], hashes
