"""V2 REST and gRPC against a hostile corpus, MLServer's published dataplane OpenAPI through
schemathesis, and the committed protoc output against a fresh compile."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from ml.serve.v2 import open_inference_pb2 as pb
from tests.serve.client_venvs import GRPC_TOOLS, MLSERVER, ensure_venv
from tests.serve.fixture_bundle import ROOT, FixtureBundle
from tests.serve.server_process import RunningServer

pytestmark = pytest.mark.slow

MODEL = "serving-test-fixture"
INFER = f"/v2/models/{MODEL}/infer"
N = 30


def _tensor(shape: list[Any], data: Any, datatype: str = "FP32", name: str = "input") -> dict:
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}


def _binary(header: dict, raw: bytes, length: int | None = None) -> tuple[bytes, dict[str, str]]:
    encoded = json.dumps(header).encode()
    shown = len(encoded) if length is None else length
    return encoded + raw, {"Inference-Header-Content-Length": str(shown)}


def hostile_corpus(row: list[float]) -> Iterator[tuple[str, str, bytes, dict[str, str], int, str]]:
    """(case, path, body, headers, expected status, text the error must contain)."""

    def case(name: str, document: Any, status: int, text: str, path: str = INFER):
        return name, path, json.dumps(document).encode(), {}, status, text

    nan_row = np.array([row], dtype=np.float32)
    nan_row[0, 4] = np.nan
    header = {"inputs": [{"name": "input", "shape": [1, N], "datatype": "FP32",
                          "parameters": {"binary_data_size": 4 * N}}]}  # fmt: skip
    yield case("BYTES datatype", _tensor([1, N], ["a"] * N, "BYTES"), 400, "datatype 'BYTES'")
    yield case("BOOL datatype", _tensor([1, N], [True] * N, "BOOL"), 400, "datatype 'BOOL'")
    yield case("made-up datatype", _tensor([1, N], row, "FP128"), 400, "not a V2 datatype")
    yield case(
        "shape/data mismatch", _tensor([1, N], row[:-1]), 400, "needs 30 values, data has 29"
    )
    yield case("too wide", _tensor([1, N + 1], [*row, 1.0]), 400, "must be [rows, 30]")
    yield case("1-D matrix", _tensor([N], row), 400, "must be [rows, 30]")
    yield case("NaN string", _tensor([1, N], ["NaN", *row[1:]]), 400, "data[0] is a string")
    yield case("boolean value", _tensor([1, N], [True, *row[1:]]), 400, "data[0] is a boolean")
    yield case("out of range", _tensor([1, N], [-5.0, *row[1:]]), 400, "outside the data contract")
    yield case("negative shape", _tensor([-1, N], row), 400, "negative dimension")
    yield case("huge shape", _tensor([10**12, N], row), 400, "over the limit")
    yield case("rows over max_rows", _tensor([201, N], row * 201), 400, "limit of 200 rows")
    yield case("INT with fractions", _tensor([1, N], row, "INT32"), 400, "holds integers only")
    yield case("no inputs", {"inputs": []}, 400, "inputs: must be a non-empty list")
    yield case("unknown output", {**_tensor([1, N], row), "outputs": [{"name": "x"}]}, 400,
               "output 'x'")  # fmt: skip
    yield case("unknown feature", {"inputs": [
        {"name": "mean_radiuss", "shape": [1], "datatype": "FP64", "data": [1.0]},
        {"name": "mean_texture", "shape": [1], "datatype": "FP64", "data": [1.0]},
    ]}, 400, "did you mean 'mean_radius'")  # fmt: skip
    yield case("content_type not a string", {**_tensor([1, N], row), "parameters":
               {"content_type": 5}}, 400, "content_type")  # fmt: skip
    yield case("unknown model", _tensor([1, N], row), 404, "model 'nope' is not served",
               "/v2/models/nope/infer")  # fmt: skip
    yield case("unknown version", _tensor([1, N], row), 404, "has no version 'v9'",
               f"/v2/models/{MODEL}/versions/v9/infer")  # fmt: skip
    yield case("empty version", _tensor([1, N], row), 404, "has no version ''",
               f"/v2/models/{MODEL}/versions//infer")  # fmt: skip
    yield "not JSON", INFER, b"{inputs", {}, 400, "not valid JSON"
    yield "body too large", INFER, b" " * 200_001, {}, 413, "over the limit"
    body, headers = _binary(header, nan_row.tobytes())
    yield "NaN in binary FP32", INFER, body, headers, 400, "NaN and infinities are not values"
    body, headers = _binary(header, nan_row.tobytes(), length=10**6)
    yield "header length past the body", INFER, body, headers, 400, "past the end"
    body, headers = _binary(header, nan_row.tobytes()[:-4])
    yield "binary shorter than declared", INFER, body, headers, 400, "binary_data_size"
    body, headers = _binary(header, np.zeros((1, N), np.float32).tobytes() + b"xx")
    yield "bytes after the tensors", INFER, body, headers, 400, "bytes after the binary tensors"
    yield ("header length not a number", INFER, b"{}", {"Inference-Header-Content-Length": "x"},
           400, "is not a length")  # fmt: skip


@pytest.fixture(scope="module")
def digest(fixture_bundle: FixtureBundle) -> str:
    return fixture_bundle.digest


@pytest.fixture(scope="module")
def row(fixture_bundle: FixtureBundle) -> list[float]:
    """A valid row (within the contract's ranges)."""
    return [float(value) for value in fixture_bundle.x_test[0]]


def test_hostile_v2_rest_corpus_gets_4xx_naming_the_problem_and_the_server_stays_up(
    server: RunningServer, row: list[float]
) -> None:
    problems = []
    with server.client() as client:
        for name, path, body, headers, status, text in hostile_corpus(row):
            response = client.post(path, content=body, headers=headers)
            body_json = response.json()
            if response.status_code != status or text not in body_json.get("error", ""):
                problems.append(f"{name}: {response.status_code} {response.text[:300]}")
            elif set(body_json) != {"error"}:
                problems.append(f"{name}: error body is not V2's {{'error'}}: {body_json}")
            assert client.get("/v2/health/live").json() == {"live": True}, name
        wrong_method = client.get(INFER)
        assert wrong_method.status_code == 405 and set(wrong_method.json()) == {"error"}
        assert wrong_method.headers["allow"] == "POST"
        metrics = client.get("/metrics").text
    assert not problems, "\n".join(problems)
    assert server.process.poll() is None
    assert 'status="500"' not in metrics
    assert 'route="/v2/models/{model_name}/infer",status="400"' in metrics
    assert "Traceback" not in server.output()


def _grpc_call(server: RunningServer, method: str, request: Any, response: Any) -> Any:
    with grpc.insecure_channel(server.grpc_address) as channel:
        call = channel.unary_unary(
            f"/inference.GRPCInferenceService/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return call(request, timeout=10)


def _infer_request(shape: list[int], raw: bytes, datatype: str = "FP32", **kwargs: Any) -> Any:
    request = pb.ModelInferRequest(model_name=kwargs.pop("model", MODEL), **kwargs)
    request.inputs.add(name="input", datatype=datatype, shape=shape)
    request.raw_input_contents.append(raw)
    return request


def test_hostile_v2_grpc_corpus_gets_status_codes_and_the_server_stays_up(
    server: RunningServer, row: list[float]
) -> None:
    valid = row
    row = np.array([valid], dtype=np.float32)
    nan = row.copy()
    nan[0, 0] = np.nan
    typed = pb.ModelInferRequest(model_name=MODEL)
    typed.inputs.add(name="input", datatype="FP64", shape=[1, N]).contents.fp64_contents.extend(
        valid[:-1]
    )
    cases = {
        "wrong datatype": (_infer_request([1, N], row.tobytes(), "BYTES"), "INVALID_ARGUMENT"),
        "raw length mismatch": (_infer_request([1, N], row.tobytes()[:-1]), "INVALID_ARGUMENT"),
        "typed length mismatch": (typed, "INVALID_ARGUMENT"),
        "NaN": (_infer_request([1, N], nan.tobytes()), "INVALID_ARGUMENT"),
        "negative shape": (_infer_request([-1, N], row.tobytes()), "INVALID_ARGUMENT"),
        "huge shape": (_infer_request([2**62, N], row.tobytes()), "INVALID_ARGUMENT"),
        "unknown model": (_infer_request([1, N], row.tobytes(), model="nope"), "NOT_FOUND"),
        "message too large": (_infer_request([1, N], b"\0" * 300_000), "RESOURCE_EXHAUSTED"),
    }
    problems = []
    for name, (request, code) in cases.items():
        try:
            _grpc_call(server, "ModelInfer", request, pb.ModelInferResponse)
            problems.append(f"{name}: accepted")
        except grpc.RpcError as error:
            if error.code().name != code:  # type: ignore[attr-defined]
                problems.append(f"{name}: {error.code()} {error.details()}")  # type: ignore[attr-defined]
        live = _grpc_call(server, "ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse)
        assert live.live, name
    assert not problems, "\n".join(problems)
    answer = _grpc_call(
        server, "ModelInfer", _infer_request([1, N], row.tobytes()), pb.ModelInferResponse
    )
    assert [output.name for output in answer.outputs] == ["predict", "predict_proba"]
    # the same row as typed FP64 contents gets the same raw answer
    typed = pb.ModelInferRequest(model_name=MODEL)
    typed.inputs.add(name="input", datatype="FP64", shape=[1, N]).contents.fp64_contents.extend(
        row[0].astype(float).tolist()
    )
    same = _grpc_call(server, "ModelInfer", typed, pb.ModelInferResponse)
    assert list(same.raw_output_contents) == list(answer.raw_output_contents)
    assert server.process.poll() is None
    assert "Traceback" not in server.output()


def published_dataplane_spec(out: Path) -> Path:
    """MLServer 1.7.1's dataplane.json from the installed wheel, with its one invalid schema
    repaired: TensorData's `{"type": "bytes"}` (not a JSON Schema type) becomes what it means,
    a base64 string. Nothing else is changed."""
    python = ensure_venv(MLSERVER)
    locate = "import mlserver, pathlib; print(pathlib.Path(mlserver.__file__).parent)"
    found = subprocess.run(
        [str(python), "-c", locate], capture_output=True, text=True, check=True
    ).stdout.strip()
    spec = json.loads((Path(found) / "rest" / "openapi" / "dataplane.json").read_text())
    tensor_data = spec["components"]["schemas"]["TensorData"]["oneOf"]
    assert {"type": "bytes"} in tensor_data, "the published spec changed: revisit this repair"
    tensor_data[tensor_data.index({"type": "bytes"})] = {"type": "string", "format": "byte"}
    path = out / "dataplane.json"
    path.write_text(json.dumps(spec))
    return path


def test_schemathesis_on_mlservers_dataplane_openapi_finds_no_5xx_and_no_schema_break(
    server: RunningServer, digest: str, tmp_path: Path
) -> None:
    spec = published_dataplane_spec(tmp_path)
    # the path parameters name the served model, so that infer is exercised, not only 404s
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f'[parameters]\n"path.model_name" = "{MODEL}"\n"path.model_version" = "{digest}"\n'
    )
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [
            str(st), "--config-file", str(config), "run", str(spec), "--url", server.url,
            "--checks", "not_a_server_error,response_schema_conformance",
            "--max-examples", "30", "--seed", "20261201", "--no-color",
        ],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Tested: 15" in result.stdout, result.stdout[-3000:]
    with server.client() as client:
        metrics = client.get("/metrics").text
    # random bodies reach the contract checks (a valid infer answer is held to the same schema by
    # mlserver's InferenceResponse in test_v2_clients.py)
    assert 'route="/v2/models/{model_name}/infer",status="400"' in metrics
    for route in ("/v2/models/{model_name}/ready", "/v2", "/v2/models/{model_name}"):
        assert f'route="{route}",status="200"' in metrics, route
    assert 'status="500"' not in metrics
    assert "Traceback" not in server.output()


def test_committed_protoc_output_matches_a_fresh_compile(tmp_path: Path) -> None:
    python = ensure_venv(GRPC_TOOLS)
    source = ROOT / "ml" / "serve" / "v2"
    subprocess.run(
        [
            str(python), "-m", "grpc_tools.protoc", f"-I{source}", f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}", str(source / "open_inference.proto"),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    for name in ("open_inference_pb2.py", "open_inference_pb2.pyi"):
        fresh = (tmp_path / name).read_text()
        assert fresh == (source / name).read_text(), (
            f"ml/serve/v2/{name} is stale: regenerate it (see ml/serve/v2/grpc_service.py)"
        )
