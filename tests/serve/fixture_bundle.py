"""A small real model bundle with exactly the layout `dvc repro` (stage package) produces.

Built with the pipeline's own functions (ml.prepare, ml.train, ml.onnx_export, ml.contract,
ml.package) on the built-in Breast Cancer data and the repository's params.yaml, but without DVC
and into a temporary directory, so serving tests do not depend on the state of `bundle/`. Used by
the serving tests and by `benchmarks/serve.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FixtureBundle:
    path: Path
    digest: str
    features: list[str]
    x_test: np.ndarray
    y_test: np.ndarray


def build_fixture_bundle(out_dir: Path) -> FixtureBundle:
    import joblib

    from ml.contract import load_contract
    from ml.dataset import write_json
    from ml.onnx_export import export_onnx
    from ml.package import write_manifest
    from ml.params import load_params
    from ml.prepare import load_builtin, split_data
    from ml.train import features_and_labels, fit

    params = load_params(ROOT / "params.yaml")
    contract = load_contract(ROOT / params.validate.contract)
    train, test = split_data(
        load_builtin(), params.prepare.target, params.prepare.test_size, params.base.seed
    )
    x_train, y_train = features_and_labels(train, contract)
    x_test, y_test = features_and_labels(test, contract)
    pipeline = fit(params.train, params.base.seed, x_train, y_train)

    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, out_dir / "model.joblib")
    (out_dir / "model.onnx").write_bytes(export_onnx(pipeline, len(contract.features)))
    metrics = {"accuracy": float((pipeline.predict(x_test) == y_test).mean())}
    write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / "data_contract.json", contract.for_bundle())
    write_json(out_dir / "model_card.json", {"name": "serving-test-fixture", "metrics": metrics})
    with (out_dir / "reference.csv").open("w", encoding="utf-8", newline="") as handle:
        train[contract.feature_names].to_csv(handle, index=False, lineterminator="\n")
    _, digest = write_manifest(
        out_dir,
        {
            "features": contract.feature_names,
            "classes": [int(label) for label in pipeline.classes_],
            "params": params.as_dict(),
            "metrics": metrics,
            "data": {"source": params.prepare.source, "rows": len(train) + len(test)},
        },
    )
    return FixtureBundle(
        path=out_dir, digest=digest, features=contract.feature_names, x_test=x_test, y_test=y_test
    )
