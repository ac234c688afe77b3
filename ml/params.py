"""The one place that reads `params.yaml`: typed, validated parameters for every stage.

Each stage calls `load_params()` and uses only its own section plus `base`. A missing key, an
unknown key or a value of the wrong type or range raises ParamsError naming the dotted key
(`train.random_forest.n_estimators`), so a typo never silently falls back to a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from ml.errors import ParamsError

PARAMS_FILE = Path("params.yaml")
BUILTIN_SOURCE = "sklearn:breast_cancer"
ESTIMATORS = ("logistic_regression", "random_forest", "gradient_boosting")
IMPUTE_STRATEGIES = ("median", "mean", "most_frequent")


@dataclass(frozen=True)
class BaseParams:
    seed: int


@dataclass(frozen=True)
class PrepareParams:
    source: str  # BUILTIN_SOURCE or a CSV path under data/raw/
    target: str
    test_size: float


@dataclass(frozen=True)
class ValidateParams:
    contract: str
    max_examples: int


@dataclass(frozen=True)
class LogisticRegressionParams:
    C: float
    max_iter: int


@dataclass(frozen=True)
class RandomForestParams:
    n_estimators: int
    max_depth: int
    min_samples_leaf: int


@dataclass(frozen=True)
class GradientBoostingParams:
    n_estimators: int
    learning_rate: float
    max_depth: int


@dataclass(frozen=True)
class TrainParams:
    estimator: str
    impute: str
    logistic_regression: LogisticRegressionParams
    random_forest: RandomForestParams
    gradient_boosting: GradientBoostingParams


@dataclass(frozen=True)
class EvaluateParams:
    positive_label: int


@dataclass(frozen=True)
class ModelCardParams:
    name: str
    owner: str
    intended_use: str
    limitations: tuple[str, ...]


@dataclass(frozen=True)
class PackageParams:
    onnx_tolerance: float
    reference_rows: int
    model_card: ModelCardParams


@dataclass(frozen=True)
class Params:
    base: BaseParams
    prepare: PrepareParams
    validate: ValidateParams
    train: TrainParams
    evaluate: EvaluateParams
    package: PackageParams

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (recorded in bundle.json)."""
        value = asdict(self)
        value["package"]["model_card"]["limitations"] = list(self.package.model_card.limitations)
        return value


class _Section:
    """Reads one mapping of params.yaml, naming every key by its dotted path in errors."""

    def __init__(self, raw: Any, path: str, source: Path) -> None:
        if not isinstance(raw, Mapping):
            raise ParamsError(
                f"{source}: '{path}' must be a mapping, got {type(raw).__name__}",
                hint=f"see the '{path}' section in the repository's params.yaml",
            )
        self._raw = raw
        self._path = path
        self._source = source
        self._used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _get(self, key: str) -> Any:
        self._used.add(key)
        if key not in self._raw:
            raise ParamsError(
                f"{self._source}: key '{self._key(key)}' is missing",
                hint=f"add '{self._key(key)}' to {self._source}",
            )
        return self._raw[key]

    def fail(self, key: str, expected: str, value: Any) -> ParamsError:
        return ParamsError(
            f"{self._source}: '{self._key(key)}' must be {expected}, got {value!r}",
            hint=f"fix '{self._key(key)}' in {self._source}",
        )

    def section(self, key: str) -> _Section:
        return _Section(self._get(key), self._key(key), self._source)

    def integer(self, key: str, *, minimum: int | None = None) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "an integer", value)
        if minimum is not None and value < minimum:
            raise self.fail(key, f"an integer >= {minimum}", value)
        return value

    def number(self, key: str, *, above: float | None = None, below: float | None = None) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "a number", value)
        if (above is not None and value <= above) or (below is not None and value >= below):
            bounds = " and ".join(
                part
                for part in (
                    f"> {above}" if above is not None else "",
                    f"< {below}" if below is not None else "",
                )
                if part
            )
            raise self.fail(key, f"a number {bounds}", value)
        return float(value)

    def text(self, key: str, *, choices: tuple[str, ...] | None = None) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "a non-empty string", value)
        if choices is not None and value not in choices:
            raise self.fail(key, "one of " + ", ".join(choices), value)
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "a list of non-empty strings", value)
        return tuple(value)

    def done(self) -> None:
        """Unknown keys are typos until proven otherwise."""
        unknown = sorted(set(map(str, self._raw)) - self._used)
        if unknown:
            raise ParamsError(
                f"{self._source}: unknown key '{self._key(unknown[0])}'",
                hint=f"remove it or check its spelling in {self._source}",
            )


def _check_source(section: _Section, source: str) -> str:
    if source == BUILTIN_SOURCE:
        return source
    path = Path(source)
    # DVC tracks data/raw as a dependency of `prepare`; a CSV elsewhere would change unnoticed.
    if path.is_absolute() or path.parts[:2] != ("data", "raw") or path.suffix != ".csv":
        raise section.fail("source", f"'{BUILTIN_SOURCE}' or a .csv file under data/raw/", source)
    return source


def parse_params(raw: Any, source: Path = PARAMS_FILE) -> Params:
    """Validate the parsed YAML document and build the typed Params."""
    root = _Section(raw, "", source)

    base = root.section("base")
    base_params = BaseParams(seed=base.integer("seed", minimum=0))
    base.done()

    prepare = root.section("prepare")
    prepare_params = PrepareParams(
        source=_check_source(prepare, prepare.text("source")),
        target=prepare.text("target"),
        test_size=prepare.number("test_size", above=0.0, below=1.0),
    )
    prepare.done()

    validate = root.section("validate")
    validate_params = ValidateParams(
        contract=validate.text("contract"),
        max_examples=validate.integer("max_examples", minimum=1),
    )
    validate.done()

    train = root.section("train")
    lr = train.section("logistic_regression")
    lr_params = LogisticRegressionParams(
        C=lr.number("C", above=0.0), max_iter=lr.integer("max_iter", minimum=1)
    )
    lr.done()
    rf = train.section("random_forest")
    rf_params = RandomForestParams(
        n_estimators=rf.integer("n_estimators", minimum=1),
        max_depth=rf.integer("max_depth", minimum=1),
        min_samples_leaf=rf.integer("min_samples_leaf", minimum=1),
    )
    rf.done()
    gb = train.section("gradient_boosting")
    gb_params = GradientBoostingParams(
        n_estimators=gb.integer("n_estimators", minimum=1),
        learning_rate=gb.number("learning_rate", above=0.0),
        max_depth=gb.integer("max_depth", minimum=1),
    )
    gb.done()
    train_params = TrainParams(
        estimator=train.text("estimator", choices=ESTIMATORS),
        impute=train.text("impute", choices=IMPUTE_STRATEGIES),
        logistic_regression=lr_params,
        random_forest=rf_params,
        gradient_boosting=gb_params,
    )
    train.done()

    evaluate = root.section("evaluate")
    evaluate_params = EvaluateParams(positive_label=evaluate.integer("positive_label"))
    evaluate.done()

    package = root.section("package")
    card = package.section("model_card")
    card_params = ModelCardParams(
        name=card.text("name"),
        owner=card.text("owner"),
        intended_use=card.text("intended_use"),
        limitations=card.texts("limitations"),
    )
    card.done()
    package_params = PackageParams(
        onnx_tolerance=package.number("onnx_tolerance", above=0.0, below=1.0),
        reference_rows=package.integer("reference_rows", minimum=1),
        model_card=card_params,
    )
    package.done()
    root.done()

    return Params(
        base=base_params,
        prepare=prepare_params,
        validate=validate_params,
        train=train_params,
        evaluate=evaluate_params,
        package=package_params,
    )


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml (path relative to the repository root, where DVC runs)."""
    if not path.is_file():
        raise ParamsError(f"{path}: file not found", hint="run from the repository root")
    try:
        with path.open(encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML ({error})") from error
    return parse_params(raw, path)
