"""`liftlock verify <stack>`: the rollout's checks over a soak window, one verdict each."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from liftlock.errors import VerificationFailed

if TYPE_CHECKING:  # liftlock.verify loads the policies: imported only when the command runs
    from liftlock.verify import VerifyReport

_STYLE = {"pass": "green", "fail": "bold red", "skipped": "dim"}


def print_report(report: VerifyReport) -> None:
    """One table: check, verdict, measured, threshold, detail."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"verify {report.stack}: bundle {report.bundle_digest[7:19]} in "
        f"{report.namespace} ({report.soak_seconds:g}s soak, {report.samples} samples)",
        caption=f"cluster: {report.cluster}\nrecord: {report.record}\nsmoke: {report.expected}",
    )
    for column in ("check", "verdict", "measured", "threshold", "detail"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        style = _STYLE[check.verdict]
        table.add_row(
            check.check,
            f"[{style}]{check.verdict}[/]",
            check.measured,
            check.threshold,
            check.detail,
        )
    console = Console(width=max(Console().width, 140))
    console.print(table)
    if report.passed:
        console.print(f"[green]VERIFIED[/]: {len(report.checks)} checks passed on {report.stack}")
    else:
        console.print(f"[bold red]FAILED[/]: {', '.join(report.failed)} on {report.stack}")


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify_command(
        stack: Annotated[str, typer.Argument(help="Stack whose rollout to verify (staging).")],
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the verdicts as JSON.")
        ] = False,
        soak: Annotated[
            float | None,
            typer.Option(
                "--soak",
                metavar="SECONDS",
                help="Soak window in seconds (default: thresholds.verify.soakSeconds of the "
                "stack in policies/gates.yaml).",
            ),
        ] = None,
        no_record: Annotated[
            bool,
            typer.Option(
                "--no-record",
                help="Judge only: write no verification beside the promotion record.",
            ),
        ] = False,
    ) -> None:
        """Verify what a stack pins on its cluster; exit 1 when a check fails.

        Over the soak window: every replica Ready, no restarts, smoke rows of the bundle's test
        split answered by every replica and equal to the bundle's own predictions, error rate
        and p99 latency from each pod's /metrics within policies/gates.yaml. The verdicts are
        written, signed, to promotions/<stack>/verifications/ (the champion is the last
        verified bundle; `liftlock promote <stack> <next>` needs a passing one).
        """
        from liftlock.engine.env import find_project_root
        from liftlock.verify import run_verify

        root = find_project_root()
        log = (lambda line: typer.echo(line, err=True)) if as_json else typer.echo
        report = run_verify(root, stack, soak_seconds=soak, record=not no_record, log=log)
        if as_json:
            typer.echo(json.dumps(report.to_json(), indent=2))
        else:
            print_report(report)
            if report.verification is not None:
                where = report.verification.relative_to(root)
                typer.echo(f"verification: {where} (signed: .sig beside it; commit it)")
        if report.record_error is not None:
            raise report.record_error
        if not report.passed:
            raise VerificationFailed(
                f"verify {stack}: check(s) failed: {', '.join(report.failed)} ({report.record})"
            )
