"""The ASGI app.

`ServeApp` answers the operational routes (`/v1/predict`, `/healthz`, `/readyz`, `/v1/model`,
`/metrics`) and the Open Inference Protocol's V2 REST routes (`/v2/...`, ml.serve.v2) itself, in
raw ASGI: read the body (413 past the limit), parse with orjson into a numpy matrix
(`ml.serve.schema`, `ml.serve.v2.codec`), predict, answer with orjson. A FastAPI app declares the
same routes with pydantic models built from the data contract, only so that `/openapi.json` and
`/docs` describe the API truthfully; it also answers unknown paths (404). The V2 gRPC service
(ml.serve.v2.grpc_service) runs beside it on its own port, started and stopped with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import logging
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ml.serve.input_log import InputLog
from ml.serve.metrics import ServeMetrics, feature_edges, render
from ml.serve.model import REFERENCE_FILE, LoadedBundle
from ml.serve.openapi import build_docs_app
from ml.serve.schema import RequestError, RequestParser, feature_specs
from ml.serve.settings import ServeConfigError, ServeSettings
from ml.serve.v2.codec import V2Model, v2_model
from ml.serve.v2.rest import HEADER_LENGTH, encode_infer, header_length, parse_infer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("liftlock.serve")
_MODEL_FAILED = orjson.dumps({"error": "internal error while predicting; see the server log"})

_JSON = b"application/json"
_OCTETS = b"application/octet-stream"
_TEXT = b"text/plain; version=0.0.4; charset=utf-8"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def read_reference(path: Path, features: list[str]) -> np.ndarray | None:
    """The training sample (reference.csv), columns in model order; None when absent."""
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        missing = [name for name in features if name not in header]
        if missing:
            log.warning(
                "%s: no column %r; feature buckets fall back to contract ranges", path, missing[0]
            )
            return None
        columns = [header.index(name) for name in features]
        # empty cells are nulls the model imputes
        rows = [[float(row[i]) if row[i] else np.nan for i in columns] for row in reader if row]
    return np.array(rows, dtype=np.float64).reshape(-1, len(features))


Handler = Callable[[Scope, Receive, Send], Awaitable[int]]
# The V2 model routes, unversioned and versioned (the version is the bundle digest).
V2_MODEL_PREFIXES = ("/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("liftlock")
    except PackageNotFoundError:  # the serving image installs ml/ without the package
        return "unknown"


def _headers(content_type: bytes, body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = _JSON,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    headers = _headers(content_type, body)
    headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _model_failed(send: Send) -> int:
    """Log the exception being handled and answer a plain 500 (both protocols' routes)."""
    log.exception("prediction failed")
    await _answer(send, 500, _MODEL_FAILED)
    return 500


class ServeApp:
    def __init__(self, settings: ServeSettings, bundle: LoadedBundle) -> None:
        self.settings = settings
        self.bundle = bundle
        specs = feature_specs(bundle.contract, bundle.features)
        self.parser = RequestParser(specs, settings.max_rows)
        reference = read_reference(bundle.path / REFERENCE_FILE, bundle.features)
        self.metrics = ServeMetrics(
            bundle.features,
            bundle.classes,
            feature_edges(reference, self.parser._low, self.parser._high),
        )
        self.input_log: InputLog | None = None
        self.ready = False
        self._predict = bundle.predictor.predict
        self._max_body = settings.max_body_bytes
        self._digest = bundle.digest
        self._classes = bundle.classes
        self._model_body = orjson.dumps(
            {
                "digest": bundle.digest,
                "backend": bundle.backend,
                "features": bundle.features,
                "classes": bundle.classes,
                "max_rows": settings.max_rows,
                "max_body_bytes": settings.max_body_bytes,
                "manifest": bundle.manifest,
                "model_card": bundle.model_card,
                "data_contract": bundle.contract,
            }
        )
        self.v2: V2Model = v2_model(bundle, specs, settings.max_rows)
        self.v2_server_metadata: dict[str, Any] = {
            "name": "liftlock",
            "version": _version(),
            "extensions": ["binary_tensor_data"],
        }
        self._v2_server_body = orjson.dumps(self.v2_server_metadata)
        self._v2_metadata_body = orjson.dumps(self.v2.metadata())
        self._docs = build_docs_app(bundle, specs, settings, self.v2)
        self._flusher: asyncio.Task[None] | None = None
        self._grpc: Any = None
        self._window = settings.input_window
        self._recent: deque[np.ndarray] = deque()
        self._recent_rows = 0
        # path -> (route as documented, allowed method, handler); a handler returns its status
        self._routes: dict[str, tuple[str, str, Handler]] = {}
        for route, method, handler in self.route_table():
            self._routes[self._concrete(route)] = (route, method, handler)

    def route_table(self) -> list[tuple[str, str, Handler]]:
        """Every route the app answers, as OpenAPI documents it (a test holds the two equal)."""
        table: list[tuple[str, str, Handler]] = [
            ("/v1/predict", "POST", self._predict_route),
            ("/healthz", "GET", self._healthz),
            ("/readyz", "GET", self._readyz),
            ("/v1/model", "GET", self._model),
            ("/metrics", "GET", self._metrics),
            ("/v2", "GET", self._v2_server),
            ("/v2/health/live", "GET", self._v2_live),
            ("/v2/health/ready", "GET", self._v2_ready),
        ]
        for prefix in V2_MODEL_PREFIXES:
            table += [
                (prefix, "GET", self._v2_metadata),
                (prefix + "/ready", "GET", self._v2_model_ready),
                (prefix + "/infer", "POST", self._v2_infer),
            ]
        if self._window > 0:
            table.append(("/v1/inputs", "GET", self._inputs))
        return table

    def _concrete(self, route: str) -> str:
        return route.replace("{model_name}", self.v2.name).replace(
            "{model_version}", self.v2.version
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            found = self._routes.get(path)
            if found is None and path.startswith("/v2/models/"):
                found = self._unknown_model(path)
            if found is not None:
                started = time.perf_counter()
                route, method, handler = found
                if scope["method"] == method:
                    status = await handler(scope, receive, send)
                else:
                    status = await self._not_allowed(scope, send, method)
                self.metrics.observe_request(route, status, time.perf_counter() - started)
                return
        elif kind == "lifespan":
            await self._lifespan(receive, send)
            return
        await self._docs(scope, receive, send)

    # --- routes: each returns the status it answered -------------------------------------------

    async def _not_allowed(self, scope: Scope, send: Send, method: str) -> int:
        error = RequestError(405, f"{scope['method']} not allowed on {scope['path']}; use {method}")
        body = error.v2_body() if scope["path"].startswith("/v2") else error.body()
        await _answer(send, 405, body, extra=((b"allow", method.encode()),))
        return 405

    async def _predict_route(self, scope: Scope, receive: Receive, send: Send) -> int:
        try:
            body = await self._read_body(scope, receive)
            x = self.parser.parse(body)
            labels, probabilities = self._predict(x)
        except RequestError as error:
            await _answer(send, error.status, error.body())
            return error.status
        except Exception:  # a model failure must not take the server down; say it plainly
            return await _model_failed(send)
        answer = orjson.dumps(
            {
                "predictions": labels if labels.dtype.kind in "iuf" else labels.tolist(),
                "probabilities": probabilities,
                "classes": self._classes,
                "model": self._digest,
            },
            option=_NUMPY,
        )
        await _answer(send, 200, answer)
        self.served(x, labels)
        return 200

    def served(self, x: np.ndarray, labels: np.ndarray) -> None:
        """After a prediction of any protocol: metrics, the recent-input window, the input log."""
        self.metrics.observe_rows(x, labels)
        if self._window > 0:
            self._remember(x)
        if self.input_log is not None:
            try:
                self.input_log.append(x)
            except OSError as error:  # a full disk must not fail predictions
                log.warning("input log disabled: %s", error)
                self.input_log = None

    async def _read_body(self, scope: Scope, receive: Receive, *, json_only: bool = True) -> bytes:
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length" and value.isdigit() and int(value) > self._max_body:
                raise RequestError(
                    413, f"body of {int(value)} bytes is over the limit of {self._max_body} bytes"
                )
        if json_only and not content_type.lower().startswith(_JSON):
            shown = content_type.decode("latin-1") or "none"
            raise RequestError(415, f"content-type {shown!r}: send application/json")
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body", False):
            return body
        parts = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise RequestError(413, f"body is over the limit of {self._max_body} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def _remember(self, x: np.ndarray) -> None:
        """Keep the most recent `input_window` rows (whole requests) for /v1/inputs."""
        self._recent.append(x)
        self._recent_rows += len(x)
        while self._recent_rows - len(self._recent[0]) >= self._window:
            self._recent_rows -= len(self._recent.popleft())

    async def _inputs(self, scope: Scope, receive: Receive, send: Send) -> int:
        query = urllib.parse.parse_qs(
            scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
        )
        raw = query.get("limit", [str(self._window)])[-1]
        if not raw.isdigit() or int(raw) < 1:
            error = RequestError(422, f"limit: {raw!r} is not a positive integer", field="limit")
            await _answer(send, 422, error.body())
            return 422
        rows = (
            np.concatenate(list(self._recent))[-int(raw) :]
            if self._recent
            else np.empty((0, len(self.bundle.features)))
        )
        body = {"features": self.bundle.features, "rows": len(rows), "x": rows}
        await _answer(send, 200, orjson.dumps(body, option=_NUMPY))
        return 200

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> int:
        await _answer(send, 200, b'{"status":"alive"}')
        return 200

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> int:
        if self.ready:
            await _answer(send, 200, orjson.dumps({"status": "ready", "model": self._digest}))
            return 200
        await _answer(send, 503, b'{"status":"not ready"}')
        return 503

    async def _model(self, scope: Scope, receive: Receive, send: Send) -> int:
        await _answer(send, 200, self._model_body)
        return 200

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> int:
        await _answer(send, 200, render(self.metrics), _TEXT)
        return 200

    # --- V2 REST (Open Inference Protocol) ------------------------------------------------------

    def _unknown_model(self, path: str) -> tuple[str, str, Handler] | None:
        """A /v2/models/... path of the documented shapes naming another model or version."""
        parts = path.split("/")[3:]  # after "", "v2", "models"
        tail = parts[3:] if len(parts) >= 3 and parts[1] == "versions" else parts[1:]
        if not parts[0] or len(tail) > 1 or (tail and tail[0] not in ("ready", "infer")):
            return None
        versioned = len(parts) >= 3 and parts[1] == "versions"
        route = V2_MODEL_PREFIXES[1 if versioned else 0] + (f"/{tail[0]}" if tail else "")
        method = "POST" if tail == ["infer"] else "GET"
        name, version = parts[0], parts[2] if versioned else None

        async def not_found(scope: Scope, receive: Receive, send: Send) -> int:
            try:
                self.v2.check_model(name, version)
                # the served model under another spelling of its path (e.g. a trailing slash)
                raise RequestError(404, f"no route {path}; see GET /v2/models/{self.v2.name}")
            except RequestError as error:
                await _answer(send, error.status, error.v2_body())
                return error.status

        return route, method, not_found

    async def _v2_server(self, scope: Scope, receive: Receive, send: Send) -> int:
        await _answer(send, 200, self._v2_server_body)
        return 200

    async def _v2_live(self, scope: Scope, receive: Receive, send: Send) -> int:
        await _answer(send, 200, b'{"live":true}')
        return 200

    async def _v2_ready(self, scope: Scope, receive: Receive, send: Send) -> int:
        if self.ready:
            await _answer(send, 200, b'{"ready":true}')
            return 200
        await _answer(send, 503, b'{"ready":false}')
        return 503

    async def _v2_model_ready(self, scope: Scope, receive: Receive, send: Send) -> int:
        status = 200 if self.ready else 503
        body = {"name": self.v2.name, "ready": self.ready}
        await _answer(send, status, orjson.dumps(body))
        return status

    async def _v2_metadata(self, scope: Scope, receive: Receive, send: Send) -> int:
        await _answer(send, 200, self._v2_metadata_body)
        return 200

    async def _v2_infer(self, scope: Scope, receive: Receive, send: Send) -> int:
        try:
            body = await self._read_body(scope, receive, json_only=False)
            json_length = None
            for name, value in scope["headers"]:
                if name == HEADER_LENGTH:
                    json_length = header_length(value, len(body))
            request = parse_infer(self.v2, body, json_length)
            x = self.v2.matrix(request.tensors)
            labels, probabilities = self._predict(x)
        except RequestError as error:
            await _answer(send, error.status, error.v2_body())
            return error.status
        except Exception:  # a model failure must not take the server down; say it plainly
            return await _model_failed(send)
        outputs = self.v2.outputs(labels, probabilities, request.outputs)
        answer, raw_from = encode_infer(self.v2, request, outputs)
        if raw_from is None:
            await _answer(send, 200, answer)
        else:
            extra = ((HEADER_LENGTH, str(raw_from).encode()),)
            await _answer(send, 200, answer, _OCTETS, extra)
        self.served(x, labels)
        return 200

    # --- lifecycle ------------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._open_input_log()
                self._flusher = asyncio.create_task(self._flush_periodically())
                if self.settings.grpc_port:
                    from ml.serve.v2.grpc_service import start_grpc

                    try:
                        self._grpc = start_grpc(self, asyncio.get_running_loop())
                    except ServeConfigError as error:  # uvicorn logs the message and exits
                        await send({"type": "lifespan.startup.failed", "message": str(error)})
                        return
                # Everything built so far (bundle, FastAPI, pydantic models) lives as long as the
                # process: keep it out of the collector's full passes (shorter pauses, p99).
                gc.freeze()
                self.ready = True
                log.info("serving bundle %s (%s backend)", self._digest, self.bundle.backend)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # SIGTERM: uvicorn has stopped accepting and drained in-flight requests.
                self.ready = False
                if self._grpc is not None:
                    await asyncio.to_thread(self._grpc.stop(grace=5).wait)
                    self._grpc = None
                if self._flusher is not None:
                    self._flusher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._flusher
                if self.input_log is not None:
                    self.input_log.close()
                    self.input_log = None
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _open_input_log(self) -> None:
        path = self.settings.input_log
        if path is None:
            return
        try:
            self.input_log = InputLog(
                path, self.settings.input_log_max_bytes, self.settings.input_log_backups
            )
        except OSError as error:  # e.g. a read-only root filesystem without a writable volume
            log.warning("input log disabled: cannot write %s (%s)", path, error)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.input_log is not None:
                try:
                    self.input_log.flush_if_due()
                except OSError as error:
                    log.warning("input log disabled: %s", error)
                    self.input_log = None


def create_app(settings: ServeSettings, bundle: LoadedBundle) -> ServeApp:
    return ServeApp(settings, bundle)
