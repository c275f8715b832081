"""``scanner train``: one model per (TF, regime) on Ray, then evaluation beside the baselines."""

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


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""

    @app.command("train")
    @reports_input_errors
    def train(
        out: Annotated[
            Path,
            typer.Option(help="Run directory: reads OUT/datasets, writes OUT/models and OUT/metrics.parquet."),
        ],
        data: Annotated[
            Optional[Path], typer.Option(help="Datasets of another run (a run directory or its datasets).")
        ] = None,
        tf: Annotated[
            Optional[list[str]], typer.Option(help="TF(s), comma-separated or repeated. Default: all.")
        ] = None,
        regime: Annotated[
            Optional[list[str]],
            typer.Option(help="Regime(s): pvalue, gc, open, random. Default: all present."),
        ] = None,
        arch: Annotated[
            Optional[str], typer.Option(help="Network: sitectx (default), small, or deepsea (the reference's).")
        ] = None,
        channels: Annotated[Optional[int], typer.Option(help="First-layer detectors (sitectx: 32).")] = None,
        filter_width: Annotated[Optional[int], typer.Option(help="Their width in bp (sitectx: 15).")] = None,
        hidden: Annotated[Optional[int], typer.Option(help="Dense layer width (sitectx: 32).")] = None,
        dropout: Annotated[Optional[float], typer.Option(help="Dropout before the dense layer (sitectx: 0.2).")] = None,
        epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs (30).")] = None,
        min_epochs: Annotated[Optional[int], typer.Option(help="Epochs before early stopping may act (5).")] = None,
        batch_size: Annotated[
            Optional[int], typer.Option(help="Training batch size (0: 32 below 2,000 rows, else 128).")
        ] = None,
        lr: Annotated[Optional[float], typer.Option(help="AdamW learning rate (3e-3).")] = None,
        weight_decay: Annotated[Optional[float], typer.Option(help="AdamW weight decay (1e-2).")] = None,
        patience: Annotated[Optional[int], typer.Option(help="Epochs without improvement before acting (5).")] = None,
        monitor: Annotated[
            Optional[str], typer.Option(help="Early stopping follows validation 'auroc' (default) or 'loss'.")
        ] = None,
        schedule: Annotated[
            Optional[str],
            typer.Option(help="early-stop: stop after --patience flat epochs; reference: lr/10, stop below --min-lr."),
        ] = None,
        min_lr: Annotated[Optional[float], typer.Option(help="Reference schedule: stop once lr < this.")] = None,
        ema: Annotated[Optional[float], typer.Option(help="Weight EMA decay, e.g. 0.999. Default: off.")] = None,
        seed: Annotated[Optional[int], typer.Option(help="Seed of weights, shuffling, augmentation (0).")] = None,
        ensemble: Annotated[
            Optional[int], typer.Option(help="Networks averaged per model; 0: by training-set size (5/3/1).")
        ] = None,
        rc_augment: Annotated[
            Optional[bool], typer.Option(help="Reverse-complement training rows at random (on).")
        ] = None,
        max_shift: Annotated[Optional[int], typer.Option(help="Random shift of training windows, bp (0).")] = None,
        motif_init: Annotated[
            Optional[bool], typer.Option(help="Start the detectors from the scan's motifs (on).")
        ] = None,
        init_motifs: Annotated[
            Optional[list[str]],
            typer.Option(help="More motif files or JASPAR IDs for the detectors (e.g. a JASPAR collection)."),
        ] = None,
        freeze_motifs: Annotated[
            Optional[bool], typer.Option(help="Keep motif-initialised detectors fixed (off).")
        ] = None,
        multitask: Annotated[
            Optional[bool], typer.Option(help="Train each regime's TFs together with shared detectors (off).")
        ] = None,
        train_rows: Annotated[
            Optional[str],
            typer.Option(help="'regime': the balanced training rows (default); 'all': every labelled instance."),
        ] = None,
        baselines: Annotated[
            Optional[bool], typer.Option(help="Fit the k-mer and site regressions and report them (on).")
        ] = None,
        gpus_per_model: Annotated[
            Optional[float], typer.Option(help="GPUs per training task when the cluster has GPUs (1).")
        ] = None,
        cpus_per_model: Annotated[Optional[float], typer.Option(help="CPUs (and torch threads) per task (1).")] = None,
        reference: Annotated[
            bool, typer.Option(help="Start from the reference's settings (deepsea, lr 0.01, EMA, schedule).")
        ] = False,
        evaluate: Annotated[bool, typer.Option(help="Evaluate on val/test and write metrics and curves.")] = True,
        address: Annotated[Optional[str], typer.Option(help="Ray address. Default: start local Ray.")] = None,
        ray: Annotated[bool, typer.Option(help="Use Ray (--no-ray: train in this process, one by one).")] = True,
        metrics: Annotated[Optional[Path], typer.Option(hidden=True)] = None,
    ) -> None:
        """Train one bound/unbound model per (TF, regime); evaluate it beside the motif-score, k-mer and
        site baselines on the test chromosomes."""
        from dataclasses import replace

        from scanner.evaluate import below_baseline_warnings, format_metrics, metrics_table
        from scanner.train import TrainConfig, config_from_flags, train_models

        flags = dict(
            arch=arch,
            channels=channels,
            filter_width=filter_width,
            hidden=hidden,
            dropout=dropout,
            epochs=epochs,
            min_epochs=min_epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            patience=patience,
            monitor=monitor,
            schedule=schedule,
            min_lr=min_lr,
            ema=ema,
            seed=seed,
            ensemble=ensemble,
            rc_augment=rc_augment,
            max_shift=max_shift,
            motif_init=motif_init,
            init_motifs=tuple(split_list(init_motifs)) or None,
            freeze_motifs=freeze_motifs,
            multitask=multitask,
            train_rows=train_rows,
            baselines=baselines,
            gpus_per_model=gpus_per_model,
            cpus_per_model=cpus_per_model,
        )
        if reference:
            config = replace(TrainConfig.reference(), **{k: v for k, v in flags.items() if v is not None}).validate()
        else:
            config = config_from_flags(**flags)
        from scanner.store import RunDir

        out = run_out(out, "models")
        data = input_dataset(data, out, "datasets", "--data")
        run = RunDir(out)
        if metrics is not None:
            echo_err("note: --metrics is going in the next release; `scanner evaluate --output FILE` writes elsewhere")
        metrics_path = metrics or run.metrics_path
        with stage_progress("train", "models") as bar:
            results = train_models(
                data,
                run.dataset("models").root,
                config,
                tfs=split_list(tf) or None,
                regimes=split_list(regime) or None,
                use_ray=ray,
                address=address,
                evaluate=evaluate,
                metrics_path=metrics_path,
                log=bar.write,
                on_model=bar,
                on_epoch_line=bar.set_detail,
            )
        for r in results:
            kept = ", ".join(f"{m['best_epoch']}/{m['epochs_run']}" for m in r.members)
            echo_err(
                f"{r.tf}/{r.regime}: {len(r.members)} network(s) on {r.n_train:,} rows, kept epoch/run {kept}, "
                f"{r.samples_per_s:,.0f} samples/s -> {r.checkpoint}"
            )
        if evaluate and results:
            table = metrics_table([m for r in results for m in r.metrics])
            typer.echo(format_metrics(table))
            for line in below_baseline_warnings(table):
                echo_err(f"warning: {line}")
            echo_err(f"metrics: {metrics_path}; curves: {run.dataset('models').root}/tf=*/regime=*/roc.png, pr.png")
