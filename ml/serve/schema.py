"""The request schema, derived from the bundle's data contract, and the predict-path parser.

Parsing is three-tier, each tier only reached when the one before refuses:

1. msgspec decodes the body straight into typed rows (names, types, nullability, ranges and the
   row limit checked in C), then one `np.array` makes the float64 matrix;
2. orjson + a few C-level passes (itemgetter, one type scan, `np.array`, vectorised ranges) —
   the same rules, kept so that every refusal below is explained by the same code;
3. the slow path walks the rows and names the first culprit
   (`rows[3].mean_radius: expected a number, got string "NaN"`).

A valid request never reaches tier 3; an invalid one always does, so the 4xx message does not
depend on which decoder refused. No tier lets through a value the JSON response could not carry
(NaN/Infinity literals are not JSON; infinities from overflowing numbers are refused).
"""

from __future__ import annotations

import difflib
import itertools
import math
import operator
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import numpy as np
import orjson

from ml.errors import BundleError

FLOAT_TYPES = {"float", "float32", "float64", "double", "number", "real"}
INT_TYPES = {"int", "int32", "int64", "integer"}
_NUMBER_TYPES = frozenset((int, float))
ROW_HINT = (
    'send {"row": {feature: value, ...}} or {"rows": [{feature: value, ...}, ...]}; '
    "a row may also be an array of values in feature order"
)


class RequestError(Exception):
    """A bad request: HTTP status, a message naming the problem, and the field when there is one."""

    def __init__(
        self, status: int, message: str, *, field: str | None = None, row: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.row = row

    def body(self) -> bytes:
        return orjson.dumps({"error": self.message, "field": self.field, "row": self.row})

    def v2_body(self) -> bytes:
        """The Open Inference Protocol's error body."""
        return orjson.dumps({"error": self.message})


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of the data contract: the one source of every request schema (the /v1
    parsers' msgspec struct and checks, the pydantic models OpenAPI documents, the V2 codec)."""

    name: str
    integer: bool
    nullable: bool
    minimum: float
    maximum: float

    def bounds(self) -> dict[str, Any]:
        """Finite range limits as `ge`/`le` keywords (msgspec.Meta and pydantic.Field alike)."""
        bounds: dict[str, Any] = {}
        if math.isfinite(self.minimum):
            bounds["ge"] = int(self.minimum) if self.integer else self.minimum
        if math.isfinite(self.maximum):
            bounds["le"] = int(self.maximum) if self.integer else self.maximum
        return bounds

    def value_type(self) -> Any:
        """The Python type of a value: int or float, or None too where nulls are allowed."""
        kind: Any = int if self.integer else float
        return kind | None if self.nullable else kind


def _spec_entries(contract: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Accept the contract's features as a list of {name, ...} or a mapping name -> {...}."""
    raw = contract.get("features")
    if isinstance(raw, dict):
        return {str(name): dict(spec or {}) for name, spec in raw.items()}
    if isinstance(raw, list) and all(isinstance(item, dict) and "name" in item for item in raw):
        return {str(item["name"]): item for item in raw}
    raise BundleError(
        "data_contract.json: key 'features' must list {name, dtype, min, max} per feature"
    )


def _bound(spec: dict[str, Any], keys: tuple[str, ...], default: float, where: str) -> float:
    for key in keys:
        if spec.get(key) is not None:
            try:
                return float(spec[key])
            except (TypeError, ValueError) as error:
                raise BundleError(f"data_contract.json: {where}.{key} is not a number") from error
    value = spec.get("range")
    if isinstance(value, list) and len(value) == 2:
        return float(value[0] if default < 0 else value[1])
    return default


def feature_specs(contract: dict[str, Any], features: list[str]) -> list[FeatureSpec]:
    """One spec per feature, in the model's input order (bundle.json `features`)."""
    entries = _spec_entries(contract)
    specs = []
    for name in features:
        if name not in entries:
            raise BundleError(
                f"data_contract.json: feature '{name}' (listed in bundle.json) has no entry",
                hint="rebuild the bundle so the contract and the model agree",
            )
        spec = entries[name]
        kind = str(spec.get("dtype", spec.get("type", "float"))).lower()
        if kind not in FLOAT_TYPES | INT_TYPES:
            raise BundleError(
                f"data_contract.json: feature '{name}' has type {kind!r}; the server takes "
                f"numeric features only ({sorted(FLOAT_TYPES | INT_TYPES)})"
            )
        specs.append(
            FeatureSpec(
                name=name,
                integer=kind in INT_TYPES,
                nullable=bool(spec.get("nullable", False)),
                minimum=_bound(spec, ("min", "minimum"), -math.inf, name),
                maximum=_bound(spec, ("max", "maximum"), math.inf, name),
            )
        )
    return specs


class RequestParser:
    """Body bytes -> float64 matrix [rows, features], or RequestError naming the culprit."""

    def __init__(self, specs: list[FeatureSpec], max_rows: int) -> None:
        self.specs = specs
        self.names = [spec.name for spec in specs]
        self.max_rows = max_rows
        self._n = len(specs)
        getter = operator.itemgetter(*self.names)
        # itemgetter of one key returns the value itself, not a 1-tuple
        self._row_values = getter if len(self.names) > 1 else (lambda row: (getter(row),))
        self._known = set(self.names)
        self._low = np.array([spec.minimum for spec in specs], dtype=np.float64)
        self._high = np.array([spec.maximum for spec in specs], dtype=np.float64)
        self._integer = np.array([spec.integer for spec in specs], dtype=bool)
        self._has_integer = bool(self._integer.any())
        self._decode, self._row_struct = _typed_decoder(specs, max_rows)
        self._astuple: Any = msgspec.structs.astuple

    def parse(self, body: bytes) -> np.ndarray:
        matrix = self._parse_typed(body)
        return matrix if matrix is not None else self._parse_checked(body)

    def _parse_typed(self, body: bytes) -> np.ndarray | None:
        """Tier 1; None means "not sure it is valid": the other tiers decide and explain."""
        try:
            request = self._decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        unset = msgspec.UNSET
        if (request.row is unset) == (request.rows is unset):  # neither, or both
            return None
        rows = request.rows if request.row is unset else [request.row]
        row_struct, astuple = self._row_struct, self._astuple
        try:
            matrix = np.array(
                [astuple(row) if type(row) is row_struct else row for row in rows],
                dtype=np.float64,
            )
        except (OverflowError, ValueError):
            return None
        if np.isinf(matrix).any():  # a number that overflowed a double on an unbounded feature
            return None
        return matrix

    def _parse_checked(self, body: bytes) -> np.ndarray:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise RequestError(400, f"body is not valid JSON: {error}") from None
        rows, prefix = self._rows(document)
        names = self.names
        try:
            # A row is an object {feature: value} or an array of values in feature order.
            values = rows if type(rows[0]) is list else list(map(self._row_values, rows))
            complete = set(map(len, rows)) == {self._n}
        except (KeyError, TypeError):
            complete = False
        # Only JSON numbers may pass (bool is not int here: type() is exact); anything else,
        # including null, goes to the slow path, which names it or accepts a nullable null.
        if complete and _NUMBER_TYPES.issuperset(map(type, itertools.chain.from_iterable(values))):
            try:
                matrix = np.array(values, dtype=np.float64)
            except OverflowError:  # an integer too large for a double
                matrix = None
            if matrix is not None:
                out_of_range = (matrix < self._low) | (matrix > self._high)
                if self._has_integer:
                    fraction = matrix[:, self._integer] != np.floor(matrix[:, self._integer])
                    out_of_range[:, self._integer] |= fraction
                if not out_of_range.any():
                    return matrix
        rows = [self._as_object(row) for row in rows]
        problem = self._diagnose(rows, prefix)
        if problem is not None:
            raise problem
        # Valid after all: nulls in nullable features, sent to the model as NaN (its imputer
        # fills them).
        return np.array(
            [[np.nan if row[name] is None else float(row[name]) for name in names] for row in rows],
            dtype=np.float64,
        )

    def _as_object(self, row: Any) -> Any:
        """An array row of the right length as {feature: value}; anything else unchanged."""
        if type(row) is list and len(row) == self._n:
            return dict(zip(self.names, row, strict=True))
        return row

    def _rows(self, document: Any) -> tuple[list[Any], str]:
        if type(document) is not dict:
            raise RequestError(400, f"body must be a JSON object: {ROW_HINT}")
        if len(document) == 1:
            if "rows" in document:
                rows = document["rows"]
                if type(rows) is not list:
                    raise RequestError(422, "rows: must be a list of rows", field="rows")
                if not rows:
                    raise RequestError(422, "rows: must hold at least one row", field="rows")
                if len(rows) > self.max_rows:
                    raise RequestError(
                        422,
                        f"rows: {len(rows)} rows, at most {self.max_rows} per request",
                        field="rows",
                    )
                return rows, "rows"
            if "row" in document:
                return [document["row"]], "row"
        unknown = sorted(set(document) - {"row", "rows"})
        if unknown:
            raise RequestError(
                422, f"unknown key '{unknown[0]}': {ROW_HINT}", field=str(unknown[0])
            )
        raise RequestError(422, f"give either 'row' or 'rows', not both: {ROW_HINT}")

    def _diagnose(self, rows: list[Any], prefix: str) -> RequestError | None:
        """Walk the rows and name the first problem (called only when the fast path refused)."""
        for index, row in enumerate(rows):
            where = prefix if prefix == "row" else f"rows[{index}]"
            position = None if prefix == "row" else index
            if type(row) is list:
                return RequestError(
                    422,
                    f"{where}: {len(row)} values; an array row holds all {self._n} features in "
                    "model order (see GET /v1/model)",
                    field=where,
                    row=position,
                )
            if type(row) is not dict:
                return RequestError(
                    422,
                    f"{where}: must be an object mapping feature name to value, or an array of "
                    f"the {self._n} values in feature order",
                    field=where,
                    row=position,
                )
            # a misspelt name first: its suggestion explains the 'missing' that would follow
            for name in row:
                if name not in self._known:
                    close = difflib.get_close_matches(str(name), self.names, n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    return RequestError(
                        422, f"{where}: unknown field '{name}'{hint}", field=str(name), row=position
                    )
            for spec in self.specs:
                if spec.name not in row:
                    return RequestError(
                        422, f"{where}.{spec.name}: missing", field=spec.name, row=position
                    )
                problem = _value_problem(spec, row[spec.name])
                if problem:
                    return RequestError(
                        422, f"{where}.{spec.name}: {problem}", field=spec.name, row=position
                    )
        return None


def _typed_decoder(specs: list[FeatureSpec], max_rows: int) -> tuple[Any, type]:
    """A msgspec decoder for {"row": row} / {"rows": [row, ...]}, a row being an object with
    exactly the contract's features or an array of their values in order."""
    fields: list[tuple[str, Any]] = []
    items: list[Any] = []
    for spec in specs:
        kind: Any = Annotated[int if spec.integer else float, msgspec.Meta(**spec.bounds())]
        if spec.nullable:
            kind = kind | None
        fields.append((f"f{len(fields)}", kind))
        items.append(kind)
    row = msgspec.defstruct(
        "Row",
        fields,
        rename={f"f{i}": spec.name for i, spec in enumerate(specs)},
        forbid_unknown_fields=True,
    )
    positional: Any = tuple.__class_getitem__(tuple(items))
    one: Any = row | positional
    many: Any = Annotated[list[one], msgspec.Meta(min_length=1, max_length=max_rows)]
    request = msgspec.defstruct(
        "PredictRequest",
        # UNSET, not None, for "absent": an explicit null is refused like in the other tiers
        [
            ("row", one | msgspec.UnsetType, msgspec.UNSET),
            ("rows", many | msgspec.UnsetType, msgspec.UNSET),
        ],
        forbid_unknown_fields=True,
    )
    return msgspec.json.Decoder(request).decode, row


def _value_problem(spec: FeatureSpec, value: Any) -> str | None:
    if value is None and spec.nullable:
        return None
    if type(value) not in (int, float):
        shown = orjson.dumps(value).decode()[:40]
        return f"expected a number, got {_json_type(value)} {shown}"
    try:
        number = float(value)
    except OverflowError:
        return f"{value} is outside the data contract range [{spec.minimum}, {spec.maximum}]"
    if not spec.minimum <= number <= spec.maximum:
        return f"{value} is outside the data contract range [{spec.minimum}, {spec.maximum}]"
    if spec.integer and not number.is_integer():
        return f"expected an integer, got {value}"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
