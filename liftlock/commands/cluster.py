"""`liftlock cluster up | down | status`: the embedded registry and single-node cluster."""

from __future__ import annotations

from typing import Annotated

import typer


def _echo(line: str) -> None:
    typer.echo(line, err=True)


def register(app: typer.Typer) -> None:
    cluster = typer.Typer(
        help="The embedded registry (127.0.0.1:5000) and single-node Kubernetes cluster "
        "staging runs on: processes on this machine, pods on a bridge with no route off it.",
        no_args_is_help=True,
    )

    @cluster.command("up")
    def up_command(
        registry_only: Annotated[
            bool,
            typer.Option("--registry-only", help="Start only the image registry (dev needs it)."),
        ] = False,
        gitops: Annotated[
            bool,
            typer.Option(
                "--gitops",
                help="Also run Flux (source- and kustomize-controller) pulling this checkout's "
                "branch, served read-only on 127.0.0.1: one Kustomization per GitOps stack.",
            ),
        ] = False,
    ) -> None:
        """Start what is not running (idempotent); print the kubeconfig to use."""
        from liftlock.cluster.embedded import up
        from liftlock.cluster.layout import Layout

        if gitops and registry_only:
            raise typer.BadParameter("--gitops needs the cluster, not --registry-only")
        layout = Layout.default()
        state = up(layout, _echo, registry_only=registry_only)
        typer.echo(f"registry {state.registry}")
        if not registry_only:
            typer.echo(f"kubeconfig {state.kubeconfig} context {state.context}")
        if gitops:
            from liftlock.cluster import flux
            from liftlock.engine.env import find_project_root

            synced = flux.up(layout, _echo, root=find_project_root())
            stacks = ", ".join(s.stack for s in synced.stacks) or "none"
            typer.echo(f"flux {synced.git_url} branch {synced.branch} stacks {stacks}")

    @cluster.command("down")
    def down_command() -> None:
        """Stop every process `up` started and remove what it added to the host (data stays)."""
        from liftlock.cluster.embedded import down
        from liftlock.cluster.layout import Layout

        down(Layout.default(), _echo)

    @cluster.command("status")
    def status_command() -> None:
        """Each component: running (PID) or stopped, and its log; exit 1 unless all run."""
        from liftlock.cluster.embedded import status
        from liftlock.cluster.layout import Layout

        state = status(Layout.default())
        for component in state.components:
            where = f"pid {component.pid}" if component.pid else "stopped"
            typer.echo(f"{component.name:24} {where:12} {component.log}")
        typer.echo(f"node Ready: {state.node_ready}; kubeconfig {state.kubeconfig}")
        if not state.running:
            raise typer.Exit(1)

    app.add_typer(cluster, name="cluster")
