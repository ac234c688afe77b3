"""Stage `train`: fit a scikit-learn Pipeline (impute -> [scale] -> estimator) chosen by params.

Deterministic for a given seed: every random component gets `base.seed`, trees fit on one core,
and the model is written with a fixed pickle protocol so equal models give equal bytes.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ml.contract import Contract, load_contract
from ml.dataset import MODEL_FILE, TRAIN_CSV, read_split
from ml.params import TrainParams, load_params
from ml.runner import run_stage

PICKLE_PROTOCOL = 4


def build_estimator(params: TrainParams, seed: int) -> object:
    if params.estimator == "logistic_regression":
        lr = params.logistic_regression
        return LogisticRegression(C=lr.C, max_iter=lr.max_iter, random_state=seed)
    if params.estimator == "random_forest":
        rf = params.random_forest
        return RandomForestClassifier(
            n_estimators=rf.n_estimators,
            max_depth=rf.max_depth,
            min_samples_leaf=rf.min_samples_leaf,
            random_state=seed,
            n_jobs=1,
        )
    gb = params.gradient_boosting
    return GradientBoostingClassifier(
        n_estimators=gb.n_estimators,
        learning_rate=gb.learning_rate,
        max_depth=gb.max_depth,
        random_state=seed,
    )


def build_pipeline(params: TrainParams, seed: int) -> Pipeline:
    steps: list[tuple[str, object]] = [("impute", SimpleImputer(strategy=params.impute))]
    # Scaling only where it matters: trees split on raw values, and a float32 scaler in the
    # ONNX graph could move a value across a split threshold.
    if params.estimator == "logistic_regression":
        steps.append(("scale", StandardScaler()))
    steps.append(("model", build_estimator(params, seed)))
    return Pipeline(steps)


def features_and_labels(frame: pd.DataFrame, contract: Contract) -> tuple[np.ndarray, np.ndarray]:
    """The model's input matrix in contract order (float64) and the labels."""
    features = frame[contract.feature_names].astype("float64").to_numpy()
    labels = frame[contract.target.name].astype("int64").to_numpy()
    return features, labels


def fit(params: TrainParams, seed: int, features: np.ndarray, labels: np.ndarray) -> Pipeline:
    pipeline = build_pipeline(params, seed)
    pipeline.fit(features, labels)
    return pipeline


def save_model(pipeline: Pipeline, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, path, protocol=PICKLE_PROTOCOL)


def train(params: TrainParams, seed: int, contract_path: Path, train_csv: Path, out: Path) -> str:
    contract = load_contract(contract_path)
    features, labels = features_and_labels(read_split(train_csv), contract)
    pipeline = fit(params, seed, features, labels)
    save_model(pipeline, out)
    steps = " -> ".join(name for name, _ in pipeline.steps)
    return (
        f"{params.estimator} ({steps}) on {features.shape[0]} rows x {features.shape[1]} "
        f"features -> {out}"
    )


def train_from_params() -> str:
    params = load_params()
    return train(
        params.train, params.base.seed, Path(params.validate.contract), TRAIN_CSV, MODEL_FILE
    )


def main() -> None:
    run_stage("train", train_from_params)


if __name__ == "__main__":
    main()
