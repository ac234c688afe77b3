"""Run the server on uvicorn: load and verify the bundle first, so a bad bundle never listens."""

from __future__ import annotations

import logging
import socket

from ml.serve.app import create_app
from ml.serve.model import load_bundle
from ml.serve.protocol import CoalescingHttpToolsProtocol
from ml.serve.settings import ServeConfigError, ServeSettings

# Seconds uvicorn waits for in-flight requests after SIGTERM before closing connections.
GRACEFUL_SHUTDOWN_SECONDS = 10


def _check_free(host: str, port: int, option: str) -> None:
    """Refuse a busy port before anything listens (a clear error, not a failed startup)."""
    with socket.socket() as probe:
        # as uvicorn and grpcio bind: a port in TIME_WAIT is free, one with a listener is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ServeConfigError(
                f"LIFTLOCK_{option} / --{option.lower().replace('_', '-')}: cannot listen on "
                f"{host}:{port} ({error.strerror})",
                hint="pick a free port",
            ) from error


def serve(settings: ServeSettings) -> None:
    """Blocks until SIGTERM/SIGINT. Raises BundleError (before listening) on a bad bundle."""
    import uvicorn

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    assert settings.bundle is not None  # settings.validated() guarantees it
    for port, option in ((settings.port, "PORT"), (settings.grpc_port, "GRPC_PORT")):
        if port:
            _check_free(settings.host, port, option)
    bundle = load_bundle(settings.bundle, settings.backend)
    app = create_app(settings, bundle)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,
        lifespan="on",
        access_log=settings.access_log,
        log_level=settings.log_level,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    uvicorn.Server(config).run()
