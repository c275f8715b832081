"""``scanner export``: instances, predictions or variant effects as BED6, narrowPeak or FIMO TSV."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from scanner.commands._common import echo_err, reports_input_errors
from scanner.errors import InputError


def register(app: typer.Typer) -> None:
    app.command("export")(export)


@reports_input_errors
def export(
    dataset: Annotated[
        Path,
        typer.Argument(help="A dataset directory: RUN/instances, RUN/predictions or RUN/variants/scores."),
    ],
    bed: Annotated[
        bool, typer.Option("--bed", help="BED6, sorted, integer score 0-1000 (mapping: docs/export.md).")
    ] = False,
    narrowpeak: Annotated[
        bool, typer.Option("--narrowpeak", help="narrowPeak (BED6+4): the BED6 columns, then the values.")
    ] = False,
    fimo: Annotated[
        bool,
        typer.Option("--fimo", help="Instances as FIMO's fimo.tsv (1-based inclusive), with q-values."),
    ] = False,
    fimo_text: Annotated[
        bool,
        typer.Option("--fimo-text", help="Instances as `fimo --text` writes them (q-values left empty)."),
    ] = False,
    genome: Annotated[
        Path | None, typer.Option(help="FASTA for --fimo's q-values. Default: the scan's genome.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")] = None,
) -> None:
    """Write a dataset as BED6 or narrowPeak (coordinate-sorted), or instances as FIMO's TSV."""
    from scanner.results.export import export as run

    flags = {"bed": bed, "narrowpeak": narrowpeak, "fimo": fimo, "fimo-text": fimo_text}
    chosen = [name for name, on in flags.items() if on]
    if len(chosen) != 1:
        raise InputError("give exactly one of --bed, --narrowpeak, --fimo, --fimo-text", field="format")
    if output is None:
        res = run(dataset, chosen[0], sys.stdout, genome=genome)
    else:
        import io

        from scanner.io import write_text_atomic

        buf = io.StringIO()
        res = run(dataset, chosen[0], buf, genome=genome)
        write_text_atomic(buf.getvalue(), output)
        echo_err(f"{res.rows:,} {res.kind} row(s) -> {output}")
    if res.note:
        echo_err(f"0 rows: {res.note}")
