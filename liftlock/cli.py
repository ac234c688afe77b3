"""The `liftlock` command line: orchestration only.

Commands live in `liftlock.commands.<name>`, each exposing `register(app)`; heavy imports
(pulumi, sklearn, onnxruntime) happen inside the commands so `liftlock --help` stays fast and the
serving image, which installs only `liftlock[serve]`, can run `liftlock serve` and `liftlock drift`.
`main()` is the one place that maps domain errors to messages and exit codes.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from liftlock import __version__
from ml.errors import DomainError

# Order is the order of `liftlock --help`.
COMMAND_MODULES = [
    "doctor",
    "env",
    "serve",
    "drift",
    "gate",
    "promote",
    "verify",
    "status",
    "recover",
    "preview",
    "repro-check",
    "demo",
    "cluster",
]

app = typer.Typer(
    name="liftlock",
    help="GitOps infrastructure as code for MLOps: train with DVC, gate with policy, "
    "deploy with Pulumi, preview every change.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"liftlock {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the liftlock version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """liftlock: one repository for ML and DevOps."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"liftlock.commands.{_name.replace('-', '_')}").register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `liftlock` script: runs the app, maps domain errors to exit codes.

    typer handles its own usage errors (exit 2) and `typer.Exit`; every domain error, from
    liftlock or from `ml`, becomes one line on stderr and the error's exit code.
    """
    try:
        app(args=argv, prog_name="liftlock")
    except DomainError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        return error.exit_code
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        return 130
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
