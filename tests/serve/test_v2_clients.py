"""The real V2 clients against the real server: tritonclient http (JSON and binary tensors) and
grpc, kserve's InferenceRESTClient (v2), mlserver's types and codecs. Each runs in its own pinned
venv (tests/serve/client_venvs.py); its answers must equal /v1's for the same rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.serve.client_venvs import KSERVE, MLSERVER, TRITON, run_client
from tests.serve.fixture_bundle import FixtureBundle
from tests.serve.server_process import RunningServer

pytestmark = pytest.mark.slow

ROWS = 7


@pytest.fixture(scope="module")
def v1_answer(server: RunningServer, fixture_bundle: FixtureBundle) -> dict[str, Any]:
    rows = fixture_bundle.x_test[:ROWS].tolist()
    with server.client() as client:
        response = client.post("/v1/predict", json={"rows": rows})
    assert response.status_code == 200, response.text
    return {"rows": rows, **response.json()}


@pytest.fixture(scope="module")
def target(server: RunningServer, fixture_bundle: FixtureBundle, v1_answer: dict) -> dict:
    return {
        "url": server.url,
        "address": server.url.removeprefix("http://"),
        "model": "serving-test-fixture",
        "version": fixture_bundle.digest,
        "rows": v1_answer["rows"],
        "features": fixture_bundle.features,
    }


def assert_same_answer(got: dict[str, Any], v1: dict[str, Any], where: str) -> None:
    assert got["labels"] == v1["predictions"], where
    # /v1 and V2 both carry the model's float32 probabilities; compare them as float32
    np.testing.assert_array_equal(
        np.float32(got["probabilities"]), np.float32(v1["probabilities"]), err_msg=where
    )


def test_tritonclient_http_json_and_binary_tensors_answer_like_v1(
    target: dict, v1_answer: dict
) -> None:
    out = run_client(TRITON, "triton_http.py", target)
    assert (out["live"], out["ready"], out["model_ready"], out["model_ready_version"]) == (
        True, True, True, True,
    )  # fmt: skip
    assert "binary_tensor_data" in out["server_metadata"]["extensions"]
    assert out["metadata"]["versions"] == [target["version"]]
    assert out["metadata"]["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 30]}
    for case in ("json", "binary", "defaults"):
        assert_same_answer(out[case], v1_answer, case)
    assert out["json"]["id"] == "id-json" and out["binary"]["id"] == "id-binary"
    assert out["selected"] == ["predict_proba"]
    assert out["error"]["status"] == "400"
    assert "input 'input': shape [1, 2] must be [rows, 30]" in out["error"]["message"]


def test_tritonclient_grpc_answers_like_v1_and_refuses_with_status_codes(
    server: RunningServer, target: dict, v1_answer: dict
) -> None:
    out = run_client(TRITON, "triton_grpc.py", {**target, "address": server.grpc_address})
    assert (out["live"], out["ready"], out["model_ready"]) == (True, True, True)
    assert out["server_metadata"]["name"] == "liftlock"
    assert out["metadata"]["name"] == target["model"]
    assert out["metadata"]["versions"] == [target["version"]]
    assert_same_answer(out["infer"], v1_answer, "grpc")
    assert out["infer"]["id"] == "grpc-1"
    assert out["infer"]["parameters"] == {"tenant": {"string_param": "a"}}
    assert out["selected"] == ["predict"]
    errors = out["errors"]
    assert errors["two columns"]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "shape [1, 2] must be [rows, 30]" in errors["two columns"]["message"]
    assert errors["nan"]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "NaN" in errors["nan"]["message"] and "mean_radius" in errors["nan"]["message"]
    assert errors["unknown model"]["status"] == "StatusCode.NOT_FOUND"
    with server.client() as client:
        metrics = client.get("/metrics").text
    method = "/inference.GRPCInferenceService/ModelInfer"
    assert f'liftlock_grpc_requests_total{{code="OK",method="{method}"}}' in metrics
    assert f'liftlock_grpc_requests_total{{code="NOT_FOUND",method="{method}"}}' in metrics


def test_kserve_rest_client_v2_answers_like_v1(target: dict, v1_answer: dict) -> None:
    out = run_client(KSERVE, "kserve_rest.py", target)
    assert (out["live"], out["ready"], out["model_ready"]) == (True, True, True)
    assert out["other_model_ready"] is False
    for case in ("json", "binary"):
        assert_same_answer(out[case], v1_answer, case)
        assert out[case]["id"] == f"kserve-{case}"
    assert out["error"]["status"] == 400
    assert set(out["error"]["body"]) == {"error"}


def test_mlserver_numpy_and_pandas_codecs_answer_like_v1(target: dict, v1_answer: dict) -> None:
    out = run_client(MLSERVER, "mlserver_types.py", target)
    assert out["metadata"]["name"] == target["model"]
    names = [tensor["name"] for tensor in out["metadata"]["inputs"]]
    assert names == ["input", *target["features"]]
    for case in ("numpy", "pandas"):
        assert_same_answer(out[case], v1_answer, case)
    assert out["numpy"]["id"] == "mlserver-np"
    assert out["pandas"]["parameters"]["content_type"] == "pd"  # request parameters echoed
    missing = target["features"][3]
    assert out["missing_column"]["status"] == 400
    assert f"input '{missing}': missing" in out["missing_column"]["body"]["error"]
