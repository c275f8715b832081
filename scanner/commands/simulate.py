"""``scanner simulate``: a genome with planted, rule-bound TF sites, peaks, open chromatin and truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import echo_err, reports_input_errors, run_out, split_list, take_alias


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""

    @app.command("simulate")
    @reports_input_errors
    def simulate(
        out: Annotated[
            Path, typer.Option(help="Run directory: writes OUT/sim (genome.fa, motifs.meme, peaks/, open.bed, ...).")
        ],
        size_mb: Annotated[float, typer.Option(help="Genome size in Mb.")] = 10.0,
        n_chroms: Annotated[Optional[int], typer.Option(help="Number of chromosomes chr1..chrK (10).")] = None,
        tf: Annotated[
            Optional[list[str]],
            typer.Option(help="Simulated TF(s): ALPHA (open AND partner), BETA (open), GAMMA (partner)."),
        ] = None,
        sites_per_mb: Annotated[float, typer.Option(help="Core loci planted per TF per Mb.")] = 250.0,
        flip_rate: Annotated[float, typer.Option(help="Label noise: probability a core's label flips.")] = 0.02,
        seed: Annotated[int, typer.Option(help="Seed of everything.")] = 0,
        old_chroms: Annotated[Optional[int], typer.Option("--chroms", hidden=True)] = None,
        old_tfs: Annotated[Optional[list[str]], typer.Option("--tfs", hidden=True)] = None,
    ) -> None:
        """Simulate a genome whose TF binding follows documented sequence rules (see docs/labels.md)."""
        from scanner.simulate.genome import SimulationConfig
        from scanner.simulate.genome import simulate as run
        from scanner.store import RunDir

        n_chroms = take_alias(n_chroms, old_chroms, "--chroms (a count)", "--n-chroms")
        tf = take_alias(tf, old_tfs, "--tfs", "--tf")
        config = SimulationConfig(
            size_mb=size_mb,
            n_chroms=10 if n_chroms is None else n_chroms,
            tfs=tuple(split_list(tf)) or SimulationConfig.tfs,
            sites_per_mb=sites_per_mb,
            flip_rate=flip_rate,
            seed=seed,
        )
        res = run(RunDir(run_out(out, "sim")).dataset("sim").root, config)
        c = res.counts
        echo_err(f"simulated {c['bases']:,} bp on {c['chromosomes']} chromosomes, {c['loci']} loci")
        for tf in config.tfs:
            echo_err(f"  {tf}: {c[tf + '.cores']} cores, {c[tf + '.bound']} bound (peaks)")
        typer.echo(f"genome:   {res.genome}")
        typer.echo(f"motifs:   {res.motifs} (context: {res.context_motifs})")
        for tf, p in res.peaks.items():
            typer.echo(f"peaks:    {tf}={p}")
        typer.echo(f"open:     {res.open_bed}")
        typer.echo(f"blacklist: {res.blacklist}")
        typer.echo(f"truth:    {res.truth}")
