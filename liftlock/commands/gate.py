"""`liftlock gate <stack>`: the ML and infrastructure rules on a bundle, as one table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from liftlock.errors import GateFailed

if TYPE_CHECKING:  # liftlock.gate loads the policies: imported only when a command runs
    from liftlock.gate import GateReport

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skipped": "dim"}


def print_report(report: GateReport, *, title: str | None = None) -> None:
    """The gate's table: rule, resource or artifact, level, verdict, fix."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=title or f"gate {report.stack}: bundle {report.bundle_digest}",
        caption=f"judged: {report.origin}\ninfrastructure rules: {report.infra_source}",
        show_lines=False,
    )
    for column in ("rule", "resource / artifact", "level", "verdict", "finding / fix"):
        table.add_column(column, overflow="fold")
    order = {"fail": 0, "warn": 1, "pass": 2, "skipped": 3}
    for item in sorted(report.findings, key=lambda f: (order[f.verdict.value], f.domain, f.rule)):
        detail = item.message + (f"\n[dim]fix: {item.fix}[/dim]" if item.fix else "")
        table.add_row(
            item.rule,
            item.subject,
            item.level.value,
            f"[{_STYLE[item.verdict.value]}]{item.verdict.value}[/]",
            detail,
        )
    console = Console(width=max(Console().width, 140))
    console.print(table)
    failed = len(report.blocking)
    warned = sum(1 for f in report.findings if f.verdict.value == "warn")
    verdict = "[bold red]REFUSED[/]" if failed else "[green]PASSED[/]"
    console.print(
        f"{verdict}: {failed} mandatory failure(s), {warned} advisory warning(s) on {report.stack}"
    )


def blocking_rules(report: GateReport) -> str:
    """The mandatory rules that failed, as `rule (subject)`, for the refusal message."""
    return ", ".join(sorted({f"{f.rule} ({f.subject})" for f in report.blocking}))


def register(app: typer.Typer) -> None:
    @app.command("gate")
    def gate_command(
        stack: Annotated[
            str, typer.Argument(help="Stack to judge the bundle for (dev, staging, prod).")
        ],
        bundle: Annotated[
            Path | None,
            typer.Option(
                "--bundle",
                help="Judge this bundle folder as a candidate for the stack (as `liftlock "
                "promote workspace <stack>` would). Default: the bundle the stack pins, fetched "
                "through DVC by the hash its promotion record names.",
            ),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the verdicts as JSON.")
        ] = False,
        no_preview: Annotated[
            bool,
            typer.Option(
                "--no-preview",
                help="Skip the engine's preview: infrastructure rules run on deploy/<stack>/ "
                "manifests if any (the rules alone).",
            ),
        ] = False,
    ) -> None:
        """Judge the bundle a stack pins (or a candidate); exit 1 when a mandatory rule fails.

        Fetches the pinned bundle by its DVC hash, checks its signed promotion record,
        recomputes its metrics, runs the ML rules and the infrastructure rules through
        `pulumi preview --policy-pack policies`, and prints one table.
        """
        from liftlock.engine.env import find_project_root
        from liftlock.gate import run_gate, stored_candidate

        root = find_project_root()
        if bundle is None:
            report = run_gate(root, stack, preview=not no_preview)
        else:
            folder = bundle if bundle.is_absolute() else root / bundle
            with stored_candidate(root, folder, origin=f"candidate {bundle}") as candidate:
                report = run_gate(root, stack, candidate, preview=not no_preview)
        if as_json:
            typer.echo(json.dumps(report.to_json(), indent=2))
        else:
            print_report(report)
        if not report.passed:
            raise GateFailed(
                f"gate {stack} refused: mandatory rule(s) failed: {blocking_rules(report)}"
            )
