"""Load a verified bundle and the predictor the server calls.

Every file is checked against `bundle.json` (ml.bundle.verify_bundle) before anything is
deserialised, so a tampered model is never loaded. Predictors share one signature:
`predict(x: float64 array [n, n_features]) -> (labels array [n], probabilities float array [n, k])`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ml.bundle import MANIFEST, read_manifest, verify_bundle
from ml.errors import BundleError

ONNX_FILE = "model.onnx"
SKLEARN_FILE = "model.joblib"
CONTRACT_FILE = "data_contract.json"
CARD_FILE = "model_card.json"
REFERENCE_FILE = "reference.csv"


class Predictor(Protocol):
    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class OnnxPredictor:
    """ONNX Runtime on the skl2onnx export: float32 input, outputs label + probabilities."""

    def __init__(self, path: Path, n_features: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One request is a few microseconds of math: thread pools only add hand-off latency.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise BundleError(f"{path}: ONNX Runtime cannot load the model ({error})") from error
        inputs = self._session.get_inputs()
        outputs = [output.name for output in self._session.get_outputs()]
        if len(inputs) != 1 or len(outputs) < 2:
            raise BundleError(
                f"{path}: expected one input and outputs (label, probabilities), "
                f"found inputs {[i.name for i in inputs]} outputs {outputs}",
                hint="export the whole Pipeline with skl2onnx, options={'zipmap': False}",
            )
        width = inputs[0].shape[-1]
        if isinstance(width, int) and width != n_features:
            raise BundleError(
                f"{path}: the model takes {width} features, bundle.json lists {n_features}"
            )
        self._input = inputs[0].name
        self._outputs = outputs[:2]
        self._run = self._session.run

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, probabilities = self._run(self._outputs, {self._input: x.astype(np.float32)})
        if not isinstance(probabilities, np.ndarray):
            raise BundleError(
                "model.onnx returns probabilities as a ZipMap (list of dicts)",
                hint="re-export with skl2onnx options={'zipmap': False}",
            )
        return labels, probabilities


class SklearnPredictor:
    """The fallback: the bundle's scikit-learn Pipeline itself."""

    def __init__(self, path: Path) -> None:
        import joblib

        self._model = joblib.load(path)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._model.predict(x), self._model.predict_proba(x)


@dataclass(frozen=True)
class LoadedBundle:
    path: Path
    digest: str
    manifest: dict[str, Any]
    model_card: dict[str, Any]
    contract: dict[str, Any]
    features: list[str]
    classes: list[Any]
    predictor: Predictor
    backend: str


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BundleError(f"{path}: missing from the bundle")
    with path.open(encoding="utf-8") as handle:
        value = json.load(handle)
    if not isinstance(value, dict):
        raise BundleError(f"{path}: expected a JSON object")
    return value


def _manifest_list(manifest: dict[str, Any], key: str, bundle_dir: Path) -> list[Any]:
    value = manifest.get(key)
    if not isinstance(value, list) or not value:
        raise BundleError(f"{bundle_dir / MANIFEST}: key '{key}' missing or not a non-empty list")
    return value


def read_manifest_features(bundle_dir: Path) -> list[str]:
    """The model's feature order from bundle.json (call verify_bundle first)."""
    manifest = read_manifest(bundle_dir)
    return [str(name) for name in _manifest_list(manifest, "features", bundle_dir)]


def load_bundle(bundle_dir: Path, backend: str = "onnx") -> LoadedBundle:
    """Verify every file's sha256, then load the model with the chosen backend."""
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleError(
            f"{bundle_dir}: no such bundle directory", hint="build it with `dvc repro`"
        )
    digest = verify_bundle(bundle_dir)
    manifest = read_manifest(bundle_dir)
    features = [str(name) for name in _manifest_list(manifest, "features", bundle_dir)]
    classes = _manifest_list(manifest, "classes", bundle_dir)
    for required in (ONNX_FILE if backend == "onnx" else SKLEARN_FILE, CONTRACT_FILE):
        if required not in manifest["files"]:
            raise BundleError(f"{bundle_dir / MANIFEST}: '{required}' is not listed in 'files'")
    predictor: Predictor
    if backend == "onnx":
        predictor = OnnxPredictor(bundle_dir / ONNX_FILE, len(features))
    else:
        predictor = SklearnPredictor(bundle_dir / SKLEARN_FILE)
    card_path = bundle_dir / CARD_FILE
    return LoadedBundle(
        path=bundle_dir,
        digest=digest,
        manifest=manifest,
        model_card=_read_json(card_path) if card_path.is_file() else {},
        contract=_read_json(bundle_dir / CONTRACT_FILE),
        features=features,
        classes=classes,
        predictor=predictor,
        backend=backend,
    )
