"""Balanced training sets (the negative regimes) and the sequence windows stored with them.

Regimes, applied per TF and per split so that every split is balanced on its own:

* ``pvalue``: instances binned by ``floor(-log10(p) / pvalue_bin)``; each bin keeps all its positives
  and an equal number of negatives sampled from the same bin (fewer when the bin has fewer).
* ``gc``: the same with bins ``floor(gc / gc_tolerance)`` of the window GC, so a matched negative's GC
  differs from its positives' by less than ``gc_tolerance``.
* ``open``: only instances inside open chromatin, then p-value matched as above.
* ``random``: all positives and ``min(n_pos, n_neg)`` negatives sampled at random (``match_bin = -1``).

Sampling is seeded by ``(seed, regime, tf, split)`` over rows sorted by their key, so the result does not
depend on file or worker order. Windows are fetched with pyfaidx by :class:`WindowReader`, in Ray Data
actors or in-process (identical output), and stored as an upper-case string of ``W`` letters on the +
strand, ``N`` for padding, non-ACGT and (``mask_core``) the motif site itself. Reverse complements are
an augmentation at training time, not stored.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from scanner.errors import InputError
from scanner.genome import Genome, open_genome
from scanner.io import hive_children, write_parquet_atomic
from scanner.progress import counter
from scanner.runtime import bind_constructor
from scanner.schemas import DATASETS, INSTANCE_KEY

if TYPE_CHECKING:
    from scanner.labels.config import LabelConfig
    from scanner.progress import ProgressFn

SPLITS = ("train", "val", "test")
#: The DATASETS "regime" holding every labelled training instance (a source of rows, not a regime).
ALL_ROWS = "all"
_DECODE = np.frombuffer(b"ACGTN", dtype=np.uint8)
_SORT = ["tf", "split", "chrom", "start", "end", "strand", "motif_id"]


# ---- windows --------------------------------------------------------------------------------------
def window_codes(
    genome: Genome,
    chroms: Sequence[str] | np.ndarray,
    starts: Sequence[int] | np.ndarray,
    width: int,
    *,
    max_gap: int = 50_000,
    max_span: int = 1 << 22,
) -> np.ndarray:
    """Base codes of many windows, reading each run of nearby windows from the FASTA once.

    Parameters
    ----------
    genome : Genome
    chroms : sequence of str, length n
    starts : sequence of int, length n
        0-based window starts (may be negative or run past the chromosome end: padded with N).
    width : int
        Window width W.
    max_gap, max_span : int, optional
        Windows whose starts are closer than ``max_gap`` share one read of at most ``max_span`` bp.

    Returns
    -------
    numpy.ndarray of uint8, shape (n, W)
        Codes A=0, C=1, G=2, T=3, other/padding=4, in input order.
    """
    starts = np.asarray(starts, dtype=np.int64)
    n = starts.size
    out = np.empty((n, width), dtype=np.uint8)
    if n == 0:
        return out
    names, inv = np.unique(np.asarray(chroms).astype(str), return_inverse=True)
    order = np.lexsort((starts, inv))
    s, c = starts[order], inv[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (c[1:] != c[:-1]) | (np.diff(s) > max_gap)
    first = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    chunk = (s - s[first]) // max_span
    new[1:] |= chunk[1:] != chunk[:-1]
    bounds = [*np.flatnonzero(new).tolist(), n]
    for a, b in itertools.pairwise(bounds):
        lo, hi = int(s[a]), int(s[b - 1]) + width
        seg = genome.codes(str(names[c[a]]), lo, hi)
        view = np.lib.stride_tricks.sliding_window_view(seg, width)
        out[order[a:b]] = view[s[a:b] - lo]
    return out


def _strings(codes: np.ndarray) -> pa.Array:
    """(n, W) codes -> Arrow string array of n upper-case words (zero Python per row)."""
    n, w = codes.shape
    letters = np.ascontiguousarray(_DECODE[codes])
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32) if n else np.zeros(1, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(letters.tobytes()))


class WindowReader:
    """Callable class for Ray Data ``map_batches``: opens the genome once, then fetches windows.

    Parameters
    ----------
    genome_path : str
        FASTA with a valid ``.fai``.
    width : int
        Window width W.
    output : {"gc", "window"}
        ``"gc"``: column ``gc`` (float32, GC fraction of the A/C/G/T bases; NaN if none);
        ``"window"``: column ``window`` (string of W letters).
    mask_core : bool
        With ``output="window"``, write N over ``[start, end)``. Default False.

    A batch is a pyarrow Table with ``_row``, ``chrom``, ``start``, ``end``, ``window_start``; the result
    has ``_row`` and the output column.
    """

    def __init__(self, genome_path: str, width: int, output: str = "gc", mask_core: bool = False) -> None:
        if output not in ("gc", "window"):
            raise ValueError(f"output must be 'gc' or 'window', got {output!r}")
        self.genome = open_genome(genome_path)
        self.width = int(width)
        self.output = output
        self.mask_core = mask_core

    def __call__(self, batch: pa.Table) -> pa.Table:
        ws = batch["window_start"].to_numpy()
        codes = window_codes(self.genome, batch["chrom"].to_numpy(zero_copy_only=False), ws, self.width)
        if self.output == "gc":
            acgt = np.count_nonzero(codes < 4, axis=1)
            gc = np.count_nonzero((codes == 1) | (codes == 2), axis=1)
            frac = np.divide(gc, acgt, out=np.full(len(gc), np.nan), where=acgt > 0)
            return pa.table({"_row": batch["_row"], "gc": pa.array(frac.astype(np.float32))})
        if self.mask_core:
            cols = np.arange(self.width)[None, :]
            lo = (batch["start"].to_numpy() - ws)[:, None]
            hi = (batch["end"].to_numpy() - ws)[:, None]
            codes[(cols >= lo) & (cols < hi)] = 4
        return pa.table({"_row": batch["_row"], "window": _strings(codes)})


def fetch_windows(
    rows: pl.DataFrame,
    genome_path: str | Path,
    width: int,
    *,
    output: str = "gc",
    mask_core: bool = False,
    batch_size: int = 2048,
    use_ray: bool = False,
    on_rows: Callable[[int], None] | None = None,
) -> pl.DataFrame:
    """GC or window string of each row, through :class:`WindowReader`.

    Parameters
    ----------
    rows : polars.DataFrame
        Columns ``_row`` (unique id), ``chrom``, ``start``, ``end``, ``window_start``.
    genome_path : str or Path
    width : int
    output, mask_core : see :class:`WindowReader`.
    batch_size : int, optional
        Rows per batch. Default 2048.
    use_ray : bool, optional
        Run the reader in a Ray Data actor pool (Ray must be initialised; 0.5 CPU per actor, one actor
        per cluster CPU) instead of this process. Default False.
    on_rows : callable, optional
        Called with the rows of each batch as it is done (progress).

    Returns
    -------
    polars.DataFrame
        ``_row`` and ``gc`` or ``window``, sorted by ``_row``.
    """
    # genome order within each batch: windows of nearby instances (of any TF) share one FASTA read
    table = (
        rows.select("_row", "chrom", "start", "end", "window_start")
        .sort("chrom", "window_start")
        .to_arrow(compat_level=pl.CompatLevel.oldest())
    )
    kwargs = {"genome_path": str(genome_path), "width": width, "output": output, "mask_core": mask_core}
    if table.num_rows == 0:
        parts = [WindowReader(**kwargs)(table)]
    elif use_ray:
        parts = _fetch_on_ray(table, kwargs, batch_size, on_rows)
    else:
        reader = WindowReader(**kwargs)
        parts = []
        for i in range(0, table.num_rows, batch_size):
            parts.append(reader(table.slice(i, batch_size)))
            if on_rows is not None:
                on_rows(parts[-1].num_rows)
    return pl.from_arrow(pa.concat_tables(parts)).sort("_row")


def _fetch_on_ray(
    table: pa.Table, kwargs: dict, batch_size: int, on_rows: Callable[[int], None] | None = None
) -> list[pa.Table]:
    """Run :class:`WindowReader` over ``table`` in a Ray Data actor pool (0.5 CPU per actor)."""
    import ray

    from scanner.runtime import ray_data_without_bars

    n_blocks = -(-table.num_rows // batch_size)
    n_actors = max(1, min(int(ray.cluster_resources().get("CPU", 1)), n_blocks))
    ray_data_without_bars()
    per_block = -(-table.num_rows // min(n_blocks, 4 * n_actors))
    blocks = [table.slice(i, per_block) for i in range(0, table.num_rows, per_block)]
    ds = ray.data.from_arrow(blocks).map_batches(  # pre-cut blocks: no repartition shuffle
        bind_constructor(WindowReader, **kwargs),
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=n_actors),
        num_cpus=0.5,
    )
    parts = []
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):  # as they are done, any order
        parts.append(batch)
        if on_rows is not None:
            on_rows(batch.num_rows)
    return parts


# ---- balancing ------------------------------------------------------------------------------------
def _seed(seed: int, *parts: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


def one_strand(df: pl.DataFrame) -> pl.DataFrame:
    """Each TF's site once: a site found on both strands (a palindromic motif, e.g. CACGTG) is one window
    with one label, kept on its better strand (lower p-value; '+' on a tie), as FIMO's --max-strand would."""
    site = ["tf", "chrom", "start", "end"]
    return df.sort([*site, "pvalue", "strand", "motif_id"]).unique(site, keep="first", maintain_order=True)


def balance(
    labelled: pl.DataFrame,
    regime: str,
    *,
    seed: int = 0,
    pvalue_bin: float = 0.1,
    gc_tolerance: float = 0.02,
) -> pl.DataFrame:
    """Select one regime's balanced rows from labelled instances (pure; no windows).

    Parameters
    ----------
    labelled : polars.DataFrame
        Rows with the LABELLED columns (any number of TFs and splits).
    regime : {"pvalue", "gc", "open", "random", "all"}
        ``"all"``: every training-split row, unbalanced (``match_bin = -1``).
    seed : int, optional
        Sampling seed. Default 0.
    pvalue_bin, gc_tolerance : float, optional
        Bin widths (-log10 p units; GC fraction). Defaults 0.1 and 0.02.

    Returns
    -------
    polars.DataFrame
        The kept rows, sorted by tf, split, chrom, start, end, strand, motif_id, with ``regime``
        (str), ``label`` (int8) and ``match_bin`` (int32) added. A TF's site reported on both
        strands (same chrom, start, end: a palindromic motif) is kept once, on its better strand.

    Raises
    ------
    InputError
        For an unknown regime.
    """
    df = labelled
    if regime == "open":
        df = df.filter(pl.col("in_open"))
    df = one_strand(df)
    if regime == ALL_ROWS:
        return (
            df.filter(pl.col("split") == "train")
            .with_columns(
                pl.lit(-1, pl.Int32).alias("match_bin"),
                pl.lit(regime).alias("regime"),
                pl.col("bound").cast(pl.Int8).alias("label"),
            )
            .sort(_SORT)
        )
    if regime in ("pvalue", "open"):
        bins = (-(pl.col("pvalue").clip(lower_bound=1e-300).log10()) / pvalue_bin).floor()
    elif regime == "gc":
        bins = (pl.col("gc").fill_nan(0.0).cast(pl.Float64) / gc_tolerance).floor()
    elif regime == "random":
        bins = pl.lit(-1)
    else:
        raise InputError(f"unknown regime {regime!r}", field="--regimes")
    df = df.with_columns(bins.cast(pl.Int32).alias("match_bin")).sort(_SORT)
    kept = []
    for (tf, split), part in df.group_by("tf", "split", maintain_order=True):
        u = _seed(seed, regime, str(tf), str(split)).random(part.height)
        part = part.with_columns(pl.Series("_u", u))
        pos = part.filter(pl.col("bound"))
        want = pos.group_by("match_bin").agg(pl.len().alias("_want"))
        neg = (
            part.filter(~pl.col("bound"))
            .join(want, on="match_bin", how="inner", maintain_order="left")
            .filter(pl.col("_u").rank("ordinal").over("match_bin") <= pl.col("_want"))
            .drop("_want")
        )
        kept.append(pl.concat([pos, neg]))
    if not kept:
        out = df.clear().with_columns(pl.lit(None, pl.Float64).alias("_u"))
    else:
        out = pl.concat(kept)
    return (
        out.drop("_u")
        .with_columns(
            pl.lit(regime).alias("regime"),
            pl.col("bound").cast(pl.Int8).alias("label"),
        )
        .sort(_SORT)
    )


def partition_sizes(selected: pl.DataFrame, regime: str, tfs: Sequence[str]) -> pl.DataFrame:
    """Per (tf, split) of one regime: rows, positives, negatives, and bins short of negatives.

    ``short_bins`` counts bins where fewer negatives than positives were available; ``unmatched_pos``
    is how many positives lack a matched negative (the shortfall of 1:1).
    """
    grid = pl.DataFrame(
        {"tf": [t for t in tfs for _ in SPLITS], "split": [s for _ in tfs for s in SPLITS]},
        schema={"tf": pl.String, "split": pl.String},
    )
    per_bin = (
        selected.group_by("tf", "split", "match_bin")
        .agg(pl.col("label").sum().alias("p"), (1 - pl.col("label")).sum().alias("q"))
        .group_by("tf", "split")
        .agg(
            (pl.col("p") > pl.col("q")).sum().alias("short_bins"),
            (pl.col("p") - pl.col("q")).clip(lower_bound=0).sum().alias("unmatched_pos"),
        )
    )
    counts = selected.group_by("tf", "split").agg(
        pl.len().alias("n"),
        pl.col("label").sum().cast(pl.Int64).alias("n_pos"),
    )
    return (
        grid.join(counts, on=["tf", "split"], how="left")
        .join(per_bin, on=["tf", "split"], how="left")
        .with_columns(pl.lit(regime).alias("regime"))
        .fill_null(0)
        .with_columns((pl.col("n") - pl.col("n_pos")).alias("n_neg"))
        .select(
            "regime",
            "tf",
            "split",
            pl.col("n").cast(pl.Int64),
            pl.col("n_pos").cast(pl.Int64),
            pl.col("n_neg").cast(pl.Int64),
            pl.col("short_bins").cast(pl.Int64),
            pl.col("unmatched_pos").cast(pl.Int64),
        )
    )


def format_sizes(sizes: pl.DataFrame) -> str:
    """The sizes table as aligned text (one line per regime, TF and split)."""
    cols = sizes.columns
    rows = [cols] + [[str(v) for v in r] for r in sizes.iter_rows()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = [
        "  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    return "\n".join(lines)


def build_datasets(
    labelled: pl.DataFrame,
    root: str | Path,
    config: LabelConfig,
    regimes: Sequence[str],
    genome_path: str | Path,
    *,
    use_ray: bool = False,
    instances: str | Path | None = None,
    progress: ProgressFn | None = None,
    done: int = 0,
) -> pl.DataFrame:
    """Balance every regime, fetch windows once per selected instance, write ``root`` (DATASETS).

    Files: ``root/regime=<r>/tf=<tf>/split=<s>/part-00000.parquet`` and the record ``_datasets.json``
    (settings, the instances they came from, and ``sizes``: the table returned), staged and published in
    one step through :mod:`scanner.store`. Earlier files of the TFs in ``labelled`` are replaced; other
    TFs' partitions are kept.

    ``progress(done, total)`` counts the windows fetched, after ``done`` units the caller counted
    before (the total is ``done`` plus the windows to fetch).

    Returns
    -------
    polars.DataFrame
        Sizes: regime, tf, split, n, n_pos, n_neg, short_bins, unmatched_pos.
    """
    from scanner.store import RunDir, hash_json

    root = Path(root)
    ds = RunDir.of("datasets", root)
    tfs = labelled["tf"].unique(maintain_order=True).to_list()
    chosen, sizes = [], []
    for regime in [*regimes, *([ALL_ROWS] if config.all_rows else [])]:
        sel = balance(
            labelled, regime, seed=config.seed, pvalue_bin=config.pvalue_bin, gc_tolerance=config.gc_tolerance
        )
        chosen.append(sel)
        if regime != ALL_ROWS:
            sizes.append(partition_sizes(sel, regime, tfs))
    key = list(INSTANCE_KEY)
    allsel = pl.concat(chosen)
    need = allsel.select(*key, "window_start").unique(key, maintain_order=True).with_row_index("_row")
    windows = fetch_windows(
        need,
        genome_path,
        config.window,
        output="window",
        mask_core=config.mask_core,
        batch_size=config.batch_size,
        use_ray=use_ray,
        on_rows=counter(progress, done + need.height, done),
    )
    lookup = need.join(windows, on="_row", how="left").select(*key, "window")
    table = pl.concat(sizes)
    fingerprint = hash_json(
        {
            "rows": int(labelled.hash_rows(seed=0).sum()),
            "n": labelled.height,
            "regimes": list(regimes),
            "config": asdict(config),
            "genome": str(genome_path),
        }
    )
    with ds.run.lock(root.name):
        others = [
            (r, t) for r, rdir in hive_children(root, "regime") for t, _ in hive_children(rdir, "tf") if t not in tfs
        ]
        staging = ds.staging(fingerprint, carry=others)
        written: set[Path] = {f for r, t in others for f in staging.path(r, t).rglob("*.parquet")}
        for sel in chosen:
            sel = sel.join(lookup, on=key, how="left", maintain_order="left").select(DATASETS.names)
            for (regime, tf, split), part in sel.group_by("regime", "tf", "split", maintain_order=True):
                path = staging.path(regime, tf, split) / "part-00000.parquet"
                write_parquet_atomic(part.to_arrow().cast(DATASETS), path)
                written.add(path)
        staging.discard(written)
        staging.write_record(_record(genome_path, instances, regimes, config, table))
        staging.publish()
    return table


def _record(
    genome_path: str | Path,
    instances: str | Path | None,
    regimes: Sequence[str],
    config: LabelConfig,
    table: pl.DataFrame,
) -> dict:
    """The datasets' record: settings, where the instances came from, and the sizes table."""
    settings = {
        "genome": str(genome_path),
        "instances": None if instances is None else str(Path(instances).resolve()),
        "regimes": list(regimes),
        "window": config.window,
        "mask_core": config.mask_core,
        "seed": config.seed,
        "pvalue_bin": config.pvalue_bin,
        "gc_tolerance": config.gc_tolerance,
        "config": asdict(config),
        "sizes": table.to_dicts(),
    }
    return settings
