"""`liftlock drift`: compare served inputs with the bundle's training reference (ml.drift)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from liftlock.errors import DriftDetected


def _number(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    @app.command("drift")
    def drift_command(
        inputs: Annotated[
            str,
            typer.Option(
                "--inputs",
                "--url",
                envvar="LIFTLOCK_INPUT_LOG",
                help="Served inputs: the server's --input-log path, a CSV with a header, or a "
                "server URL (reads its /v1/inputs).",
            ),
        ],
        bundle: Annotated[
            Path,
            typer.Option(
                "--bundle", envvar="LIFTLOCK_BUNDLE", help="Bundle whose reference.csv to compare."
            ),
        ] = Path("bundle"),
        config: Annotated[
            Path | None,
            typer.Option(help="Thresholds file (default ml/drift.yaml: psi_max, ks_max, ...)."),
        ] = None,
        window: Annotated[
            int | None, typer.Option(help="Compare at most this many recent rows.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        """PSI and KS per feature; exit 1 naming the features past the thresholds."""
        import dataclasses
        import json

        from rich.console import Console
        from rich.table import Table

        from ml.bundle import verify_bundle
        from ml.drift import (
            DEFAULT_CONFIG,
            compare,
            load_thresholds,
            read_csv_matrix,
            read_served_inputs,
        )
        from ml.serve.model import REFERENCE_FILE, read_manifest_features

        digest = verify_bundle(bundle)
        features = read_manifest_features(bundle)
        thresholds = load_thresholds(config or DEFAULT_CONFIG)
        if window is not None:
            thresholds = dataclasses.replace(thresholds, window=window)
        reference = read_csv_matrix(bundle / REFERENCE_FILE, features)
        served = read_served_inputs(inputs, features, thresholds.window)
        report = compare(reference, served, features, thresholds)

        if as_json:
            typer.echo(json.dumps({"bundle": digest, **report.as_dict()}, indent=2))
        else:
            table = Table(
                title=f"drift: {report.served_rows} served rows vs {report.reference_rows} "
                f"reference rows (psi_max {thresholds.psi_max}, ks_max {thresholds.ks_max})"
            )
            for column in ("feature", "PSI", "KS", "KS p", "ref mean", "served mean", "verdict"):
                table.add_column(column, justify="left" if column == "feature" else "right")
            for item in report.features:
                table.add_row(
                    item.feature,
                    _number(item.psi),
                    _number(item.ks),
                    f"{item.ks_p_value:.2g}",
                    f"{item.reference_mean:.4g}",
                    f"{item.served_mean:.4g}",
                    "[red]drift[/]" if item.drifted else "[green]ok[/]",
                )
            Console().print(table)
        if report.drifted:
            raise DriftDetected(
                f"{len(report.drifted)} of {len(features)} features drifted: "
                + ", ".join(report.drifted),
                hint="retrain on recent data (`dvc repro`) or investigate the inputs' source",
            )
