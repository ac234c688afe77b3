"""Drift between the training reference and a window of served inputs: PSI and KS per feature.

- PSI (population stability index) over the reference's decile bins:
  sum((served% - reference%) * ln(served% / reference%)), empty bins smoothed.
- KS: the two-sample Kolmogorov-Smirnov statistic (largest distance between the two empirical
  CDFs) and its asymptotic p-value, computed with numpy only (the serving image has no scipy).

Nulls (NaN) are left out of both. A feature drifts when PSI > psi_max or KS > ks_max, with the
thresholds from `ml/drift.yaml` (or another file). Served inputs come from the server's rotating
JSONL log (`ml.serve.input_log`), a CSV with a header, or a running server's `/v1/inputs`.
"""

from __future__ import annotations

import csv
import math
import urllib.request
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml

from ml.errors import MLError

DEFAULT_CONFIG = Path(__file__).with_name("drift.yaml")
_SMOOTHING = 1e-4


class DriftInputError(MLError):
    """Drift cannot be computed: missing or unreadable inputs, too few rows, bad thresholds."""

    exit_code = 2


@dataclass(frozen=True)
class DriftThresholds:
    psi_max: float = 0.25
    ks_max: float = 0.2
    window: int = 5000
    min_rows: int = 50
    bins: int = 10


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    ks: float
    ks_p_value: float
    reference_mean: float
    served_mean: float
    served_rows: int
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    features: list[FeatureDrift]
    served_rows: int
    reference_rows: int
    thresholds: DriftThresholds

    @property
    def drifted(self) -> list[str]:
        return [item.feature for item in self.features if item.drifted]

    def as_dict(self) -> dict[str, Any]:
        return {
            "served_rows": self.served_rows,
            "reference_rows": self.reference_rows,
            "thresholds": asdict(self.thresholds),
            "drifted": self.drifted,
            "features": [asdict(item) for item in self.features],
        }


def load_thresholds(path: Path = DEFAULT_CONFIG) -> DriftThresholds:
    if not path.is_file():
        raise DriftInputError(f"{path}: drift config not found", hint="see ml/drift.yaml")
    with path.open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle) or {}
    if not isinstance(raw, dict):
        raise DriftInputError(f"{path}: expected a mapping of threshold name to value")
    known = {field.name: field.type for field in fields(DriftThresholds)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise DriftInputError(f"{path}: unknown key '{key}' (known: {', '.join(known)})")
        kind = int if known[key] in ("int", int) else float
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise DriftInputError(f"{path}: '{key}' must be a positive number, got {value!r}")
        values[key] = kind(value)
    return DriftThresholds(**values)


def psi(reference: np.ndarray, served: np.ndarray, bins: int = 10) -> float:
    """PSI over the reference's quantile bins (NaN excluded from both samples)."""
    reference = reference[~np.isnan(reference)]
    served = served[~np.isnan(served)]
    if not len(reference) or not len(served):
        return math.nan
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(
        np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1
    )
    actual = np.bincount(np.searchsorted(edges, served, side="right"), minlength=len(edges) + 1)
    expected_share = np.maximum(expected / expected.sum(), _SMOOTHING)
    actual_share = np.maximum(actual / actual.sum(), _SMOOTHING)
    return float(np.sum((actual_share - expected_share) * np.log(actual_share / expected_share)))


def ks(reference: np.ndarray, served: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and asymptotic p-value (NaN excluded)."""
    a = np.sort(reference[~np.isnan(reference)])
    b = np.sort(served[~np.isnan(served)])
    if not len(a) or not len(b):
        return math.nan, math.nan
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / len(a)
    cdf_b = np.searchsorted(b, points, side="right") / len(b)
    statistic = float(np.max(np.abs(cdf_a - cdf_b)))
    effective = len(a) * len(b) / (len(a) + len(b))
    return statistic, _kolmogorov_survival(
        (math.sqrt(effective) + 0.12 + 0.11 / math.sqrt(effective)) * statistic
    )


def _kolmogorov_survival(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution (series; Numerical Recipes' approximation)."""
    if x < 0.2:
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2 * k * k * x * x) for k in range(1, 101))
    return float(min(1.0, max(0.0, 2 * total)))


def compare(
    reference: np.ndarray, served: np.ndarray, features: list[str], thresholds: DriftThresholds
) -> DriftReport:
    if served.ndim != 2 or served.shape[1] != len(features):
        raise DriftInputError(
            f"served rows have {served.shape[-1]} values; the bundle has {len(features)} features"
            if served.ndim == 2
            else f"served inputs are not a table (shape {served.shape})"
        )
    served = served[-thresholds.window :]
    if len(served) < thresholds.min_rows:
        raise DriftInputError(
            f"only {len(served)} served rows; a verdict needs at least {thresholds.min_rows}",
            hint="wait for more traffic or lower min_rows in the drift config",
        )
    results = []
    for index, name in enumerate(features):
        ref_column, served_column = reference[:, index], served[:, index]
        psi_value = psi(ref_column, served_column, thresholds.bins)
        ks_value, p_value = ks(ref_column, served_column)
        drifted = bool(psi_value > thresholds.psi_max or ks_value > thresholds.ks_max)
        results.append(
            FeatureDrift(
                feature=name,
                psi=psi_value,
                ks=ks_value,
                ks_p_value=p_value,
                reference_mean=float(np.nanmean(ref_column)),
                served_mean=float(np.nanmean(served_column)),
                served_rows=int(np.sum(~np.isnan(served_column))),
                drifted=drifted,
            )
        )
    return DriftReport(results, len(served), len(reference), thresholds)


# --- reading inputs ---------------------------------------------------------------------------


def read_csv_matrix(path: Path, features: list[str]) -> np.ndarray:
    """A CSV with a header naming (at least) the features; empty cells are nulls."""
    if not path.is_file():
        raise DriftInputError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        missing = [name for name in features if name not in header]
        if missing:
            raise DriftInputError(f"{path}: no column '{missing[0]}' (header: {header[:5]}...)")
        columns = [header.index(name) for name in features]
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append([float(row[i]) if row[i] else math.nan for i in columns])
            except (ValueError, IndexError) as error:
                raise DriftInputError(f"{path}:{line}: not a row of numbers ({error})") from error
    return np.array(rows, dtype=np.float64).reshape(-1, len(features))


def _matrix(lines_x: list[Any], where: str, width: int) -> np.ndarray:
    try:
        matrix = np.array(lines_x, dtype=np.float64)  # null -> nan
    except (TypeError, ValueError) as error:
        raise DriftInputError(f"{where}: 'x' is not a matrix of numbers ({error})") from error
    if matrix.ndim != 2 or matrix.shape[1] != width:
        raise DriftInputError(f"{where}: rows of {matrix.shape[-1]} values, expected {width}")
    return matrix


def read_input_log(path: Path, width: int, window: int) -> np.ndarray:
    """The most recent `window` rows of the server's input log (with its rotations)."""
    from ml.serve.input_log import log_files

    files = log_files(path)
    if not files:
        raise DriftInputError(
            f"{path}: no input log", hint="start the server with --input-log PATH and send traffic"
        )
    blocks: list[np.ndarray] = []
    for file in files:
        with file.open("rb") as handle:
            lines = handle.read().splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                if file == files[-1] and number == len(lines):
                    continue  # the last line may be cut short by a crash; skip it
                raise DriftInputError(f"{file}:{number}: not JSON ({error})") from error
            blocks.append(_matrix(record.get("x"), f"{file}:{number}", width))
    if not blocks:
        return np.empty((0, width))
    return np.concatenate(blocks)[-window:]


def read_served_inputs(source: str, features: list[str], window: int) -> np.ndarray:
    """From a URL (a running server's /v1/inputs), a .csv file, or an input log path."""
    if source.startswith(("http://", "https://")):
        url = source.rstrip("/") + f"/v1/inputs?limit={window}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = orjson.loads(response.read())
        except (OSError, orjson.JSONDecodeError) as error:
            raise DriftInputError(f"{url}: cannot read served inputs ({error})") from error
        if body.get("features") != features:
            raise DriftInputError(f"{url}: the server's features differ from the bundle's")
        return _matrix(body.get("x") or [], url, len(features)).reshape(-1, len(features))
    path = Path(source)
    if path.suffix == ".csv":
        return read_csv_matrix(path, features)[-window:]
    return read_input_log(path, len(features), window)
