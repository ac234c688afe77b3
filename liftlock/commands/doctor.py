"""`liftlock doctor`: what the loop needs, found or not, and the fix."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from liftlock.doctor import run_checks
from liftlock.engine.env import engine_environment, find_project_root


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor_command(
        as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
    ) -> None:
        """Check each tool the loop needs (pulumi, language host, kubernetes provider,
        dynamic-provider launcher, dvc, docker engine); exit 1 when a required one is missing."""
        from dataclasses import asdict

        from rich.console import Console
        from rich.table import Table

        root = find_project_root()
        checks = run_checks(root, engine_environment(root, os.environ))
        if as_json:
            import json

            typer.echo(json.dumps([asdict(c) for c in checks], indent=2))
        else:
            table = Table(title=f"liftlock doctor — {root}")
            for column in ("tool", "status", "version", "path / fix"):
                table.add_column(column)
            for check in checks:
                if check.ok:
                    status, detail = "[green]ok[/]", check.path
                else:
                    word = "[red]missing[/]" if check.required else "[yellow]optional[/]"
                    status, detail = (
                        word,
                        f"{check.problem}\n→ {check.fix}" if check.fix else check.problem,
                    )
                table.add_row(check.tool, status, check.version, detail)
            Console(width=140).print(table)
        if any(c.required and not c.ok for c in checks):
            raise typer.Exit(1)
