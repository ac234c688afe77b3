"""train and evaluate on small data: deterministic bytes per estimator, the metrics DVC shows."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.bundle import sha256_file
from ml.errors import MLError
from ml.evaluate import compute_metrics, evaluate
from ml.params import ESTIMATORS, Params
from ml.train import build_pipeline, train


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_training_twice_gives_identical_model_bytes(
    tmp_path: Path, small_params: Params, contract_path: Path, splits, estimator: str
) -> None:
    params = replace(small_params.train, estimator=estimator)
    first, second = tmp_path / "a" / "model.joblib", tmp_path / "b" / "model.joblib"
    train(params, 3, contract_path, splits["train"], first)
    train(params, 3, contract_path, splits["train"], second)
    assert sha256_file(first) == sha256_file(second)


def test_seed_changes_a_random_forest(small_params: Params) -> None:
    params = replace(small_params.train, estimator="random_forest")
    assert build_pipeline(params, 1).get_params()["model__random_state"] == 1


def test_only_logistic_regression_is_scaled(small_params: Params) -> None:
    for estimator in ESTIMATORS:
        steps = [
            name
            for name, _ in build_pipeline(replace(small_params.train, estimator=estimator), 0).steps
        ]
        assert steps == (
            ["impute", "scale", "model"]
            if estimator == "logistic_regression"
            else ["impute", "model"]
        )


def test_evaluate_writes_metrics_and_plots(
    tmp_path: Path, small_params: Params, contract_path: Path, splits
) -> None:
    model = tmp_path / "model" / "model.joblib"
    train(small_params.train, 0, contract_path, splits["train"], model)
    metrics_path, plots = tmp_path / "eval" / "metrics.json", tmp_path / "eval" / "plots"
    predictions = tmp_path / "eval" / "predictions.csv"
    metrics = evaluate(model, contract_path, splits["test"], 1, metrics_path, plots, predictions)

    assert set(json.loads(metrics_path.read_text())) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
    }
    assert metrics["accuracy"] > 0.8 and metrics["roc_auc"] > 0.9
    confusion = (plots / "confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) == 31
    assert (plots / "roc.csv").read_text().startswith("fpr,tpr,threshold\n")
    rows = pd.read_csv(predictions, index_col="row")
    assert list(rows.index) == list(range(90, 120))  # the source rows of the test split
    assert metrics["accuracy"] == round(float((rows["actual"] == rows["predicted"]).mean()), 6)


def test_metrics_match_hand_computed_values() -> None:
    labels = np.array([1, 1, 0, 0])
    predicted = np.array([1, 0, 0, 0])
    scores = np.array([0.9, 0.4, 0.3, 0.1])
    assert compute_metrics(labels, predicted, scores, 1) == {
        "accuracy": 0.75,
        "precision": 1.0,
        "recall": 0.5,
        "f1": 0.666667,
        "roc_auc": 1.0,
    }


def test_unknown_positive_label_is_named(
    tmp_path: Path, small_params: Params, contract_path: Path, splits
) -> None:
    model = tmp_path / "model.joblib"
    train(small_params.train, 0, contract_path, splits["train"], model)
    with pytest.raises(MLError, match=r"evaluate\.positive_label 9"):
        evaluate(model, contract_path, splits["test"], 9, tmp_path / "m.json", tmp_path / "p")
