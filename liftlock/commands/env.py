"""`liftlock env`: print the engine environment as shell exports."""

from __future__ import annotations

import os

import typer

from liftlock.engine.env import (
    engine_environment,
    ensure_local_backend,
    find_project_root,
    shell_exports,
)


def register(app: typer.Typer) -> None:
    @app.command("env")
    def env_command() -> None:
        """Print `export` lines that set up the Pulumi engine for this checkout.

        Use as: eval "$(.venv/bin/liftlock env)", then run `pulumi` directly.
        """
        root = find_project_root()
        env = engine_environment(root, os.environ)
        ensure_local_backend(env)
        typer.echo(shell_exports(env))
