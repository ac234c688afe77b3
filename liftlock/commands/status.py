"""`liftlock status`: one table, one row per stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from liftlock.errors import ConfigError, ExternalCommandError

if TYPE_CHECKING:
    from policies.promotion import VerificationStatus


def _verified(status: VerificationStatus | None) -> str:
    if status is None:
        return "-"
    if status.state in ("failed", "verification invalid"):
        return f"[bold red]{status.state}[/]"
    return status.state if status.latest is None else f"{status.state} {status.latest.time}"


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_command(
        no_engine: Annotated[
            bool,
            typer.Option("--no-engine", help="Do not ask the engine for pending changes (faster)."),
        ] = False,
    ) -> None:
        """Where each stack stands: bundle, last promotion, pending changes.

        Per stack: target, promoted bundle, last promotion (when, from where), whether the
        workspace bundle differs, and pending infrastructure changes (`pulumi preview`).
        """
        from rich.console import Console
        from rich.table import Table

        from liftlock.engine.env import find_project_root
        from liftlock.status import collect_status

        root = find_project_root()
        table = Table(title="liftlock status")
        for column in (
            "stack",
            "target",
            "bundle",
            "last promotion",
            "record",
            "verified",
            "workspace bundle",
            "pending",
        ):
            table.add_column(column, overflow="fold")
        rows = collect_status(root, engine=not no_engine)
        for row in rows:
            record = row.last_record
            table.add_row(
                row.stack,
                row.target,
                row.bundle_digest[7:19] if row.bundle_digest else "-",
                f"{record.time} from {record.source}" if record else "never promoted",
                row.record.status if row.record.ok else f"[bold red]{row.record.status}[/]",
                _verified(row.verification),
                {None: "-", True: "differs", False: "same"}[row.workspace_differs],
                row.pending,
            )
        console = Console(width=max(Console().width, 170))
        console.print(table)
        for row in rows:
            if not row.record.ok:
                console.print(f"[bold red]{row.stack}[/]: {row.record.message}", soft_wrap=True)
            elif row.verification and row.verification.state in ("failed", "verification invalid"):
                said = row.verification.message
                console.print(f"[bold red]{row.stack}[/]: {said}", soft_wrap=True)
        invalid = [row.stack for row in rows if row.record.status == "record invalid"]
        if invalid:
            raise ConfigError(
                f"promotion records of {', '.join(invalid)} are invalid (see above)",
                hint="restore them from git, or promote again through the gate",
            )
        failed = [row.stack for row in rows if row.preview_failed]
        if failed:
            raise ExternalCommandError(
                f"the engine's preview failed for {', '.join(failed)} (see 'pending')",
                hint="fix what the message names, then `pulumi preview --stack <stack>`",
            )
