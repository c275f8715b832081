"""``scanner query RUN``: common questions about a run's Parquet datasets, or any polars SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import reports_input_errors, split_list
from scanner.errors import InputError


def register(app: typer.Typer) -> None:
    """Add the ``query`` command to ``app``."""

    @app.command("query")
    @reports_input_errors
    def query(
        run: Annotated[Path, typer.Argument(help="Run directory (OUT of scanner run).")],
        top_bound: Annotated[
            Optional[int], typer.Option(help="The N instances of highest prob_bound per TF and regime.")
        ] = None,
        counts: Annotated[
            bool, typer.Option("--counts", help="Rows per TF and chromosome (see --table, --min-prob).")
        ] = False,
        near: Annotated[
            Optional[str],
            typer.Option(help="Rows overlapping CHROM:POS or CHROM:START-END (0-based, half-open) +- --window."),
        ] = None,
        variant: Annotated[
            Optional[str], typer.Option(help="A variant's effect under every regime (variant_id or VCF ID).")
        ] = None,
        sql: Annotated[
            Optional[str],
            typer.Option(
                help='Polars SQL over the run\'s tables, e.g. "SELECT tf, count(*) FROM instances GROUP BY tf".'
            ),
        ] = None,
        tables: Annotated[bool, typer.Option("--tables", help="List the tables this run has.")] = False,
        table: Annotated[
            str, typer.Option(help="Table for --counts / --near: instances, labelled, predictions, ...")
        ] = "instances",
        window: Annotated[int, typer.Option(help="Bases added on both sides of the --near locus.")] = 0,
        min_prob: Annotated[
            Optional[float], typer.Option(help="--counts on predictions: prob_bound threshold (default 0.5).")
        ] = None,
        tf: Annotated[Optional[list[str]], typer.Option(help="Restrict to these TFs.")] = None,
        regime: Annotated[Optional[list[str]], typer.Option(help="Restrict to these regimes (--top-bound).")] = None,
        all_models: Annotated[bool, typer.Option(help="--top-bound: also rows scored by another TF's model.")] = False,
        format: Annotated[str, typer.Option("--format", help="table, csv or parquet.")] = "table",
        output: Annotated[Optional[Path], typer.Option(help="Write the result to this file.")] = None,
        limit: Annotated[int, typer.Option(help="Rows shown in a table.")] = 50,
    ) -> None:
        """Answer one question about a run (polars over RUN/<dataset>/**/*.parquet)."""
        from scanner import query as q

        asked = [x is not None for x in (top_bound, near, variant, sql)] + [counts, tables]
        if sum(asked) != 1:
            raise InputError(
                "ask exactly one of --top-bound, --counts, --near, --variant, --sql, --tables", field="query"
            )
        tfs = split_list(tf) or None
        if tables:
            for name in q.available(run):
                typer.echo(name)
            return
        if top_bound is not None:
            df = q.top_bound(run, top_bound, tfs=tfs, regimes=split_list(regime) or None, own_model=not all_models)
        elif counts:
            df = q.chrom_counts(run, table=table, min_prob=min_prob, tfs=tfs)
        elif near is not None:
            df = q.near(run, near, window=window, table=table)
        elif variant is not None:
            df = q.variant_scores(run, variant, tfs=tfs)
        else:
            df = q.sql(run, sql or "")
        text = q.write_result(df, fmt=format, output=output, limit=limit)
        if text is not None:
            typer.echo(text, nl=not text.endswith("\n"))
        else:
            typer.echo(f"{df.height} row(s) -> {output}", err=True)
