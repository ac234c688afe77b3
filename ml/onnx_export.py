"""ONNX export of the whole fitted Pipeline (the serving format) and its check against sklearn.

The graph takes one float32 tensor `input` [n, features] (contract order) and returns `label`
[n] and `probabilities` [n, classes] (no ZipMap, so the server gets plain arrays). The check runs
both models on the same float32-rounded rows: predictions must be equal and probabilities
within the tolerance, else ExportError — a model that cannot be served exactly is not packaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from ml.errors import ExportError

INPUT_NAME = "input"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
# Pinned so the same model always yields the same graph bytes, whatever skl2onnx would default to.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


@dataclass(frozen=True)
class OnnxCheck:
    rows: int
    tolerance: float
    max_prob_diff: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": INPUT_NAME,
            "dtype": "float32",
            "outputs": {"label": LABEL_OUTPUT, "probabilities": PROBABILITIES_OUTPUT},
            "opset": dict(TARGET_OPSET),
            "rows_checked": self.rows,
            "predictions_equal": True,
            "tolerance": self.tolerance,
            "probabilities_within_tolerance": True,
            # Not the measured gap itself: ONNX Runtime picks its kernels per CPU (no switch, no
            # pin), so its last bits would make the digest machine-bound. The stage line shows it.
        }


def export_onnx(pipeline: Pipeline, n_features: int) -> bytes:
    """Serialized ONNX model of the whole pipeline; ExportError names the step that fails."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    estimator = pipeline.steps[-1][1]
    try:
        onnx_model = to_onnx(
            pipeline,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            options={id(estimator): {"zipmap": False}},
            target_opset=TARGET_OPSET,
            final_types=None,
        )
    except Exception as error:  # skl2onnx raises many unrelated types for unsupported models
        raise ExportError(
            f"skl2onnx cannot export pipeline steps "
            f"{[type(step).__name__ for _, step in pipeline.steps]}: {error}",
            hint="choose an estimator supported by skl2onnx in train.estimator",
        ) from error
    _rename_outputs(onnx_model)
    _sort_opset_imports(onnx_model)
    return bytes(onnx_model.SerializeToString())


def _sort_opset_imports(onnx_model: Any) -> None:
    """skl2onnx lists the opset imports in hash order, so the same model exported under another
    PYTHONHASHSEED gave other bytes (measured for gradient boosting): sort them by domain."""
    imports = sorted(onnx_model.opset_import, key=lambda entry: (entry.domain, entry.version))
    del onnx_model.opset_import[:]
    onnx_model.opset_import.extend(imports)


def _rename_outputs(onnx_model: Any) -> None:
    """skl2onnx names outputs output_label/output_probability; give them stable short names."""
    renames = {
        onnx_model.graph.output[0].name: LABEL_OUTPUT,
        onnx_model.graph.output[1].name: PROBABILITIES_OUTPUT,
    }
    for node in onnx_model.graph.node:
        for index, name in enumerate(node.output):
            if name in renames:
                node.output[index] = renames[name]
    for output in onnx_model.graph.output:
        output.name = renames[output.name]


def run_onnx(onnx_bytes: bytes, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(
        [LABEL_OUTPUT, PROBABILITIES_OUTPUT], {INPUT_NAME: features.astype(np.float32)}
    )
    return np.asarray(labels), np.asarray(probabilities)


def check_onnx(
    onnx_bytes: bytes, pipeline: Pipeline, features: np.ndarray, tolerance: float
) -> OnnxCheck:
    """Compare ONNX Runtime with sklearn on `features`; ExportError when they disagree."""
    rounded = features.astype(np.float32).astype(np.float64)
    expected_labels = pipeline.predict(rounded)
    expected_probabilities = pipeline.predict_proba(rounded)
    labels, probabilities = run_onnx(onnx_bytes, rounded)
    mismatched = np.flatnonzero(labels != expected_labels)
    if mismatched.size:
        raise ExportError(
            f"ONNX predictions differ from sklearn on {mismatched.size} of {len(labels)} test "
            f"rows (first rows: {mismatched[:5].tolist()})",
            hint="the estimator is not exported faithfully; choose another train.estimator",
        )
    if probabilities.shape != expected_probabilities.shape:
        raise ExportError(
            f"ONNX probabilities have shape {probabilities.shape}, sklearn "
            f"{expected_probabilities.shape}"
        )
    max_diff = float(np.max(np.abs(probabilities - expected_probabilities), initial=0.0))
    if not max_diff <= tolerance:
        raise ExportError(
            f"ONNX probabilities differ from sklearn by up to {max_diff:.3g} "
            f"(package.onnx_tolerance is {tolerance:g})",
            hint="investigate the export, or raise package.onnx_tolerance if the gap is harmless",
        )
    return OnnxCheck(rows=len(labels), tolerance=tolerance, max_prob_diff=max_diff)
