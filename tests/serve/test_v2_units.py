"""Fast tests of the V2 pieces in process: the codec's rules, the routes the app answers against
the routes OpenAPI documents, and the one option set of both server CLIs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.serve.schema import RequestError, feature_specs
from ml.serve.v2.codec import V2Model
from ml.serve.v2.rest import encode_infer, parse_infer
from tests.serve.fixture_bundle import FixtureBundle

CONTRACT = {
    "features": [
        {"name": "age", "type": "integer", "nullable": False, "minimum": 0, "maximum": 120},
        {"name": "income", "type": "number", "nullable": True, "minimum": 0, "maximum": None},
    ]
}


@pytest.fixture
def model() -> V2Model:
    return V2Model(
        name="m", version="sha256:x", platform="onnx_onnxv1",
        specs=feature_specs(CONTRACT, ["age", "income"]), classes=[0, 1],
        probability_datatype="FP32", max_rows=3,
    )  # fmt: skip


def matrix(model: V2Model, document: dict) -> np.ndarray:
    request = parse_infer(model, json.dumps(document).encode(), None)
    return model.matrix(request.tensors)


def test_one_matrix_tensor_and_per_feature_tensors_give_the_same_rows(model: V2Model) -> None:
    one = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64",
                       "data": [[30, 10.5], [1, None]]}]}  # fmt: skip
    columns = {"inputs": [
        {"name": "income", "shape": [2, 1], "datatype": "FP64", "data": [10.5, None]},
        {"name": "age", "shape": [2], "datatype": "INT64", "data": [30, 1]},
    ]}  # fmt: skip
    expected = [[30.0, 10.5], [1.0, np.nan]]
    np.testing.assert_array_equal(matrix(model, one), expected)
    np.testing.assert_array_equal(matrix(model, columns), expected)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [30.5, 1]}],
         "row 0, feature 'age': expected an integer, got 30.5"),
        ([{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [None, 1]}],
         "row 0, feature 'age': NaN (or null) is not allowed"),
        ([{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [3, -1]}],
         "feature 'income': -1.0 is outside the data contract range"),
        ([{"name": "x", "shape": [4, 2], "datatype": "FP32", "data": [1] * 8}],
         "over the limit of 3 rows"),
        ([{"name": "age", "shape": [1], "datatype": "FP32", "data": [1]}],
         "input 'income': missing"),
        ([{"name": "age", "shape": [1], "datatype": "FP32", "data": [1]},
          {"name": "age", "shape": [1], "datatype": "FP32", "data": [1]}],
         "input 'age': given twice"),
        ([{"name": "age", "shape": [1], "datatype": "FP32", "data": [1]},
          {"name": "income", "shape": [2], "datatype": "FP32", "data": [1, 2]}],
         "different row counts"),
        ([{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [[1], 2]}],
         "mixes arrays and values"),
    ],
)  # fmt: skip
def test_a_bad_tensor_is_refused_naming_the_input_and_the_rule(
    model: V2Model, inputs: list, message: str
) -> None:
    with pytest.raises(RequestError) as caught:
        matrix(model, {"inputs": inputs})
    assert 400 <= caught.value.status < 500
    assert message in caught.value.message
    assert set(json.loads(caught.value.v2_body())) == {"error"}


def test_binary_outputs_follow_the_json_header_and_json_outputs_carry_data(model: V2Model) -> None:
    document = {"id": "7", "parameters": {"binary_data_output": True},
                "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}],
                "outputs": [{"name": "predict", "parameters": {"binary_data": False}},
                            {"name": "predict_proba"}]}  # fmt: skip
    request = parse_infer(model, json.dumps(document).encode(), None)
    probabilities = np.array([[0.25, 0.75]], dtype=np.float32)
    outputs = model.outputs(np.array([1]), probabilities, request.outputs)
    body, header_length = encode_infer(model, request, outputs)
    assert header_length is not None
    header = json.loads(body[:header_length])
    assert header["id"] == "7" and header["parameters"] == {"binary_data_output": True}
    assert header["outputs"][0] == {"name": "predict", "datatype": "INT64", "shape": [1],
                                    "data": [1]}  # fmt: skip
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 8}
    np.testing.assert_array_equal(np.frombuffer(body[header_length:], "<f4"), probabilities[0])


def test_the_routes_the_app_answers_are_the_routes_openapi_documents(
    fixture_bundle: FixtureBundle,
) -> None:
    from ml.serve.app import ServeApp
    from ml.serve.model import load_bundle
    from ml.serve.settings import ServeSettings

    app = ServeApp(ServeSettings(bundle=fixture_bundle.path), load_bundle(fixture_bundle.path))
    answered = {(route, method) for route, method, _ in app.route_table()}
    documented = {
        (path, method.upper())
        for path, operations in app._docs.openapi()["paths"].items()
        for method in operations
    }
    assert answered == documented
    assert ("/v2/models/{model_name}/versions/{model_version}/infer", "POST") in answered


def test_both_server_clis_take_the_one_option_set() -> None:
    import typer
    from typer.main import get_command

    from liftlock.commands.serve import register
    from ml.serve.__main__ import build_parser
    from ml.serve.settings import options

    flags = {option.flag for option in options()}
    argparse_flags = {
        flag for action in build_parser()._actions for flag in action.option_strings
    } - {"-h", "--help"}
    app = typer.Typer()
    register(app)
    app.command("other")(lambda: None)  # a group, so that `serve` is a subcommand
    command = get_command(app).commands["serve"]  # type: ignore[attr-defined]
    typer_flags = {flag for param in command.params for flag in param.opts}
    assert "--grpc-port" in flags and "--input-window" in flags
    assert argparse_flags - {f"--no-{flag[2:]}" for flag in flags} == flags
    assert typer_flags == flags


def test_a_busy_grpc_port_is_refused_before_anything_listens(fixture_bundle: FixtureBundle) -> None:
    import socket
    import subprocess
    import sys

    from tests.serve.server_process import free_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "ml.serve", "--bundle", str(fixture_bundle.path),
             "--port", str(free_port()), "--grpc-port", str(taken)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"--grpc-port: cannot listen on 127.0.0.1:{taken}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_model_failure_is_a_plain_500_on_both_protocols(fixture_bundle: FixtureBundle) -> None:
    """The server stays up and says so, whichever protocol's route the model failed under."""
    import asyncio

    import httpx

    from ml.serve.app import ServeApp
    from ml.serve.model import load_bundle
    from ml.serve.settings import ServeSettings

    app = ServeApp(ServeSettings(bundle=fixture_bundle.path), load_bundle(fixture_bundle.path))

    def broken(_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise RuntimeError("the model fell over")

    app._predict = broken  # type: ignore[method-assign]
    row = dict(zip(fixture_bundle.features, map(float, fixture_bundle.x_test[0]), strict=True))
    width = len(fixture_bundle.features)
    v2 = {"inputs": [{"name": "input", "shape": [1, width], "datatype": "FP64",
                      "data": [float(v) for v in fixture_bundle.x_test[0]]}]}  # fmt: skip

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            model = app.v2.name
            return [
                await client.post("/v1/predict", json={"row": row}),
                await client.post(f"/v2/models/{model}/infer", json=v2),
            ]

    for answer in asyncio.run(ask()):
        assert answer.status_code == 500, answer.text
        assert answer.json() == {"error": "internal error while predicting; see the server log"}
