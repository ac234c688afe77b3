"""Where each stage reads and writes (one output directory per stage), and the shared file I/O.

The paths here are the ones declared in dvc.yaml; stages run from the repository root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ml.errors import MLError

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
TRAIN_CSV = PREPARED_DIR / "train.csv"
TEST_CSV = PREPARED_DIR / "test.csv"
REPORTS_DIR = Path("reports")
VALIDATION_REPORT = REPORTS_DIR / "data_validation.json"
MODEL_DIR = Path("model")
MODEL_FILE = MODEL_DIR / "model.joblib"
EVAL_DIR = Path("eval")
METRICS_FILE = EVAL_DIR / "metrics.json"
PLOTS_DIR = EVAL_DIR / "plots"
PREDICTIONS_FILE = EVAL_DIR / "predictions.csv"
BUNDLE_DIR = Path("bundle")
MODEL_CARD_SCHEMA = Path("policies/schemas/model_card.schema.json")

# Prepared CSVs keep the source row number so a failing row can be found in the source file.
ROW_INDEX = "row"


def read_split(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise MLError(f"{path}: file not found", hint="run `dvc repro prepare`")
    frame = pd.read_csv(path, index_col=ROW_INDEX)
    return frame


def write_split(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index_label=ROW_INDEX, lineterminator="\n")


def write_json(path: Path, value: Any) -> None:
    """Stable, readable JSON (sorted keys, trailing newline) so equal content hashes equal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True, ensure_ascii=False)
        handle.write("\n")


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise MLError(f"{path}: file not found", hint="run `dvc repro`")
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)
