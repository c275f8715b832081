"""Questions about a run, answered with polars over its Parquet datasets (``scanner query``).

Every dataset of a run is read lazily with
``polars.scan_parquet("RUN/<name>/**/*.parquet", hive_partitioning=True)`` (:func:`dataset`); the
functions below are the common questions, each a few polars expressions, and :func:`sql` runs any
polars SQL over the same tables. Coordinates are 0-based half-open, as in every dataset.

Tables (those present in the run): ``instances``, ``labelled``, ``datasets``, ``predictions``,
``attributions``, ``variants`` (``RUN/variants/scores``), ``metrics`` (``RUN/metrics.parquet``),
``features`` (``RUN/features/patterns``: one row per discovered pattern), ``feature_seqlets`` and
``feature_comparison`` (``RUN/features/comparison.parquet``: patterns x regimes).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from scanner.errors import InputError
from scanner.store import RunDir

#: Table name -> (dataset, part): a dataset of the run, or one named part of it (layout: scanner.store);
#: ``metrics`` is the run's metrics file.
TABLES: dict[str, tuple[str, str | None]] = {
    "instances": ("instances", None),
    "labelled": ("labelled", None),
    "datasets": ("datasets", None),
    "predictions": ("predictions", None),
    "attributions": ("attributions", None),
    "variants": ("variants", "scores"),
    "metrics": ("metrics", None),
    "features": ("features", "patterns"),
    "feature_seqlets": ("features", "seqlets"),
    "feature_comparison": ("features", "comparison"),
}


def table_path(run: str | Path, name: str) -> Path:
    """Where table ``name`` of run directory ``run`` lives (a directory of Parquet, or one file)."""
    dataset, part = TABLES[name]
    r = RunDir(run)
    if dataset == "metrics":
        return r.metrics_path
    ds = r.dataset(dataset)
    return ds.part(part) if part else ds.root


_LOCUS = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>[\d,_]+)(?:-(?P<end>[\d,_]+))?$")


def _has_parquet(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".parquet"
    return path.is_dir() and any(
        p for p in path.rglob("*.parquet") if not any(s.startswith((".", "_")) for s in p.relative_to(path).parts)
    )


def _finished_empty_scan(path: Path) -> bool:
    """A finished scan that found nothing: ``_scan.json`` says complete, and no instance file exists."""
    import json

    meta = RunDir.of("instances", path).record_path
    if not meta.is_file() or _has_parquet(path):
        return False
    try:
        return bool(json.loads(meta.read_text()).get("complete"))
    except (OSError, ValueError, AttributeError):
        return False


def _published_empty(run: Path, name: str) -> bool:
    """A whole dataset published with no row (e.g. the predictions of a scan that found nothing)."""
    dataset, part = TABLES[name]
    if dataset == "metrics" or part is not None:
        return False
    ds = RunDir(run).dataset(dataset)
    return ds.published() is not None and not _has_parquet(ds.root)


def _empty_frame(name: str) -> pl.LazyFrame:
    """An empty table with the dataset's schema."""
    import scanner.schemas as schemas
    from scanner.store import DATASETS

    schema = getattr(schemas, DATASETS[TABLES[name][0]].schema)
    return pl.LazyFrame(schema=pl.from_arrow(schema.empty_table()).schema)


def _has_table(run: Path, name: str) -> bool:
    path = table_path(run, name)
    return _has_parquet(path) or (name == "instances" and _finished_empty_scan(path)) or _published_empty(run, name)


def available(run: str | Path) -> list[str]:
    """The tables this run has (in :data:`TABLES` order); a finished scan without hits counts (as empty)."""
    run = Path(run)
    return [name for name in TABLES if _has_table(run, name)]


def check_run(run: str | Path) -> Path:
    """``run`` as a Path, checked to be a run directory (one with at least one table).

    Raises
    ------
    InputError
        If it does not exist, or holds no table (the message says what it looks like instead: a
        dataset directory inside a run, or something else).
    """
    run = Path(run)
    if not run.is_dir():
        raise InputError("run directory not found", source=run)
    if available(run):
        return run
    inside = {dataset for dataset, _ in TABLES.values()}
    parts = {table_path(run.parent.parent, name).relative_to(run.parent.parent) for name in TABLES}
    if run.name in inside or run.relative_to(run.parent.parent) in parts:
        top = run.parent if run.name in inside else run.parent.parent
        raise InputError(f"this is a dataset inside a run; give the run directory: scanner query {top} ...", source=run)
    raise InputError(
        "no run datasets here (expected instances/, predictions/, metrics.parquet, ... as `scanner run` writes)",
        source=run,
    )


def dataset(run: str | Path, name: str) -> pl.LazyFrame:
    """One table of the run as a polars LazyFrame.

    Raises
    ------
    InputError
        If ``name`` is not a known table or the run does not have it (the message lists those it has).
    """
    run = Path(run)
    if not run.is_dir():
        raise InputError("run directory not found", source=run)
    if name not in TABLES:
        raise InputError(f"unknown table {name!r}; tables: {', '.join(TABLES)}", field="--table")
    path = table_path(run, name)
    if not _has_table(run, name):
        have = available(run)
        raise InputError(
            f"this run has no {name} (yet); it has: {', '.join(have) or 'nothing'}", source=path, field="--table"
        )
    if (name == "instances" and _finished_empty_scan(path)) or _published_empty(run, name):
        return _empty_frame(name)
    if path.is_file():
        return pl.scan_parquet(path)
    return pl.scan_parquet(path / "**" / "*.parquet", hive_partitioning=True)


def top_bound(
    run: str | Path,
    n: int = 10,
    *,
    tfs: list[str] | None = None,
    regimes: list[str] | None = None,
    own_model: bool = True,
) -> pl.DataFrame:
    """The ``n`` instances with the highest ``prob_bound`` per (TF, regime).

    Parameters
    ----------
    n : int
        Rows per (TF, regime). Default 10.
    tfs, regimes : list of str, optional
        Restrict to these instance TFs / model regimes.
    own_model : bool
        Only rows scored by the TF's own model (``model_tf == tf``). Default True.

    Returns
    -------
    polars.DataFrame
        Prediction rows, sorted by TF, regime, then ``prob_bound`` descending (ties: chrom, start).
    """
    if n < 1:
        raise InputError(f"must be >= 1, got {n}", field="--top-bound")
    lf = dataset(run, "predictions")
    if own_model:
        lf = lf.filter(pl.col("model_tf") == pl.col("tf"))
    if tfs:
        lf = lf.filter(pl.col("tf").is_in(tfs))
    if regimes:
        lf = lf.filter(pl.col("regime").is_in(regimes))
    return (
        lf.sort(
            ["tf", "regime", "prob_bound", "chrom", "start", "strand"],
            descending=[False, False, True, False, False, False],
        )
        .group_by(["tf", "regime"], maintain_order=True)
        .head(n)
        .collect()
    )


def chrom_counts(
    run: str | Path, *, table: str = "instances", min_prob: float | None = None, tfs: list[str] | None = None
) -> pl.DataFrame:
    """Rows per TF and chromosome (per TF, regime and chromosome for predictions).

    Parameters
    ----------
    table : str
        ``instances`` (default), ``labelled`` (adds a ``bound`` count) or ``predictions`` (adds the
        count with ``prob_bound >= min_prob``, own-TF models only).
    min_prob : float, optional
        Threshold of the predicted-bound count. Default 0.5.

    Returns
    -------
    polars.DataFrame
        Sorted by TF (, regime) and chromosome name.
    """
    lf = dataset(run, table)
    missing = [c for c in ("tf", "chrom") if c not in lf.collect_schema().names()]
    if missing:
        raise InputError(
            f"--counts counts rows per TF and chromosome, and the {table} table has no {' or '.join(missing)} "
            f"column; ask it with --sql, e.g. --sql 'SELECT * FROM {table}'",
            field="--table",
        )
    if tfs:
        lf = lf.filter(pl.col("tf").is_in(tfs))
    keys = ["tf", "chrom"]
    aggs = [pl.len().cast(pl.Int64).alias("n")]
    if table == "labelled":
        aggs.append(pl.col("bound").sum().cast(pl.Int64).alias("n_bound"))
    elif table == "predictions":
        p = 0.5 if min_prob is None else min_prob
        lf = lf.filter(pl.col("model_tf") == pl.col("tf"))
        keys = ["tf", "regime", "chrom"]
        aggs.append((pl.col("prob_bound") >= p).sum().cast(pl.Int64).alias("n_predicted_bound"))
    elif min_prob is not None:
        raise InputError("--min-prob applies to the predictions table", field="--min-prob")
    return lf.group_by(keys).agg(aggs).sort(keys).collect()


def why_empty(run: str | Path, *, table: str | None = None, tfs: list[str] | None = None) -> str:
    """Why a question over ``table`` of ``run`` returned no row, in words (for ``scanner query``)."""
    run = Path(run)
    if table is None:
        return "no row matches the question"
    if (table == "instances" or _published_empty(Path(run), table)) and _finished_empty_scan(
        table_path(run, "instances")
    ):
        from scanner.scan.export import empty_reason

        return empty_reason(table_path(run, "instances")) or "the scan found 0 instances"
    lf = dataset(run, table)
    n = lf.select(pl.len()).collect().item()
    if n == 0:
        return f"the {table} table has no rows"
    if tfs:
        have = lf.select(pl.col("tf").unique().sort()).collect().to_series().to_list()
        if not set(tfs) & set(have):
            return f"the {table} table has no rows of TF(s) {', '.join(tfs)} (it has: {', '.join(have)})"
    return f"no row of the {table} table ({n:,} rows) matches the question"


def parse_locus(text: str) -> tuple[str, int, int]:
    """``chr1:1000`` -> ``("chr1", 1000, 1001)``; ``chr1:1000-2000`` -> ``("chr1", 1000, 2000)``.

    0-based half-open, like every dataset; commas and underscores in numbers are ignored.

    Raises
    ------
    InputError
        For another form, or an end not after the start.
    """
    m = _LOCUS.match(text.strip())
    if not m:
        raise InputError(f"expected CHROM:POS or CHROM:START-END (0-based), got {text!r}", field="--near")
    start = int(re.sub(r"[,_]", "", m["start"]))
    end = int(re.sub(r"[,_]", "", m["end"])) if m["end"] else start + 1
    if end <= start:
        raise InputError(f"end must be after start in {text!r}", field="--near")
    return m["chrom"], start, end


def near(run: str | Path, locus: str, *, window: int = 0, table: str = "instances") -> pl.DataFrame:
    """Rows whose site overlaps ``[start - window, end + window)`` on the locus's chromosome.

    Adds ``distance``: the bases strictly between the site and the locus (0 when they overlap), so a
    window ``w`` keeps the sites with ``distance < w``. Sorted by start.
    """
    if window < 0:
        raise InputError(f"must be >= 0, got {window}", field="--window")
    chrom, start, end = parse_locus(locus)
    lo, hi = start - window, end + window
    lf = dataset(run, table)
    names = lf.collect_schema().names()
    s, e = ("start", "end") if "start" in names else ("inst_start", "inst_end")
    if "chrom" not in names or s not in names:
        raise InputError(
            f"--near needs genome coordinates and the {table} table has none; ask it with --sql", field="--table"
        )
    return (
        lf.filter((pl.col("chrom") == chrom) & (pl.col(s) < hi) & (pl.col(e) > lo))
        .with_columns(
            pl.max_horizontal(pl.lit(0, pl.Int64), pl.lit(start) - pl.col(e), pl.col(s) - pl.lit(end)).alias("distance")
        )
        .sort([s, e, *(c for c in ("strand", "motif_id", "tf", "regime", "model_tf") if c in names)])
        .collect()
    )


def variant_scores(run: str | Path, variant: str, *, tfs: list[str] | None = None) -> pl.DataFrame:
    """A variant's effect under every regime, one row per (TF, instance), one column pair per regime.

    ``variant`` is matched against ``variant_id`` (``CHROM:POS:REF:ALT``, POS 1-based as in the VCF)
    or the VCF ``ID`` column. Columns: the allele and instance, then for each regime ``r``
    ``delta_<r>`` (``logit_alt - logit_ref``) and ``prob_alt_<r>``.

    Raises
    ------
    InputError
        If the run has no variants, or none matches.
    """
    lf = dataset(run, "variants").filter(
        ((pl.col("variant_id") == variant) | (pl.col("vcf_id") == variant)) & pl.col("regime").is_not_null()
    )
    if tfs:
        lf = lf.filter(pl.col("tf").is_in(tfs))
    rows = lf.collect()
    if rows.is_empty():
        raise InputError(f"no scored variant {variant!r} (match on variant_id or the VCF ID)", field="--variant")
    key = ["variant_id", "vcf_id", "tf", "inst_start", "inst_end", "inst_strand", "motif_id"]
    return (
        rows.pivot(on="regime", index=key, values=["delta_logit", "prob_alt"], aggregate_function="first")
        .rename(lambda c: c.replace("delta_logit_", "delta_"))
        .sort(["tf", "inst_start", "inst_strand", "motif_id"])
    )


def sql(run: str | Path, query: str) -> pl.DataFrame:
    """Run a polars SQL query over the run's tables (``instances``, ``predictions``, ..., ``metrics``).

    Raises
    ------
    InputError
        If the query fails (unknown table or column, syntax); the message is polars's.
    """
    run = Path(run)
    if not run.is_dir():
        raise InputError("run directory not found", source=run)
    ctx = pl.SQLContext({name: dataset(run, name) for name in available(run)})
    try:
        return ctx.execute(query, eager=True)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise InputError(f"query failed: {exc}", field="--sql") from None


def write_result(
    df: pl.DataFrame, *, fmt: str = "table", output: str | Path | None = None, limit: int = 50
) -> str | None:
    """Render ``df`` as a text table or CSV (returned when ``output`` is None), or write CSV/Parquet.

    Parameters
    ----------
    fmt : {"table", "csv", "parquet"}
        Default ``"table"``. ``parquet`` needs ``output``.
    output : path, optional
        File to write (the format is taken from ``fmt``).
    limit : int
        Rows shown in a table (all rows go to CSV/Parquet). Default 50.

    Returns
    -------
    str or None
        The text for stdout, or None when a file was written.
    """
    if fmt not in ("table", "csv", "parquet"):
        raise InputError(f"format must be table, csv or parquet, got {fmt!r}", field="--format")
    if fmt == "parquet":
        if output is None:
            raise InputError("parquet output needs --output FILE", field="--output")
        df.write_parquet(output)
        return None
    if fmt == "csv":
        if output is not None:
            df.write_csv(output)
            return None
        return df.write_csv()
    with pl.Config(tbl_rows=limit, tbl_cols=-1, fmt_str_lengths=40, tbl_width_chars=200):
        text = str(df)
    if output is not None:
        Path(output).write_text(text + "\n")
        return None
    return text
