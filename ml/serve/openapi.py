"""The FastAPI app that documents the API (`/openapi.json`, `/docs`).

Its route functions never run for the declared routes: `ml.serve.app.ServeApp` answers those
paths before FastAPI sees them. The pydantic models are built from the data contract so the
document states exactly what the predict path enforces (names, numeric types, ranges, no extra
fields, finite numbers, row limit) and every 4xx it can answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from ml.serve.model import LoadedBundle
from ml.serve.schema import FeatureSpec
from ml.serve.settings import ServeSettings
from ml.serve.v2.codec import KNOWN_DTYPES, V2Model


class ErrorResponse(BaseModel):
    error: str = Field(description="What is wrong, naming the field and the row")
    field: str | None = Field(default=None, description="The offending field, when there is one")
    row: int | None = Field(default=None, description="Index of the offending row in `rows`")


class RecentInputs(BaseModel):
    features: list[str]
    rows: int
    x: list[list[float | None]] = Field(description="Rows in `features` order")


class Status(BaseModel):
    status: str
    model: str | None = None


def _feature_field(spec: FeatureSpec) -> tuple[Any, Any]:
    # a nullable feature may be present but null: the model's imputer fills it
    field = Field(alias=spec.name, allow_inf_nan=False, strict=True, **spec.bounds())
    return spec.value_type(), field


def _positional_field(spec: FeatureSpec) -> tuple[Any, Any]:
    field = Field(allow_inf_nan=False, strict=True, title=spec.name, **spec.bounds())
    return spec.value_type(), field


def _models(
    bundle: LoadedBundle, specs: list[FeatureSpec], max_rows: int
) -> tuple[type[BaseModel], type[BaseModel], type[BaseModel]]:
    forbid = ConfigDict(extra="forbid", populate_by_name=False)
    row_fields = {f"feature_{i}": _feature_field(spec) for i, spec in enumerate(specs)}
    named: Any = create_model("Row", __config__=forbid, **row_fields)  # type: ignore[call-overload]
    # The same row as an array of values in feature order (JSON Schema prefixItems).
    positional: Any = tuple.__class_getitem__(
        tuple(Annotated[kind, field] for kind, field in map(_positional_field, specs))
    )
    row: Any = named | positional
    one = create_model("PredictOne", __config__=forbid, row=(row, ...))
    rows_field = Field(min_length=1, max_length=max_rows)
    many = create_model("PredictMany", __config__=forbid, rows=(list[row], rows_field))
    label_type: Any = Literal[tuple(bundle.classes)] if bundle.classes else int
    probability: Any = Annotated[float, Field(ge=0.0, le=1.0)]
    response = create_model(
        "PredictResponse",
        predictions=(list[label_type], Field(description="Predicted class per row")),
        probabilities=(
            list[list[probability]],
            Field(description="Per row, one probability per class in `classes` order"),
        ),
        classes=(list[label_type], ...),
        model=(str, Field(description="Digest of the bundle that answered")),
    )
    return one, many, response


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Body is not JSON or not an object"},
    413: {"model": ErrorResponse, "description": "Body over the size limit"},
    415: {"model": ErrorResponse, "description": "Content type is not application/json"},
    422: {"model": ErrorResponse, "description": "A row breaks the data contract"},
}


class V2Error(BaseModel):
    error: str = Field(description="What is wrong, naming the input and the rule")


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Tensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2Tensor]
    outputs: list[V2Tensor]


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2RequestInput(BaseModel):
    name: str = Field(
        description="'input' for the [rows, n_features] tensor (any name is accepted), or a "
        "feature name for one tensor per feature"
    )
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: Literal[KNOWN_DTYPES]  # type: ignore[valid-type]
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = Field(
        default=None,
        description="Row-major values, flat or nested; absent when parameters.binary_data_size "
        "gives the length of the tensor's raw bytes after the JSON (binary tensor extension)",
    )


class V2RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class V2InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[V2RequestInput] = Field(min_length=1)
    outputs: list[V2RequestOutput] | None = None


class V2ResponseOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[V2ResponseOutput]


def _v2_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "The request breaks the protocol or the data contract",
        404: "No such model or version",
        413: "Body over the size limit",
        503: "Starting or shutting down",
    }
    return {status: {"model": V2Error, "description": described[status]} for status in statuses}


def _add_v2_routes(docs: FastAPI, model: V2Model) -> None:
    """The Open Inference Protocol routes; the path parameters name the one served model."""
    name: Any = Annotated[Literal[model.name], Path(description="The served model's name")]
    version: Any = Annotated[Literal[model.version], Path(description="The bundle digest")]

    @docs.get("/v2", response_model=V2ServerMetadata, summary="V2 server metadata")
    def v2_server() -> Any:  # pragma: no cover - answered by ServeApp
        raise NotImplementedError

    @docs.get("/v2/health/live", response_model=V2Live, summary="V2: the process is alive")
    def v2_live() -> Any:  # pragma: no cover
        raise NotImplementedError

    @docs.get(
        "/v2/health/ready",
        response_model=V2Ready,
        responses={503: {"model": V2Ready, "description": "Starting or shutting down"}},
        summary="V2: the model is loaded",
    )
    def v2_ready() -> Any:  # pragma: no cover
        raise NotImplementedError

    def metadata(**_: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def ready(**_: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def infer(**_: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    for prefix, path_parameters in (
        ("/v2/models/{model_name}", {"model_name": name}),
        (
            "/v2/models/{model_name}/versions/{model_version}",
            {"model_name": name, "model_version": version},
        ),
    ):
        suffix = "_versioned" if "model_version" in path_parameters else ""
        for function, tail, method, extra, response, errors, summary in (
            (metadata, "", "GET", {}, V2ModelMetadata, (404,), "V2 model metadata"),
            (ready, "/ready", "GET", {}, V2ModelReady, (404, 503), "V2 model readiness"),
            (
                infer, "/infer", "POST", {"request": V2InferRequest}, V2InferResponse,
                (400, 404, 413), "V2 inference (JSON; or binary tensors after the JSON header)",
            ),
        ):  # fmt: skip
            endpoint = _with_annotations(function, {**path_parameters, **extra})
            docs.add_api_route(
                prefix + tail,
                endpoint,
                methods=[method],
                response_model=response,
                responses=_v2_errors(*errors),
                summary=summary,
                operation_id=f"v2_{function.__name__}{suffix}",
            )


def _with_annotations(function: Any, annotations: dict[str, Any]) -> Any:
    """A copy of a stub whose signature declares `annotations` (FastAPI reads the signature)."""
    import inspect

    def endpoint(**values: Any) -> Any:  # pragma: no cover - answered by ServeApp
        return function(**values)

    parameters = [
        inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, annotation=kind)
        for key, kind in annotations.items()
    ]
    endpoint.__signature__ = inspect.Signature(parameters, return_annotation=Any)  # type: ignore[attr-defined]
    endpoint.__name__ = function.__name__
    return endpoint


def build_docs_app(
    bundle: LoadedBundle, specs: list[FeatureSpec], settings: ServeSettings, v2: V2Model
) -> FastAPI:
    one, many, response = _models(bundle, specs, settings.max_rows)
    docs = FastAPI(
        title="liftlock model server",
        version=bundle.digest,
        description=(
            f"Serves bundle {bundle.digest} ({len(specs)} features, classes {bundle.classes}). "
            f"Requests up to {settings.max_rows} rows and {settings.max_body_bytes} bytes."
        ),
    )

    def predict(request: Any) -> Any:  # pragma: no cover - answered by ServeApp
        raise NotImplementedError

    # Set here, not in the signature: `from __future__ import annotations` would leave FastAPI a
    # string naming a local variable it cannot resolve.
    predict.__annotations__ = {"request": one | many, "return": Any}
    docs.post(
        "/v1/predict",
        response_model=response,
        responses=_ERRORS,
        summary="Predict one row ({row: {...}}) or a batch ({rows: [...]})",
    )(predict)

    @docs.get("/healthz", response_model=Status, summary="The process is alive")
    def healthz() -> Any:  # pragma: no cover
        raise NotImplementedError

    @docs.get(
        "/readyz",
        response_model=Status,
        responses={503: {"model": Status, "description": "Starting or shutting down"}},
        summary="The bundle is loaded and verified",
    )
    def readyz() -> Any:  # pragma: no cover
        raise NotImplementedError

    @docs.get("/v1/model", summary="Bundle manifest, model card and data contract")
    def model() -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    @docs.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def metrics() -> Any:  # pragma: no cover
        raise NotImplementedError

    if settings.input_window > 0:

        def inputs(limit: Any = None) -> Any:  # pragma: no cover - answered by ServeApp
            raise NotImplementedError

        inputs.__annotations__ = {"limit": Annotated[int | None, Query(ge=1)], "return": Any}
        docs.get(
            "/v1/inputs",
            response_model=RecentInputs,
            responses={
                422: {"model": ErrorResponse, "description": "limit is not a positive integer"}
            },
            summary="The most recent served rows (for drift checks), nulls as null",
        )(inputs)

    _add_v2_routes(docs, v2)
    return docs
