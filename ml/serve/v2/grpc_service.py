"""The V2 gRPC service (`inference.GRPCInferenceService`) on its own port, beside the ASGI app.

A grpcio server with a small thread pool: the ONNX session is thread-safe, and everything that
mutates shared state (metrics, the recent-input window, the input log) is handed to the app's
event loop with `call_soon_threadsafe`, so it runs on one thread like the HTTP routes. Requests
go through the same codec as V2 REST (ml.serve.v2.codec); a refusal is a gRPC status code with
the same message.

The messages come from open_inference.proto, compiled by protoc 29 (grpcio-tools==1.70.0, matching
protobuf 5.29 in requirements.lock):

    python -m grpc_tools.protoc -I ml/serve/v2 --python_out=ml/serve/v2 --pyi_out=ml/serve/v2 \\
        ml/serve/v2/open_inference.proto

tests/serve/test_v2_grpc.py regenerates them in a pinned venv and fails when the committed
files differ.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import grpc

from ml.serve.schema import RequestError
from ml.serve.settings import ServeConfigError
from ml.serve.v2 import open_inference_pb2 as pb
from ml.serve.v2.codec import Tensor, output_bytes

if TYPE_CHECKING:
    from ml.serve.app import ServeApp

log = logging.getLogger("liftlock.serve")

SERVICE = "inference.GRPCInferenceService"
WORKERS = 4
GRACE_SECONDS = 5
# HTTP status of a RequestError -> the gRPC code that means the same
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
# datatype -> the InferTensorContents field that carries it
CONTENTS_FIELDS = {
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
}


class InferenceService:
    def __init__(self, app: ServeApp, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.model = app.v2
        self._loop = loop
        self._predict = app.bundle.predictor.predict

    def handlers(self) -> grpc.GenericRpcHandler:
        def unary(method: Callable[[Any, grpc.ServicerContext], Any], request: Any, response: Any):
            return grpc.unary_unary_rpc_method_handler(
                self._observed(method),
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            )

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "ServerLive": unary(self.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
                "ServerReady": unary(
                    self.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse
                ),
                "ModelReady": unary(self.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
                "ServerMetadata": unary(
                    self.server_metadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse
                ),
                "ModelMetadata": unary(
                    self.model_metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse
                ),
                "ModelInfer": unary(self.model_infer, pb.ModelInferRequest, pb.ModelInferResponse),
            },
        )

    def _observed(
        self, method: Callable[[Any, grpc.ServicerContext], Any]
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        """Time the call, count it by method and status code, turn RequestError into a status."""
        route = f"/{SERVICE}/{method.__name__.title().replace('_', '')}"

        def call(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return method(request, context)
            except RequestError as error:
                code = STATUS_CODES.get(error.status, grpc.StatusCode.INVALID_ARGUMENT)
                context.abort(code, error.message)
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("gRPC %s failed", route)
                context.abort(code, "internal error; see the server log")
            finally:
                seconds = time.perf_counter() - started
                self._on_loop(self.app.metrics.observe_grpc, route, code.name, seconds)

        return call

    def _on_loop(self, function: Callable[..., None], *args: Any) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(function, *args)

    # --- rpcs ----------------------------------------------------------------------------------

    def server_live(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    def server_ready(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.ServerReadyResponse(ready=self.app.ready)

    def model_ready(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.model.check_model(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=self.app.ready)

    def server_metadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        document = self.app.v2_server_metadata
        return pb.ServerMetadataResponse(
            name=document["name"], version=document["version"], extensions=document["extensions"]
        )

    def model_metadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.model.check_model(request.name, request.version or None)
        metadata = self.model.metadata()
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[tensor(**each) for each in metadata["inputs"]],
            outputs=[tensor(**each) for each in metadata["outputs"]],
        )

    def model_infer(self, request: Any, context: grpc.ServicerContext) -> Any:
        model = self.model
        model.check_model(request.model_name, request.model_version or None)
        requested = [output.name for output in request.outputs] or None
        if requested is not None:
            model.check_outputs(requested)
        x = model.matrix(self._tensors(request))
        labels, probabilities = self._predict(x)
        self._on_loop(self.app.served, x, labels)
        response = pb.ModelInferResponse(
            model_name=model.name, model_version=model.version, id=request.id
        )
        for key, value in request.parameters.items():
            response.parameters[key].CopyFrom(value)
        for output in model.outputs(labels, probabilities, requested):
            response.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
            response.raw_output_contents.append(output_bytes(output))
        return response

    def _tensors(self, request: Any) -> list[Tensor]:
        model = self.model
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise RequestError(
                400,
                f"raw_input_contents: {len(raw)} entries for {len(request.inputs)} inputs; "
                "give one per input, in input order",
            )
        tensors = []
        for index, tensor in enumerate(request.inputs):
            shape = list(tensor.shape)
            if raw:
                if tensor.HasField("contents"):
                    raise RequestError(
                        400, f"input '{tensor.name}': contents and raw_input_contents both given"
                    )
                tensors.append(
                    model.tensor_from_bytes(tensor.name, tensor.datatype, shape, raw[index])
                )
            else:
                field = CONTENTS_FIELDS.get(tensor.datatype, "fp64_contents")
                values = getattr(tensor.contents, field)
                tensors.append(
                    model.tensor_from_values(tensor.name, tensor.datatype, shape, values)
                )
        return tensors


def start_grpc(app: ServeApp, loop: asyncio.AbstractEventLoop) -> grpc.Server:
    """Start the service on settings.host:grpc_port (127.0.0.1 by default); refuse a busy port."""
    settings = app.settings
    server = grpc.server(
        ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    server.add_generic_rpc_handlers((InferenceService(app, loop).handlers(),))
    address = f"{settings.host}:{settings.grpc_port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise ServeConfigError(
            f"LIFTLOCK_GRPC_PORT / --grpc-port: cannot listen on {address} (in use?)",
            hint="pick a free port, or 0 to turn gRPC off",
        )
    server.start()
    log.info("V2 gRPC on %s", address)
    return server
