"""What each regime taught, side by side: patterns x regimes per TF (and attribution method).

A *feature* is what a pattern is: the database motif it matches (best TomTom match with q below
``max_qvalue``, the ``best_match`` column), or, for unmatched patterns, a group of unmatched patterns
(of one TF, method and sign, any regime) whose PPMs align with Pearson correlation at least
``similarity`` (:func:`ppm_similarity`), named ``novel:<consensus of its first pattern>``. For every
feature and every regime whose model was explained, one row (:data:`scanner.schemas.FEATURE_COMPARISON`):
present or not, its patterns, seqlets, share of windows with any of them, best q-value and median
|distance| to the site; ``status`` says where it appears, contrasted with one regime (``open`` by
default): ``vanishes under open`` (found under other regimes, not under open), ``only under open``,
``all regimes`` or ``some regimes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from scanner.schemas import FEATURE_COMPARISON


def ppm_similarity(a: np.ndarray, b: np.ndarray, min_overlap: int = 6) -> float:
    """Best Pearson correlation of two PPMs over ungapped alignments and both strands of ``b``.

    Columns are centred at 0.25 and the correlation is taken over all overlapping cells; an alignment
    needs ``min(min_overlap, len(a), len(b))`` overlapping columns.

    Parameters
    ----------
    a, b : numpy.ndarray, shape (La, 4) and (Lb, 4)

    Returns
    -------
    float
        In [-1, 1]; 0 when every alignment is flat.
    """
    a = np.asarray(a, dtype=np.float64) - 0.25
    best = 0.0
    for bb in (np.asarray(b, dtype=np.float64), np.asarray(b, dtype=np.float64)[::-1, ::-1]):
        bb = bb - 0.25
        need = min(min_overlap, len(a), len(bb))
        for shift in range(-(len(bb) - need), len(a) - need + 1):
            i0, j0 = max(0, shift), max(0, -shift)
            k = min(len(a) - i0, len(bb) - j0)
            x, y = a[i0 : i0 + k].ravel(), bb[j0 : j0 + k].ravel()
            den = float(np.sqrt((x * x).sum() * (y * y).sum()))
            if den > 0:
                best = max(best, float((x * y).sum()) / den)
    return best


def _label_patterns(patterns: Any, similarity: float) -> Any:
    """``patterns`` with ``feature``, ``f_motif_id``, ``f_database`` columns."""
    import polars as pl

    rows = patterns.sort(["tf", "method", "sign", "regime", "rank"]).to_dicts()
    groups: dict[tuple, list[tuple[str, np.ndarray]]] = {}
    for r in rows:
        if r["best_match"] is not None:
            r["feature"], r["f_motif_id"], r["f_database"] = r["best_match"], r["best_match_id"], r["best_database"]
            continue
        ppm = np.asarray(r["ppm"], dtype=np.float64)
        key = (r["tf"], r["method"], r["sign"])
        found = None
        for name, rep in groups.setdefault(key, []):
            if ppm_similarity(rep, ppm) >= similarity:
                found = name
                break
        if found is None:
            found = f"novel:{r['consensus']}"
            names = {n for n, _ in groups[key]}
            k = 2
            while found in names:
                found, k = f"novel:{r['consensus']}#{k}", k + 1
            groups[key].append((found, ppm))
        r["feature"], r["f_motif_id"], r["f_database"] = found, None, None
    if not rows:
        return patterns.with_columns(
            pl.lit(None, pl.String).alias("feature"),
            pl.lit(None, pl.String).alias("f_motif_id"),
            pl.lit(None, pl.String).alias("f_database"),
        )
    return pl.DataFrame(
        rows, schema={**patterns.schema, "feature": pl.String, "f_motif_id": pl.String, "f_database": pl.String}
    )


def _status(present: set[str], regimes: list[str], contrast: str) -> str:
    if contrast in regimes and len(regimes) > 1:
        if contrast not in present:
            return f"vanishes under {contrast}"
        if present == {contrast}:
            return f"only under {contrast}"
    return "all regimes" if present == set(regimes) else "some regimes"


def compare_features(
    patterns: Any,
    seqlets: Any,
    models: Any,
    *,
    contrast: str = "open",
    similarity: float = 0.75,
) -> pa.Table:
    """The patterns x regimes comparison.

    Parameters
    ----------
    patterns : polars.DataFrame
        Rows of :data:`scanner.schemas.FEATURES`.
    seqlets : polars.DataFrame
        Rows of :data:`scanner.schemas.FEATURE_SEQLETS` (for the union of windows and distances).
    models : polars.DataFrame
        Every explained model: ``tf``, ``regime``, ``method``, ``n_windows`` (models with no pattern
        count as explained regimes where every feature is absent).
    contrast : str, optional
        Regime of the ``status`` contrast. Default ``"open"``.
    similarity : float, optional
        Grouping threshold of unmatched patterns. Default 0.75.

    Returns
    -------
    pyarrow.Table
        Schema FEATURE_COMPARISON, sorted by tf, method, sign (positive first), largest share, feature,
        regime.
    """
    import polars as pl

    if patterns.height == 0 or models.height == 0:
        return FEATURE_COMPARISON.empty_table()
    labelled = _label_patterns(patterns, similarity)
    site = ["chrom", "site_start", "site_end", "site_strand", "motif_id"]
    sq = seqlets.join(
        labelled.select("tf", "regime", "method", "pattern", "feature", "sign"),
        on=["tf", "regime", "method", "pattern"],
    )
    out = []
    for (tf, method), part in labelled.group_by(["tf", "method"], maintain_order=True):
        regs = models.filter((pl.col("tf") == tf) & (pl.col("method") == method))
        regimes = sorted(regs.get_column("regime").to_list())
        n_win = dict(zip(regs.get_column("regime").to_list(), regs.get_column("n_windows").to_list(), strict=True))
        for (feature, sign), fpart in part.group_by(["feature", "sign"], maintain_order=True):
            present = set(fpart.get_column("regime").to_list())
            status = _status(present, regimes, contrast)
            first = fpart.row(0, named=True)
            for r in regimes:
                pr = fpart.filter(pl.col("regime") == r)
                s = sq.filter(
                    (pl.col("tf") == tf)
                    & (pl.col("method") == method)
                    & (pl.col("regime") == r)
                    & (pl.col("feature") == feature)
                    & (pl.col("sign") == sign)
                )
                windows = s.select(site).unique().height
                out.append(
                    {
                        "tf": tf,
                        "method": method,
                        "feature": feature,
                        "motif_id": first["f_motif_id"],
                        "database": first["f_database"],
                        "sign": sign,
                        "regime": r,
                        "present": pr.height > 0,
                        "patterns": pr.get_column("pattern").to_list(),
                        "n_seqlets": int(pr.get_column("n_seqlets").sum()),
                        "share": windows / n_win[r] if n_win[r] else 0.0,
                        "n_windows": int(n_win[r]),
                        "best_qvalue": pr.get_column("best_qvalue").min() if pr.height else None,
                        "abs_distance_median": float(s.get_column("distance").abs().median()) if s.height else None,
                        "status": status,
                    }
                )
    df = pl.DataFrame(out, schema=pl.from_arrow(FEATURE_COMPARISON.empty_table()).schema)
    top = df.group_by(["tf", "method", "feature", "sign"]).agg(pl.col("share").max().alias("_top"))
    df = (
        df.join(top, on=["tf", "method", "feature", "sign"])
        .sort(
            ["tf", "method", "sign", "_top", "feature", "regime"], descending=[False, False, True, True, False, False]
        )
        .drop("_top")
    )
    return df.to_arrow().cast(FEATURE_COMPARISON)


def format_comparison(comparison: Any, limit: int = 12) -> list[str]:
    """Console lines: per TF and method, features x regimes (share of windows, '-' absent) and status.

    Parameters
    ----------
    comparison : pyarrow.Table or polars.DataFrame
        :func:`compare_features` output (or ``OUT/features/comparison.parquet``).
    limit : int, optional
        Features shown per TF and method (largest share first). Default 12.
    """
    import polars as pl

    df = comparison if isinstance(comparison, pl.DataFrame) else pl.from_arrow(comparison)
    if df.height == 0:
        return ["features: no pattern was discovered"]
    lines = []
    for (tf, method), part in df.group_by(["tf", "method"], maintain_order=True):
        regimes = sorted(part.get_column("regime").unique().to_list())
        feats = part.select("feature", "sign").unique(maintain_order=True).head(limit)
        width = max(12, *(len(f) + 2 for f in feats.get_column("feature").to_list()))
        lines.append(f"{tf} ({method}): share of windows with the pattern, by regime")
        lines.append("  " + "feature".ljust(width) + "sign " + "".join(r[:9].rjust(10) for r in regimes) + "  status")
        for feature, sign in feats.iter_rows():
            rows = part.filter((pl.col("feature") == feature) & (pl.col("sign") == sign))
            cells = []
            for r in regimes:
                x = rows.filter(pl.col("regime") == r)
                cells.append(f"{x['share'][0]:.2f}".rjust(10) if x.height and x["present"][0] else "-".rjust(10))
            status = rows["status"][0]
            lines.append(f"  {feature.ljust(width)}{'+' if sign > 0 else '-':>4} " + "".join(cells) + f"  {status}")
        hidden = part.select("feature", "sign").unique().height - feats.height
        if hidden > 0:
            lines.append(f"  ... {hidden} more feature(s) in comparison.parquet")
    return lines


def plot_comparison(comparison: Any, out_png: str | Path, dpi: int = 120) -> Path | None:
    """Heatmaps of share (features x regimes), one panel per TF and method; None when empty."""
    import polars as pl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    df = comparison if isinstance(comparison, pl.DataFrame) else pl.from_arrow(comparison)
    if df.height == 0:
        return None
    panels = df.select("tf", "method").unique(maintain_order=True).rows()
    sizes = [
        df.filter((pl.col("tf") == t) & (pl.col("method") == m)).select("feature", "sign").unique().height
        for t, m in panels
    ]
    fig = Figure(figsize=(6.5 * len(panels), 1.2 + 0.32 * max(sizes)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (tf, method) in zip(axes, panels, strict=True):
        part = df.filter((pl.col("tf") == tf) & (pl.col("method") == method))
        regimes = sorted(part.get_column("regime").unique().to_list())
        feats = part.select("feature", "sign").unique(maintain_order=True).rows()
        grid = np.full((len(feats), len(regimes)), np.nan)
        for i, (f, s) in enumerate(feats):
            for j, r in enumerate(regimes):
                x = part.filter((pl.col("feature") == f) & (pl.col("sign") == s) & (pl.col("regime") == r))
                if x.height and x["present"][0]:
                    grid[i, j] = x["share"][0]
        im = ax.imshow(
            np.ma.masked_invalid(grid), cmap="viridis", vmin=0, vmax=max(0.05, float(np.nanmax(grid))), aspect="auto"
        )
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                text = "-" if np.isnan(grid[i, j]) else f"{grid[i, j]:.2f}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="#888888" if np.isnan(grid[i, j]) else "white",
                )
        ax.set_xticks(range(len(regimes)), regimes, fontsize=8)
        ax.set_yticks(range(len(feats)), [f"{f} ({'+' if s > 0 else '-'})" for f, s in feats], fontsize=7)
        ax.set_title(f"{tf} ({method}): share of windows", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    return out_png
