"""`liftlock promote <from> <to>`: gated promotion of a bundle between stacks."""

from __future__ import annotations

from typing import Annotated

import typer

from liftlock.errors import GateFailed


def register(app: typer.Typer) -> None:
    @app.command("promote")
    def promote_command(
        source: Annotated[
            str,
            typer.Argument(
                metavar="FROM",
                help="Stack whose bundle to promote, or `workspace` (the bundle `dvc repro` "
                "built).",
            ),
        ],
        target: Annotated[str, typer.Argument(metavar="TO", help="Stack to promote into.")],
        dry_run: Annotated[
            bool,
            typer.Option(
                "--dry-run", help="Run the gate and show what would change; write nothing."
            ),
        ] = False,
        git: Annotated[
            bool,
            typer.Option(
                "--git", help="Commit the change on a branch promote/<to>/<digest12> for review."
            ),
        ] = False,
        image: Annotated[
            str | None,
            typer.Option(
                "--image",
                help="Image to pin in <to> (repo@sha256:…); default: the image <from> runs, or the "
                "one `pulumi up --stack dev` built for the bundle.",
            ),
        ] = None,
        no_preview: Annotated[
            bool,
            typer.Option(
                "--no-preview",
                help="Gate without the engine's preview (infrastructure rules on deploy/<to>/ "
                "only).",
            ),
        ] = False,
    ) -> None:
        """Promote a bundle to a stack, only if the stack's gate passes.

        Writes liftlock:bundleDigest and liftlock:image into stacks/Pulumi.<to>.yaml and a signed
        record promotions/<to>/<time>-<digest12>.json (+ .sig). A refused promotion changes no
        file; a second promotion into the same stack at the same time is refused.
        """
        from liftlock.commands.gate import blocking_rules, print_report
        from liftlock.engine.env import find_project_root
        from liftlock.promote import promote

        root = find_project_root()
        result = promote(
            root, source, target, dry_run=dry_run, git=git, image=image, preview=not no_preview
        )
        print_report(
            result.report,
            title=f"promote {source} -> {target}: bundle {result.digest[7:19]} (gate {target})",
        )
        if not result.report.passed:
            raise GateFailed(
                f"promotion {source} -> {target} refused, no file changed: mandatory rule(s) "
                f"failed: {blocking_rules(result.report)}"
            )
        stack = result.stack_path.relative_to(root)
        if result.already:
            typer.echo(f"already promoted, nothing written: {result.already}")
            return
        if dry_run:
            typer.echo(
                f"dry run: would set liftlock:bundleDigest={result.digest}"
                + (f" and liftlock:image={result.image}" if result.image else "")
                + f" in {stack}; nothing written"
            )
            return
        typer.echo(f"promoted {source} -> {target}: {stack} updated")
        if result.record:
            typer.echo(f"record: {result.record.relative_to(root)} (signed: .sig beside it)")
        if result.branch:
            typer.echo(f"committed {result.commit} on branch {result.branch}")
        typer.echo(f"next: pulumi up --stack {target}")
