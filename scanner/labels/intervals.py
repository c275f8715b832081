"""Intervals (peaks, open chromatin, blacklists): reading BED/narrowPeak files and overlapping sites.

Semantics (0-based half-open coordinates throughout)
----------------------------------------------------
* :func:`contained_in`: the site ``[start, end)`` lies inside one interval: ``interval.start <= start``
  and ``end <= interval.end`` (a site ending exactly at an interval's end is inside; one starting there
  is not).
* :func:`overlaps_any`: the site shares at least one base with an interval.
* :func:`summit_distance`: distance to the nearest summit (0 when the summit base is in
  ``[start, end)``, else to the nearest site base); intervals without a summit (BED, or narrowPeak
  column 10 = -1) use their midpoint ``(start + end) // 2``.

All overlaps are polars ``join_asof`` joins on sorted intervals (with a running maximum of interval
ends), never a Python loop over rows.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from scanner.errors import InputError
from scanner.genome import chrom_mismatch_message

_INTERVALS_SCHEMA = {"chrom": pl.String, "start": pl.Int64, "end": pl.Int64, "summit": pl.Int64}


# ---- reading peak / BED files ---------------------------------------------------------------------
def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError("file not found", source=path)
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    try:
        raw = gzip.open(path, "rb").read() if gz else path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read the gzip stream ({exc})", source=path) from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError("not a text file (invalid UTF-8)", source=path, line=line) from None
    return text.splitlines()


def read_intervals(
    path: str | Path,
    *,
    chrom_lengths: Mapping[str, int] | None = None,
    what: str = "peak",
    allow_empty: bool = False,
) -> pl.DataFrame:
    """Read a BED3+ or narrowPeak file (plain or gzip) into a table of intervals.

    Lines that are empty or start with ``#``, ``track`` or ``browser`` are skipped. Fields are split
    on tabs (on any whitespace for a line without tabs); fields after the third are ignored, except
    column 10 of a narrowPeak file (file name containing ``.narrowPeak``, any case, or every line
    having exactly 10 fields) which gives the summit offset from ``start`` (-1: none).

    Parameters
    ----------
    path : str or Path
        The file.
    chrom_lengths : mapping, optional
        Chromosome lengths of the genome; when given, every chromosome must be in it and every
        interval must end within it.
    what : str, optional
        Word used in messages (``"peak"``, ``"open-chromatin interval"``, ...). Default ``"peak"``.
    allow_empty : bool, optional
        Accept a file with no intervals. Default False.

    Returns
    -------
    polars.DataFrame
        Columns ``chrom`` (str), ``start``, ``end`` (int64, 0-based half-open), ``summit`` (int64,
        absolute 0-based position, null when unknown), in file order.

    Raises
    ------
    InputError
        Naming the file and 1-based line: fewer than 3 fields, a non-integer start/end/summit,
        ``start < 0``, ``end <= start``, a summit outside its peak, a chromosome not in the genome
        (with a ``chr``-prefix hint), an interval past the chromosome end, or an empty file.
    """
    path = Path(path)
    lines = _read_lines(path)
    data = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.startswith(("#", "track", "browser"))]
    if not data:
        if allow_empty:
            return pl.DataFrame(schema=_INTERVALS_SCHEMA)
        raise InputError(f"no {what}s in the file (it is empty or all comments)", source=path)
    lineno = pl.Series("line", [d[0] for d in data], dtype=pl.Int64)
    text = pl.Series("text", [d[1] for d in data], dtype=pl.String)
    text = pl.select(
        pl.when(text.str.contains("\t")).then(text).otherwise(text.str.strip_chars().str.replace_all(r"\s+", "\t"))
    ).to_series()
    fields = text.str.split("\t")
    nfields = fields.list.len()
    df = pl.DataFrame({"line": lineno, "fields": fields, "n": nfields})
    short = df.filter(pl.col("n") < 3)
    if short.height:
        ln, n = short.row(0)[0], short.row(0)[2]
        raise InputError(f"expected at least 3 tab-separated fields (chrom, start, end), got {n}", source=path, line=ln)
    narrow = ".narrowpeak" in path.name.lower() or bool((nfields == 10).all())
    cols = [
        pl.col("line"),
        pl.col("fields").list.get(0).alias("chrom"),
        pl.col("fields").list.get(1).alias("start_s"),
        pl.col("fields").list.get(2).alias("end_s"),
    ]
    if narrow:
        cols.append(pl.col("fields").list.get(9, null_on_oob=True).alias("summit_s"))
    df = df.select(cols).with_columns(
        pl.col("start_s").str.strip_chars().cast(pl.Int64, strict=False).alias("start"),
        pl.col("end_s").str.strip_chars().cast(pl.Int64, strict=False).alias("end"),
    )
    for col, name in (("start", "start"), ("end", "end")):
        bad = df.filter(pl.col(col).is_null())
        if bad.height:
            ln, got = bad["line"][0], bad[col + "_s"][0]
            hint = " (a header line must start with '#')" if ln == data[0][0] else ""
            raise InputError(
                f"{name} must be an integer, got {got!r}{hint}", source=path, line=ln, field=f"column {name}"
            )
    bad = df.filter(pl.col("start") < 0)
    if bad.height:
        raise InputError(f"start must be >= 0, got {bad['start'][0]}", source=path, line=bad["line"][0], field="start")
    bad = df.filter(pl.col("end") <= pl.col("start"))
    if bad.height:
        raise InputError(
            f"end ({bad['end'][0]}) must be greater than start ({bad['start'][0]}) (BED is 0-based half-open)",
            source=path,
            line=bad["line"][0],
            field="end",
        )
    if narrow:
        df = df.with_columns(pl.col("summit_s").str.strip_chars().cast(pl.Int64, strict=False).alias("off"))
        bad = df.filter(pl.col("off").is_null())
        if bad.height:
            raise InputError(
                f"narrowPeak column 10 (summit offset) must be an integer, got {bad['summit_s'][0]!r}",
                source=path,
                line=bad["line"][0],
                field="peak",
            )
        bad = df.filter((pl.col("off") < -1) | (pl.col("off") >= pl.col("end") - pl.col("start")))
        if bad.height:
            r = bad.row(0, named=True)
            raise InputError(
                f"summit offset {r['off']} is outside the peak (0..{r['end'] - r['start'] - 1}, or -1)",
                source=path,
                line=r["line"],
                field="peak",
            )
        df = df.with_columns(
            pl.when(pl.col("off") >= 0).then(pl.col("start") + pl.col("off")).otherwise(None).alias("summit")
        )
    else:
        df = df.with_columns(pl.lit(None, dtype=pl.Int64).alias("summit"))
    if chrom_lengths is not None:
        _check_chroms(df, chrom_lengths, path, what)
    return df.select(list(_INTERVALS_SCHEMA)).cast(_INTERVALS_SCHEMA)


def _check_chroms(df: pl.DataFrame, lengths: Mapping[str, int], path: Path, what: str) -> None:
    known = pl.DataFrame(
        {"chrom": list(lengths), "_len": list(lengths.values())},
        schema={"chrom": pl.String, "_len": pl.Int64},
    )
    j = df.join(known, on="chrom", how="left", maintain_order="left")
    missing = j.filter(pl.col("_len").is_null())
    if missing.height:
        names = missing["chrom"].unique(maintain_order=True)
        extra = f" ({len(names)} unknown names: {', '.join(names.head(5).to_list())})" if len(names) > 1 else ""
        raise InputError(chrom_mismatch_message(names[0], dict(lengths)) + extra, source=path, line=missing["line"][0])
    past = j.filter(pl.col("end") > pl.col("_len"))
    if past.height:
        r = past.row(0, named=True)
        raise InputError(
            f"{what} end {r['end']} is past the end of {r['chrom']} ({r['_len']} bp); "
            "is this file for another assembly?",
            source=path,
            line=r["line"],
            field="end",
        )


# ---- overlap kernels (sorted joins) ---------------------------------------------------------------
_SHIFT = 1 << 40  # key = chromosome index * 2**40 + position: one integer sort instead of (chrom, pos)


def _asof(left: pl.DataFrame, left_pos: pl.Expr, right: pl.DataFrame, right_pos: str, strategy: str) -> pl.DataFrame:
    """As-of join of ``left`` (with ``_row``) to ``right`` on the same chromosome; rows in ``_row`` order.

    Both sides get the key ``chrom_index * 2**40 + position``; a match from another chromosome is
    discarded (its payload columns become null).
    """
    names = set(left["chrom"].unique().to_list()) | set(right["chrom"].unique().to_list())
    chrom = pl.col("chrom").cast(pl.Enum(sorted(names))).to_physical().cast(pl.Int64)
    lk = left.with_columns(chrom.alias("_c")).with_columns((pl.col("_c") * _SHIFT + left_pos).alias("_key"))
    rk = right.with_columns(chrom.alias("_rc"), (chrom * _SHIFT + pl.col(right_pos)).alias("_key"))
    payload = [c for c in right.columns if c not in ("chrom", right_pos)]
    rk = rk.select("_key", "_rc", *payload).sort("_key")
    j = lk.sort("_key").join_asof(rk, on="_key", strategy=strategy, check_sortedness=False)
    same = pl.col("_rc") == pl.col("_c")
    return j.with_columns([pl.when(same).then(pl.col(c)).alias(c) for c in payload]).sort("_row")


def _with_row(sites: pl.DataFrame) -> pl.DataFrame:
    return sites.select("chrom", "start", "end").with_row_index("_row")


def _running_max_end(intervals: pl.DataFrame) -> pl.DataFrame:
    """Per chromosome and start: the largest end among intervals starting at or before it."""
    return (
        intervals.select("chrom", "start", "end")
        .sort("chrom", "start")
        .with_columns(pl.col("end").cum_max().over("chrom").alias("_maxend"))
        .group_by("chrom", "start")
        .agg(pl.col("_maxend").max())
    )


def contained_in(sites: pl.DataFrame, intervals: pl.DataFrame) -> pl.Series:
    """For each site, whether some interval contains it (``iv.start <= start`` and ``end <= iv.end``).

    Parameters
    ----------
    sites, intervals : polars.DataFrame
        Columns ``chrom``, ``start``, ``end`` (0-based half-open).

    Returns
    -------
    polars.Series of bool, aligned with ``sites``.
    """
    if sites.height == 0:
        return pl.Series("inside", [], dtype=pl.Boolean)
    if intervals.height == 0:
        return pl.Series("inside", [False] * sites.height)
    j = _asof(_with_row(sites), pl.col("start"), _running_max_end(intervals), "start", "backward")
    return (j["_maxend"] >= j["end"]).fill_null(False).alias("inside")


def overlaps_any(sites: pl.DataFrame, intervals: pl.DataFrame) -> pl.Series:
    """For each site, whether it shares at least one base with some interval.

    Returns
    -------
    polars.Series of bool, aligned with ``sites``.
    """
    if sites.height == 0:
        return pl.Series("overlaps", [], dtype=pl.Boolean)
    if intervals.height == 0:
        return pl.Series("overlaps", [False] * sites.height)
    j = _asof(_with_row(sites), pl.col("end") - 1, _running_max_end(intervals), "start", "backward")
    return (j["_maxend"] > j["start"]).fill_null(False).alias("overlaps")


def summit_distance(sites: pl.DataFrame, peaks: pl.DataFrame) -> pl.Series:
    """Distance in bp from each site to the nearest summit on its chromosome (null when none).

    0 when a summit lies in ``[start, end)``; otherwise the distance between the summit and the nearest
    base of the site. Peaks with a null ``summit`` use ``(start + end) // 2``.
    """
    if sites.height == 0:
        return pl.Series("distance", [], dtype=pl.Int64)
    summits = peaks.select("chrom", pl.coalesce("summit", (pl.col("start") + pl.col("end")) // 2).alias("pos")).unique()
    if summits.height == 0:
        return pl.Series("distance", [None] * sites.height, dtype=pl.Int64)
    base = _with_row(sites)
    back = _asof(base, pl.col("end") - 1, summits.with_columns(pl.col("pos").alias("b")), "pos", "backward")
    fwd = _asof(base, pl.col("start"), summits.with_columns(pl.col("pos").alias("f")), "pos", "forward")
    d_back = pl.when(back["b"] >= back["start"]).then(0).otherwise(back["start"] - back["b"])
    d_fwd = pl.when(fwd["f"] <= fwd["end"] - 1).then(0).otherwise(fwd["f"] - (fwd["end"] - 1))
    return pl.select(pl.min_horizontal(d_back, d_fwd).alias("distance")).to_series()
