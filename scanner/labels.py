"""Labelling motif instances: peak/BED reading, interval overlap, chromosome splits, window GC.

Semantics (0-based half-open coordinates throughout)
----------------------------------------------------
* ``bound``: the site ``[start, end)`` lies inside one peak of its TF: ``peak.start <= start`` and
  ``end <= peak.end`` (a site ending exactly at a peak's end is inside; one starting there is not).
  With ``summit_distance=D`` the rule is instead: some summit of the TF's peaks is within ``D`` bp of
  the site (distance 0 when the summit base is in ``[start, end)``, else to the nearest site base);
  peaks without a summit (BED, or narrowPeak column 10 = -1) use their midpoint ``(start + end) // 2``.
* ``in_open``: the site lies inside one open-chromatin interval (same containment rule).
* blacklist: instances *overlapping* a blacklist interval by at least one base are dropped.
* ``split``: by chromosome, see :func:`resolve_splits`.
* ``gc``: GC fraction of the A/C/G/T bases of the ``W``-bp window
  ``[(start + end) // 2 - W // 2, ... + W)``; ``window_padded`` when the window runs off the chromosome.

All overlaps are polars ``join_asof`` joins on sorted intervals (with a running maximum of interval ends),
never a Python loop over rows. :func:`label` runs the whole ``scanner label`` stage.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote

import polars as pl

from scanner.errors import InputError
from scanner.genome import chrom_mismatch_message, open_genome
from scanner.io import parquet_files, partition_dir, read_dataset, write_parquet_atomic, write_text_atomic
from scanner.schemas import INSTANCES, LABELLED

#: Default validation / test chromosomes (as in the reference).
DEFAULT_VAL = "chr8"
DEFAULT_TEST = "chr9"
REGIMES = ("pvalue", "gc", "open", "random")

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


# ---- splits ---------------------------------------------------------------------------------------
_ROMAN = {"8": "VIII", "9": "IX"}
_MITO = {"chrm", "m", "mt", "chrmt", "mito", "mitochondrion"}


def _norm(name: str) -> str:
    n = name.lower()
    return n[3:] if n.startswith("chr") else n


def _by_number(chroms: Sequence[str], number: str) -> str | None:
    want = {number, _ROMAN[number].lower()}
    hits = [c for c in chroms if _norm(c) in want]
    return hits[0] if hits else None


def resolve_splits(
    chroms: Sequence[str], val: Sequence[str] | None = None, test: Sequence[str] | None = None
) -> dict[str, str]:
    """Assign every chromosome to ``"train"``, ``"val"`` or ``"test"``.

    Rule when ``val`` / ``test`` are not given (deterministic, documented in ``docs/labels.md``):
    validation is the chromosome named ``chr8`` (else, ignoring a ``chr`` prefix and case, ``8`` or
    ``VIII``), test likewise ``chr9`` / ``9`` / ``IX``. When no such name exists, the chromosomes in
    genome order, without mitochondrial ones (``chrM``, ``MT``, ...) and without names containing
    ``_``, are the candidates: validation takes candidate number ``(n - 1) // 2`` (0-based), test the
    next one not already used.

    Parameters
    ----------
    chroms : sequence of str
        Chromosome names in genome (FASTA) order.
    val, test : sequence of str, optional
        Explicit validation / test chromosomes.

    Returns
    -------
    dict
        ``{chrom: split}`` for every chromosome in ``chroms``.

    Raises
    ------
    InputError
        A named chromosome is not in the genome, one is in both sets, or the default rule needs
        at least 3 candidate chromosomes and the genome has fewer.
    """
    chroms = list(chroms)
    lengths = dict.fromkeys(chroms, 0)
    for flag, names in (("--val-chroms", val), ("--test-chroms", test)):
        for c in names or ():
            if c not in lengths:
                raise InputError(chrom_mismatch_message(c, lengths), field=flag)
    candidates = [c for c in chroms if "_" not in c and c.lower() not in _MITO]

    def fallback(used: set[str]) -> str:
        if len(candidates) < 3:
            raise InputError(
                f"cannot choose validation/test chromosomes by default: the genome has {len(candidates)} "
                "usable chromosome(s); give --val-chroms and --test-chroms",
                field="--val-chroms",
            )
        rest = [c for c in candidates[(len(candidates) - 1) // 2 :] if c not in used]
        return rest[0]

    if val is None:
        v = DEFAULT_VAL if DEFAULT_VAL in lengths else _by_number(chroms, "8")
        val = [v or fallback(set(test or ()))]
    if test is None:
        t = DEFAULT_TEST if DEFAULT_TEST in lengths else _by_number(chroms, "9")
        if t is None or t in val:
            t = fallback(set(val))
        test = [t]
    both = sorted(set(val) & set(test))
    if both:
        raise InputError(f"chromosome(s) {', '.join(both)} given as both validation and test", field="--test-chroms")
    out = dict.fromkeys(chroms, "train")
    out.update(dict.fromkeys(val, "val"))
    out.update(dict.fromkeys(test, "test"))
    return out


# ---- GC of windows --------------------------------------------------------------------------------
def window_starts(start: pl.Expr | pl.Series, end: pl.Expr | pl.Series, width: int) -> pl.Expr | pl.Series:
    """``(start + end) // 2 - width // 2``: the first base of the instance's window."""
    return (start + end) // 2 - width // 2


# ---- the stage ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelConfig:
    """Settings of ``scanner label`` (each maps onto a flag).

    Parameters
    ----------
    window : int
        Window width W in bp. Default 1000.
    summit_distance : int, optional
        Bound = within this many bp of a summit (instead of inside a peak). Default None.
    val_chroms, test_chroms : tuple of str, optional
        Explicit splits; None applies :func:`resolve_splits`'s rule. Default None.
    regimes : tuple of str, optional
        Regimes to build; None = all four (``open`` only when open chromatin is given).
    mask_core : bool
        Replace the motif site in each window by N. Default False.
    seed : int
        Seed of the negative sampling. Default 0.
    pvalue_bin : float
        Width of the -log10 p bins. Default 0.1.
    gc_tolerance : float
        Width of the GC bins of the ``gc`` regime (matched negatives differ by less). Default 0.02.
    batch_size : int
        Rows per window-fetch batch. Default 2048.
    """

    window: int = 1000
    summit_distance: int | None = None
    val_chroms: tuple[str, ...] | None = None
    test_chroms: tuple[str, ...] | None = None
    regimes: tuple[str, ...] | None = None
    mask_core: bool = False
    seed: int = 0
    pvalue_bin: float = 0.1
    gc_tolerance: float = 0.02
    batch_size: int = 2048

    def __post_init__(self) -> None:
        if self.window < 1:
            raise InputError(f"window must be >= 1 bp, got {self.window}", field="--window")
        if self.summit_distance is not None and self.summit_distance < 0:
            raise InputError(f"summit distance must be >= 0, got {self.summit_distance}", field="--summit-distance")
        if self.regimes is not None:
            bad = [r for r in self.regimes if r not in REGIMES]
            if bad or not self.regimes:
                raise InputError(
                    f"unknown regime(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(REGIMES)}",
                    field="--regimes",
                )
        if not self.pvalue_bin > 0 or not 0 < self.gc_tolerance <= 1:
            raise InputError("pvalue_bin must be > 0 and gc_tolerance in (0, 1]", field="--gc-tolerance")
        if self.batch_size < 1:
            raise InputError("batch size must be >= 1", field="--batch-size")


@dataclass(frozen=True)
class LabelResult:
    """What :func:`label` wrote: directories, per-TF counts and the partition sizes table."""

    labelled: Path
    datasets: Path
    counts: pl.DataFrame
    sizes: pl.DataFrame
    skipped: list[str]


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def instance_tfs(instances: Path) -> dict[str, Path]:
    """``{tf: directory}`` of the ``tf=`` partitions under an instances dataset (names percent-decoded)."""
    if not instances.is_dir():
        raise InputError("instances directory not found (run `scanner scan` first)", source=instances)
    out = {}
    for d in sorted(instances.iterdir()):
        if d.is_dir() and d.name.startswith("tf=") and parquet_files(d):
            out[unquote(d.name[3:])] = d
    return out


def genome_from_scan(instances: Path) -> Path:
    """The genome path recorded in ``instances/_scan.json`` (relative paths are taken from its folder)."""
    meta = instances / "_scan.json"
    if not meta.is_file():
        raise InputError(
            "no _scan.json in the instances directory, so the genome is unknown; pass --genome", source=meta
        )
    try:
        genome = json.loads(meta.read_text())["genome"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the genome path from it ({exc}); pass --genome", source=meta) from None
    path = Path(genome)
    return path if path.is_absolute() else (meta.parent / path)


def _match_tfs(
    peaks: Mapping[str, Path], available: Mapping[str, Path]
) -> tuple[dict[str, tuple[str, Path]], list[str]]:
    """Map each instance TF to its peak file; TF keys match exactly, else case-insensitively if unique."""
    matched: dict[str, tuple[str, Path]] = {}
    skipped: list[str] = []
    lower: dict[str, list[str]] = {}
    for tf in available:
        lower.setdefault(tf.lower(), []).append(tf)
    for key, path in peaks.items():
        if key in available:
            tf = key
        elif len(lower.get(key.lower(), [])) == 1:
            tf = lower[key.lower()][0]
            _warn(f"--peaks {key}=...: using the instances of TF {tf!r} (names differ in case)")
        else:
            _warn(
                f"--peaks {key}=...: there are no instances of TF {key!r} (instances have: "
                f"{', '.join(available) or 'none'}); skipped"
            )
            skipped.append(key)
            continue
        if tf in matched:
            raise InputError(f"two peak files for TF {tf!r}", field="--peaks")
        matched[tf] = (key, Path(path))
    for tf in available:
        if tf not in matched:
            _warn(f"instances of TF {tf!r} have no --peaks file; not labelled")
            skipped.append(tf)
    if not matched:
        raise InputError(
            "no TF has both instances and a peak file; --peaks keys must be instance TF names "
            f"({', '.join(available) or 'none found'})",
            field="--peaks",
        )
    return matched, skipped


def label_table(
    instances: pl.DataFrame,
    peaks: pl.DataFrame,
    split_of: Mapping[str, str],
    chrom_lengths: Mapping[str, int],
    config: LabelConfig,
    *,
    open_chromatin: pl.DataFrame | None = None,
    blacklist: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Label one TF's instances (everything but ``gc``): the pure core of ``scanner label``.

    Parameters
    ----------
    instances : polars.DataFrame
        Rows of schema :data:`scanner.schemas.INSTANCES` for one TF.
    peaks, open_chromatin, blacklist : polars.DataFrame
        Intervals from :func:`read_intervals`.
    split_of : mapping
        ``{chrom: split}`` from :func:`resolve_splits`.
    chrom_lengths : mapping
        Chromosome lengths (for ``window_padded``).
    config : LabelConfig

    Returns
    -------
    polars.DataFrame
        The instances not overlapping the blacklist, with ``bound``, ``in_open``, ``split``,
        ``window_start`` and ``window_padded`` added (``gc`` is added by :func:`label` from the genome),
        sorted by chromosome, start, end, strand and motif ID.
    """
    df = instances
    if blacklist is not None and blacklist.height:
        df = df.filter(~overlaps_any(df, blacklist))
    if config.summit_distance is None:
        bound = contained_in(df, peaks)
    else:
        bound = (summit_distance(df, peaks) <= config.summit_distance).fill_null(False)
    in_open = contained_in(df, open_chromatin) if open_chromatin is not None else pl.Series([False] * df.height)
    lengths = pl.DataFrame(
        {"chrom": list(chrom_lengths), "_len": list(chrom_lengths.values())},
        schema={"chrom": pl.String, "_len": pl.Int64},
    )
    splits = pl.DataFrame(
        {"chrom": list(split_of), "split": list(split_of.values())},
        schema={"chrom": pl.String, "split": pl.String},
    )
    w = config.window
    return (
        df.with_columns(bound.alias("bound"), in_open.alias("in_open"))
        .join(lengths, on="chrom", how="left", maintain_order="left")
        .join(splits, on="chrom", how="left", maintain_order="left")
        .with_columns(window_starts(pl.col("start"), pl.col("end"), w).alias("window_start"))
        .with_columns(
            ((pl.col("window_start") < 0) | (pl.col("window_start") + w > pl.col("_len"))).alias("window_padded")
        )
        .drop("_len")
        .sort("chrom", "start", "end", "strand", "motif_id")
    )


def label(
    instances: str | Path,
    peaks: Mapping[str, str | Path],
    out: str | Path,
    config: LabelConfig | None = None,
    *,
    open_chromatin: str | Path | None = None,
    blacklist: str | Path | None = None,
    genome: str | Path | None = None,
    use_ray: bool = False,
) -> LabelResult:
    """Run ``scanner label``: write ``out/labelled`` (LABELLED) and ``out/datasets`` (DATASETS).

    Parameters
    ----------
    instances : str or Path
        An instances dataset (``OUT/instances``).
    peaks : mapping
        ``{tf: peak file}``; keys are instance TF names (exact, else unique case-insensitive match).
        A key without instances, and instance TFs without a key, are skipped with a warning.
    out : str or Path
        Run directory; ``labelled/`` and ``datasets/`` are written under it. Earlier files of the TFs
        labelled now are replaced; other TFs' files are left alone.
    config : LabelConfig, optional
    open_chromatin, blacklist : str or Path, optional
        BED files.
    genome : str or Path, optional
        FASTA; default: the path in ``instances/_scan.json``.
    use_ray : bool, optional
        Fetch windows in Ray Data actors (Ray must be initialised by the caller) rather than in
        this process. The output is identical. Default False.

    Returns
    -------
    LabelResult

    Raises
    ------
    InputError
        Bad peak/BED files, unknown chromosomes, no TF with both instances and peaks, bad splits.
    """
    from scanner.datasets import build_datasets, fetch_windows

    cfg = config or LabelConfig()
    instances, out = Path(instances), Path(out)
    available = instance_tfs(instances)
    matched, skipped = _match_tfs({k: Path(v) for k, v in peaks.items()}, available)
    genome_path = Path(genome) if genome is not None else genome_from_scan(instances)
    g = open_genome(genome_path)
    lengths = dict(g.lengths)
    g.close()
    regimes = cfg.regimes
    if regimes is None:
        regimes = tuple(r for r in REGIMES if r != "open" or open_chromatin is not None)
    elif "open" in regimes and open_chromatin is None:
        raise InputError("the 'open' regime needs open-chromatin intervals (--open)", field="--regimes")
    split_of = resolve_splits(list(lengths), cfg.val_chroms, cfg.test_chroms)
    open_iv = (
        read_intervals(open_chromatin, chrom_lengths=lengths, what="open-chromatin interval")
        if open_chromatin is not None
        else None
    )
    black_iv = (
        read_intervals(blacklist, chrom_lengths=lengths, what="blacklist interval", allow_empty=True)
        if blacklist is not None
        else None
    )

    tables, counts = [], []
    for tf, (_key, peak_path) in matched.items():
        peak_iv = read_intervals(peak_path, chrom_lengths=lengths)
        inst = pl.from_arrow(read_dataset(available[tf], INSTANCES))
        unknown = inst.filter(~pl.col("chrom").is_in(list(lengths)))
        if unknown.height:
            raise InputError(
                chrom_mismatch_message(unknown["chrom"][0], lengths)
                + f" (instances of {tf}; were they scanned on {genome_path}?)",
                source=available[tf],
            )
        t = label_table(inst, peak_iv, split_of, lengths, cfg, open_chromatin=open_iv, blacklist=black_iv)
        tables.append(t)
        counts.append(
            {
                "tf": tf,
                "instances": inst.height,
                "blacklisted": inst.height - t.height,
                "labelled": t.height,
                "bound": int(t["bound"].sum()),
                "in_open": int(t["in_open"].sum()),
                "peaks": peak_iv.height,
            }
        )
    labelled = pl.concat(tables).with_row_index("_row")
    gc = fetch_windows(
        labelled.select("_row", "chrom", "start", "end", "window_start"),
        genome_path,
        cfg.window,
        output="gc",
        batch_size=cfg.batch_size,
        use_ray=use_ray,
    )
    labelled = labelled.join(gc, on="_row", how="left", maintain_order="left").drop("_row").select(LABELLED.names)
    for tf, split in (
        labelled.group_by("tf", "split").agg(pl.col("bound").any()).filter(~pl.col("bound")).select("tf", "split")
    ).iter_rows():
        hint = f"; choose other --{split}-chroms?" if split != "train" else ""
        _warn(f"TF {tf}: the {split} split has no bound instance{hint}")
    labelled_dir = out / "labelled"
    _write_labelled(labelled, labelled_dir, list(matched))
    counts_df = pl.DataFrame(counts)
    write_text_atomic(
        json.dumps(
            {
                "genome": str(genome_path),
                "instances": str(instances),
                "peaks": {tf: str(p) for tf, (_, p) in matched.items()},
                "open": None if open_chromatin is None else str(open_chromatin),
                "blacklist": None if blacklist is None else str(blacklist),
                "config": asdict(cfg),
                "splits": split_of,
                "counts": counts,
                "skipped": skipped,
            },
            indent=2,
        )
        + "\n",
        labelled_dir / "_label.json",
    )
    datasets_dir = out / "datasets"
    sizes = build_datasets(labelled, datasets_dir, cfg, regimes, genome_path, use_ray=use_ray)
    return LabelResult(labelled_dir, datasets_dir, counts_df, sizes, skipped)


def _write_labelled(labelled: pl.DataFrame, root: Path, tfs: list[str]) -> None:
    """One file per (tf, chrom); stale files of these TFs from an earlier run are removed afterwards."""
    written: set[Path] = set()
    for (tf, chrom), part in labelled.group_by("tf", "chrom", maintain_order=True):
        path = partition_dir(root, [("tf", tf), ("chrom", chrom)]) / "part-00000.parquet"
        write_parquet_atomic(part.to_arrow().cast(LABELLED), path)
        written.add(path)
    remove_stale(root, [[("tf", tf)] for tf in tfs], written)


def remove_stale(root: Path, prefixes: list[list[tuple[str, object]]], keep: set[Path]) -> None:
    """Delete the Parquet files under the ``root/<prefix>`` partitions that are not in ``keep``."""
    for prefix in prefixes:
        d = partition_dir(root, prefix)
        if d.is_dir():
            for f in parquet_files(d):
                if f not in keep:
                    f.unlink()


__all__ = [
    "DEFAULT_TEST",
    "DEFAULT_VAL",
    "REGIMES",
    "LabelConfig",
    "LabelResult",
    "contained_in",
    "genome_from_scan",
    "instance_tfs",
    "label",
    "label_table",
    "overlaps_any",
    "read_intervals",
    "resolve_splits",
    "summit_distance",
]
