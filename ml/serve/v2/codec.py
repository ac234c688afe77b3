"""The Open Inference Protocol (KServe V2) tensors <-> the model's float64 matrix.

Shared by the REST routes (JSON data or Triton's binary tensor extension) and the gRPC service
(typed contents or raw_input_contents): every path turns its tensors into `Tensor`s (name,
datatype, shape, flat values) and calls `V2Model.matrix`, which applies the data contract with
the same rules as /v1 (`ml.serve.schema.FeatureSpec`): width, row limit, numbers only, NaN only
where the contract allows nulls, ranges, integers. A refusal is a `RequestError` whose message
names the input and the rule; REST answers it as `{"error": "..."}`, gRPC as a status code.

Two input layouts are accepted, both listed in the model metadata:
- one tensor [rows, n_features] (any name; the metadata calls it `input`), as tritonclient,
  kserve and MLServer's NumpyCodec send it;
- one tensor per feature, named after it, shape [rows] or [rows, 1], as MLServer's PandasCodec
  sends a DataFrame.
"""

from __future__ import annotations

import difflib
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.serve.model import LoadedBundle
from ml.serve.schema import FeatureSpec, RequestError

DEFAULT_MODEL_NAME = "model"  # when the model card names none
MATRIX_INPUT = "input"
LABEL_OUTPUT = "predict"
PROBABILITY_OUTPUT = "predict_proba"
# Datatypes a request may use for features, and their little-endian layout for raw bytes.
NUMERIC_DTYPES: dict[str, np.dtype[Any]] = {
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
}
KNOWN_DTYPES = (*NUMERIC_DTYPES, "BOOL", "FP16", "BF16", "BYTES")
_NUMBERS = frozenset((int, float))
_INTEGERS = frozenset((int,))


@dataclass(frozen=True)
class Tensor:
    """One decoded input tensor; `values` is flat float64 (NaN for nulls) in row-major order."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: np.ndarray


@dataclass(frozen=True)
class Output:
    name: str
    datatype: str
    shape: list[int]
    values: np.ndarray


def bad(message: str, status: int = 400) -> RequestError:
    return RequestError(status, message)


class V2Model:
    """What the protocol needs to know of the one model this server serves."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        platform: str,
        specs: list[FeatureSpec],
        classes: list[Any],
        probability_datatype: str,
        max_rows: int,
    ) -> None:
        self.name = name
        self.version = version
        self.platform = platform
        self.specs = specs
        self.features = [spec.name for spec in specs]
        self._index = {name: i for i, name in enumerate(self.features)}
        self.n = len(specs)
        self.classes = classes
        self.max_rows = max_rows
        self._low = np.array([spec.minimum for spec in specs], dtype=np.float64)
        self._high = np.array([spec.maximum for spec in specs], dtype=np.float64)
        self._integer = np.array([spec.integer for spec in specs], dtype=bool)
        self._nullable = np.array([spec.nullable for spec in specs], dtype=bool)
        self._has_integer = bool(self._integer.any())
        string_labels = not all(isinstance(label, int) for label in classes)
        self.label_datatype = "BYTES" if string_labels else "INT64"
        self.probability_datatype = probability_datatype
        self.output_names = (LABEL_OUTPUT, PROBABILITY_OUTPUT)

    # --- metadata ------------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        feature_inputs = [
            {"name": spec.name, "datatype": "INT64" if spec.integer else "FP64", "shape": [-1, 1]}
            for spec in self.specs
        ]
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [
                {"name": MATRIX_INPUT, "datatype": "FP32", "shape": [-1, self.n]},
                *feature_inputs,
            ],
            "outputs": [
                {"name": LABEL_OUTPUT, "datatype": self.label_datatype, "shape": [-1]},
                {
                    "name": PROBABILITY_OUTPUT,
                    "datatype": self.probability_datatype,
                    "shape": [-1, len(self.classes)],
                },
            ],
        }

    def check_model(self, name: str, version: str | None) -> None:
        """404 unless (name, version) is this model; None (not given) means the served one."""
        if name != self.name:
            raise bad(f"model '{name}' is not served here; this server serves '{self.name}'", 404)
        if version is not None and version != self.version:
            raise bad(
                f"model '{name}' has no version '{version}'; the served version is "
                f"'{self.version}'",
                404,
            )

    # --- inputs --------------------------------------------------------------------------------

    def element_count(self, name: str, datatype: str, shape: Any) -> int:
        """Check a tensor's datatype and shape before its data is read; the element count."""
        if datatype not in NUMERIC_DTYPES:
            known = "" if datatype in KNOWN_DTYPES else " (not a V2 datatype)"
            raise bad(
                f"input '{name}': datatype '{datatype}'{known} is not accepted; send FP32 or FP64 "
                "(or an integer type) for the model's numeric features"
            )
        if (
            type(shape) not in (list, tuple)
            or not shape
            or not all(type(size) is int for size in shape)
        ):
            raise bad(f"input '{name}': shape must be a non-empty list of integers, got {shape!r}")
        if any(size < 0 for size in shape):
            raise bad(f"input '{name}': shape {list(shape)} has a negative dimension")
        limit = self.max_rows * self.n
        count = math.prod(shape)
        if count > limit:
            raise bad(
                f"input '{name}': shape {list(shape)} holds {count} values, over the limit of "
                f"{self.max_rows} rows x {self.n} features"
            )
        return count

    def tensor_from_list(self, name: str, datatype: str, shape: Any, data: Any) -> Tensor:
        """A tensor whose data came as JSON: a flat or nested list of numbers in row-major order."""
        count = self.element_count(name, datatype, shape)
        flat = _flatten(name, data)
        if len(flat) != count:
            raise bad(
                f"input '{name}': shape {list(shape)} needs {count} values, data has {len(flat)}"
            )
        types = set(map(type, flat))
        allowed = _NUMBERS if datatype.startswith("FP") else _INTEGERS
        if not allowed.issuperset(types):
            # null is a missing value, allowed where the contract allows nulls (checked below)
            accept = allowed | {type(None)} if self._nullable.any() else allowed
            culprit = next((i for i, value in enumerate(flat) if type(value) not in accept), None)
            if culprit is not None:
                kind = "numbers" if datatype.startswith("FP") else "integers"
                raise bad(
                    f"input '{name}': data[{culprit}] is {_describe(flat[culprit])}; a {datatype} "
                    f"tensor holds {kind} only (NaN and Infinity are not JSON)"
                )
            flat = [math.nan if value is None else value for value in flat]
        try:
            values = np.array(flat, dtype=np.float64)
        except OverflowError:
            raise bad(f"input '{name}': an integer in data is too large for a number") from None
        return Tensor(name, datatype, tuple(shape), values)

    def tensor_from_bytes(self, name: str, datatype: str, shape: Any, raw: bytes) -> Tensor:
        """A tensor whose data came as raw little-endian bytes (binary extension, gRPC raw)."""
        count = self.element_count(name, datatype, shape)
        dtype = NUMERIC_DTYPES[datatype]
        if len(raw) != count * dtype.itemsize:
            raise bad(
                f"input '{name}': shape {list(shape)} x {datatype} is {count * dtype.itemsize} "
                f"bytes, the data has {len(raw)}"
            )
        values = np.frombuffer(raw, dtype=dtype).astype(np.float64)
        self._refuse_non_finite(name, tuple(shape), values)
        return Tensor(name, datatype, tuple(shape), values)

    def tensor_from_values(self, name: str, datatype: str, shape: Any, values: Any) -> Tensor:
        """A tensor from gRPC typed contents (already numbers of the right kind)."""
        count = self.element_count(name, datatype, shape)
        array = np.asarray(values, dtype=np.float64)
        if array.size != count:
            raise bad(
                f"input '{name}': shape {list(shape)} needs {count} values, the "
                f"contents hold {array.size}"
            )
        self._refuse_non_finite(name, tuple(shape), array)
        return Tensor(name, datatype, tuple(shape), array)

    def _refuse_non_finite(self, name: str, shape: tuple[int, ...], values: np.ndarray) -> None:
        """NaN and infinities are refused like /v1 refuses them; a missing value is JSON null (in
        a feature whose contract allows nulls), which binary data cannot carry."""
        bad_values = ~np.isfinite(values)
        if not bad_values.any():
            return
        index = int(np.argmax(bad_values))
        if len(shape) == 2 and shape[1] == self.n:
            where = f"row {index // self.n}, feature '{self.features[index % self.n]}'"
        else:
            where = f"row {index}"
        raise bad(
            f"input '{name}': {where}: {values[index]} is refused: NaN and infinities are not "
            "values (send a missing value as null in JSON data, where the contract allows nulls)"
        )

    def matrix(self, tensors: list[Tensor]) -> np.ndarray:
        """The float64 matrix [rows, features] of the tensors, checked against the contract."""
        if not tensors:
            raise bad(f"inputs: none given; send '{MATRIX_INPUT}' [rows, {self.n}] (FP32 or FP64)")
        if len(tensors) == 1 and not (tensors[0].name in self._index and self.n > 1):
            matrix = self._from_matrix(tensors[0])
        else:
            matrix = self._from_columns(tensors)
        self._check_values(matrix, tensors)
        return matrix

    def _from_matrix(self, tensor: Tensor) -> np.ndarray:
        shape = tensor.shape
        if len(shape) != 2 or shape[1] != self.n:
            raise bad(
                f"input '{tensor.name}': shape {list(shape)} must be [rows, {self.n}] (one column "
                f"per feature, in the order of GET /v2/models/{self.name})"
            )
        self._check_rows(tensor.name, shape[0])
        return tensor.values.reshape(shape)

    def _from_columns(self, tensors: list[Tensor]) -> np.ndarray:
        seen: dict[str, Tensor] = {}
        for tensor in tensors:
            if tensor.name not in self._index:
                close = difflib.get_close_matches(tensor.name, self.features, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise bad(
                    f"input '{tensor.name}': not a feature of the model{hint}; send one tensor "
                    f"'{MATRIX_INPUT}' [rows, {self.n}] or one tensor per feature"
                )
            if tensor.name in seen:
                raise bad(f"input '{tensor.name}': given twice")
            shape = tensor.shape
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise bad(f"input '{tensor.name}': shape {list(shape)} must be [rows] or [rows, 1]")
            seen[tensor.name] = tensor
        missing = [name for name in self.features if name not in seen]
        if missing:
            raise bad(
                f"input '{missing[0]}': missing ({len(missing)} of {self.n} feature tensors "
                "missing); per-feature requests send every feature"
            )
        rows = {tensor.shape[0] for tensor in tensors}
        if len(rows) != 1:
            raise bad(f"inputs: the feature tensors have different row counts {sorted(rows)}")
        self._check_rows(tensors[0].name, tensors[0].shape[0])
        return np.column_stack([seen[name].values for name in self.features])

    def _check_rows(self, name: str, rows: int) -> None:
        if rows < 1:
            raise bad(f"input '{name}': no rows; send at least one")
        if rows > self.max_rows:
            raise bad(f"input '{name}': {rows} rows, at most {self.max_rows} per request")

    def _check_values(self, matrix: np.ndarray, tensors: list[Tensor]) -> None:
        missing = np.isnan(matrix)
        out_of_range = (matrix < self._low) | (matrix > self._high)
        if self._has_integer:
            whole = matrix[:, self._integer]
            out_of_range[:, self._integer] |= np.isfinite(whole) & (whole != np.floor(whole))
        bad_nan = missing & ~self._nullable
        if not (bad_nan.any() or out_of_range.any()):
            return
        problem = bad_nan | out_of_range
        row, column = (int(i) for i in np.argwhere(problem)[0])
        spec = self.specs[column]
        where = f"row {row}, feature '{spec.name}'"
        name = tensors[0].name if len(tensors) == 1 else spec.name
        value = float(matrix[row, column])
        if bad_nan[row, column]:
            rule = "NaN (or null) is not allowed: the contract allows no nulls for this feature"
        elif spec.integer and math.isfinite(value) and not value.is_integer():
            rule = f"expected an integer, got {value}"
        else:
            rule = f"{value} is outside the data contract range [{spec.minimum}, {spec.maximum}]"
        raise bad(f"input '{name}': {where}: {rule}")

    # --- outputs -------------------------------------------------------------------------------

    def outputs(
        self, labels: np.ndarray, probabilities: np.ndarray, requested: list[str] | None
    ) -> list[Output]:
        every = {
            LABEL_OUTPUT: Output(LABEL_OUTPUT, self.label_datatype, [len(labels)], labels),
            PROBABILITY_OUTPUT: Output(
                PROBABILITY_OUTPUT,
                "FP32" if probabilities.dtype == np.float32 else "FP64",
                list(probabilities.shape),
                probabilities,
            ),
        }
        if requested is None:
            return list(every.values())
        return [every[name] for name in requested]

    def check_outputs(self, requested: list[str]) -> None:
        for name in requested:
            if name not in self.output_names:
                raise bad(
                    f"output '{name}': the model has no such output; it has "
                    f"{list(self.output_names)}"
                )


def _flatten(name: str, data: Any) -> list[Any]:
    """Row-major flat list of a (possibly nested) JSON array."""
    if type(data) is not list:
        raise bad(f"input '{name}': data must be an array of numbers, got {_describe(data)}")
    flat = data
    while flat and type(flat[0]) is list:
        if not all(type(item) is list for item in flat):
            raise bad(f"input '{name}': data mixes arrays and values at one nesting level")
        flat = list(itertools.chain.from_iterable(flat))
    return flat


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({value[:20]!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, float) and not value.is_integer():
        return f"a fraction ({value})"
    return f"{type(value).__name__} {value!r}"


def output_bytes(output: Output) -> bytes:
    """Raw little-endian bytes of an output (binary extension, gRPC raw_output_contents)."""
    if output.datatype == "BYTES":
        parts = []
        for value in output.values.tolist():
            encoded = str(value).encode()
            parts.append(len(encoded).to_bytes(4, "little") + encoded)
        return b"".join(parts)
    dtype = np.dtype("<i8") if output.datatype == "INT64" else NUMERIC_DTYPES[output.datatype]
    return np.ascontiguousarray(output.values, dtype=dtype).tobytes()


def v2_model(bundle: LoadedBundle, specs: list[FeatureSpec], max_rows: int) -> V2Model:
    """The served model as V2 names it: the model card's name, the bundle digest as version."""
    name = str(bundle.model_card.get("name") or DEFAULT_MODEL_NAME)
    onnx = bundle.backend == "onnx"
    return V2Model(
        name=name,
        version=bundle.digest,
        platform="onnx_onnxv1" if onnx else "sklearn_joblib",
        specs=specs,
        classes=bundle.classes,
        probability_datatype="FP32" if onnx else "FP64",
        max_rows=max_rows,
    )
