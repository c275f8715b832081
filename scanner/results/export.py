"""``scanner export``: a run's datasets in the formats genome browsers, bedtools and the MEME suite read.

What can be exported (the kind is read from the directory's Parquet schema):

* instances (``RUN/instances``): BED6, narrowPeak, FIMO's ``fimo.tsv`` (with q-values) or ``fimo --text``
  (:mod:`scanner.scan.export`);
* predictions (``RUN/predictions``): BED6 or narrowPeak, one line per instance and model;
* variant effects (``RUN/variants/scores``): BED6 or narrowPeak, one line per allele, instance and model.

BED6 and narrowPeak (BED6+4) lines are sorted by chromosome (byte order, as ``LC_ALL=C sort -k1,1
-k2,2n``), start, end, strand and name; coordinates are 0-based half-open. ``--bed`` writes columns 1-6,
``--narrowpeak`` all ten; score is BED's integer 0-1000:

* instances: the site; name ``motif_id|tf|bits`` (bits: the log-odds score, 2 decimals); score
  ``min(1000, round(-100 log10 p))`` (p = 1e-4 -> 400, p <= 1e-10 -> 1000); signalValue the score in bits;
  pValue ``-log10 p``; qValue -1; peak the site centre ``(end - start) // 2``.
* predictions: the site; name ``tf|regime|model_tf|motif_id``; score ``round(1000 prob_bound)``;
  signalValue ``prob_bound``; pValue ``-log10`` of the motif p-value; qValue -1; peak the site centre.
* variants: the VCF REF bases ``[pos, pos + len(ref))``; name
  ``variant_id|tf|regime|motif_id|inst_start|inst_end``; score ``min(1000, round(100 |delta_logit|))``;
  strand the site's; signalValue ``delta_logit`` (signed); pValue ``-log10 site_pvalue_ref``; qValue
  and peak -1. Alleles in no instance window (no model scored them) are left out.

Floats are written in the shortest form that reads back to the same value (``prob_bound`` and
``delta_logit`` are float32), so the files round-trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import polars as pl
import pyarrow.parquet as pq

from scanner.errors import InputError
from scanner.io import parquet_files
from scanner.store import DATASETS, RunDir

#: Formats per dataset kind (the flag names of ``scanner export``).
FORMATS = {
    "instances": ("bed", "narrowpeak", "fimo", "fimo-text"),
    "predictions": ("bed", "narrowpeak"),
    "variants": ("bed", "narrowpeak"),
}
#: Directories a run directory holds (a path with one of these is a run, not a dataset).
_RUN_CHILDREN = ("instances", "labelled", "datasets", "models", "predictions", "attributions", "variants", "sim")
assert set(_RUN_CHILDREN) <= set(DATASETS)
_BED_COLUMNS = ("chrom", "start", "end", "name", "score", "strand", "signal", "pvalue", "qvalue", "peak")


@dataclass(frozen=True)
class ExportResult:
    """Rows written, the dataset kind, and (when no row was written) why."""

    rows: int
    kind: str
    note: str | None = None


def _hint(path: Path) -> str:
    from scanner.results.query import available, table_path

    have = [t for t in available(path) if t in ("instances", "predictions", "variants")]
    if not have:
        return "its datasets (RUN/instances, RUN/predictions, RUN/variants/scores)"
    return ", ".join(f"scanner export {table_path(path, t)} --bed" for t in have)


def dataset_kind(path: str | Path) -> str:
    """``"instances"``, ``"predictions"`` or ``"variants"``: what the dataset directory ``path`` holds.

    Raises
    ------
    InputError
        For anything else, with the command that would work: a run directory, ``scanner simulate``'s
        output, labelled rows, training sets, attributions, sequence-pair variants, a missing path.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or directory", source=path)
    if path.is_file():
        raise InputError(
            "give a dataset directory (RUN/instances, RUN/predictions or RUN/variants/scores)", source=path
        )
    from scanner.simulate.genome import is_simulation

    sim = RunDir.of("sim", path)
    if sim.record_path.is_file() or is_simulation(path):
        raise InputError(
            "this is `scanner simulate`'s output (genome, motifs, peaks), not a dataset; export what the scan "
            f"wrote: scanner export {sim.run.path('instances')} --bed",
            source=path,
        )
    scores = RunDir.of("variants", path).part("scores")
    if scores.is_dir():
        raise InputError(f"export the scores: scanner export {scores} --bed", source=path)
    if RunDir(path).manifest_path.is_file() or any(RunDir(path).path(c).is_dir() for c in _RUN_CHILDREN):
        raise InputError(f"this is a run directory; export one of its datasets: {_hint(path)}", source=path)
    files = parquet_files(path)
    if not files:
        if RunDir.of("instances", path).record_path.is_file():
            return "instances"
        if path.name == "predictions" and RunDir.of("predictions", path).published() is not None:
            return "predictions"  # published with no row (the scan found nothing)
        raise InputError(
            "no Parquet dataset here; give RUN/instances, RUN/predictions or RUN/variants/scores", source=path
        )
    cols = set(pq.read_schema(files[0]).names)
    if "prob_bound" in cols:
        return "predictions"
    if "delta_logit" in cols:
        if "chrom" not in cols:
            raise InputError(
                "variant effects of sequence pairs (--sequences) have no genome coordinates; read them with "
                "`scanner query RUN --sql`",
                source=path,
            )
        return "variants"
    if "method" in cols and "pos" in cols:
        raise InputError(
            "these are per-base attributions; their tracks are written by `scanner interpret` "
            "(RUN/attributions/bedgraph, --bigwig)",
            source=path,
        )
    if "window" in cols and "label" in cols:
        raise InputError(
            f"these are training windows; export the instances or predictions: {_hint(path.parent)}", source=path
        )
    if "bound" in cols:
        raise InputError(
            f"these are labelled instances; export the instances or predictions: {_hint(path.parent)}", source=path
        )
    if {"chrom", "start", "end", "strand", "motif_id", "tf", "score", "pvalue"} <= cols:
        return "instances"
    raise InputError("not a dataset scanner can export (unknown columns)", source=path)


def _neg_log10(col: str) -> pl.Expr:
    p = pl.col(col).cast(pl.Float64)
    return pl.when(p > 0).then(-p.log10()).otherwise(None)


def _fmt(expr: pl.Expr, missing: str = "-1") -> pl.Expr:
    return expr.cast(pl.String).fill_null(missing)


def _instances_frame(path: Path) -> pl.DataFrame:
    from scanner.scan.export import load_instances

    df = pl.from_arrow(load_instances(path))
    assert isinstance(df, pl.DataFrame)
    return df.select(
        "chrom",
        "start",
        "end",
        (
            pl.col("motif_id") + "|" + pl.col("tf") + "|" + pl.col("score").cast(pl.Float64).round(2).cast(pl.String)
        ).alias("name"),
        _neg_log10("pvalue").mul(100).round().clip(0, 1000).fill_null(1000).cast(pl.Int64).alias("score"),
        "strand",
        _fmt(pl.col("score")).alias("signal"),
        _fmt(_neg_log10("pvalue")).alias("pvalue"),
        pl.lit("-1").alias("qvalue"),
        ((pl.col("end") - pl.col("start")) // 2).alias("peak"),
    )


def _predictions_frame(path: Path) -> pl.DataFrame:
    from scanner.io import read_dataset
    from scanner.schemas import PREDICTIONS

    df = pl.from_arrow(read_dataset(path, PREDICTIONS))
    assert isinstance(df, pl.DataFrame)
    return df.select(
        "chrom",
        "start",
        "end",
        pl.concat_str(["tf", "regime", "model_tf", "motif_id"], separator="|").alias("name"),
        (pl.col("prob_bound").cast(pl.Float64) * 1000).round().clip(0, 1000).cast(pl.Int64).alias("score"),
        "strand",
        _fmt(pl.col("prob_bound")).alias("signal"),
        _fmt(_neg_log10("pvalue")).alias("pvalue"),
        pl.lit("-1").alias("qvalue"),
        ((pl.col("end") - pl.col("start")) // 2).alias("peak"),
    )


def _variants_frame(path: Path) -> pl.DataFrame:
    from scanner.io import read_dataset
    from scanner.schemas import VARIANTS

    df = pl.from_arrow(read_dataset(path, VARIANTS))
    assert isinstance(df, pl.DataFrame)
    return df.filter(pl.col("regime").is_not_null()).select(
        "chrom",
        pl.col("pos").alias("start"),
        (pl.col("pos") + pl.col("ref").str.len_bytes()).alias("end"),
        pl.concat_str(
            [
                "variant_id",
                "tf",
                "regime",
                "motif_id",
                pl.col("inst_start").cast(pl.String),
                pl.col("inst_end").cast(pl.String),
            ],
            separator="|",
        ).alias("name"),
        (pl.col("delta_logit").abs().cast(pl.Float64) * 100).round().clip(0, 1000).cast(pl.Int64).alias("score"),
        pl.col("inst_strand").fill_null(".").alias("strand"),
        _fmt(pl.col("delta_logit")).alias("signal"),
        _fmt(_neg_log10("site_pvalue_ref")).alias("pvalue"),
        pl.lit("-1").alias("qvalue"),
        pl.lit(-1, pl.Int64).alias("peak"),
    )


def bed_frame(path: str | Path, kind: str | None = None) -> pl.DataFrame:
    """The narrowPeak columns of a dataset (see the module), sorted; ``kind`` is detected when None."""
    path = Path(path)
    kind = kind or dataset_kind(path)
    frame = {"instances": _instances_frame, "predictions": _predictions_frame, "variants": _variants_frame}[kind](path)
    return frame.sort("chrom", "start", "end", "strand", "name")


def _empty_note(path: Path, kind: str) -> str:
    if kind == "instances":
        from scanner.scan.export import empty_reason

        return empty_reason(path) or "no instances"
    if kind == "predictions":
        from scanner.scan.export import empty_reason

        rec = RunDir.of("predictions", path).record() or {}
        try:
            why = empty_reason(rec["instances"]) if rec.get("instances") else None
        except InputError:
            why = None
        return f"no prediction: {why}" if why else "the dataset has no rows"
    if kind == "variants":
        return "no allele of the VCF lies in an instance window of a TF with a model (nothing was scored)"
    return "the dataset has no rows"


def export(path: str | Path, fmt: str, out: TextIO, *, genome: str | Path | None = None) -> ExportResult:
    """Write the dataset at ``path`` to ``out`` as ``fmt`` (``bed``, ``narrowpeak``, ``fimo``, ``fimo-text``).

    Parameters
    ----------
    path : path
        ``RUN/instances``, ``RUN/predictions`` or ``RUN/variants/scores``.
    fmt : str
        One of :data:`FORMATS` for the dataset's kind.
    out : text stream
    genome : path, optional
        FASTA for FIMO's q-values. Default: the scan's.

    Returns
    -------
    ExportResult

    Raises
    ------
    InputError
        A path that is no exportable dataset, or a format the dataset does not have (with the fix).
    """
    path = Path(path)
    kind = dataset_kind(path)
    if fmt not in FORMATS[kind]:
        fix = (
            f"--{fmt} writes motif instances: scanner export {RunDir(path.parent).path('instances')} --{fmt}"
            if fmt.startswith("fimo")
            else f"choose one of {', '.join('--' + f for f in FORMATS[kind])}"
        )
        raise InputError(f"{kind} cannot be written as {fmt}; {fix}", source=path, field=f"--{fmt}")
    if fmt in ("fimo", "fimo-text"):
        from scanner.scan.export import write_fimo_tsv

        rows = write_fimo_tsv(path, out, qvalues=fmt == "fimo", genome=genome)
    else:
        frame = bed_frame(path, kind)
        cols = _BED_COLUMNS if fmt == "narrowpeak" else _BED_COLUMNS[:6]
        if frame.height:
            out.write(frame.select(cols).write_csv(separator="\t", include_header=False))
        rows = frame.height
    return ExportResult(rows, kind, None if rows else _empty_note(path, kind))
