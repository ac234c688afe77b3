"""`liftlock repro-check`: re-run the pipeline from an empty cache; is it the bundle of record?"""

from __future__ import annotations

import json
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("repro-check")
    def repro_check_command(
        rev: Annotated[
            str, typer.Option("--rev", help="The commit whose bundle of record to reproduce.")
        ] = "HEAD",
        unpinned: Annotated[
            bool,
            typer.Option(
                "--unpinned",
                help="Train under this shell's numeric environment instead of the pin "
                "(shows what an unpinned machine would get).",
            ),
        ] = False,
        strict: Annotated[
            bool,
            typer.Option("--strict", help="Fail on 'equivalent' too: only bit-identical passes."),
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Re-run the pipeline from an empty cache: bit-identical, equivalent or different?

        Runs `dvc repro` of the commit in a throwaway git worktree from an empty DVC cache and
        compares its bundle with the one dvc.lock records (pulled through DVC). Exit 1 when
        different (with --strict, also when only equivalent).
        """
        from rich.console import Console
        from rich.table import Table

        from liftlock.engine.env import find_project_root
        from liftlock.reproduce import repro_check, require_reproducible

        root = find_project_root()
        check = repro_check(
            root, rev=rev, pinned=not unpinned, log=lambda line: typer.echo(line, err=as_json)
        )
        if as_json:
            typer.echo(json.dumps(check.to_json(), indent=2, sort_keys=True))
        else:
            result = check.reproduction
            typer.echo(f"{check.commit[:12]}: {result.summary()}  ({check.seconds:.0f}s)")
            if result.differences:
                table = Table("file", "why it differs")
                for difference in result.differences:
                    table.add_row(difference.name, difference.why)
                Console().print(table)
        require_reproducible(check, strict=strict)
