"""`liftlock demo`: the whole loop on the embedded default (what `make demo` runs)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command() -> None:
        """Run the loop end to end: cluster up, dvc repro, promote workspace→dev, pulumi up dev,
        smoke-test the model on 127.0.0.1, promote dev→staging, pulumi up staging (rendered and
        rolled out on the embedded cluster), preview staging→prod.

        Changes in the checkout: DVC outputs, stacks/Pulumi.{dev,staging}.yaml and promotions/
        (written by promote), deploy/staging/ (rendered), .pulumi-state/ (git-ignored).
        `liftlock cluster down` stops the registry and the cluster afterwards."""
        import time

        from rich.console import Console
        from rich.table import Table

        from liftlock.cluster.layout import Layout
        from liftlock.demo import environment_for, run_demo
        from liftlock.engine.env import find_project_root

        console = Console(width=140)
        root = find_project_root()
        started = time.monotonic()
        demo = run_demo(root, environment_for(root), lambda line: console.print(line, markup=False))
        table = Table(title=f"liftlock demo — done in {time.monotonic() - started:.0f} s")
        for column in ("#", "step", "where", "what happened", "time"):
            table.add_column(column, overflow="fold")
        for result in demo.results:
            table.add_row(
                str(result.number),
                result.name,
                result.where,
                result.summary,
                f"{result.seconds:.1f} s",
            )
        console.print(table)
        console.print(
            "staging serves on the embedded cluster: `kubectl --kubeconfig "
            f"{Layout.default().kubeconfig} -n liftlock-staging get pods`; "
            "`liftlock cluster down` stops it (data stays for the next `up`).",
            markup=False,
        )
