"""Stage `evaluate`: score the model on the test split.

Writes `eval/metrics.json` (accuracy, precision, recall, f1, roc_auc for the positive label), the
DVC plots `eval/plots/confusion.csv` (actual, predicted per row) and `eval/plots/roc.csv` (all
three `cache: false`, committed to git so `dvc metrics diff` reads any revision), and the
per-row `eval/predictions.csv` (DVC-cached: a fresh clone re-runs this stage to rebuild it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.pipeline import Pipeline

from ml.contract import load_contract
from ml.dataset import (
    METRICS_FILE,
    MODEL_FILE,
    PLOTS_DIR,
    PREDICTIONS_FILE,
    ROW_INDEX,
    TEST_CSV,
    read_split,
    write_json,
)
from ml.errors import MLError
from ml.params import load_params
from ml.runner import run_stage
from ml.train import features_and_labels

METRIC_DIGITS = 6


def load_model(path: Path) -> Pipeline:
    if not path.is_file():
        raise MLError(f"{path}: model not found", hint="run `dvc repro train`")
    return joblib.load(path)


def positive_scores(model: Pipeline, features: np.ndarray, positive_label: int) -> np.ndarray:
    classes = list(model.classes_)
    if positive_label not in classes:
        raise MLError(
            f"evaluate.positive_label {positive_label!r} is not a class of the model {classes}",
            hint="fix evaluate.positive_label in params.yaml",
        )
    return model.predict_proba(features)[:, classes.index(positive_label)]


def compute_metrics(
    labels: np.ndarray, predicted: np.ndarray, scores: np.ndarray, positive_label: int
) -> dict[str, float]:
    binary = labels == positive_label
    values = {
        "accuracy": accuracy_score(labels, predicted),
        "precision": precision_score(labels, predicted, pos_label=positive_label, zero_division=0),
        "recall": recall_score(labels, predicted, pos_label=positive_label, zero_division=0),
        "f1": f1_score(labels, predicted, pos_label=positive_label, zero_division=0),
        "roc_auc": roc_auc_score(binary, scores) if 0 < binary.sum() < len(binary) else 0.0,
    }
    # Rounded so that last-bit float noise never shows up as a metrics diff.
    return {name: round(float(value), METRIC_DIGITS) for name, value in values.items()}


def write_plots(
    labels: np.ndarray, predicted: np.ndarray, scores: np.ndarray, positive_label: int, out: Path
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    confusion = pd.DataFrame({"actual": labels, "predicted": predicted})
    confusion.to_csv(out / "confusion.csv", index=False, lineterminator="\n")
    fpr, tpr, thresholds = roc_curve(labels == positive_label, scores)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thresholds, 1.0)})
    roc.round(METRIC_DIGITS).to_csv(out / "roc.csv", index=False, lineterminator="\n")


def write_predictions(
    rows: pd.Index, labels: np.ndarray, predicted: np.ndarray, scores: np.ndarray, out: Path
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {"actual": labels, "predicted": predicted, "score": scores.round(METRIC_DIGITS)},
        index=rows,
    )
    frame.to_csv(out, index_label=ROW_INDEX, lineterminator="\n")


def evaluate(
    model_path: Path,
    contract_path: Path,
    test_csv: Path,
    positive_label: int,
    metrics_path: Path,
    plots_dir: Path,
    predictions_path: Path | None = None,
) -> dict[str, Any]:
    model = load_model(model_path)
    test = read_split(test_csv)
    features, labels = features_and_labels(test, load_contract(contract_path))
    predicted = model.predict(features)
    scores = positive_scores(model, features, positive_label)
    metrics = compute_metrics(labels, predicted, scores, positive_label)
    write_json(metrics_path, metrics)
    write_plots(labels, predicted, scores, positive_label, plots_dir)
    if predictions_path is not None:
        write_predictions(test.index, labels, predicted, scores, predictions_path)
    return metrics


def evaluate_from_params() -> str:
    params = load_params()
    metrics = evaluate(
        MODEL_FILE,
        Path(params.validate.contract),
        TEST_CSV,
        params.evaluate.positive_label,
        METRICS_FILE,
        PLOTS_DIR,
        PREDICTIONS_FILE,
    )
    shown = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
    return (
        f"{MODEL_FILE} on {TEST_CSV}: {shown} -> {METRICS_FILE}, {PLOTS_DIR}/, {PREDICTIONS_FILE}"
    )


def main() -> None:
    run_stage("evaluate", evaluate_from_params)


if __name__ == "__main__":
    main()
