"""Stage `package`: assemble the content-addressed model bundle in `bundle/`.

The bundle holds the fitted Pipeline (`model.joblib`), its ONNX export checked against sklearn
on the test split (`model.onnx`), `metrics.json`, `data_validation.json`, `data_contract.json`,
`reference.csv` (training features for drift checks), `model_card.json` (validated against
policies/schemas/model_card.schema.json) and `bundle.json`: the sha256 of every other file plus
data digests, params, metrics, features, classes, the ONNX check and the numeric environment.
Content only — the bundle digest (ml.bundle.manifest_digest) is equal for equal params and data,
on every machine (ml/numeric_env.py).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import onnx
import pandas as pd
import skl2onnx
import sklearn
from sklearn.pipeline import Pipeline

from ml.bundle import MANIFEST, manifest_digest, sha256_file
from ml.contract import Contract, load_contract
from ml.dataset import (
    BUNDLE_DIR,
    METRICS_FILE,
    MODEL_CARD_SCHEMA,
    MODEL_FILE,
    TEST_CSV,
    TRAIN_CSV,
    VALIDATION_REPORT,
    read_json,
    read_split,
    write_json,
)
from ml.errors import BundleError, DataContractError
from ml.evaluate import load_model
from ml.numeric_env import in_force
from ml.onnx_export import OnnxCheck, check_onnx, export_onnx
from ml.params import Params, load_params
from ml.runner import run_stage
from ml.train import features_and_labels

SCHEMA_VERSION = 1
METRIC_KEYS = ("accuracy", "precision", "recall", "f1", "roc_auc")


@dataclass(frozen=True)
class PackageInputs:
    model: Path = MODEL_FILE
    train_csv: Path = TRAIN_CSV
    test_csv: Path = TEST_CSV
    metrics: Path = METRICS_FILE
    validation_report: Path = VALIDATION_REPORT
    model_card_schema: Path = MODEL_CARD_SCHEMA


def dataset_digest(paths: list[Path]) -> str:
    """sha256 over the splits' bytes in order: one digest for "the data"."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def reference_sample(train: pd.DataFrame, contract: Contract, cap: int, seed: int) -> pd.DataFrame:
    """The training features, capped to a deterministic sample of at most `cap` rows."""
    features = train[contract.feature_names]
    if len(features) > cap:
        features = features.sample(n=cap, random_state=seed).sort_index()
    return features


def require_valid_data(report: dict[str, Any], path: Path) -> None:
    if report.get("valid") is not True:
        raise DataContractError(
            f"{path}: the data did not pass validation; refusing to package",
            hint="run `dvc repro validate` and fix the violations it names",
        )


def model_card(
    params: Params,
    contract: Contract,
    pipeline: Pipeline,
    data: dict[str, Any],
    metrics: dict[str, float],
    report: dict[str, Any],
) -> dict[str, Any]:
    card = params.package.model_card
    return {
        "schema_version": SCHEMA_VERSION,
        "name": card.name,
        "owner": card.owner,
        "intended_use": card.intended_use,
        "limitations": list(card.limitations),
        "model": {
            "estimator": params.train.estimator,
            "steps": [name for name, _ in pipeline.steps],
            "features": len(contract.features),
            "target": contract.target.name,
            "classes": [int(label) for label in pipeline.classes_],
            "positive_label": params.evaluate.positive_label,
            "serving_format": "onnx",
        },
        "training_data": {"source": data["source"], **data["train"]},
        "evaluation_data": {"source": data["source"], **data["test"]},
        "metrics": metrics,
        "data_validation": {
            "valid": bool(report["valid"]),
            "contract_sha256": contract.sha256,
            "rules": len(report["rules"]),
            "violations": len(report["violations"]),
        },
    }


def validate_model_card(card: dict[str, Any], schema_path: Path) -> None:
    schema = read_json(schema_path)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(card), key=lambda e: list(e.path)
    )
    if errors:
        first = errors[0]
        where = ".".join(map(str, first.path)) or "(root)"
        raise BundleError(
            f"model_card.json: '{where}' {first.message} (schema {schema_path})",
            hint="fix package.model_card in params.yaml",
        )


def write_manifest(bundle_dir: Path, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    files = {
        path.name: sha256_file(path)
        for path in sorted(bundle_dir.iterdir())
        if path.is_file() and path.name != MANIFEST
    }
    manifest = {"schema_version": SCHEMA_VERSION, "files": files, **body}
    # Pretty on disk for people; the digest is over the canonical form, not these bytes.
    write_json(bundle_dir / MANIFEST, manifest)
    return manifest, manifest_digest(manifest)


def package(params: Params, contract_path: Path, out: Path, inputs: PackageInputs) -> str:
    report = read_json(inputs.validation_report)
    require_valid_data(report, inputs.validation_report)
    contract = load_contract(contract_path)
    pipeline = load_model(inputs.model)
    train = read_split(inputs.train_csv)
    test_features, _ = features_and_labels(read_split(inputs.test_csv), contract)
    metrics = read_json(inputs.metrics)
    missing = [key for key in METRIC_KEYS if key not in metrics]
    if missing:
        raise BundleError(f"{inputs.metrics}: metrics {missing} missing", hint="run evaluate")

    onnx_bytes = export_onnx(pipeline, len(contract.features))
    check: OnnxCheck = check_onnx(
        onnx_bytes, pipeline, test_features, params.package.onnx_tolerance
    )

    data = {
        "source": params.prepare.source,
        "sha256": dataset_digest([inputs.train_csv, inputs.test_csv]),
        "rows": len(train) + len(test_features),
        "train": {"sha256": sha256_file(inputs.train_csv), "rows": len(train)},
        "test": {"sha256": sha256_file(inputs.test_csv), "rows": len(test_features)},
        "contract": {"path": contract.path.as_posix(), "sha256": contract.sha256},
    }
    card = model_card(params, contract, pipeline, data, metrics, report)
    validate_model_card(card, inputs.model_card_schema)

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copyfile(inputs.model, out / "model.joblib")
    (out / "model.onnx").write_bytes(onnx_bytes)
    shutil.copyfile(inputs.metrics, out / "metrics.json")
    shutil.copyfile(inputs.validation_report, out / "data_validation.json")
    write_json(out / "data_contract.json", contract.for_bundle())
    write_json(out / "model_card.json", card)
    reference = reference_sample(train, contract, params.package.reference_rows, params.base.seed)
    with (out / "reference.csv").open("w", encoding="utf-8", newline="") as handle:
        reference.to_csv(handle, index=False, lineterminator="\n")

    _, digest = write_manifest(
        out,
        {
            "data": data,
            "params": params.as_dict(),
            "metrics": metrics,
            "features": contract.feature_names,
            "target": contract.target.name,
            "classes": [int(label) for label in pipeline.classes_],
            "onnx": check.as_dict(),
            "model": {
                "estimator": params.train.estimator,
                "steps": [name for name, _ in pipeline.steps],
            },
            # Under which numeric environment the model was made (ml/numeric_env.py): a digest
            # made elsewhere than under the pin says so here.
            "numeric_env": in_force(),
            "versions": {
                "scikit-learn": sklearn.__version__,
                "skl2onnx": skl2onnx.__version__,
                "onnx": onnx.__version__,
                "numpy": np.__version__,
            },
        },
    )
    return (
        f"{out}/ ({params.train.estimator}, ONNX max |dp| {check.max_prob_diff:.2g} on "
        f"{check.rows} rows, {len(reference)} reference rows) digest {digest}"
    )


def package_from_params() -> str:
    params = load_params()
    return package(params, Path(params.validate.contract), BUNDLE_DIR, PackageInputs())


def main() -> None:
    run_stage("package", package_from_params)


if __name__ == "__main__":
    main()
