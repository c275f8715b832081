"""``scanner evaluate``: (re-)evaluate trained models, optionally every TF's model on every TF's data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import echo_err, reports_input_errors, split_list


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""

    @app.command("evaluate")
    @reports_input_errors
    def evaluate(
        data: Annotated[Path, typer.Option(help="Datasets directory (OUT/datasets).")],
        models: Annotated[Path, typer.Option(help="Models directory (OUT/models).")],
        metrics: Annotated[
            Optional[Path], typer.Option(help="Metrics file to merge into. Default: OUT/metrics.parquet.")
        ] = None,
        tf: Annotated[Optional[list[str]], typer.Option(help="Model TF(s). Default: all.")] = None,
        regime: Annotated[Optional[list[str]], typer.Option(help="Regime(s). Default: all.")] = None,
        split: Annotated[Optional[list[str]], typer.Option(help="Split(s). Default: val,test.")] = None,
        cross_tf: Annotated[bool, typer.Option(help="Apply every TF's model to every TF's data (TF x TF).")] = False,
        batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 256,
        rc_average: Annotated[bool, typer.Option(help="Average logits with the reverse complement's.")] = False,
        address: Annotated[Optional[str], typer.Option(help="Ray address. Default: start local Ray.")] = None,
        ray: Annotated[bool, typer.Option(help="Use Ray (--no-ray: in this process).")] = True,
    ) -> None:
        """Compute auROC, auPRC, loss and the motif-score baseline per (TF, model TF, regime, split)."""
        from scanner.evaluate import below_baseline_warnings, evaluate_models, format_metrics

        metrics_path = metrics or models.parent / "metrics.parquet"
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
