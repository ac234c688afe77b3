"""`liftlock preview`: what a change does to the model, each stack and the gates."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from liftlock.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("preview")
    def preview_command(
        base: Annotated[
            str,
            typer.Option("--base", help="Git ref the change is compared with (e.g. origin/main)."),
        ],
        output_format: Annotated[
            str,
            typer.Option("--format", help="markdown (the PR comment) or json (same facts)."),
        ] = "markdown",
        out: Annotated[
            Path | None,
            typer.Option("--out", help="Write the result to this file instead of stdout."),
        ] = None,
        json_out: Annotated[
            Path | None,
            typer.Option("--json-out", help="Also write the JSON form here (one run, both files)."),
        ] = None,
        html_out: Annotated[
            Path | None,
            typer.Option(
                "--html-out",
                help="Also write an HTML report of the model side (metrics, DVC's plots of base "
                "and head drawn to SVG), e.g. for a CI artifact.",
            ),
        ] = None,
        list_affected: Annotated[
            bool,
            typer.Option(
                "--list-affected",
                help="Only print the affected stacks as a JSON list (no engine, no DVC) and exit.",
            ),
        ] = False,
        without_secrets: Annotated[
            bool,
            typer.Option(
                "--without-secrets",
                help="Preview without the stack passphrase, as a fork PR must; the comment "
                "lists the secret values that could not be known.",
            ),
        ] = False,
        reproduce: Annotated[
            bool,
            typer.Option(
                "--repro/--no-repro",
                help="Run `dvc repro --pull` when the checkout's pipeline is out of date.",
            ),
        ] = True,
        gates: Annotated[
            bool, typer.Option("--gates/--no-gates", help="Run `liftlock gate` per stack.")
        ] = True,
        stacks: Annotated[
            list[str] | None,
            typer.Option("--stack", help="Preview only this stack (repeatable)."),
        ] = None,
        jobs: Annotated[
            int,
            typer.Option(
                "--jobs",
                min=0,
                max=8,
                help="Stacks previewed at once (0 = one per core, at most 2).",
            ),
        ] = 0,
        fail_on_policy: Annotated[
            bool,
            typer.Option(
                "--fail-on-policy",
                help="Exit 1 when a mandatory policy or gate fails, or a render stack's committed "
                "manifests are hand edited (the comment is written first).",
            ),
        ] = False,
    ) -> None:
        """Preview a change against --base: affected stacks, params and metrics diff, the
        engine's preview per stack with the policy pack, and the gate verdicts."""
        import json

        from liftlock.engine.env import engine_environment, find_project_root
        from liftlock.preview.markdown import render_markdown
        from liftlock.preview.run import PreviewOptions, build_preview, cpu_bound_jobs

        if output_format not in ("markdown", "json"):
            raise ConfigError(
                f"--format {output_format!r} is not supported", hint="use markdown or json"
            )
        root = find_project_root()
        if list_affected:
            from liftlock.preview.run import affected_since

            typer.echo(json.dumps(list(affected_since(root, base, tuple(stacks or ())))))
            return
        options = PreviewOptions(
            base=base,
            with_secrets=not without_secrets,
            reproduce=reproduce,
            run_gates=gates,
            jobs=jobs or cpu_bound_jobs(),
            only_stacks=tuple(stacks or ()),
        )
        report = build_preview(root, options, engine_environment(root, os.environ))
        as_json = json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str) + "\n"
        text = as_json if output_format == "json" else render_markdown(report)
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            with json_out.open("w", encoding="utf-8") as handle:
                handle.write(as_json)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("w", encoding="utf-8") as handle:
                handle.write(text)
            typer.echo(f"preview written to {out} ({len(text)} characters)", err=True)
        else:
            typer.echo(text, nl=False)
        if html_out is not None:
            from liftlock.preview.charts import html_report

            html_out.parent.mkdir(parents=True, exist_ok=True)
            ml = report.ml
            page = html_report(
                f"liftlock preview: {base} ({report.base_commit[:12]}) → {report.head_commit[:12]}",
                ml.metrics if ml else [],
                ml.plots if ml else {},
                [f"Base: {ml.base_source}. Head: {ml.head_source}."]
                if ml
                else ["No model input changed: nothing to plot."],
            )
            html_out.write_text(page, encoding="utf-8")
            typer.echo(f"HTML report written to {html_out}", err=True)
        # A preview or gate that errored judged nothing: that fails too, never passes.
        failed = [s.stack for s in report.stacks if s.policy_verdict in ("fail", "error")] + [
            g.stack for g in report.gates.values() if g.verdict in ("fail", "error")
        ]
        edited = [s for s in report.stacks if s.manifest_problems]
        for stack in edited:
            typer.secho(
                f"{stack.stack}: committed manifests differ from the render: "
                + "; ".join(stack.manifest_problems),
                err=True,
            )
        if fail_on_policy and (failed or edited):
            if failed:
                typer.secho(
                    f"mandatory policy failed (or its preview errored) for: "
                    f"{', '.join(sorted(set(failed)))}",
                    err=True,
                )
            raise typer.Exit(1)
