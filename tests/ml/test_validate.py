"""The data contract: each rule names column, rule and failing rows; the report is always kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.contract import check_data, combine_splits, load_contract
from ml.dataset import read_split, write_split
from ml.errors import DataContractError
from ml.validate import validate
from tests.ml.conftest import TARGET, small_frame


def _violations(frame: pd.DataFrame, contract_path: Path) -> list[tuple[str, str]]:
    contract = load_contract(contract_path)
    found = check_data(combine_splits({"train": frame}), contract)
    return [(violation.column, violation.rule) for violation in found]


def test_valid_data_has_no_violations(contract_path: Path) -> None:
    assert _violations(small_frame(), contract_path) == []


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (
            lambda f: f.assign(size=f["size"].astype(object).where(f.index != 3, "big")),
            ("size", "type"),
        ),
        (lambda f: f.assign(count=f["count"] + 0.5), ("count", "type")),
        (lambda f: f.assign(size=f["size"].where(f.index != 5, 1e6)), ("size", "maximum")),
        (lambda f: f.assign(texture=f["texture"].where(f.index != 2, -50)), ("texture", "minimum")),
        (lambda f: f.drop(columns=["texture"]), ("texture", "required")),
        (lambda f: f.assign(extra=1), ("extra", "additionalProperties")),
        (lambda f: f.assign(size=f["size"].where(f.index % 4 != 0)), ("size", "max_null_fraction")),
        (lambda f: f.assign(**{TARGET: f[TARGET].where(f.index != 1, 7)}), (TARGET, "enum")),
        (
            lambda f: f.assign(**{TARGET: (f.index % 10 == 0).astype(int)}),
            (TARGET, "class_fraction"),
        ),
        (lambda f: f.head(10), ("*", "rows")),
    ],
)
def test_each_rule_names_column_and_rule(contract_path: Path, corrupt, expected) -> None:
    assert expected in _violations(corrupt(small_frame()), contract_path)


def test_null_label_is_a_type_violation(contract_path: Path) -> None:
    frame = small_frame()
    frame[TARGET] = frame[TARGET].astype("float64").where(frame.index != 4)
    assert (TARGET, "type") in _violations(frame, contract_path)


def test_validate_writes_report_and_names_failing_rows(
    tmp_path: Path, contract_path: Path, splits: dict[str, Path]
) -> None:
    train = read_split(splits["train"])
    train.loc[7, "size"] = 999.0
    write_split(train, splits["train"])
    report_path = tmp_path / "reports" / "data_validation.json"

    with pytest.raises(DataContractError) as raised:
        validate(contract_path, TARGET, splits, report_path)

    message = str(raised.value)
    assert "column 'size', rule 'maximum'" in message
    assert "row 7 (train) = 999.0" in message
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["valid"] is False
    assert report["violations"][0]["examples"] == [{"split": "train", "row": 7, "value": 999.0}]


def test_validate_passes_clean_data(tmp_path: Path, contract_path: Path, splits) -> None:
    report_path = tmp_path / "reports" / "data_validation.json"
    summary = validate(contract_path, TARGET, splits, report_path)
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["valid"] is True and report["violations"] == []
    assert report["data"]["train"]["rows"] == 90 and report["data"]["test"]["rows"] == 30
    assert "120 rows" in summary


def test_contract_target_must_match_params(tmp_path: Path, contract_path: Path, splits) -> None:
    with pytest.raises(DataContractError, match=r"differs from prepare\.target 'diagnosis'"):
        validate(contract_path, "diagnosis", splits, tmp_path / "r.json")


def test_broken_contract_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "contract.json"
    path.write_text(json.dumps({"row": {"properties": {}}, "target": "y"}), encoding="utf-8")
    with pytest.raises(DataContractError, match=r"contract\.json: key 'target'"):
        load_contract(path)


def test_example_values_are_json_ready(contract_path: Path) -> None:
    frame = small_frame()
    frame["size"] = frame["size"].where(frame.index % 3 != 0, np.nan)
    contract = load_contract(contract_path)
    (violation,) = check_data(combine_splits({"train": frame}), contract, max_examples=2)
    assert violation.rule == "max_null_fraction"
    assert [example["value"] for example in violation.examples] == [None, None]
    json.dumps(violation.as_dict())
