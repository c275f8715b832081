"""Regime comparison: does a variant's effect depend on how the model was trained?

For each allele and TF, the effect under a regime is the ``delta_logit`` of the allele's strongest
instance under that regime (largest ``abs_delta``; ties go to the nearest site, then the lowest
start). Side by side (one ``delta_<regime>`` column each, :func:`scanner.schemas.variant_comparison_schema`),
the file then gets, per TF and pair of regimes, the Spearman rank correlation of the effects across
the alleles both scored (:data:`scanner.schemas.VARIANT_CORRELATIONS`), and two flags per allele:

* ``sign_flip``: one regime gives ``delta >= min_delta`` and another ``delta <= -min_delta`` (a gain
  of binding under one training, a loss under the other; tiny effects of either sign are not flips);
* ``rank_flip``: the allele is in the top ``top_fraction`` of ``abs_delta`` under some regime but not
  under another that scored it ("top" = rank <= ceil(top_fraction * n) among the TF's n alleles, ties
  ranked together).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from scanner.io import parquet_files, write_parquet_atomic
from scanner.schemas import SEQUENCE_KEY, VARIANT_CORRELATIONS, VARIANT_KEY, variant_comparison_schema
from scanner.store import part_name

COMPARISON_FILE = part_name("variants", "comparison")
CORRELATIONS_FILE = part_name("variants", "correlations")


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    cut = np.flatnonzero(np.diff(xs) != 0) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [len(x)]])
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends - 1) / 2.0 + 1.0, ends - starts)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman rank correlation (average ranks for ties); None when n < 3 or a side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3:
        return None
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float((rx * rx).sum()) * float((ry * ry).sum()))
    if den == 0:
        return None
    return float((rx * ry).sum() / den)


def best_per_regime(scores: pl.DataFrame, key: tuple[str, ...]) -> pl.DataFrame:
    """One row per (key, tf, regime): the scored row with the largest ``abs_delta``."""
    df = scores.filter(pl.col("regime").is_not_null() & pl.col("delta_logit").is_not_null())
    order = [pl.col("abs_delta")]
    desc = [True]
    for c in ("distance", "inst_start"):
        if c in df.columns:
            order.append(pl.col(c))
            desc.append(False)
    df = df.sort(order, descending=desc, nulls_last=True, maintain_order=True)
    return df.group_by([*key, "tf", "regime"], maintain_order=True).agg(
        pl.col("delta_logit").first(), pl.col("abs_delta").first()
    )


def compare_regimes(
    scores: pl.DataFrame,
    key: tuple[str, ...] = VARIANT_KEY,
    *,
    top_fraction: float = 0.1,
    min_delta: float = 0.1,
) -> tuple[pa.Table, pa.Table]:
    """The side-by-side comparison and the per-pair correlations.

    Parameters
    ----------
    scores : polars.DataFrame
        Rows of ``VARIANTS`` (or ``VARIANT_SEQUENCES``): ``key`` columns, ``tf``, ``regime``,
        ``delta_logit``, ``abs_delta`` (and ``distance``, ``inst_start`` for tie-breaking if present).
    key : tuple of str
        Allele identity columns. Default :data:`VARIANT_KEY`.
    top_fraction, min_delta : float
        See the module docstring. Defaults 0.1 and 0.1.

    Returns
    -------
    (comparison, correlations) : (pyarrow.Table, pyarrow.Table)
        Schemas :func:`variant_comparison_schema` (regimes sorted) and :data:`VARIANT_CORRELATIONS`;
        comparison rows sorted by tf then key.
    """
    best = best_per_regime(scores, key)
    regimes = sorted(best.get_column("regime").unique().to_list())
    schema = variant_comparison_schema(regimes, key)
    n_by = best.group_by(["tf", "regime"]).agg(pl.len().alias("n_group"))
    best = (
        best.join(n_by, on=["tf", "regime"])
        .with_columns(pl.col("abs_delta").rank("min", descending=True).over(["tf", "regime"]).alias("rank"))
        .with_columns(
            (pl.col("rank") <= (pl.col("n_group") * top_fraction).ceil()).alias("top"),
        )
    )
    wide = best.select([*key, "tf"]).unique(maintain_order=True)
    for r in regimes:
        sub = best.filter(pl.col("regime") == r).select(
            [*key, "tf", pl.col("delta_logit").alias(f"delta_{r}"), pl.col("top").alias(f"top_{r}")]
        )
        wide = wide.join(sub, on=[*key, "tf"], how="left", nulls_equal=True)
    deltas = [pl.col(f"delta_{r}") for r in regimes]
    tops = [pl.col(f"top_{r}").cast(pl.Int32).fill_null(0) for r in regimes]
    if regimes:
        wide = wide.with_columns(
            pl.sum_horizontal([d.is_not_null().cast(pl.Int32) for d in deltas]).alias("n_regimes"),
            pl.min_horizontal(deltas).alias("delta_min"),
            pl.max_horizontal(deltas).alias("delta_max"),
            pl.sum_horizontal(tops).alias("_n_top"),
        )
    else:
        wide = wide.with_columns(
            pl.lit(0, pl.Int32).alias("n_regimes"),
            pl.lit(None, pl.Float32).alias("delta_min"),
            pl.lit(None, pl.Float32).alias("delta_max"),
            pl.lit(0, pl.Int32).alias("_n_top"),
        )
    wide = wide.with_columns(
        ((pl.col("delta_max") >= min_delta) & (pl.col("delta_min") <= -min_delta)).fill_null(False).alias("sign_flip"),
        ((pl.col("_n_top") > 0) & (pl.col("_n_top") < pl.col("n_regimes"))).alias("rank_flip"),
    ).sort(["tf", *key])
    comparison = wide.select(schema.names).to_arrow().cast(schema)

    rows = []
    for tf in sorted(wide.get_column("tf").unique().to_list()):
        sub = wide.filter(pl.col("tf") == tf)
        present = [r for r in regimes if sub.get_column(f"delta_{r}").null_count() < sub.height]
        for i, a in enumerate(present):
            for b in present[i + 1 :]:
                both = sub.filter(pl.col(f"delta_{a}").is_not_null() & pl.col(f"delta_{b}").is_not_null())
                da = both.get_column(f"delta_{a}").to_numpy()
                db = both.get_column(f"delta_{b}").to_numpy()
                ta = both.get_column(f"top_{a}").to_numpy()
                tb = both.get_column(f"top_{b}").to_numpy()
                flips = ((da >= min_delta) & (db <= -min_delta)) | ((da <= -min_delta) & (db >= min_delta))
                rows.append(
                    {
                        "tf": tf,
                        "regime_a": a,
                        "regime_b": b,
                        "n": both.height,
                        "spearman": spearman(da, db),
                        "sign_flips": int(flips.sum()),
                        "rank_flips": int((ta != tb).sum()),
                    }
                )
    correlations = pa.Table.from_pylist(rows, schema=VARIANT_CORRELATIONS)
    return comparison, correlations


def format_comparison(comparison: pa.Table, correlations: pa.Table, limit: int = 5) -> list[str]:
    """A short summary: per TF the regimes, each pair's Spearman and flips, and the top discordant alleles."""
    lines: list[str] = []
    if comparison.num_rows == 0:
        return ["regime comparison: no allele was in an instance window"]
    cmp = pl.from_arrow(comparison)
    corr = pl.from_arrow(correlations)
    key = "variant_id" if "variant_id" in cmp.columns else "id"
    for tf in sorted(cmp.get_column("tf").unique().to_list()):
        sub = cmp.filter(pl.col("tf") == tf)
        c = corr.filter(pl.col("tf") == tf)
        if c.height == 0:
            lines.append(f"{tf}: {sub.height} allele(s) scored under one regime only: nothing to compare")
            continue
        lines.append(
            f"{tf}: {sub.height} allele(s); sign flips {int(sub.get_column('sign_flip').sum())}, "
            f"top-fraction flips {int(sub.get_column('rank_flip').sum())}"
        )
        for r in c.iter_rows(named=True):
            rho = "n/a" if r["spearman"] is None else f"{r['spearman']:.3f}"
            lines.append(
                f"  {r['regime_a']} vs {r['regime_b']}: Spearman {rho} (n={r['n']}), "
                f"sign flips {r['sign_flips']}, top flips {r['rank_flips']}"
            )
        flips = sub.filter(pl.col("sign_flip")).with_columns(
            (pl.col("delta_max") - pl.col("delta_min")).alias("_spread")
        )
        regimes = [c.removeprefix("pattern_") for c in cmp.columns if c.startswith("pattern_") and "_match_" not in c]
        for r in flips.sort("_spread", descending=True).head(limit).iter_rows(named=True):
            why = [f"{g}: {r['pattern_match_' + g] or r['pattern_' + g]}" for g in regimes if r["pattern_" + g]]
            lines.append(
                f"  sign flip {r[key]}: delta from {r['delta_min']:.2f} to {r['delta_max']:.2f}"
                + (f" (in learned pattern {', '.join(why)})" if why else "")
            )
    return lines


def write_comparison(
    out_root: Path,
    scores_dir: str,
    config: object,
    *,
    features: str | Path | None = None,
    genome: str | Path | None = None,
) -> list[str]:
    """Compare regimes over ``out_root/scores_dir`` and write ``comparison.parquet`` and
    ``correlations.parquet`` beside it; return the summary lines.

    With ``features`` (``OUT/features``) and ``genome`` (VCF alleles only), the comparison also gets
    ``pattern_<r>``/``pattern_match_<r>``: the learned pattern each disagreeing allele falls in under
    each regime (:func:`scanner.features.variants.pattern_columns`).
    """
    files = parquet_files(out_root / scores_dir)
    scores = pl.DataFrame()
    if files:
        lazy = pl.scan_parquet(files, hive_partitioning=False)
        have = lazy.collect_schema().names()
        wanted = [*VARIANT_KEY, *SEQUENCE_KEY, "tf", "regime", "delta_logit", "abs_delta", "distance", "inst_start"]
        scores = lazy.select([c for c in wanted if c in have]).collect()
    key = VARIANT_KEY if "variant_id" in scores.columns or scores.is_empty() else SEQUENCE_KEY
    if scores.is_empty():
        schema = variant_comparison_schema([], key)
        comparison, correlations = schema.empty_table(), VARIANT_CORRELATIONS.empty_table()
    else:
        comparison, correlations = compare_regimes(
            scores,
            key,
            top_fraction=float(getattr(config, "top_fraction", 0.1)),
            min_delta=float(getattr(config, "min_delta", 0.1)),
        )
    if features is not None and genome is not None and key == VARIANT_KEY:
        from scanner.features.variants import pattern_columns

        comparison = pattern_columns(comparison, features, genome)
    write_parquet_atomic(comparison, out_root / COMPARISON_FILE)
    write_parquet_atomic(correlations, out_root / CORRELATIONS_FILE)
    return format_comparison(comparison, correlations)
