"""Fast unit tests of the serving pieces: request parser, feature histograms, settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.serve.metrics import FeatureHistograms, ServeMetrics, feature_edges
from ml.serve.schema import RequestError, RequestParser, feature_specs
from ml.serve.settings import ServeConfigError, load_settings

CONTRACT = {
    "features": [
        {"name": "age", "type": "integer", "nullable": False, "minimum": 0, "maximum": 120},
        {"name": "income", "type": "number", "nullable": True, "minimum": 0, "maximum": None},
    ]
}


@pytest.fixture
def parser() -> RequestParser:
    return RequestParser(feature_specs(CONTRACT, ["age", "income"]), max_rows=3)


def parse(parser: RequestParser, document: object) -> np.ndarray:
    return parser.parse(json.dumps(document).encode())


def test_rows_become_a_float_matrix_in_model_order(parser: RequestParser) -> None:
    matrix = parse(parser, {"rows": [{"income": 10.5, "age": 30}, {"age": 1, "income": None}]})
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, [[30.0, 10.5], [1.0, np.nan]])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"row": {"age": 30.5, "income": 1.0}}, "row.age: expected an integer, got 30.5"),
        ({"row": {"age": None, "income": 1.0}}, "row.age: expected a number, got null"),
        ({"row": {"age": False, "income": 1.0}}, "row.age: expected a number, got boolean"),
        ({"row": {"age": 2**70, "income": 1.0}}, "row.age: 1.1805916207174113e+21 is outside"),
        ({"row": {"age": 3, "income": -1}}, "row.income: -1 is outside the data contract range"),
        ({"row": {"age": 3, "income": 1, "ages": 2}}, "unknown field 'ages'"),
        ({"rows": [{"age": 3, "income": 1}] * 4}, "rows: 4 rows, at most 3 per request"),
        ({"row": {"age": 3, "income": 1}, "rows": []}, "give either 'row' or 'rows'"),
    ],
)
def test_a_bad_row_is_named(parser: RequestParser, document: object, message: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse(parser, document)
    assert 400 <= caught.value.status < 500
    assert message in caught.value.message


def test_an_unknown_contract_type_is_refused() -> None:
    from ml.errors import BundleError

    contract = {"features": [{"name": "city", "type": "string"}]}
    with pytest.raises(BundleError, match="feature 'city' has type 'string'"):
        feature_specs(contract, ["city"])


def test_feature_histograms_count_like_numpy() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(400, 3)) * [1.0, 50.0, 0.01]
    edges = feature_edges(reference, np.full(3, -np.inf), np.full(3, np.inf))
    histograms = FeatureHistograms(edges)
    served = rng.normal(size=(1000, 3)) * [2.0, 50.0, 0.02]
    served[::7, 1] = np.nan
    histograms.observe(served)
    for j in range(3):
        column = served[:, j]
        expected = [int(np.sum(column <= edge)) for edge in edges[j]]
        expected.append(int(np.sum(~np.isnan(column))))
        assert [count for _, count in histograms.buckets(j)] == expected
    assert histograms.nulls.tolist() == [0, int(np.sum(np.isnan(served[:, 1]))), 0]


def test_queued_rows_are_counted_when_metrics_are_read() -> None:
    metrics = ServeMetrics(["a"], [0, 1], [np.array([0.0])])
    metrics.observe_rows(np.array([[-1.0], [1.0], [2.0]]), np.array([0, 1, 1]))
    metrics.observe_request("/v1/predict", 200, 0.0007)
    families = {family.name: family for family in metrics.collect()}
    assert metrics.predictions.tolist() == [1, 2]
    samples = {
        (s.name, tuple(s.labels.items())): s.value
        for s in families["liftlock_feature_value"].samples
    }
    assert samples[("liftlock_feature_value_bucket", (("feature", "a"), ("le", "0.0")))] == 1
    latency = families["liftlock_http_request_duration_seconds"].samples
    assert any(s.labels.get("le") == "0.001" and s.value == 1 for s in latency)


def test_settings_come_from_the_environment_and_name_a_bad_variable(tmp_path) -> None:
    settings = load_settings({"LIFTLOCK_BUNDLE": str(tmp_path), "LIFTLOCK_PORT": "9000"})
    assert (settings.bundle, settings.port, settings.host) == (tmp_path, 9000, "127.0.0.1")
    assert load_settings({"LIFTLOCK_BUNDLE": str(tmp_path)}, port=81).port == 81
    with pytest.raises(ServeConfigError, match="LIFTLOCK_PORT='http': expected int"):
        load_settings({"LIFTLOCK_BUNDLE": str(tmp_path), "LIFTLOCK_PORT": "http"})
    with pytest.raises(ServeConfigError, match="no model bundle given"):
        load_settings({})


def test_the_typed_decoder_never_accepts_what_the_checked_path_refuses() -> None:
    """msgspec (tier 1) only accelerates: on 400 mutated bodies it either agrees with the orjson
    path (same matrix) or steps aside; it never accepts a body the orjson path refuses."""
    rng = np.random.default_rng(5)
    specs = feature_specs(CONTRACT, ["age", "income"])
    parser = RequestParser(specs, max_rows=3)
    oddities = [None, True, "7", [], {}, -1, 1e308, 2**63, 0.5, 121, 3, 1e-9, "NaN"]
    agreed = 0
    for _ in range(400):
        rows: list[object] = []
        for _ in range(int(rng.integers(0, 5))):
            row: dict[str, object] = {"age": int(rng.integers(0, 121)), "income": 10.0}
            action = rng.integers(0, 6)
            if action == 1:
                row[str(rng.choice(["age", "income"]))] = oddities[rng.integers(len(oddities))]
            elif action == 2:
                row.pop(str(rng.choice(["age", "income"])))
            elif action == 3:
                row["extra"] = 1
            rows.append(list(row.values()) if action == 4 else row)
        document: object = (
            {"rows": rows} if rng.integers(0, 4) else {"row": rows[0] if rows else None}
        )
        body = json.dumps(document).encode()
        typed = parser._parse_typed(body)
        try:
            checked = parser._parse_checked(body)
        except RequestError:
            assert typed is None, body
            continue
        if typed is not None:
            np.testing.assert_array_equal(typed, checked)
            agreed += 1
    assert agreed > 50


def test_the_coalescing_transport_sends_a_response_in_one_write_and_holds_nothing() -> None:
    import asyncio

    from ml.serve.protocol import CoalescingTransport

    class Recorder:
        def __init__(self) -> None:
            self.writes: list[bytes] = []
            self.closed = False

        def write(self, data: bytes) -> None:
            self.writes.append(data)

        def close(self) -> None:
            self.closed = True

        def get_extra_info(self, name: str) -> str:
            return f"info:{name}"

    async def scenario() -> Recorder:
        raw = Recorder()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HEAD1")
        transport.write(b"BODY1")  # one write: header + body
        transport.write(b"HEAD2")  # a response without a body write: flushed next loop turn
        await asyncio.sleep(0)
        transport.write(b"LAST")
        transport.close()  # flushes what it holds before closing
        assert transport.get_extra_info("peername") == "info:peername"
        return raw

    raw = asyncio.run(scenario())
    assert raw.writes == [b"HEAD1BODY1", b"HEAD2", b"LAST"]
    assert raw.closed
