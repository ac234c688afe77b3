"""`liftlock serve`: run the model server on one verified bundle (ml.serve).

Its options are ml.serve.settings.options(), the ones `python -m ml.serve` has: one set, built
into typer parameters here.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer


def _parameters() -> list[inspect.Parameter]:
    from ml.serve.settings import options

    parameters = []
    for option in options():
        flag = option.flag if option.kind is not bool else f"{option.flag}/--no-{option.flag[2:]}"
        annotation: Any = Annotated[option.kind | None, typer.Option(flag, help=option.help)]
        parameters.append(
            inspect.Parameter(
                option.field, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
        )
    return parameters


def register(app: typer.Typer) -> None:
    def serve_command(**values: Any) -> None:
        """Verify every file of the bundle against bundle.json, then serve it on uvicorn
        (/v1 and V2 REST) and grpcio (V2 gRPC).

        Refuses to start (exit 4) when a file was altered. Stops gracefully on SIGTERM.
        """
        from ml.serve.runner import serve
        from ml.serve.settings import load_settings

        serve(load_settings(**values))

    parameters = _parameters()
    serve_command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    serve_command.__annotations__ = {p.name: p.annotation for p in parameters}
    app.command("serve")(serve_command)
