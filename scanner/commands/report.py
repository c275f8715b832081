"""``scanner report RUN``: one self-contained HTML page of a run's results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import echo_err, reports_input_errors, take_alias


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""

    @app.command("report")
    @reports_input_errors
    def report(
        run: Annotated[Path, typer.Argument(help="Run directory.")],
        output: Annotated[
            Optional[Path], typer.Option("--output", "-o", help="Directory of the page. Default: RUN/report.")
        ] = None,
        top_sites: Annotated[int, typer.Option(help="Explained sites drawn with their logos.")] = 6,
        old_out: Annotated[Optional[Path], typer.Option("--out", hidden=True)] = None,
    ) -> None:
        """Write RUN/report/index.html: warnings, stages, training sets, metrics beside the baselines, ROC/PR
        curves, interpretation benchmark, features, top sites."""
        from scanner.results.report import build_report

        output = take_alias(output, old_out, "--out", "--output")
        res = build_report(run, out=output, top_sites=top_sites)
        for line in res.warnings:
            echo_err(f"warning: {line}")
        typer.echo(f"{res.path} ({', '.join(res.sections)}; {len(res.images)} image(s))")
