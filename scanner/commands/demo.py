"""``scanner demo``: the whole chain on the simulated default, in minutes on a laptop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import echo_err, reports_input_errors, split_list
from scanner.demo import DemoConfig


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""

    @app.command("demo")
    @reports_input_errors
    def demo(
        out: Annotated[Path, typer.Option(help="Run directory.")] = Path("scanner-demo"),
        size_mb: Annotated[float, typer.Option(help="Simulated genome size in Mb.")] = DemoConfig.size_mb,
        sites_per_mb: Annotated[float, typer.Option(help="Core loci planted per TF per Mb.")] = DemoConfig.sites_per_mb,
        tf: Annotated[Optional[list[str]], typer.Option(help="Simulated TFs. Default: ALPHA,BETA.")] = None,
        regime: Annotated[Optional[list[str]], typer.Option(help="Regimes. Default: pvalue,open,random.")] = None,
        epochs: Annotated[int, typer.Option(help="Maximum training epochs.")] = DemoConfig.epochs,
        ensemble: Annotated[
            int, typer.Option(help="Networks per model (0: by training-set size, as scanner train).")
        ] = DemoConfig.ensemble,
        seed: Annotated[int, typer.Option(help="Seed of the simulation and training.")] = 0,
        features: Annotated[
            bool, typer.Option(help="Discover what each regime's models learned (scanner features).")
        ] = DemoConfig.features,
        address: Annotated[Optional[str], typer.Option(help="Ray address. Default: start local Ray.")] = None,
        ray: Annotated[bool, typer.Option(help="Use Ray (--no-ray: every stage in this process).")] = True,
    ) -> None:
        """Simulate a genome, scan it, label, train per TF and regime, evaluate, predict genome-wide."""
        from scanner.demo import format_demo, run_demo

        config = DemoConfig(
            out=out,
            size_mb=size_mb,
            sites_per_mb=sites_per_mb,
            ensemble=ensemble,
            tfs=tuple(split_list(tf)) or DemoConfig.tfs,
            regimes=tuple(split_list(regime)) or DemoConfig.regimes,
            epochs=epochs,
            seed=seed,
            features=features,
            use_ray=ray,
            address=address,
        )
        result = run_demo(config, log=echo_err)
        typer.echo(format_demo(result))
