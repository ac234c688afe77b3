"""params.yaml is read by one module; a broken file names the key and how to fix it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ml.errors import ParamsError
from ml.params import ESTIMATORS, load_params, parse_params


@pytest.fixture
def raw(repo_root: Path) -> dict:
    with (repo_root / "params.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_repository_params_are_valid(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml")
    assert params.train.estimator in ESTIMATORS
    assert params.as_dict()["package"]["model_card"]["limitations"]


@pytest.mark.parametrize(
    ("section", "key", "value", "named"),
    [
        ("base", "seed", "forty-two", "base.seed"),
        ("base", "seed", -1, "base.seed"),
        ("prepare", "test_size", 1.5, "prepare.test_size"),
        ("prepare", "source", "/etc/passwd.csv", "prepare.source"),
        ("train", "estimator", "svm", "train.estimator"),
        ("package", "onnx_tolerance", 0, "package.onnx_tolerance"),
    ],
)
def test_bad_value_names_the_key(raw: dict, section: str, key: str, value: object, named: str):
    broken = copy.deepcopy(raw)
    broken[section][key] = value
    with pytest.raises(ParamsError, match=rf"'{named}' must be"):
        parse_params(broken)


def test_nested_bad_value_names_the_dotted_key(raw: dict) -> None:
    broken = copy.deepcopy(raw)
    broken["train"]["random_forest"]["n_estimators"] = True
    with pytest.raises(ParamsError, match=r"train\.random_forest\.n_estimators"):
        parse_params(broken)


def test_missing_key_is_named(raw: dict) -> None:
    broken = copy.deepcopy(raw)
    del broken["train"]["gradient_boosting"]["learning_rate"]
    with pytest.raises(ParamsError, match=r"'train\.gradient_boosting\.learning_rate' is missing"):
        parse_params(broken)


def test_unknown_key_is_a_typo(raw: dict) -> None:
    broken = copy.deepcopy(raw)
    broken["train"]["logistic_regression"]["c"] = 2.0
    with pytest.raises(ParamsError, match=r"unknown key 'train\.logistic_regression\.c'"):
        parse_params(broken)


def test_user_csv_under_data_raw_is_accepted(raw: dict) -> None:
    mine = copy.deepcopy(raw)
    mine["prepare"]["source"] = "data/raw/mine.csv"
    assert parse_params(mine).prepare.source == "data/raw/mine.csv"


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("base: [unclosed\n", encoding="utf-8")
    with pytest.raises(ParamsError, match=r"params\.yaml: not valid YAML"):
        load_params(path)


def test_default_remote_is_local_and_outside_the_work_tree(repo_root: Path) -> None:
    import configparser

    config = configparser.ConfigParser()
    config.read(repo_root / ".dvc" / "config", encoding="utf-8")
    default = config["core"]["remote"]
    url = config[f"'remote \"{default}\"'"]["url"]
    assert url.startswith("~/"), "the committed remote must work for every user (no absolute path)"
    assert ".cache/liftlock/dvc-remote" in url
