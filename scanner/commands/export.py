"""``scanner export``: instances as FIMO TSV or BED6."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from scanner.commands._common import reports_input_errors


def register(app: typer.Typer) -> None:
    app.command("export")(export)


@reports_input_errors
def export(
    instances: Annotated[Path, typer.Argument(help="OUT/instances directory written by `scanner scan`.")],
    fimo: Annotated[bool, typer.Option("--fimo", help="FIMO TSV columns (1-based inclusive start/stop).")] = False,
    bed: Annotated[bool, typer.Option("--bed", help="BED6 (0-based half-open).")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")] = None,
) -> None:
    """Write the instances as FIMO's TSV or as BED6."""
    from scanner.io import write_text_atomic
    from scanner.scan.export import write_bed, write_fimo_tsv

    if fimo == bed:
        raise typer.BadParameter("give exactly one of --fimo or --bed")
    writer = write_fimo_tsv if fimo else write_bed
    if output is None:
        writer(instances, sys.stdout)
        return
    import io

    buf = io.StringIO()
    n = writer(instances, buf)
    write_text_atomic(buf.getvalue(), output)
    typer.echo(f"{n} rows -> {output}", err=True)
