"""``scanner predict``: bound probabilities for every motif instance, through Ray Data actors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import (
    echo_err,
    input_dataset,
    reports_input_errors,
    run_out,
    split_list,
    stage_progress,
)
from scanner.errors import InputError


def register(app: typer.Typer) -> None:
    """Add the ``predict`` command to ``app``."""

    @app.command("predict")
    @reports_input_errors
    def predict(
        out: Annotated[
            Path, typer.Option(help="Run directory: reads OUT/instances and OUT/models, writes OUT/predictions.")
        ],
        instances: Annotated[
            Optional[Path], typer.Option(help="Instances of another run (a run directory or its instances).")
        ] = None,
        models: Annotated[
            Optional[Path], typer.Option(help="Models of another run (a run directory or its models).")
        ] = None,
        tf: Annotated[
            Optional[list[str]], typer.Option(help="Instance TF(s) to score. Default: all with a model.")
        ] = None,
        regime: Annotated[Optional[list[str]], typer.Option(help="Model regime(s). Default: all.")] = None,
        cross_tf: Annotated[bool, typer.Option(help="Score every TF's instances with every TF's model.")] = False,
        batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 256,
        rc_average: Annotated[bool, typer.Option(help="Average logits with the reverse complement's.")] = False,
        genome: Annotated[
            Optional[Path],
            typer.Option(help="FASTA. Default: the genome the scan recorded."),
        ] = None,
        chunk_rows: Annotated[int, typer.Option(help="Instances per work item (unit of scheduling/retry).")] = 16384,
        actors: Annotated[Optional[int], typer.Option(help="Actor-pool size. Default: GPUs, else CPUs.")] = None,
        address: Annotated[Optional[str], typer.Option(help="Ray address. Default: start local Ray.")] = None,
        ray: Annotated[bool, typer.Option(help="Use Ray (--no-ray: in this process).")] = True,
    ) -> None:
        """Write OUT/predictions (one row per instance and model: logit, prob_bound)."""
        from scanner.store import RunDir

        out = run_out(out, "predictions")
        instances = input_dataset(instances, out, "instances", "--instances")
        try:
            models = input_dataset(models, out, "models", "--models")
        except InputError as missing:  # a finished scan with no hit needs no model: an empty result
            from scanner.scan.export import empty_reason

            try:
                empty = models is None and empty_reason(instances)
            except InputError:
                empty = None
            if not empty:
                raise missing from None
            models = RunDir(out).path("models")
        from scanner.predict.run import PredictConfig
        from scanner.predict.run import predict as run_predict

        config = PredictConfig(
            batch_size=batch_size,
            rc_average=rc_average,
            cross_tf=cross_tf,
            chunk_rows=chunk_rows,
            actors=actors,
        ).validate()
        with stage_progress("predict", "work items") as bar:
            s = run_predict(
                instances,
                models,
                RunDir(out).dataset("predictions").root,
                config,
                genome=genome,
                tfs=split_list(tf) or None,
                regimes=split_list(regime) or None,
                use_ray=ray,
                address=address,
                log=bar.write,
                progress=bar,
            )
        for note in s.notes:
            echo_err(f"note: {note}")
        typer.echo(
            f"{s.rows:,} prediction rows ({s.instances:,} instances x applicable models, "
            f"{len(s.models)} model(s)) in {s.files} file(s) under {s.out} ({s.seconds:.1f} s)"
        )
        if s.timings:
            echo_err(
                f"first item started after {s.timings['first_item_s']:.1f} s (start-up); items "
                f"{s.timings['items_s']:.1f} s, {s.rows / max(s.timings['items_s'], 1e-9):,.0f} rows/s"
            )
        typer.echo(
            f"query: polars.scan_parquet('{s.out}/**/*.parquet', hive_partitioning=True)"
            ".filter(pl.col('prob_bound') > 0.9).collect()"
        )
