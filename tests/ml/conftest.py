"""Small-data fixtures for the ML stage tests: a 3-feature contract and matching splits."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.dataset import write_split
from ml.evaluate import evaluate
from ml.package import PackageInputs
from ml.params import Params, load_params
from ml.train import train
from ml.validate import validate

FEATURES = ("size", "texture", "count")
TARGET = "label"


def small_contract_document() -> dict:
    return {
        "title": "small",
        "version": 1,
        "target": TARGET,
        "row": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": [*FEATURES, TARGET],
            "additionalProperties": False,
            "properties": {
                "size": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
                "texture": {"type": ["number", "null"], "minimum": -10, "maximum": 10},
                "count": {"type": ["integer", "null"], "minimum": 0, "maximum": 1000},
                TARGET: {"type": "integer", "enum": [0, 1]},
            },
        },
        "dataset": {
            "rows": {"min": 20, "max": 10000},
            "max_null_fraction": 0.1,
            "class_fraction": {"min": 0.2, "max": 0.8},
        },
    }


def small_frame(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    """Separable-but-noisy binary data that satisfies small_contract_document()."""
    rng = np.random.default_rng(seed)
    label = (np.arange(rows) % 2).astype("int64")
    return pd.DataFrame(
        {
            "size": np.clip(30 + 25 * label + rng.normal(0, 8, rows), 0, 100).round(3),
            "texture": np.clip(rng.normal(0, 2, rows) - label, -10, 10).round(3),
            "count": rng.integers(0, 1000, rows),
            TARGET: label,
        }
    )


@pytest.fixture
def contract_path(tmp_path: Path) -> Path:
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(small_contract_document()), encoding="utf-8")
    return path


@pytest.fixture
def splits(tmp_path: Path) -> dict[str, Path]:
    """train.csv / test.csv with a source `row` index, as `prepare` writes them."""
    frame = small_frame()
    paths = {
        "train": tmp_path / "prepared" / "train.csv",
        "test": tmp_path / "prepared" / "test.csv",
    }
    write_split(frame.iloc[:90], paths["train"])
    write_split(frame.iloc[90:], paths["test"])
    return paths


@pytest.fixture
def repo_params(repo_root: Path) -> Params:
    return load_params(repo_root / "params.yaml")


@pytest.fixture
def small_params(repo_params: Params, contract_path: Path) -> Params:
    """The repository's params, pointed at the small contract with small, fast models."""
    train = replace(
        repo_params.train,
        random_forest=replace(repo_params.train.random_forest, n_estimators=10),
        gradient_boosting=replace(repo_params.train.gradient_boosting, n_estimators=10),
    )
    return replace(
        repo_params,
        prepare=replace(repo_params.prepare, target=TARGET),
        validate=replace(repo_params.validate, contract=str(contract_path)),
        train=train,
    )


def stage_outputs(tmp: Path, params: Params, contract_path: Path, splits) -> PackageInputs:
    """Run validate, train and evaluate in-process into `tmp`: the inputs of `package`."""
    report = tmp / "reports" / "data_validation.json"
    validate(contract_path, params.prepare.target, splits, report)
    model = tmp / "model" / "model.joblib"
    train(params.train, params.base.seed, contract_path, splits["train"], model)
    metrics = tmp / "eval" / "metrics.json"
    evaluate(model, contract_path, splits["test"], 1, metrics, tmp / "eval" / "plots")
    return PackageInputs(model, splits["train"], splits["test"], metrics, report)
