"""`liftlock serve`: run the model server on one verified bundle (ml.serve)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_command(
        bundle: Annotated[
            Path | None,
            typer.Option(
                "--bundle",
                envvar="LIFTLOCK_BUNDLE",
                help="Bundle directory (bundle/ after `dvc repro`); env LIFTLOCK_BUNDLE.",
            ),
        ] = None,
        host: Annotated[
            str | None, typer.Option(help="Address to bind (env LIFTLOCK_HOST; 127.0.0.1).")
        ] = None,
        port: Annotated[
            int | None, typer.Option(help="TCP port (env LIFTLOCK_PORT; 8080).")
        ] = None,
        backend: Annotated[
            str | None, typer.Option(help="onnx (default, ONNX Runtime) or sklearn (joblib).")
        ] = None,
        max_rows: Annotated[
            int | None, typer.Option(help="Most rows per request (default 1000).")
        ] = None,
        max_body_bytes: Annotated[
            int | None, typer.Option(help="Request body limit in bytes (default 1 MiB).")
        ] = None,
        input_log: Annotated[
            Path | None,
            typer.Option(help="Rotating JSONL log of served inputs, read by `liftlock drift`."),
        ] = None,
    ) -> None:
        """Verify every file of the bundle against bundle.json, then serve it on uvicorn.

        Refuses to start (exit 4) when a file was altered. Stops gracefully on SIGTERM.
        """
        from ml.serve.runner import serve
        from ml.serve.settings import load_settings

        serve(
            load_settings(
                bundle=bundle,
                host=host,
                port=port,
                backend=backend,
                max_rows=max_rows,
                max_body_bytes=max_body_bytes,
                input_log=input_log,
            )
        )
