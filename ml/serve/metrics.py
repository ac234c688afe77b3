"""Prometheus metrics kept as plain counters and numpy arrays, rendered only when scraped.

prometheus_client's labelled `observe()` costs a lock and a label lookup per call; per-feature
value histograms would cost that 30 times per row. Here a request adds to Python ints and one
numpy bincount, and a custom collector turns the counts into metric families at scrape time.
The per-feature buckets are the reference data's deciles, so the served-value histogram reads
directly as the distribution drift compares against.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PREFIX = "liftlock_"
# Served rows queued before they are added to the per-feature histograms and class counts.
FOLD_ROWS = 512


def feature_edges(
    reference: np.ndarray | None, low: np.ndarray, high: np.ndarray
) -> list[np.ndarray]:
    """Bucket upper bounds per feature: the reference sample's deciles when there is one, else
    ten equal steps of the contract range (no buckets for an unbounded feature)."""
    edges: list[np.ndarray] = []
    for index in range(len(low)):
        if reference is not None and len(reference):
            edges.append(np.unique(np.nanquantile(reference[:, index], np.linspace(0.1, 0.9, 9))))
        elif np.isfinite(low[index]) and np.isfinite(high[index]):
            edges.append(np.linspace(low[index], high[index], 11)[1:-1])
        else:
            edges.append(np.array([]))
    return edges


class FeatureHistograms:
    """Per-feature bucket counts updated with ONE searchsorted per request.

    Feature j's values are mapped into [j, j+1) by an affine map and clipped, and so are its bucket
    edges; all edges then form one sorted array, and the number of edges below a mapped value is
    its bucket's global position minus j.
    """

    _EPS = 1e-9

    def __init__(self, edges: list[np.ndarray]) -> None:
        self.edges = edges
        n = len(edges)
        self._low = np.zeros(n)
        self._scale = np.ones(n)
        for j, e in enumerate(edges):
            if len(e):
                span = float(e[-1] - e[0]) or 1.0
                self._low[j] = e[0] - span
                self._scale[j] = 1.0 / (3.0 * span)  # edges land in the middle third of [j, j+1)
        self._offsets = np.arange(n, dtype=np.float64)
        mapped = [self._map(e, j) for j, e in enumerate(edges)]
        self._global = np.concatenate(mapped) if n else np.array([])
        self._n_buckets = [len(e) + 1 for e in edges]
        self._starts = np.concatenate([[0], np.cumsum(self._n_buckets)[:-1]]).astype(np.int64)
        # one extra slot at the end collects nulls (NaN), counted apart in `nulls`
        self._null_slot = sum(self._n_buckets)
        self.counts = np.zeros(self._null_slot + 1, dtype=np.int64)
        self.sums = np.zeros(n, dtype=np.float64)
        self.nulls = np.zeros(n, dtype=np.int64)

    def _map(self, values: np.ndarray, j: int) -> np.ndarray:
        z = (values - self._low[j]) * self._scale[j]
        return np.clip(z, self._EPS, 1.0 - self._EPS) + j

    def observe(self, x: np.ndarray) -> None:
        z = (x - self._low) * self._scale
        np.clip(z, 0.0, 1.0 - self._EPS / 2, out=z)
        z += self._offsets
        position = np.searchsorted(self._global, z, side="left")
        # edges below in earlier features = sum of their edge counts = start_j - j
        position += np.arange(x.shape[1])
        missing = np.isnan(x)
        if missing.any():
            position[missing] = self._null_slot
            self.nulls += missing.sum(axis=0)
            self.sums += np.nansum(x, axis=0)
        else:
            self.sums += x.sum(axis=0)
        self.counts += np.bincount(position.ravel(), minlength=self.counts.size)

    def buckets(self, j: int) -> list[tuple[str, float]]:
        start = int(self._starts[j])
        cumulative = np.cumsum(self.counts[start : start + self._n_buckets[j]]).tolist()
        out = [(repr(float(le)), cumulative[i]) for i, le in enumerate(self.edges[j])]
        out.append(("+Inf", cumulative[-1]))
        return out


class ServeMetrics(Collector):
    def __init__(self, features: list[str], classes: list[object], edges: list[np.ndarray]) -> None:
        self.features = features
        self.classes = classes
        self._class_values = np.array(classes)
        self._class_sorted = bool(np.all(self._class_values[:-1] <= self._class_values[1:]))
        self._class_lookup = {value: i for i, value in enumerate(classes)}
        self.requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, list[float]] = {}
        # gRPC calls by (method, status code name), and their latency by method
        self.grpc_requests: dict[tuple[str, str], int] = {}
        self._grpc_latency: dict[str, list[float]] = {}
        self.predictions = np.zeros(len(classes), dtype=np.int64)
        self.histograms = FeatureHistograms(edges)
        self.rows = 0
        self._pending_x: list[np.ndarray] = []
        self._pending_labels: list[np.ndarray] = []
        self._pending_rows = 0

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        _observe_latency(self._latency, route, seconds)

    def observe_grpc(self, method: str, code: str, seconds: float) -> None:
        key = (method, code)
        self.grpc_requests[key] = self.grpc_requests.get(key, 0) + 1
        _observe_latency(self._grpc_latency, method, seconds)

    def observe_rows(self, x: np.ndarray, labels: np.ndarray) -> None:
        """Queue a request's rows; they are counted in bulk (a dozen numpy calls cost the same
        for one row as for a thousand), at the latest when metrics are read."""
        self._pending_x.append(x)
        self._pending_labels.append(labels)
        self._pending_rows += len(x)
        if self._pending_rows >= FOLD_ROWS:
            self.fold()

    def fold(self) -> None:
        if not self._pending_x:
            return
        x = np.concatenate(self._pending_x)
        labels = np.concatenate(self._pending_labels)
        self._pending_x.clear()
        self._pending_labels.clear()
        self._pending_rows = 0
        self.histograms.observe(x)
        self.rows += len(x)
        if self._class_sorted:
            index = np.clip(np.searchsorted(self._class_values, labels), 0, len(self.classes) - 1)
        else:  # unsorted class list: map label by label
            index = np.array([self._class_lookup.get(label, 0) for label in labels.tolist()])
        self.predictions += np.bincount(index, minlength=len(self.classes))

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        self.fold()
        requests = CounterMetricFamily(
            PREFIX + "http_requests",
            "HTTP requests by route and status",
            labels=["route", "status"],
        )
        for (route, status), count in sorted(self.requests.items()):
            requests.add_metric([route, str(status)], count)
        yield requests

        yield _latency_family(
            "http_request_duration_seconds",
            "Time from request start to response sent, by route",
            "route",
            self._latency,
        )

        grpc_requests = CounterMetricFamily(
            PREFIX + "grpc_requests",
            "V2 gRPC calls by method and status code",
            labels=["method", "code"],
        )
        for (method, code), count in sorted(self.grpc_requests.items()):
            grpc_requests.add_metric([method, code], count)
        yield grpc_requests
        yield _latency_family(
            "grpc_request_duration_seconds",
            "Time from call start to response, by gRPC method",
            "method",
            self._grpc_latency,
        )

        predictions = CounterMetricFamily(
            PREFIX + "predictions", "Predicted rows by class", labels=["class"]
        )
        for value, count in zip(self.classes, self.predictions.tolist(), strict=True):
            predictions.add_metric([str(value)], count)
        yield predictions

        values = HistogramMetricFamily(
            PREFIX + "feature_value",
            "Served input values per feature (buckets: reference deciles)",
            labels=["feature"],
        )
        for index, name in enumerate(self.features):
            values.add_metric(
                [name],
                self.histograms.buckets(index),
                sum_value=float(self.histograms.sums[index]),
            )
        yield values

        nulls = CounterMetricFamily(
            PREFIX + "feature_nulls", "Served null values per feature", labels=["feature"]
        )
        for name, count in zip(self.features, self.histograms.nulls.tolist(), strict=True):
            nulls.add_metric([name], count)
        yield nulls


def _observe_latency(latency: dict[str, list[float]], key: str, seconds: float) -> None:
    counts = latency.get(key)
    if counts is None:
        # one count per bucket, then +Inf, then the sum
        counts = latency[key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
    counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
    counts[-1] += seconds


def _latency_family(
    name: str, documentation: str, label: str, latency: dict[str, list[float]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(PREFIX + name, documentation, labels=[label])
    for key, counts in sorted(latency.items()):
        cumulative = np.cumsum(counts[:-1]).tolist()
        buckets = [(str(le), c) for le, c in zip(LATENCY_BUCKETS, cumulative, strict=False)]
        buckets.append(("+Inf", cumulative[-1]))
        family.add_metric([key], buckets, sum_value=counts[-1])
    return family


def render(metrics: ServeMetrics) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return generate_latest(registry)
