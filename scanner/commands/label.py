"""``scanner label``: label motif instances from ChIP-seq peaks and build the balanced training sets."""

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
    take_alias,
)
from scanner.errors import InputError


def _parse_peaks(values: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for v in values:
        tf, sep, path = v.partition("=")
        if not sep or not tf or not path:
            raise InputError(f"expected TF=path, got {v!r}", field="--peaks")
        if tf in out:
            raise InputError(f"TF {tf!r} is given twice", field="--peaks")
        out[tf] = Path(path)
    return out


def register(app: typer.Typer) -> None:
    """Add the ``label`` command to ``app``."""

    @app.command("label")
    @reports_input_errors
    def label(
        peaks: Annotated[
            list[str],
            typer.Option(
                help="TF=peaks.narrowPeak[.gz] or TF=peaks.bed[.gz]; one per TF, comma-separated or repeated."
            ),
        ],
        out: Annotated[
            Path, typer.Option(help="Run directory: reads OUT/instances, writes OUT/labelled and OUT/datasets.")
        ],
        instances: Annotated[
            Optional[Path], typer.Option(help="Instances of another run (a run directory or its instances).")
        ] = None,
        open_chromatin: Annotated[
            Optional[Path], typer.Option("--open", help="Open-chromatin peaks (BED3+/narrowPeak).")
        ] = None,
        blacklist: Annotated[Optional[Path], typer.Option(help="BED of regions whose instances are dropped.")] = None,
        summit_distance: Annotated[
            Optional[int], typer.Option(help="Bound = within this many bp of a summit (not: inside a peak).")
        ] = None,
        val_chroms: Annotated[
            Optional[list[str]], typer.Option(help="Validation chromosomes. Default: chr8 (see docs).")
        ] = None,
        test_chroms: Annotated[
            Optional[list[str]], typer.Option(help="Test chromosomes. Default: chr9 (see docs).")
        ] = None,
        window: Annotated[int, typer.Option(help="Window width in bp, centred on each instance.")] = 1000,
        regime: Annotated[
            Optional[list[str]],
            typer.Option(help="Regime(s): pvalue, gc, open, random. Default: all (open only with --open)."),
        ] = None,
        mask_core: Annotated[bool, typer.Option(help="Replace the motif site in each window by N.")] = False,
        all_rows: Annotated[
            bool, typer.Option(help="Also store every labelled training instance (for train --train-rows all).")
        ] = False,
        gc_tolerance: Annotated[float, typer.Option(help="GC bin width of the gc regime.")] = 0.02,
        seed: Annotated[int, typer.Option(help="Seed of the negative sampling.")] = 0,
        genome: Annotated[Optional[Path], typer.Option(help="FASTA. Default: the genome the scan recorded.")] = None,
        address: Annotated[Optional[str], typer.Option(help="Ray address. Default: start local Ray.")] = None,
        ray: Annotated[bool, typer.Option(help="Fetch windows on Ray (--no-ray: in this process).")] = True,
        old_regimes: Annotated[Optional[list[str]], typer.Option("--regimes", hidden=True)] = None,
    ) -> None:
        """Mark instances bound/unbound, in_open, split and GC; write balanced sets with 1 kb windows."""
        from scanner.labels.datasets import format_sizes
        from scanner.labels.run import LabelConfig
        from scanner.labels.run import label as run

        regime = take_alias(regime, old_regimes, "--regimes", "--regime")
        out = run_out(out, "labelled")
        instances = input_dataset(instances, out, "instances", "--instances")
        config = LabelConfig(
            window=window,
            summit_distance=summit_distance,
            val_chroms=tuple(split_list(val_chroms)) or None,
            test_chroms=tuple(split_list(test_chroms)) or None,
            regimes=tuple(split_list(regime)) or None,
            mask_core=mask_core,
            all_rows=all_rows,
            seed=seed,
            gc_tolerance=gc_tolerance,
        )
        with stage_progress("label", "windows") as bar:
            kwargs = dict(open_chromatin=open_chromatin, blacklist=blacklist, genome=genome, progress=bar)
            if ray:
                from scanner.runtime import ray_session

                with ray_session(address):
                    res = run(instances, _parse_peaks(peaks), out, config, use_ray=True, **kwargs)
            else:
                res = run(instances, _parse_peaks(peaks), out, config, use_ray=False, **kwargs)
        for r in res.counts.iter_rows(named=True):
            echo_err(
                f"{r['tf']}: {r['labelled']:,} instances labelled ({r['bound']:,} bound, {r['in_open']:,} in open "
                f"chromatin, {r['blacklisted']:,} dropped by the blacklist)"
            )
        typer.echo(format_sizes(res.sizes))
        echo_err(f"labelled: {res.labelled}\ndatasets: {res.datasets} (the sizes are also in its record)")
