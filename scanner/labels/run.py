"""Labelling motif instances: bound, in_open, blacklist, split and window GC; the ``scanner label`` stage.

Semantics (0-based half-open coordinates throughout)
----------------------------------------------------
* ``bound``: the site ``[start, end)`` lies inside one peak of its TF: ``peak.start <= start`` and
  ``end <= peak.end`` (a site ending exactly at a peak's end is inside; one starting there is not).
  With ``summit_distance=D`` the rule is instead: some summit of the TF's peaks is within ``D`` bp of
  the site (distance 0 when the summit base is in ``[start, end)``, else to the nearest site base);
  peaks without a summit (BED, or narrowPeak column 10 = -1) use their midpoint ``(start + end) // 2``.
* ``in_open``: the site lies inside one open-chromatin interval (same containment rule).
* blacklist: instances *overlapping* a blacklist interval by at least one base are dropped.
* ``split``: by chromosome, see :func:`scanner.labels.splits.resolve_splits`.
* ``gc``: GC fraction of the A/C/G/T bases of the ``W``-bp window
  ``[(start + end) // 2 - W // 2, ... + W)``; ``window_padded`` when the window runs off the chromosome.

Intervals are read and overlapped by :mod:`scanner.labels.intervals` (polars ``join_asof`` joins, never a
Python loop over rows); splits come from :mod:`scanner.labels.splits`. :func:`label` runs the whole
``scanner label`` stage.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import polars as pl

from scanner.errors import InputError
from scanner.genome import chrom_mismatch_message, open_genome
from scanner.io import hive_children, parquet_files, read_dataset, write_parquet_atomic
from scanner.labels.config import REGIMES, LabelConfig
from scanner.labels.intervals import contained_in, overlaps_any, read_intervals, summit_distance
from scanner.labels.splits import resolve_splits
from scanner.progress import counter
from scanner.schemas import INSTANCES, LABELLED

if TYPE_CHECKING:
    from scanner.progress import ProgressFn


# ---- GC of windows --------------------------------------------------------------------------------
def window_starts(start: pl.Expr | pl.Series, end: pl.Expr | pl.Series, width: int) -> pl.Expr | pl.Series:
    """``(start + end) // 2 - width // 2``: the first base of the instance's window."""
    return (start + end) // 2 - width // 2


# ---- the stage ------------------------------------------------------------------------------------
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
    progress: ProgressFn | None = None,
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
    progress : callable, optional
        ``progress(done, total)`` in windows read: one per labelled instance (its GC), then one per
        instance of the balanced sets (its sequence; the total grows when those are chosen).

    Returns
    -------
    LabelResult

    Raises
    ------
    InputError
        Bad peak/BED files, unknown chromosomes, no TF with both instances and peaks, bad splits.
    """
    from scanner.labels.datasets import build_datasets, fetch_windows
    from scanner.store import RunDir

    cfg = config or LabelConfig()
    instances, out = Path(instances), Path(out)
    run = RunDir(out)
    run.check_no_overlap(run.path("labelled"), {"instances directory": instances})
    run.check_writable()
    available = instance_tfs(instances)
    empty = None
    if not available:  # a finished scan with no hit is a valid, empty input (anything else is an error)
        from scanner.scan.export import empty_reason

        empty = empty_reason(instances)
    if empty:
        matched, skipped = {}, sorted(peaks)
        _warn(f"nothing to label: {empty}; the labelled instances and training sets are empty")
    else:
        matched, skipped = _match_tfs({k: Path(v) for k, v in peaks.items()}, available)
    genome_path = run.dataset("instances", instances).genome(genome)
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
    if tables:
        labelled = pl.concat(tables).with_row_index("_row")
        on_rows = counter(progress, labelled.height)
        on_rows(0)  # the total, before the first batch
        gc = fetch_windows(
            labelled.select("_row", "chrom", "start", "end", "window_start"),
            genome_path,
            cfg.window,
            output="gc",
            batch_size=cfg.batch_size,
            use_ray=use_ray,
            on_rows=on_rows,
        )
        labelled = labelled.join(gc, on="_row", how="left", maintain_order="left").drop("_row")
        labelled = labelled.select(LABELLED.names)
    else:
        labelled = pl.from_arrow(LABELLED.empty_table())
    for tf, split in (
        labelled.group_by("tf", "split").agg(pl.col("bound").any()).filter(~pl.col("bound")).select("tf", "split")
    ).iter_rows():
        hint = f"; choose other --{split}-chroms?" if split != "train" else ""
        _warn(f"TF {tf}: the {split} split has no bound instance{hint}")
    record = {
        "genome": str(genome_path),
        "instances": str(instances),
        "peaks": {tf: str(p) for tf, (_, p) in matched.items()},
        "open": None if open_chromatin is None else str(open_chromatin),
        "blacklist": None if blacklist is None else str(blacklist),
        "config": asdict(cfg),
        "splits": split_of,
        "counts": counts,
        "skipped": skipped,
        "empty": empty,
    }
    labelled_dir, datasets_dir = run.dataset("labelled").root, run.dataset("datasets").root
    with run.lock("labelled"), run.lock("datasets"):
        run.recover()
        _write_labelled(labelled, run.dataset("labelled"), list(matched), record)
        sizes = build_datasets(
            labelled,
            datasets_dir,
            cfg,
            regimes,
            genome_path,
            use_ray=use_ray,
            instances=instances,
            progress=progress,
            done=labelled.height,
        )
    for line in split_warnings(sizes):
        _warn(line)
    counts_df = pl.DataFrame(counts) if counts else pl.DataFrame(schema=_COUNT_SCHEMA)
    return LabelResult(labelled_dir, datasets_dir, counts_df, sizes, skipped)


_COUNT_SCHEMA = {
    k: pl.String if k == "tf" else pl.Int64
    for k in ("tf", "instances", "blacklisted", "labelled", "bound", "in_open", "peaks")
}


#: A training set split with fewer rows than this is warned about: its auROC moves by ~0.05 with one row.
MIN_SPLIT_ROWS = 50


def split_warnings(sizes: pl.DataFrame, min_rows: int = MIN_SPLIT_ROWS) -> list[str]:
    """One line per (regime, TF, split) of the balanced sets that is too small or has one class.

    Parameters
    ----------
    sizes : polars.DataFrame
        The sizes table of :func:`scanner.labels.datasets.build_datasets` (regime, tf, split, n, n_pos, n_neg).
    min_rows : int
        Fewer rows than this is warned about. Default :data:`MIN_SPLIT_ROWS`.

    Returns
    -------
    list of str
        E.g. ``"TF ALPHA, regime open, test split: 3 rows (3 bound, 0 unbound): one class only, fewer than
        50 rows; its auROC is undefined; choose other --test-chroms?"``.
    """
    from scanner.labels.datasets import ALL_ROWS

    out = []
    for r in sizes.filter(pl.col("regime") != ALL_ROWS).iter_rows(named=True):
        one_class = r["n_pos"] == 0 or r["n_neg"] == 0
        problems = ["no rows"] if r["n"] == 0 else ["one class only"] if one_class else []
        if 0 < r["n"] < min_rows:
            problems.append(f"fewer than {min_rows} rows")
        if not problems:
            continue
        if r["split"] == "train":
            effect = "no model can learn from it" if one_class else "a model will overfit it"
            fix = "label more instances (a larger genome or more peaks) or use another regime"
        else:
            effect = "its auROC is undefined" if one_class else "its auROC is noisy"
            fix = f"choose other --{r['split']}-chroms?"
        out.append(
            f"TF {r['tf']}, regime {r['regime']}, {r['split']} split: {r['n']} rows ({r['n_pos']} bound, "
            f"{r['n_neg']} unbound): {', '.join(problems)}; {effect}; {fix}"
        )
    return out


def _write_labelled(labelled: pl.DataFrame, ds: Any, tfs: list[str], record: dict[str, Any]) -> None:
    """One file per (tf, chrom), published in one step; other TFs' partitions are carried over."""
    from scanner.store import hash_json

    fingerprint = hash_json({"rows": int(labelled.hash_rows(seed=0).sum()), "n": labelled.height, "record": record})
    others = [(t,) for t, _ in hive_children(ds.root, "tf") if t not in tfs]
    staging = ds.staging(fingerprint, carry=others)
    written: set[Path] = {f for (t,) in others for f in staging.path(t).rglob("*.parquet")}
    for (tf, chrom), part in labelled.group_by("tf", "chrom", maintain_order=True):
        path = staging.path(tf, chrom) / "part-00000.parquet"
        write_parquet_atomic(part.to_arrow().cast(LABELLED), path)
        written.add(path)
    staging.discard(written)
    staging.write_record(record)
    staging.publish()


__all__ = [
    "REGIMES",
    "LabelConfig",
    "LabelResult",
    "instance_tfs",
    "label",
    "label_table",
]
