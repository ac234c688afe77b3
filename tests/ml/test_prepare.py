"""prepare: the bundled dataset, user CSVs, and a deterministic stratified split."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.dataset import read_split
from ml.errors import DataContractError
from ml.params import BUILTIN_SOURCE, PrepareParams
from ml.prepare import load_builtin, prepare, split_data
from tests.ml.conftest import TARGET, small_frame


def test_builtin_dataset_has_snake_case_columns_and_malignant_label() -> None:
    frame = load_builtin()
    assert frame.shape == (569, 31)
    assert "mean_radius" in frame.columns and frame.columns[-1] == "malignant"
    assert int(frame["malignant"].sum()) == 212  # 212 malignant, 357 benign


def test_split_is_deterministic_stratified_and_disjoint() -> None:
    frame = small_frame(rows=200)
    train_a, test_a = split_data(frame, TARGET, 0.25, seed=7)
    train_b, test_b = split_data(frame, TARGET, 0.25, seed=7)
    assert train_a.equals(train_b) and test_a.equals(test_b)
    assert set(train_a.index).isdisjoint(test_a.index) and len(train_a) + len(test_a) == 200
    assert test_a[TARGET].mean() == pytest.approx(0.5)


def test_user_csv_keeps_source_row_numbers(tmp_path: Path) -> None:
    source = tmp_path / "mine.csv"
    small_frame(rows=40).to_csv(source, index=False)
    out_train, out_test = tmp_path / "p" / "train.csv", tmp_path / "p" / "test.csv"
    summary = prepare(PrepareParams(str(source), TARGET, 0.25), 1, out_train, out_test)
    train, test = read_split(out_train), read_split(out_test)
    assert sorted([*train.index, *test.index]) == list(range(40))
    assert "40 rows" in summary


def test_missing_label_column_is_named() -> None:
    with pytest.raises(DataContractError, match="column 'diagnosis', rule 'required'"):
        split_data(small_frame(), "diagnosis", 0.25, seed=0)


def test_a_column_named_row_is_refused() -> None:
    with pytest.raises(DataContractError, match="column 'row', rule 'reserved'"):
        split_data(small_frame().assign(row=1), TARGET, 0.25, seed=0)


def test_missing_source_csv_is_named(tmp_path: Path) -> None:
    params = PrepareParams(str(tmp_path / "nope.csv"), TARGET, 0.25)
    with pytest.raises(DataContractError, match=r"nope\.csv: source CSV not found"):
        prepare(params, 0, tmp_path / "a.csv", tmp_path / "b.csv")


def test_builtin_source_name_is_stable() -> None:
    assert BUILTIN_SOURCE == "sklearn:breast_cancer"
