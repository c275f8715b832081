"""``scanner run CONFIG.toml``: every stage in order, skipping the complete ones (see scanner.run.pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import echo_err, reports_input_errors, split_list


def register(app: typer.Typer) -> None:
    """Add the ``run`` command to ``app``."""

    @app.command("run")
    @reports_input_errors
    def run(
        config: Annotated[Path, typer.Argument(help="Run config (TOML; see examples/simulated.toml).")],
        out: Annotated[Optional[Path], typer.Option(help="Run directory. Default: `out` of the config.")] = None,
        address: Annotated[
            Optional[str],
            typer.Option(help="Ray address (auto, host:6379, ray://host:10001). Default: the config's."),
        ] = None,
        ray: Annotated[
            Optional[bool], typer.Option("--ray/--no-ray", help="Use Ray. Default: the config's use_ray.")
        ] = None,
        until: Annotated[Optional[str], typer.Option(help="Stop after this stage.")] = None,
        force: Annotated[
            Optional[list[str]], typer.Option(help="Re-run these stages even if complete ('all': every one).")
        ] = None,
        print_config: Annotated[
            bool, typer.Option("--print-config", help="Print the resolved config as TOML and exit.")
        ] = False,
    ) -> None:
        """Run simulate/scan/label/train/evaluate/predict/... in order; a stage is skipped when its
        output is complete and its inputs are unchanged (OUT/manifest.json records both)."""
        from scanner.run.config import dumps, load_config, with_overrides
        from scanner.run.manifest import format_status
        from scanner.run.pipeline import run_pipeline

        cfg = with_overrides(load_config(config), out=out.resolve() if out else None, address=address, use_ray=ray)
        if print_config:
            typer.echo(dumps(cfg), nl=False)
            return
        result = run_pipeline(cfg, until=until, force=tuple(split_list(force)), log=echo_err)
        typer.echo(format_status(result.manifest))
        typer.echo(
            f"run directory: {result.out} ({len(result.ran)} stage(s) run, {len(result.skipped)} skipped, "
            f"{result.seconds:.1f} s)"
        )
        typer.echo(f"query: scanner query {result.out} --top-bound 10   report: scanner report {result.out}")
