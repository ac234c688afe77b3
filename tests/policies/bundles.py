"""Model bundles for tests: small, complete, valid against the bundle and model-card contracts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ml.bundle import MANIFEST, sha256_file

GOOD_METRICS = {
    "accuracy": 0.965,
    "precision": 0.98,
    "recall": 0.9245,
    "f1": 0.9515,
    "roc_auc": 0.9962,
}
POOR_METRICS = {"accuracy": 0.82, "precision": 0.85, "recall": 0.8, "f1": 0.81, "roc_auc": 0.88}
DATA_SHA = "4" * 64


def model_card(metrics: dict[str, float]) -> dict[str, Any]:
    dataset = {"source": "sklearn:breast_cancer", "sha256": DATA_SHA, "rows": 100}
    return {
        "schema_version": 1,
        "name": "liftlock-test-model",
        "owner": "ml-platform",
        "intended_use": "Test bundle for the policy and promotion tests; never served.",
        "limitations": ["synthetic"],
        "model": {
            "estimator": "logistic_regression",
            "steps": ["scale", "model"],
            "features": 30,
            "target": "malignant",
            "classes": [0, 1],
            "positive_label": 1,
            "serving_format": "onnx",
        },
        "training_data": dataset,
        "evaluation_data": dataset,
        "metrics": dict(metrics),
        "data_validation": {
            "contract_sha256": DATA_SHA,
            "rules": 9,
            "valid": True,
            "violations": 0,
        },
    }


def write_json(path: Path, value: Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)


def make_bundle(folder: Path, metrics: dict[str, float] | None = None, *, tag: str = "") -> Path:
    """A bundle in `folder` (metrics, model card, data report, a model file) with bundle.json.

    `tag` changes the model bytes, hence the digest, for tests that need two bundles.
    """
    metrics = dict(metrics or GOOD_METRICS)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "metrics.json", metrics)
    write_json(folder / "model_card.json", model_card(metrics))
    write_json(folder / "data_validation.json", {"valid": True, "violations": []})
    (folder / "model.onnx").write_bytes(b"onnx-bytes" + tag.encode())
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.name != MANIFEST}
    manifest = {
        "schema_version": 1,
        "files": files,
        "metrics": metrics,
        "data": {"sha256": DATA_SHA},
    }
    write_json(folder / MANIFEST, manifest)
    return folder
