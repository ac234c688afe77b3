"""Run the server on uvicorn: load and verify the bundle first, so a bad bundle never listens."""

from __future__ import annotations

import logging

from ml.serve.app import create_app
from ml.serve.model import load_bundle
from ml.serve.protocol import CoalescingHttpToolsProtocol
from ml.serve.settings import ServeSettings

# Seconds uvicorn waits for in-flight requests after SIGTERM before closing connections.
GRACEFUL_SHUTDOWN_SECONDS = 10


def serve(settings: ServeSettings) -> None:
    """Blocks until SIGTERM/SIGINT. Raises BundleError (before listening) on a bad bundle."""
    import uvicorn

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    assert settings.bundle is not None  # settings.validated() guarantees it
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
