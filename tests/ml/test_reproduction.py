"""ml.reproduction on small in-process bundles: bit-identical, equivalent, different."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import joblib
import pytest

from ml.contract import load_contract
from ml.dataset import read_split
from ml.package import package
from ml.params import Params
from ml.reproduction import Verdict, compare_bundles
from ml.train import features_and_labels, save_model
from tests.ml.conftest import stage_outputs


@pytest.fixture
def record(tmp_path: Path, small_params: Params, contract_path: Path, splits):
    """(bundle of record, package inputs, test features)."""
    inputs = stage_outputs(tmp_path / "stages", small_params, contract_path, splits)
    package(small_params, contract_path, tmp_path / "record", inputs)
    features, _ = features_and_labels(read_split(splits["test"]), load_contract(contract_path))
    return tmp_path / "record", inputs, features


def _nudged(inputs, tmp: Path, change) -> object:
    """The package inputs with the fitted model changed by `change(estimator)`."""
    pipeline = joblib.load(inputs.model)
    change(pipeline.named_steps["model"])
    model = tmp / "nudged" / "model.joblib"
    save_model(pipeline, model)
    return replace(inputs, model=model)


def test_the_same_bundle_is_bit_identical(record, tmp_path, small_params, contract_path) -> None:
    bundle, inputs, features = record
    package(small_params, contract_path, tmp_path / "again", inputs)
    result = compare_bundles(bundle, tmp_path / "again", features)
    assert result.verdict is Verdict.BIT_IDENTICAL
    assert result.summary() == "model unchanged (bit-identical)"


def test_last_bit_noise_in_the_model_is_equivalent(
    record, tmp_path, small_params, contract_path
) -> None:
    bundle, inputs, features = record

    def last_bits(model) -> None:
        model.coef_ = model.coef_ * (1 + 1e-14)

    package(small_params, contract_path, tmp_path / "noisy", _nudged(inputs, tmp_path, last_bits))
    result = compare_bundles(bundle, tmp_path / "noisy", features)
    assert result.verdict is Verdict.EQUIVALENT, result.to_json()
    assert result.first_difference.name == "model.joblib"
    assert result.summary().startswith("re-trained: equivalent (model.joblib: last-bit")


def test_other_predictions_from_the_same_inputs_are_different(
    record, tmp_path, small_params, contract_path
) -> None:
    bundle, inputs, features = record

    def flipped(model) -> None:
        model.coef_ = -model.coef_

    package(small_params, contract_path, tmp_path / "flipped", _nudged(inputs, tmp_path, flipped))
    result = compare_bundles(bundle, tmp_path / "flipped", features)
    assert result.verdict is Verdict.DIFFERENT
    assert result.first_difference.name == "model.joblib"
    assert "test predictions differ (sklearn)" in result.first_difference.why


def test_other_params_are_different_and_say_so(
    record, tmp_path, small_params: Params, contract_path, splits
) -> None:
    bundle, _, features = record
    other = replace(
        small_params,
        train=replace(
            small_params.train,
            logistic_regression=replace(small_params.train.logistic_regression, C=0.01),
        ),
    )
    inputs = stage_outputs(tmp_path / "other", other, contract_path, splits)
    package(other, contract_path, tmp_path / "other-bundle", inputs)
    result = compare_bundles(bundle, tmp_path / "other-bundle", features)
    assert result.verdict is Verdict.DIFFERENT
    assert result.summary() == (
        "re-trained: different (bundle.json: trained on other inputs (bundle.json params differ))"
    )
