"""Server settings: one typed object, read from `LIFTLOCK_*` environment variables and overridden
by command-line options. Invalid values raise `ServeConfigError` naming the variable.

`OPTIONS` is the one option set of both server CLIs (`python -m ml.serve` builds argparse from it,
`liftlock serve` builds its typer options from it): every settings field is an option.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ml.errors import MLError

ENV_PREFIX = "LIFTLOCK_"
BACKENDS = ("onnx", "sklearn")


class ServeConfigError(MLError):
    """A server setting is missing or invalid."""

    exit_code = 2


@dataclass(frozen=True)
class ServeSettings:
    bundle: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    # The V2 gRPC service (inference.GRPCInferenceService) on its own port, same host; 0: off.
    # Off unless asked for (Kubernetes sets 8081): containers here share the host's network, and
    # a fixed default port would make two servers on one machine collide.
    grpc_port: int = 0
    backend: str = "onnx"
    max_rows: int = 1000
    max_body_bytes: int = 1 << 20
    # Bounded input log for drift: a rotating JSONL file; None (or an unwritable place) disables it.
    input_log: Path | None = None
    input_log_max_bytes: int = 16 << 20
    input_log_backups: int = 2
    # Most recent served rows kept in memory for `GET /v1/inputs` (drift checks by URL); 0: off.
    input_window: int = 5000
    log_level: str = "info"
    access_log: bool = False

    def validated(self) -> ServeSettings:
        if self.bundle is None:
            raise ServeConfigError(
                "no model bundle given",
                hint=f"pass --bundle PATH or set {ENV_PREFIX}BUNDLE (bundle/ after `dvc repro`)",
            )
        if self.backend not in BACKENDS:
            raise ServeConfigError(
                f"{ENV_PREFIX}BACKEND / --backend: {self.backend!r} is not one of {BACKENDS}"
            )
        for name in ("port", "max_rows", "max_body_bytes", "input_log_max_bytes"):
            if getattr(self, name) < 1:
                raise ServeConfigError(f"{ENV_PREFIX}{name.upper()}: must be at least 1")
        if not 1 <= self.port <= 65535:
            raise ServeConfigError(f"{ENV_PREFIX}PORT: {self.port} is not a TCP port")
        if not 0 <= self.grpc_port <= 65535:
            raise ServeConfigError(
                f"{ENV_PREFIX}GRPC_PORT: {self.grpc_port} is not a TCP port (0 turns gRPC off)"
            )
        if self.grpc_port == self.port:
            raise ServeConfigError(
                f"{ENV_PREFIX}GRPC_PORT: {self.grpc_port} is the HTTP port too; pick another"
            )
        return self


# field -> help text of its option (the environment variable and default are added by `options`)
_HELP = {
    "bundle": "bundle directory (bundle/ after `dvc repro`)",
    "host": "address to bind, HTTP and gRPC",
    "port": "HTTP port (/v1, V2 REST, /metrics)",
    "grpc_port": "V2 gRPC port (inference.GRPCInferenceService), e.g. 8081; 0: no gRPC",
    "backend": f"model runtime: one of {', '.join(BACKENDS)}",
    "max_rows": "most rows per request",
    "max_body_bytes": "request body limit in bytes (HTTP body, gRPC message)",
    "input_log": "rotating JSONL log of served inputs, read by `liftlock drift`",
    "input_log_max_bytes": "size at which the input log rotates",
    "input_log_backups": "rotated input logs kept",
    "input_window": "rows kept in memory for GET /v1/inputs (0: off)",
    "log_level": "log level (debug, info, warning, error)",
    "access_log": "log every request",
}


@dataclass(frozen=True)
class Option:
    field: str
    flag: str
    kind: type
    help: str
    default: Any
    choices: tuple[str, ...] | None = None


def options() -> list[Option]:
    """One option per settings field, with its type (None stripped), help, env var and default."""
    hints = typing.get_type_hints(ServeSettings)
    result = []
    for field in fields(ServeSettings):
        kind = next(arg for arg in typing.get_args(hints[field.name]) or (hints[field.name],)
                    if arg is not type(None))  # fmt: skip
        default = None if field.default is MISSING else field.default
        shown = f"; default {default}" if default not in (None, "") else ""
        result.append(
            Option(
                field=field.name,
                flag="--" + field.name.replace("_", "-"),
                kind=kind,
                help=f"{_HELP[field.name]} (env {ENV_PREFIX}{field.name.upper()}{shown})",
                default=default,
                choices=BACKENDS if field.name == "backend" else None,
            )
        )
    return result


def _convert(name: str, kind: Any, raw: str) -> Any:
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if "Path" in kind_name:
            return Path(raw) if raw else None
        if kind_name == "int":
            return int(raw)
        if kind_name == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
    except ValueError as error:
        raise ServeConfigError(
            f"{ENV_PREFIX}{name.upper()}={raw!r}: expected {kind_name}"
        ) from error
    return raw


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> ServeSettings:
    """Defaults < environment (`LIFTLOCK_BUNDLE`, `LIFTLOCK_PORT`, ...) < explicit overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in fields(ServeSettings):
        raw = environ.get(ENV_PREFIX + field.name.upper())
        if raw is not None:
            values[field.name] = _convert(field.name, field.type, raw)
    values.update({key: value for key, value in overrides.items() if value is not None})
    return replace(ServeSettings(), **values).validated()
