"""``scanner features``: motifs each (TF, regime) model relies on, matched to databases, compared."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import (
    empty_scan,
    input_dataset,
    reports_input_errors,
    run_out,
    split_list,
    stage_progress,
    take_alias,
)


def register(app: typer.Typer) -> None:
    """Add the ``features`` command to ``app``."""

    @app.command("features")
    @reports_input_errors
    def features_cmd(
        out: Annotated[
            Optional[Path],
            typer.Option(
                help="Run directory: reads OUT/datasets (or predictions) and OUT/models, writes OUT/features."
            ),
        ] = None,
        datasets: Annotated[
            Optional[Path],
            typer.Option(
                help="Datasets (with --source predictions: predictions) of another run, or its run directory."
            ),
        ] = None,
        models: Annotated[
            Optional[Path], typer.Option(help="Models of another run (a run directory or its models).")
        ] = None,
        motifs: Annotated[
            Optional[list[str]],
            typer.Option(help="Motif database file(s) (MEME, JASPAR, ...) to match patterns against; repeatable."),
        ] = None,
        own_motifs: Annotated[
            bool, typer.Option(help="Also match against the run's simulated motifs (OUT/sim) when present.")
        ] = True,
        method: Annotated[
            Optional[list[str]], typer.Option(help="deeplift (shuffled references) and/or ism (fast exact ISM).")
        ] = None,
        source: Annotated[str, typer.Option(help="datasets or predictions.")] = "datasets",
        tf: Annotated[Optional[list[str]], typer.Option(help="Model TF(s). Default: all.")] = None,
        regime: Annotated[Optional[list[str]], typer.Option(help="Model regime(s). Default: all.")] = None,
        split: Annotated[
            Optional[list[str]], typer.Option(help="Dataset split(s) to explain ('all' for every split).")
        ] = None,
        label: Annotated[str, typer.Option(help="Dataset label: 1 bound, 0 unbound, 'all'.")] = "1",
        where: Annotated[Optional[str], typer.Option(help="SQL filter on the source's columns.")] = None,
        top: Annotated[
            Optional[int], typer.Option(help="--source predictions: top N rows by prob_bound per model.")
        ] = None,
        max_windows: Annotated[int, typer.Option(help="At most N windows per model (seeded subset; 0: all).")] = 2000,
        flank: Annotated[int, typer.Option(help="Attribute the site centre +- FLANK bp.")] = 200,
        genome: Annotated[Optional[Path], typer.Option(help="FASTA (--source predictions).")] = None,
        n_shuffles: Annotated[int, typer.Option(help="DeepLIFT shuffled references per window.")] = 10,
        seed: Annotated[int, typer.Option(help="Seed of the shuffles and of the window subset.")] = 0,
        batch_size: Annotated[int, typer.Option(help="Sequences per forward/backward pass.")] = 64,
        chunk_rows: Annotated[int, typer.Option(help="Windows per attribution work item.")] = 256,
        max_seqlets: Annotated[int, typer.Option(help="TF-MoDISco: most seqlets per sign.")] = 2000,
        n_leiden: Annotated[int, typer.Option(help="TF-MoDISco: Leiden clusterings.")] = 2,
        size: Annotated[int, typer.Option(help="TF-MoDISco: seqlet core width.")] = 15,
        min_seqlets: Annotated[int, typer.Option(help="TF-MoDISco: skip a sign with fewer seqlets.")] = 30,
        top_matches: Annotated[int, typer.Option(help="TomTom matches kept per pattern.")] = 3,
        max_qvalue: Annotated[float, typer.Option(help="A pattern is a database motif below this q-value.")] = 0.05,
        contrast: Annotated[str, typer.Option(help="Regime the comparison contrasts with the others.")] = "open",
        overwrite: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
        actors: Annotated[Optional[int], typer.Option(help="Attribution actors. Default: GPUs, else CPUs.")] = None,
        address: Annotated[Optional[str], typer.Option(help="Ray address. Default: start local Ray.")] = None,
        ray: Annotated[bool, typer.Option(help="Use Ray (--no-ray: in this process).")] = True,
        old_run: Annotated[Optional[Path], typer.Argument(hidden=True)] = None,
    ) -> None:
        """Write OUT/features: TF-MoDISco patterns of each model's attributions, TomTom matches, and the
        patterns x regimes comparison (which motifs each regime taught)."""
        from scanner.errors import InputError
        from scanner.features import FeaturesConfig, ModiscoSettings, default_databases
        from scanner.features import features as run_stage
        from scanner.store import RunDir

        out = take_alias(out, old_run, "RUN (as an argument)", "--out RUN")
        if out is None:
            raise InputError("missing --out (the run directory)", field="--out")
        out = run_out(out, "features")
        why = empty_scan(out) if datasets is None else None
        if why:  # a finished scan with no hit: nothing downstream, a valid empty result
            typer.echo(f"note: nothing to explain: {why}", err=True)
            return
        if source not in ("datasets", "predictions"):
            raise InputError(f"must be datasets or predictions, got {source!r}", field="--source")
        src = input_dataset(datasets, out, source, "--datasets")
        models = input_dataset(models, out, "models", "--models")
        splits = split_list(split) or ["test"]
        if label not in ("0", "1", "all"):
            raise InputError(f"must be 0, 1 or all, got {label!r}", field="--label")
        config = FeaturesConfig(
            methods=tuple(split_list(method) or ["deeplift"]),
            source=source,
            tfs=tuple(split_list(tf)),
            regimes=tuple(split_list(regime)),
            splits=() if splits == ["all"] else tuple(splits),
            label=None if label == "all" else int(label),
            where=where,
            top=top,
            max_windows=max_windows or None,
            flank=flank,
            batch_size=batch_size,
            chunk_rows=chunk_rows,
            n_shuffles=n_shuffles,
            seed=seed,
            modisco=ModiscoSettings(max_seqlets=max_seqlets, n_leiden=n_leiden, size=size, min_seqlets=min_seqlets),
            top_matches=top_matches,
            max_qvalue=max_qvalue,
            contrast=contrast,
            actors=actors,
        ).validate()
        dbs = [*split_list(motifs)]
        if own_motifs:  # the simulated motifs of this run, or of the run the inputs come from
            runs = dict.fromkeys([out.resolve(), src.resolve().parent])
            dbs = [*dict.fromkeys(str(p) for r in runs for p in default_databases(r)), *dbs]
        with stage_progress("features", "work items") as bar:
            res = run_stage(
                src,
                models,
                RunDir(out).dataset("features").root,
                config,
                databases=dbs,
                genome=genome,
                use_ray=ray,
                address=address,
                overwrite=overwrite,
                log=bar.write,
                progress=bar,
            )
        n_win = sum(m["windows"] for m in res.models)
        typer.echo(
            f"{res.patterns.num_rows} pattern(s) from {n_win} window(s) x method(s) of {len(res.models)} "
            f"model(s) x method(s) under {res.out} ({res.seconds:.1f} s)"
        )
        for line in res.lines:
            typer.echo(line)
        typer.echo(
            f"query: pl.read_parquet('{res.out}/comparison.parquet'); patterns: "
            f"pl.scan_parquet('{res.out}/patterns/**/*.parquet', hive_partitioning=True)"
        )
