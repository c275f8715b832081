"""``scanner train``: one model per (TF, regime) on Ray, then evaluation into OUT/metrics.parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import echo_err, reports_input_errors, split_list


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""

    @app.command("train")
    @reports_input_errors
    def train(
        ctx: typer.Context,
        data: Annotated[Path, typer.Option(help="Datasets directory (OUT/datasets: regime=/tf=/split=).")],
        out: Annotated[Path, typer.Option(help="Models directory (OUT/models); one tf=/regime=/ per model.")],
        tf: Annotated[
            Optional[list[str]], typer.Option(help="TF(s), comma-separated or repeated. Default: all.")
        ] = None,
        regime: Annotated[
            Optional[list[str]],
            typer.Option(help="Regime(s): pvalue, gc, open, random. Default: all present."),
        ] = None,
        arch: Annotated[str, typer.Option(help="Network: small (CPU, tests) or deepsea (the reference's).")] = "small",
        epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 20,
        batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 128,
        lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
        weight_decay: Annotated[float, typer.Option(help="L2 penalty (Adam weight_decay).")] = 5e-7,
        patience: Annotated[int, typer.Option(help="Epochs without a lower validation loss before acting.")] = 3,
        schedule: Annotated[
            str,
            typer.Option(help="early-stop: stop after --patience flat epochs; reference: lr/10, stop below --min-lr."),
        ] = "early-stop",
        min_lr: Annotated[float, typer.Option(help="Reference schedule: stop once lr < this.")] = 1e-4,
        ema: Annotated[Optional[float], typer.Option(help="Weight EMA decay, e.g. 0.999. Default: off.")] = None,
        seed: Annotated[int, typer.Option(help="Seed for weights, shuffling and augmentation.")] = 0,
        rc_augment: Annotated[bool, typer.Option(help="Reverse-complement training rows at random (p=1/2).")] = False,
        gpus_per_model: Annotated[float, typer.Option(help="GPUs per training task when the cluster has GPUs.")] = 1.0,
        cpus_per_model: Annotated[float, typer.Option(help="CPUs (and torch threads) per training task.")] = 1.0,
        reference: Annotated[
            bool, typer.Option(help="Start from the reference's settings (deepsea, lr 0.01, EMA, schedule).")
        ] = False,
        metrics: Annotated[
            Optional[Path], typer.Option(help="Metrics file. Default: OUT/metrics.parquet beside --out.")
        ] = None,
        evaluate: Annotated[bool, typer.Option(help="Evaluate on val/test and write metrics and curves.")] = True,
        address: Annotated[Optional[str], typer.Option(help="Ray address. Default: start local Ray.")] = None,
        ray: Annotated[bool, typer.Option(help="Use Ray (--no-ray: train in this process, one by one).")] = True,
    ) -> None:
        """Train one bound/unbound model per (TF, regime) and evaluate it on the test chromosomes."""
        from dataclasses import replace

        from scanner.evaluate import format_metrics, metrics_table
        from scanner.train import TrainConfig, train_models

        flags = dict(
            arch=arch,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            patience=patience,
            schedule=schedule,
            min_lr=min_lr,
            ema=ema,
            seed=seed,
            rc_augment=rc_augment,
            gpus_per_model=gpus_per_model,
            cpus_per_model=cpus_per_model,
        )
        if reference:
            base = TrainConfig.reference()
            explicit = {
                k: v
                for k, v in flags.items()
                if ctx.get_parameter_source(k) is not None and ctx.get_parameter_source(k).name == "COMMANDLINE"
            }
            config = replace(base, **explicit).validate()
        else:
            config = TrainConfig(**flags).validate()
        metrics_path = metrics or out.parent / "metrics.parquet"
        results = train_models(
            data,
            out,
            config,
            tfs=split_list(tf) or None,
            regimes=split_list(regime) or None,
            use_ray=ray,
            address=address,
            evaluate=evaluate,
            metrics_path=metrics_path,
            log=echo_err,
        )
        for r in results:
            echo_err(
                f"{r.tf}/{r.regime}: {r.epochs_run} epoch(s), best {r.best_epoch} "
                f"(val loss {r.best_val_loss:.4f}), {r.samples_per_s:.0f} samples/s -> {r.checkpoint}"
            )
        if evaluate:
            typer.echo(format_metrics(metrics_table([m for r in results for m in r.metrics])))
            echo_err(f"metrics: {metrics_path}; curves: {out}/tf=*/regime=*/roc.png, pr.png")
