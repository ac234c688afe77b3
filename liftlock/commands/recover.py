"""`liftlock recover <stack>`: clear a stale engine lock after a killed update, refresh, report."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("recover")
    def recover_command(
        stack: Annotated[str, typer.Argument(help="Stack whose update was killed.")],
    ) -> None:
        """Recover a stack after `pulumi up` was killed: stale lock, pending operations.

        Checks that no update still holds the stack's lock (refuses if one may be running),
        clears the stale lock (`pulumi cancel`), drops the pending operations (docker and
        cluster targets: `pulumi refresh --clear-pending-creates`; render: stack export and
        import) and says what it found. Next: `pulumi up --stack <stack>`.
        """
        from liftlock.engine.env import find_project_root
        from liftlock.recover import recover

        result = recover(find_project_root(), stack, log=typer.echo)
        found = ", ".join(lock.describe() for lock in result.locks) or "no lock"
        typer.echo(f"recovered {stack}: found {found}; {len(result.pending)} pending operation(s)")
        for operation in result.pending:
            typer.echo(f"  pending: {operation}")
        typer.echo(f"next: pulumi up --stack {stack}")
