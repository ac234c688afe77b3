"""The data contract: a JSON Schema for one row plus dataset-level expectations, and its checks.

The contract file (default `ml/contract/breast_cancer.json`) has:
- `row`: a JSON Schema (draft 2020-12) object schema. Each property is one column with
  `type` ("number" or "integer", optionally with "null"), `minimum`/`maximum`, `enum`;
  `required` lists the columns that must exist; `additionalProperties: false` rejects others.
  Property order is the model's feature order.
- `target`: the name of the label column (one of the properties, with an `enum` of classes).
- `dataset`: `rows` {min, max}, `max_null_fraction` (per column), `class_fraction` {min, max}.

Rows are checked column-wise (vectorised), one named function per rule, so a violation names
its column, its rule and a few failing rows by their source row number.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd

from ml.bundle import sha256_file
from ml.errors import DataContractError

NUMERIC_TYPES = ("number", "integer")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # "number" | "integer"
    nullable: bool
    minimum: float | None
    maximum: float | None
    enum: tuple[Any, ...] | None

    def as_feature(self) -> dict[str, Any]:
        """How a client must send this column (the serving request schema derives from it)."""
        return {
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            "minimum": self.minimum,
            "maximum": self.maximum,
        }


@dataclass(frozen=True)
class Contract:
    path: Path
    sha256: str
    document: dict[str, Any]
    target: Column
    features: tuple[Column, ...]
    required: frozenset[str]
    allow_additional: bool
    min_rows: int
    max_rows: int
    max_null_fraction: float
    class_min_fraction: float
    class_max_fraction: float

    @property
    def feature_names(self) -> list[str]:
        return [column.name for column in self.features]

    @property
    def classes(self) -> list[Any]:
        return list(self.target.enum or ())

    def columns(self) -> tuple[Column, ...]:
        return (*self.features, self.target)

    def for_bundle(self) -> dict[str, Any]:
        """The contract as shipped in the bundle: the document plus the ordered feature list."""
        return {
            **self.document,
            "features": [column.as_feature() for column in self.features],
            "classes": self.classes,
        }


@dataclass
class Violation:
    column: str
    rule: str
    message: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "rule": self.rule,
            "message": self.message,
            "count": self.count,
            "examples": self.examples,
        }

    def describe(self) -> str:
        shown = ", ".join(
            f"row {example['row']} ({example['split']}) = {example['value']!r}"
            for example in self.examples
        )
        rows = f": {self.count} row(s), e.g. {shown}" if self.examples else ""
        return f"column '{self.column}', rule '{self.rule}': {self.message}{rows}"


def _contract_error(path: Path, message: str) -> DataContractError:
    return DataContractError(f"{path}: {message}", hint="see ml/contract/ for a valid contract")


def _column(path: Path, name: str, schema: Any) -> Column:
    if not isinstance(schema, dict):
        raise _contract_error(path, f"row.properties.{name} must be an object")
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types
    if not isinstance(types, list):
        raise _contract_error(path, f"row.properties.{name}.type is missing")
    kinds = [kind for kind in types if kind != "null"]
    if len(kinds) != 1 or kinds[0] not in NUMERIC_TYPES:
        raise _contract_error(
            path, f"row.properties.{name}.type must be 'number' or 'integer' (optionally 'null')"
        )
    enum = schema.get("enum")
    return Column(
        name=name,
        type=kinds[0],
        nullable="null" in types,
        minimum=schema.get("minimum"),
        maximum=schema.get("maximum"),
        enum=tuple(value for value in enum if value is not None) if enum else None,
    )


def load_contract(path: Path) -> Contract:
    """Read and check the contract file itself; errors name the file and the key."""
    if not path.is_file():
        raise DataContractError(
            f"{path}: contract file not found", hint="set validate.contract in params.yaml"
        )
    try:
        with path.open(encoding="utf-8") as handle:
            document = json.load(handle)
    except json.JSONDecodeError as error:
        raise _contract_error(path, f"not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise _contract_error(path, "must be a JSON object")
    row = document.get("row")
    if not isinstance(row, dict) or not isinstance(row.get("properties"), dict):
        raise _contract_error(path, "key 'row' must be a JSON Schema with 'properties'")
    try:
        jsonschema.Draft202012Validator.check_schema(row)
    except jsonschema.SchemaError as error:
        raise _contract_error(path, f"'row' is not a valid JSON Schema: {error.message}") from error
    target_name = document.get("target")
    if target_name not in row["properties"]:
        raise _contract_error(path, "key 'target' must name one of row.properties")
    columns = {name: _column(path, name, schema) for name, schema in row["properties"].items()}
    target = columns[target_name]
    if not target.enum or len(target.enum) < 2:
        raise _contract_error(path, f"row.properties.{target_name}.enum must list >= 2 classes")
    dataset = document.get("dataset")
    if not isinstance(dataset, dict):
        raise _contract_error(path, "key 'dataset' must be an object")
    try:
        rows = dataset["rows"]
        balance = dataset["class_fraction"]
        min_rows, max_rows = int(rows["min"]), int(rows["max"])
        max_null = float(dataset["max_null_fraction"])
        class_min, class_max = float(balance["min"]), float(balance["max"])
    except (KeyError, TypeError, ValueError) as error:
        raise _contract_error(
            path,
            "dataset needs rows {min, max}, max_null_fraction and class_fraction {min, max} "
            f"({error!r})",
        ) from error
    return Contract(
        path=path,
        sha256=sha256_file(path),
        document=document,
        target=target,
        features=tuple(column for name, column in columns.items() if name != target_name),
        required=frozenset(row.get("required", ())),
        allow_additional=row.get("additionalProperties", True) is not False,
        min_rows=min_rows,
        max_rows=max_rows,
        max_null_fraction=max_null,
        class_min_fraction=class_min,
        class_max_fraction=class_max,
    )


def combine_splits(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One frame indexed by (split, source row), so examples can say where a row lives."""
    return pd.concat(splits, names=["split", "row"])


def _row_violation(
    frame: pd.DataFrame, column: str, failing: pd.Series, rule: str, message: str, limit: int
) -> Violation:
    """A violation by some rows, quoting the first `limit` of them by split and source row."""
    quoted = frame.loc[failing, column].head(limit)
    examples = [
        {"split": str(split), "row": int(row), "value": _plain(value)}
        for (split, row), value in quoted.items()
    ]
    return Violation(column, rule, message, count=int(failing.sum()), examples=examples)


def _plain(value: Any) -> Any:
    """A JSON-ready scalar (NaN becomes None)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _numeric(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


def _present(frame: pd.DataFrame, contract: Contract) -> list[Column]:
    return [column for column in contract.columns() if column.name in frame.columns]


def check_required(frame: pd.DataFrame, contract: Contract, limit: int) -> list[Violation]:
    return [
        Violation(column.name, "required", "column is missing from the data")
        for column in contract.columns()
        if column.name in contract.required and column.name not in frame.columns
    ]


def check_additional(frame: pd.DataFrame, contract: Contract, limit: int) -> list[Violation]:
    if contract.allow_additional:
        return []
    known = {column.name for column in contract.columns()}
    return [
        Violation(str(name), "additionalProperties", "column is not in the contract")
        for name in frame.columns
        if name not in known
    ]


def check_type(frame: pd.DataFrame, contract: Contract, limit: int) -> list[Violation]:
    violations = []
    for column in _present(frame, contract):
        raw = frame[column.name]
        numbers = _numeric(raw)
        failing = raw.notna() & numbers.isna()
        if column.type == "integer":
            failing |= numbers.notna() & (numbers % 1 != 0)
        if not column.nullable:
            failing |= raw.isna()
        if failing.any():
            allowed = column.type + (" or null" if column.nullable else "")
            message = f"values must be {allowed}"
            violations.append(_row_violation(frame, column.name, failing, "type", message, limit))
    return violations


def check_minimum(frame: pd.DataFrame, contract: Contract, limit: int) -> list[Violation]:
    violations = []
    for column in _present(frame, contract):
        if column.minimum is None:
            continue
        failing = _numeric(frame[column.name]) < column.minimum
        if failing.any():
            message = f"values must be >= {column.minimum}"
            violations.append(
                _row_violation(frame, column.name, failing, "minimum", message, limit)
            )
    return violations


def check_maximum(frame: pd.DataFrame, contract: Contract, limit: int) -> list[Violation]:
    violations = []
    for column in _present(frame, contract):
        if column.maximum is None:
            continue
        failing = _numeric(frame[column.name]) > column.maximum
        if failing.any():
            message = f"values must be <= {column.maximum}"
            violations.append(
                _row_violation(frame, column.name, failing, "maximum", message, limit)
            )
    return violations


def check_enum(frame: pd.DataFrame, contract: Contract, limit: int) -> list[Violation]:
    violations = []
    for column in _present(frame, contract):
        if column.enum is None:
            continue
        numbers = _numeric(frame[column.name])
        failing = numbers.notna() & ~numbers.isin(column.enum)
        if failing.any():
            message = f"values must be one of {list(column.enum)}"
            violations.append(_row_violation(frame, column.name, failing, "enum", message, limit))
    return violations


def check_rows(frame: pd.DataFrame, contract: Contract, limit: int) -> list[Violation]:
    rows = len(frame)
    if contract.min_rows <= rows <= contract.max_rows:
        return []
    return [
        Violation(
            "*",
            "rows",
            f"{rows} rows, the contract expects {contract.min_rows}..{contract.max_rows}",
        )
    ]


def check_null_fraction(frame: pd.DataFrame, contract: Contract, limit: int) -> list[Violation]:
    violations = []
    for column in _present(frame, contract):
        nulls = frame[column.name].isna()
        fraction = float(nulls.mean()) if len(frame) else 0.0
        if fraction > contract.max_null_fraction:
            message = (
                f"{fraction:.1%} of values are null, the contract allows "
                f"{contract.max_null_fraction:.1%}"
            )
            violations.append(
                _row_violation(frame, column.name, nulls, "max_null_fraction", message, limit)
            )
    return violations


def check_class_balance(frame: pd.DataFrame, contract: Contract, limit: int) -> list[Violation]:
    name = contract.target.name
    if name not in frame.columns or not len(frame):
        return []
    labels = _numeric(frame[name])
    violations = []
    for label in contract.classes:
        fraction = float((labels == label).mean())
        if not contract.class_min_fraction <= fraction <= contract.class_max_fraction:
            violations.append(
                Violation(
                    name,
                    "class_fraction",
                    f"class {label!r} is {fraction:.1%} of rows, the contract expects "
                    f"{contract.class_min_fraction:.0%}..{contract.class_max_fraction:.0%}",
                )
            )
    return violations


# One function per rule, in the order they are reported; RULE_NAMES is what the report lists.
RULES = (
    check_required,
    check_additional,
    check_type,
    check_minimum,
    check_maximum,
    check_enum,
    check_rows,
    check_null_fraction,
    check_class_balance,
)
RULE_NAMES = (
    "required",
    "additionalProperties",
    "type",
    "minimum",
    "maximum",
    "enum",
    "rows",
    "max_null_fraction",
    "class_fraction",
)


def check_data(frame: pd.DataFrame, contract: Contract, max_examples: int = 5) -> list[Violation]:
    """Every violation of the contract by `frame` (indexed by split and row)."""
    violations: list[Violation] = []
    for rule in RULES:
        violations.extend(rule(frame, contract, max_examples))
    return violations


def column_stats(frame: pd.DataFrame, contract: Contract) -> dict[str, dict[str, Any]]:
    """Per-column summary for the report (what the PR preview shows as data checks)."""
    stats = {}
    for column in contract.columns():
        if column.name not in frame.columns:
            continue
        numbers = _numeric(frame[column.name])
        stats[column.name] = {
            "null_fraction": round(float(frame[column.name].isna().mean()), 6),
            "min": _plain(numbers.min()),
            "max": _plain(numbers.max()),
            "mean": _plain(round(float(numbers.mean()), 6)) if numbers.notna().any() else None,
        }
    return stats
