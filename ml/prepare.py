"""Stage `prepare`: load the source data and split it train/test deterministically.

The default source is Breast Cancer Wisconsin (diagnostic), bundled with scikit-learn (offline).
Its columns are renamed to snake_case and its label is written as `malignant` (1 = malignant),
the class a screening model must not miss. Any CSV under data/raw/ with a label column works
too: set `prepare.source` and `prepare.target` (and a matching `validate.contract`).
Nothing is coerced or dropped here: judging the data is `validate`'s job.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from ml.dataset import ROW_INDEX, TEST_CSV, TRAIN_CSV, write_split
from ml.errors import DataContractError
from ml.params import BUILTIN_SOURCE, PrepareParams, load_params
from ml.runner import run_stage

BUILTIN_TARGET = "malignant"


def load_builtin() -> pd.DataFrame:
    """Breast Cancer Wisconsin with snake_case columns and `malignant` (1 = malignant) last."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.rename(columns=lambda name: name.replace(" ", "_"))
    # sklearn encodes 0 = malignant, 1 = benign.
    frame[BUILTIN_TARGET] = (bunch.target == 0).astype("int64")
    return frame


def load_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataContractError(
            f"{path}: source CSV not found", hint="fix prepare.source in params.yaml"
        )
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataContractError(f"{path}: not a readable CSV ({error})") from error
    return frame.reset_index(drop=True)


def load_source(source: str) -> pd.DataFrame:
    return load_builtin() if source == BUILTIN_SOURCE else load_csv(Path(source))


def split_data(
    frame: pd.DataFrame, target: str, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic split, stratified on the label when every class has at least two rows."""
    if target not in frame.columns:
        raise DataContractError(
            f"column '{target}', rule 'required': the label column is missing from the data "
            f"(columns: {', '.join(map(str, frame.columns[:8]))}...)",
            hint="fix prepare.target in params.yaml or the source CSV",
        )
    if ROW_INDEX in frame.columns:
        raise DataContractError(
            f"column '{ROW_INDEX}', rule 'reserved': the prepared splits use '{ROW_INDEX}' for "
            "the source row number",
            hint=f"rename the column '{ROW_INDEX}' in the source CSV",
        )
    if len(frame) < 4:
        raise DataContractError(f"{len(frame)} rows: too few to split into train and test")
    labels = frame[target]
    counts = labels.value_counts(dropna=False)
    stratify = labels if labels.notna().all() and counts.min() >= 2 else None
    train, test = train_test_split(
        frame, test_size=test_size, random_state=seed, shuffle=True, stratify=stratify
    )
    return train.sort_index(), test.sort_index()


def prepare(params: PrepareParams, seed: int, out_train: Path, out_test: Path) -> str:
    frame = load_source(params.source)
    train, test = split_data(frame, params.target, params.test_size, seed)
    write_split(train, out_train)
    write_split(test, out_test)
    return (
        f"{params.source}: {len(frame)} rows x {frame.shape[1]} columns -> "
        f"{out_train} ({len(train)} rows), {out_test} ({len(test)} rows)"
    )


def prepare_from_params() -> str:
    params = load_params()
    return prepare(params.prepare, params.base.seed, TRAIN_CSV, TEST_CSV)


def main() -> None:
    run_stage("prepare", prepare_from_params)


if __name__ == "__main__":
    main()
