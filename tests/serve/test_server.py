# ruff: noqa: E501  (the bad-payload table reads best one case per line)
"""The real server (uvicorn subprocess on 127.0.0.1) against the bundle's own model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import joblib
import numpy as np
import pytest

from tests.serve.fixture_bundle import ROOT, FixtureBundle
from tests.serve.server_process import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

JSON = {"content-type": "application/json"}


def row_of(bundle: FixtureBundle, values: np.ndarray) -> dict[str, float]:
    return {name: float(value) for name, value in zip(bundle.features, values, strict=True)}


def test_predictions_equal_the_bundle_models_predict_on_the_test_split(
    server: RunningServer, fixture_bundle: FixtureBundle
) -> None:
    model = joblib.load(fixture_bundle.path / "model.joblib")
    expected = model.predict(fixture_bundle.x_test)
    rows = [row_of(fixture_bundle, values) for values in fixture_bundle.x_test]
    with server.client() as client:
        batch = client.post("/v1/predict", json={"rows": rows})
        singles = [client.post("/v1/predict", json={"row": row}).json() for row in rows[:20]]
    assert batch.status_code == 200, batch.text
    answer = batch.json()
    assert answer["predictions"] == expected.tolist()
    assert answer["model"] == fixture_bundle.digest
    np.testing.assert_allclose(
        answer["probabilities"], model.predict_proba(fixture_bundle.x_test), atol=1e-4
    )
    assert [single["predictions"][0] for single in singles] == expected[:20].tolist()
    with server.client() as client:
        arrays = client.post("/v1/predict", json={"rows": fixture_bundle.x_test.tolist()})
    assert arrays.json()["predictions"] == expected.tolist()


def _bad_payloads(bundle: FixtureBundle) -> list[tuple[str, bytes, dict[str, str], int, str]]:
    good = row_of(bundle, bundle.x_test[0])
    first = bundle.features[0]
    missing = {k: v for k, v in good.items() if k != first}
    as_json = lambda value: json.dumps(value).encode()  # noqa: E731
    return [
        ("missing field", as_json({"row": missing}), JSON, 422, f"{first}: missing"),
        ("wrong type", as_json({"row": {**good, first: "12.5"}}), JSON, 422, f"{first}: expected a number"),
        ("boolean", as_json({"row": {**good, first: True}}), JSON, 422, f"{first}: expected a number, got boolean"),
        ("out of range", as_json({"row": {**good, first: 1e6}}), JSON, 422, f"{first}: 1000000.0 is outside"),
        ("negative", as_json({"rows": [good, {**good, first: -1}]}), JSON, 422, f"rows[1].{first}"),
        ("NaN string", as_json({"row": {**good, first: "NaN"}}), JSON, 422, f'{first}: expected a number, got string "NaN"'),
        ("NaN literal", json.dumps({"row": {**good, first: float("nan")}}).encode(), JSON, 400, "not valid JSON"),
        ("Infinity literal", json.dumps({"row": {**good, first: float("inf")}}).encode(), JSON, 400, "not valid JSON"),
        ("huge number", as_json({"row": good}).replace(b"}}", b', "x": 1e999}}'), JSON, 400, "infinity"),
        ("unknown field", as_json({"row": {**good, "mean_radios": 1.0}}), JSON, 422, "unknown field 'mean_radios' (did you mean 'mean_radius'?)"),
        ("too many rows", as_json({"rows": [good] * 201}), JSON, 422, "201 rows, at most 200"),
        ("no rows", as_json({"rows": []}), JSON, 422, "at least one row"),
        ("row not an object", as_json({"rows": ["mean_radius=1"]}), JSON, 422, "rows[0]: must be an object"),
        ("array row too short", as_json({"rows": [[1.0, 2.0]]}), JSON, 422, "rows[0]: 2 values; an array row holds all 30"),
        ("array row wrong type", as_json({"rows": [["1.0", *list(good.values())[1:]]]}), JSON, 422, f"rows[0].{first}: expected a number"),
        ("neither row nor rows", as_json({"data": good}), JSON, 422, "unknown key 'data'"),
        ("not JSON", b"mean_radius=12", JSON, 400, "not valid JSON"),
        ("JSON but not an object", b"[1, 2]", JSON, 400, "must be a JSON object"),
        ("wrong content type", as_json({"row": good}), {"content-type": "text/plain"}, 415, "send application/json"),
        ("no content type", as_json({"row": good}), {}, 415, "send application/json"),
        ("too large", as_json({"rows": [good] * 150}) + b" " * 200_000, JSON, 413, "over the limit"),
    ]  # fmt: skip


def test_bad_payloads_get_a_4xx_naming_the_problem_and_the_server_keeps_serving(
    server: RunningServer, fixture_bundle: FixtureBundle
) -> None:
    good = {"row": row_of(fixture_bundle, fixture_bundle.x_test[0])}
    failures = []
    with server.client() as client:
        for name, body, headers, status, message in _bad_payloads(fixture_bundle):
            response = client.post("/v1/predict", content=body, headers=headers)
            if response.status_code != status or message not in response.json()["error"]:
                failures.append(f"{name}: {response.status_code} {response.text[:200]}")
            assert client.post("/v1/predict", json=good).status_code == 200, name
        assert client.get("/v1/predict").status_code == 405
    assert not failures, "\n".join(failures)


def test_a_chunked_body_past_the_limit_is_refused_with_413(server: RunningServer) -> None:
    def chunks():  # no content-length: the server must count while reading
        for _ in range(30):
            yield b" " * 10_000

    with server.client() as client:
        response = client.post("/v1/predict", content=chunks(), headers=JSON)
        assert response.status_code == 413, response.text
        assert client.get("/healthz").status_code == 200


def test_null_in_a_nullable_feature_is_imputed_by_the_model(
    server: RunningServer, fixture_bundle: FixtureBundle
) -> None:
    row: dict[str, float | None] = dict(row_of(fixture_bundle, fixture_bundle.x_test[0]))
    row[fixture_bundle.features[3]] = None
    with server.client() as client:
        response = client.post("/v1/predict", json={"row": row})
    assert response.status_code == 200, response.text
    model = joblib.load(fixture_bundle.path / "model.joblib")
    x = fixture_bundle.x_test[:1].copy()
    x[0, 3] = np.nan
    assert response.json()["predictions"] == model.predict(x).tolist()


def test_health_model_and_metrics_report_what_was_served(
    server: RunningServer, fixture_bundle: FixtureBundle
) -> None:
    rows = [row_of(fixture_bundle, values) for values in fixture_bundle.x_test[:10]]
    with server.client() as client:
        assert client.get("/healthz").json() == {"status": "alive"}
        assert client.get("/readyz").json()["model"] == fixture_bundle.digest
        model = client.get("/v1/model").json()
        assert model["digest"] == fixture_bundle.digest
        assert model["features"] == fixture_bundle.features
        assert model["model_card"]["name"] == "serving-test-fixture"
        assert client.post("/v1/predict", json={"rows": rows}).status_code == 200
        metrics = client.get("/metrics").text
    assert 'liftlock_http_requests_total{route="/v1/predict",status="200"}' in metrics
    assert (
        'liftlock_http_request_duration_seconds_bucket{le="0.005",route="/v1/predict"}' in metrics
    )
    assert 'liftlock_predictions_total{class="1"}' in metrics
    first = fixture_bundle.features[0]
    assert f'liftlock_feature_value_count{{feature="{first}"}}' in metrics
    assert f'liftlock_feature_nulls_total{{feature="{first}"}}' in metrics


def test_a_tampered_model_refuses_to_start_saying_why(bundle_copy) -> None:
    onnx = bundle_copy / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    result = subprocess.run(
        [sys.executable, "-m", "ml.serve", "--bundle", str(bundle_copy), "--port", "9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 4, result.stderr
    assert "model.onnx: sha256" in result.stderr
    assert "does not match bundle.json" in result.stderr
    assert "Uvicorn running" not in result.stderr


def test_sigterm_stops_gracefully_and_flushes_the_input_log(
    fixture_bundle: FixtureBundle, tmp_path
) -> None:
    running = start_server(fixture_bundle.path, tmp_path)
    rows = [row_of(fixture_bundle, values) for values in fixture_bundle.x_test[:5]]
    with running.client() as client:
        assert client.post("/v1/predict", json={"rows": rows}).status_code == 200
    running.process.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal once shut down, so the exit status says "terminated by SIGTERM"
    assert running.process.wait(timeout=15) in (0, -signal.SIGTERM), running.output()
    stop_server(running)
    lines = running.input_log.read_text().splitlines()
    assert len(lines) == 1
    np.testing.assert_allclose(json.loads(lines[0])["x"], fixture_bundle.x_test[:5])
    assert "Application shutdown complete" in running.output()


def test_the_sklearn_backend_answers_like_onnx(fixture_bundle: FixtureBundle, tmp_path) -> None:
    running = start_server(fixture_bundle.path, tmp_path, "--backend", "sklearn")
    try:
        rows = [row_of(fixture_bundle, values) for values in fixture_bundle.x_test]
        with running.client() as client:
            answer = client.post("/v1/predict", json={"rows": rows}).json()
            backend = client.get("/v1/model").json()["backend"]
    finally:
        stop_server(running)
    model = joblib.load(fixture_bundle.path / "model.joblib")
    assert backend == "sklearn"
    assert answer["predictions"] == model.predict(fixture_bundle.x_test).tolist()


def test_liftlock_serve_refuses_a_tampered_bundle_with_exit_4(bundle_copy, capsys) -> None:
    from liftlock.cli import main

    contract = bundle_copy / "data_contract.json"
    contract.write_text(contract.read_text().replace('"maximum": 43', '"maximum": 430'))
    assert main(["serve", "--bundle", str(bundle_copy), "--port", "9"]) == 4
    error = capsys.readouterr().err
    assert "data_contract.json: sha256" in error
    assert "rebuild the bundle with `dvc repro`" in error
