"""``scanner tune``: hyper-parameter search per (TF, regime) on Ray Tune, then the final models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import echo_err, input_dataset, reports_input_errors, run_out, split_list


def register(app: typer.Typer) -> None:
    """Add the ``tune`` command to ``app``."""

    @app.command("tune")
    @reports_input_errors
    def tune(
        out: Annotated[
            Path,
            typer.Option(
                help="Run directory: reads OUT/datasets, writes the final models (OUT/models) and trials (OUT/tune)."
            ),
        ],
        data: Annotated[
            Optional[Path], typer.Option(help="Datasets of another run (a run directory or its datasets).")
        ] = None,
        tf: Annotated[
            Optional[list[str]], typer.Option(help="TF(s), comma-separated or repeated. Default: all.")
        ] = None,
        regime: Annotated[Optional[list[str]], typer.Option(help="Regime(s). Default: all present.")] = None,
        samples: Annotated[int, typer.Option(help="Trials per model.")] = 12,
        epochs: Annotated[int, typer.Option(help="Maximum epochs of a trial (and of the final model).")] = 30,
        grace_period: Annotated[int, typer.Option(help="Epochs before ASHA may stop a trial.")] = 3,
        reduction_factor: Annotated[int, typer.Option(help="ASHA keeps 1/this of the trials per rung.")] = 3,
        ensemble: Annotated[int, typer.Option(help="Networks in the final model (0: by training-set size).")] = 0,
        seed: Annotated[int, typer.Option(help="Seed of every trial and of the final model.")] = 0,
        cpus_per_trial: Annotated[float, typer.Option(help="CPUs (and torch threads) per trial.")] = 1.0,
        gpus_per_trial: Annotated[float, typer.Option(help="GPUs per trial when the cluster has GPUs.")] = 1.0,
        storage: Annotated[Optional[Path], typer.Option(help="Tune's experiments. Default: OUT/tune.")] = None,
        resume: Annotated[bool, typer.Option(help="Continue a search found under --storage.")] = True,
        address: Annotated[Optional[str], typer.Option(help="Ray address. Default: start local Ray.")] = None,
    ) -> None:
        """Search network size, learning rate, weight decay, dropout, motif initialisation and shift on
        the validation rows (Ray Tune, ASHA), then train and evaluate each final model."""
        from scanner.evaluate import below_baseline_warnings, format_metrics, metrics_table
        from scanner.store import RunDir
        from scanner.train import TrainConfig
        from scanner.train.tune import TuneSettings, tune_models

        out = run_out(out, "models")
        data = input_dataset(data, out, "datasets", "--data")

        base = TrainConfig(
            epochs=epochs, ensemble=ensemble, seed=seed, cpus_per_model=cpus_per_trial, gpus_per_model=gpus_per_trial
        ).validate()
        settings = TuneSettings(
            samples=samples, grace_period=grace_period, reduction_factor=reduction_factor, resume=resume
        )
        results = tune_models(
            data,
            RunDir(out).dataset("models").root,
            base,
            settings,
            tfs=split_list(tf) or None,
            regimes=split_list(regime) or None,
            storage=storage,
            address=address,
            log=echo_err,
        )
        for r in results:
            done = sum(1 for t in r.trials if t["error"] is None)
            echo_err(f"{r.tf}/{r.regime}: {done}/{len(r.trials)} trials, chose {r.best} -> {r.final.checkpoint}")
        table = metrics_table([m for r in results for m in r.final.metrics])
        typer.echo(format_metrics(table))
        for line in below_baseline_warnings(table):
            echo_err(f"warning: {line}")
