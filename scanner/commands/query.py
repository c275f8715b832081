"""``scanner query RUN``: common questions about a run's Parquet datasets, or any polars SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import echo_err, reports_input_errors, split_list
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
        output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the result to this file.")] = None,
        limit: Annotated[int, typer.Option(help="Rows shown in a table.")] = 50,
    ) -> None:
        """Answer one question about a run (polars over RUN/<dataset>/**/*.parquet)."""
        import polars as pl

        from scanner.results import query as q

        asked = [x is not None for x in (top_bound, near, variant, sql)] + [counts, tables]
        if sum(asked) != 1:
            raise InputError("ask exactly one of --top-bound, --counts, --near, --variant, --sql, --tables")
        run = q.check_run(run)
        tfs = split_list(tf) or None
        if tables:
            for name in q.available(run):
                typer.echo(name)
            return
        try:
            if top_bound is not None:
                regimes = split_list(regime) or None
                df = q.top_bound(run, top_bound, tfs=tfs, regimes=regimes, own_model=not all_models)
            elif counts:
                df = q.chrom_counts(run, table=table, min_prob=min_prob, tfs=tfs)
            elif near is not None:
                df = q.near(run, near, window=window, table=table)
            elif variant is not None:
                df = q.variant_scores(run, variant, tfs=tfs)
            else:
                df = q.sql(run, sql or "")
            text = q.write_result(df, fmt=format, output=output, limit=limit)
        except pl.exceptions.PolarsError as exc:  # a question the table cannot answer: say so, no traceback
            raise InputError(f"cannot answer this from the run's tables: {exc}") from None
        if text is not None:
            typer.echo(text, nl=not text.endswith("\n"))
        else:
            typer.echo(f"{df.height} row(s) -> {output}", err=True)
        if df.height == 0:
            echo_err(f"0 rows: {q.why_empty(run, table=_asked_table(top_bound, counts, near, table), tfs=tfs)}")


def _asked_table(top_bound: int | None, counts: bool, near: str | None, table: str) -> str | None:
    """The table a question reads (None: --sql and --variant, which name theirs)."""
    if top_bound is not None:
        return "predictions"
    return table if counts or near is not None else None
