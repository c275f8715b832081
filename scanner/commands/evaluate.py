"""``scanner evaluate``: (re-)evaluate trained models, optionally every TF's model on every TF's data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import echo_err, input_dataset, reports_input_errors, split_list, take_alias


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""

    @app.command("evaluate")
    @reports_input_errors
    def evaluate(
        out: Annotated[
            Path, typer.Option(help="Run directory: reads OUT/datasets and OUT/models, merges into its metrics.")
        ],
        data: Annotated[
            Optional[Path], typer.Option(help="Datasets of another run (a run directory or its datasets).")
        ] = None,
        models: Annotated[
            Optional[Path], typer.Option(help="Models of another run (a run directory or its models).")
        ] = None,
        output: Annotated[
            Optional[Path],
            typer.Option("--output", "-o", help="Metrics file to merge into. Default: OUT/metrics.parquet."),
        ] = None,
        tf: Annotated[Optional[list[str]], typer.Option(help="Model TF(s). Default: all.")] = None,
        regime: Annotated[Optional[list[str]], typer.Option(help="Regime(s). Default: all.")] = None,
        split: Annotated[Optional[list[str]], typer.Option(help="Split(s). Default: val,test.")] = None,
        cross_tf: Annotated[bool, typer.Option(help="Apply every TF's model to every TF's data (TF x TF).")] = False,
        batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 256,
        rc_average: Annotated[bool, typer.Option(help="Average logits with the reverse complement's.")] = False,
        address: Annotated[Optional[str], typer.Option(help="Ray address. Default: start local Ray.")] = None,
        ray: Annotated[bool, typer.Option(help="Use Ray (--no-ray: in this process).")] = True,
        old_metrics: Annotated[Optional[Path], typer.Option("--metrics", hidden=True)] = None,
    ) -> None:
        """Compute auROC, auPRC, loss and the motif-score baseline per (TF, model TF, regime, split)."""
        from scanner.evaluate import below_baseline_warnings, evaluate_models, format_metrics
        from scanner.store import RunDir

        output = take_alias(output, old_metrics, "--metrics", "--output")
        data = input_dataset(data, out, "datasets", "--data")
        models = input_dataset(models, out, "models", "--models")
        metrics_path = output or RunDir(out).metrics_path
        table = evaluate_models(
            data,
            models,
            metrics_path,
            tfs=split_list(tf) or None,
            regimes=split_list(regime) or None,
            cross_tf=cross_tf,
            splits=tuple(split_list(split) or ("val", "test")),
            batch_size=batch_size,
            rc_average=rc_average,
            use_ray=ray,
            address=address,
            log=echo_err,
        )
        typer.echo(format_metrics(table))
        for line in below_baseline_warnings(table):
            echo_err(f"warning: {line}")
        echo_err(f"metrics: {metrics_path}")
