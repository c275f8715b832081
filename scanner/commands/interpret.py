"""``scanner interpret``, ``scanner benchmark-interpret`` and ``scanner plot-site``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import (
    echo_err,
    empty_scan,
    input_dataset,
    reports_input_errors,
    run_out,
    split_list,
    stage_progress,
    take_alias,
)

_METHOD_HELP = (
    "Method(s), comma-separated or repeated: ism (fast, exact), ism-naive (reference path), deeplift, "
    "saliency, grad-x-input, gradcam, guided-gradcam."
)


def register(app: typer.Typer) -> None:
    """Add the interpretation commands to ``app``."""

    @app.command("interpret")
    @reports_input_errors
    def interpret(
        out: Annotated[
            Path,
            typer.Option(help="Run directory: reads OUT/predictions and OUT/models, writes OUT/attributions."),
        ],
        predictions: Annotated[
            Optional[Path], typer.Option(help="Predictions of another run (a run directory or its predictions).")
        ] = None,
        models: Annotated[
            Optional[Path], typer.Option(help="Models of another run (a run directory or its models).")
        ] = None,
        method: Annotated[Optional[list[str]], typer.Option(help=_METHOD_HELP)] = None,
        where: Annotated[
            Optional[str],
            typer.Option(help="SQL filter on prediction columns, e.g. \"prob_bound > 0.9 AND chrom = 'chrII'\"."),
        ] = None,
        top: Annotated[Optional[int], typer.Option(help="Keep the N rows of highest prob_bound per model.")] = None,
        tf: Annotated[Optional[list[str]], typer.Option(help="Instance TF(s). Default: all.")] = None,
        regime: Annotated[Optional[list[str]], typer.Option(help="Model regime(s). Default: all.")] = None,
        all_models: Annotated[
            bool, typer.Option(help="Also explain rows scored by another TF's model (cross-TF).")
        ] = False,
        flank: Annotated[
            Optional[int],
            typer.Option(help="Write (and mutate) only the site +- FLANK bp. Default: whole window."),
        ] = None,
        batch_size: Annotated[int, typer.Option(help="Sequences per forward/backward pass.")] = 64,
        chunk_rows: Annotated[int, typer.Option(help="Instances per work item.")] = 256,
        reference: Annotated[
            str, typer.Option(help="DeepLIFT reference: shuffle (dinucleotide, averaged), gc or zero.")
        ] = "shuffle",
        n_shuffles: Annotated[int, typer.Option(help="DeepLIFT shuffled references per sequence.")] = 10,
        seed: Annotated[int, typer.Option(help="Seed of the shuffles.")] = 0,
        gradcam_layer: Annotated[str, typer.Option(help="Grad-CAM feature map: first, last or convK.")] = "last",
        genome: Annotated[
            Optional[Path], typer.Option(help="FASTA. Default: the genome the predictions recorded.")
        ] = None,
        bedgraph: Annotated[
            bool, typer.Option(help="Also write per-method bedGraph tracks (mean score per position).")
        ] = False,
        bigwig: Annotated[
            bool, typer.Option(help="Also write the tracks as bigWig beside the bedGraph (implies --bedgraph).")
        ] = False,
        overwrite: Annotated[
            bool, typer.Option(help="Replace existing attributions made with other settings.")
        ] = False,
        actors: Annotated[Optional[int], typer.Option(help="Actors per model. Default: GPUs, else CPUs.")] = None,
        address: Annotated[Optional[str], typer.Option(help="Ray address. Default: start local Ray.")] = None,
        ray: Annotated[bool, typer.Option(help="Use Ray (--no-ray: in this process).")] = True,
    ) -> None:
        """Write OUT/attributions: per-base scores of each selected prediction, long format."""
        from scanner.interpret.run import InterpretConfig
        from scanner.interpret.run import interpret as run_interpret
        from scanner.store import RunDir

        out = run_out(out, "attributions")
        why = empty_scan(out) if predictions is None else None
        if why:  # a finished scan with no hit: nothing downstream, a valid empty result
            echo_err(f"note: nothing to explain: {why}")
            return
        predictions = input_dataset(predictions, out, "predictions", "--predictions")
        models = input_dataset(models, out, "models", "--models")

        config = InterpretConfig(
            methods=tuple(split_list(method) or ["ism"]),
            where=where,
            top=top,
            tfs=tuple(split_list(tf)),
            regimes=tuple(split_list(regime)),
            all_models=all_models,
            flank=flank,
            batch_size=batch_size,
            chunk_rows=chunk_rows,
            reference=reference,
            n_shuffles=n_shuffles,
            seed=seed,
            gradcam_layer=gradcam_layer,
            actors=actors,
        ).validate()
        with stage_progress("interpret", "instances") as bar:
            s = run_interpret(
                predictions,
                models,
                RunDir(out).dataset("attributions").root,
                config,
                genome=genome,
                use_ray=ray,
                address=address,
                overwrite=overwrite,
                bedgraph=bedgraph,
                bigwig=bigwig,
                log=bar.write,
                progress=bar,
            )
        typer.echo(
            f"{s.rows:,} attribution rows ({s.instances:,} instances, {len(s.models)} model(s), "
            f"{', '.join(config.methods)}) in {s.files} file(s) under {s.out} ({s.seconds:.1f} s)"
        )
        typer.echo(
            f"top positions around a site: pl.scan_parquet('{s.out}/**/*.parquet')"
            f".filter(pl.col('method') == "
            f"'{config.methods[0]}', pl.col('chrom') == CHROM, pl.col('start') == START)"
            ".sort(pl.col('score').abs(), descending=True).head(10).collect()"
        )

    @app.command("benchmark-interpret")
    @reports_input_errors
    def benchmark_interpret(
        out: Annotated[
            Path, typer.Option(help="Run directory: writes OUT/interpret_benchmark (benchmark.md/.parquet/.png).")
        ],
        sim: Annotated[
            Optional[Path],
            typer.Option(help="An existing simulation (a run directory or its sim). Default: simulate one."),
        ] = None,
        tf: Annotated[str, typer.Option(help="Simulated TF: GAMMA (partner) or ALPHA (open AND partner).")] = "GAMMA",
        method: Annotated[Optional[list[str]], typer.Option(help=_METHOD_HELP + " Default: all.")] = None,
        size_mb: Annotated[float, typer.Option(help="Simulated genome size (without --sim).")] = 12.0,
        sites_per_mb: Annotated[float, typer.Option(help="Cores per Mb (without --sim).")] = 800.0,
        n_sequences: Annotated[int, typer.Option(help="Rule-bound test cores explained.")] = 100,
        naive_sequences: Annotated[int, typer.Option(help="Of those, also explained by ism-naive.")] = 10,
        arch: Annotated[str, typer.Option(help="Model architecture: small or deepsea.")] = "small",
        epochs: Annotated[int, typer.Option(help="Training epochs.")] = 6,
        batch_size: Annotated[int, typer.Option(help="Training and attribution batch size.")] = 64,
        reference: Annotated[str, typer.Option(help="DeepLIFT reference: shuffle, gc or zero.")] = "shuffle",
        n_shuffles: Annotated[int, typer.Option(help="DeepLIFT shuffled references per sequence.")] = 10,
        seed: Annotated[int, typer.Option(help="Seed of simulation, training and shuffles.")] = 0,
    ) -> None:
        """Rank the attribution methods on simulated data with known causal positions."""
        from scanner.interpret.benchmark import BenchmarkConfig, run_benchmark

        config = BenchmarkConfig(
            tf=tf,
            size_mb=size_mb,
            sites_per_mb=sites_per_mb,
            seed=seed,
            methods=tuple(split_list(method)),
            n_sequences=n_sequences,
            naive_sequences=naive_sequences,
            arch=arch,
            epochs=epochs,
            batch_size=batch_size,
            reference=reference,
            n_shuffles=n_shuffles,
        )
        from scanner.store import RunDir

        target = RunDir(run_out(out, "interpret_benchmark")).dataset("interpret_benchmark").root
        sim_dir = None if sim is None else input_dataset(sim, out, "sim", "--sim")
        run_benchmark(target, config, sim_dir=sim_dir, log=echo_err)
        typer.echo(RunDir.of("interpret_benchmark", target).part("text").read_text())

    @app.command("plot-site")
    @reports_input_errors
    def plot_site(
        attributions: Annotated[Path, typer.Option(help="Attributions: a run directory or its attributions dataset.")],
        chrom: Annotated[str, typer.Option(help="Chromosome of the site.")],
        start: Annotated[int, typer.Option(help="0-based start of the site (as in every dataset).")],
        output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG to write.")] = None,
        method: Annotated[str, typer.Option(help="Attribution method to draw.")] = "ism",
        tf: Annotated[Optional[str], typer.Option(help="Model TF, when several explained the site.")] = None,
        regime: Annotated[Optional[str], typer.Option(help="Model regime, when several explained the site.")] = None,
        flank: Annotated[int, typer.Option(help="Bases either side of the site in its logo.")] = 20,
        partners: Annotated[int, typer.Option(help="Logos of the strongest regions outside the site.")] = 2,
        old_out: Annotated[Optional[Path], typer.Option("--out", hidden=True)] = None,
        old_model_tf: Annotated[Optional[str], typer.Option("--model-tf", hidden=True)] = None,
    ) -> None:
        """Draw one site's attribution track and sequence logos (site and partner regions)."""
        from scanner.errors import InputError
        from scanner.interpret.plots import plot_site as draw

        output = take_alias(output, old_out, "--out", "--output")
        tf = take_alias(tf, old_model_tf, "--model-tf", "--tf")
        if output is None:
            raise InputError("missing --output (the PNG to write)", field="--output")
        path = draw(
            input_dataset(attributions, attributions, "attributions", "--attributions"),
            chrom,
            start,
            output,
            method=method,
            model_tf=tf,
            regime=regime,
            flank=flank,
            partners=partners,
        )
        typer.echo(str(path))
