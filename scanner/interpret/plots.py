"""Figures a person looks at: one site's attribution track and sequence logos (PNG, matplotlib).

Letters are drawn as glyph outlines (``TextPath``) scaled to each position's score: the observed base,
above the axis when it supports the prediction, below when it opposes it. No pyplot state is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scanner.errors import InputError

COLORS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839", "N": "#999999"}


def draw_logo(ax: Any, bases: Sequence[str], heights: np.ndarray, x0: float = 0) -> None:
    """Draw one letter per position: ``bases[i]`` with signed height ``heights[i]`` at ``x0 + i``."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    prop = FontProperties(family="DejaVu Sans", weight="bold")
    glyphs = {}
    for i, (b, h) in enumerate(zip(bases, np.asarray(heights, dtype=float), strict=True)):
        if not np.isfinite(h) or h == 0:
            continue
        if b not in glyphs:
            glyphs[b] = TextPath((0, 0), b, size=1, prop=prop)
        path = glyphs[b]
        bb = path.get_extents()
        tr = (
            Affine2D()
            .translate(-bb.x0, -bb.y0)
            .scale(0.9 / bb.width, abs(h) / bb.height)
            .translate(x0 + i - 0.45, min(h, 0.0))
        )
        ax.add_patch(PathPatch(tr.transform_path(path), facecolor=COLORS.get(b, "#999999"), lw=0))


def _site_rows(root: str | Path, chrom: str, start: int, method: str, model_tf: str | None, regime: str | None) -> Any:
    import polars as pl

    from scanner.io import parquet_files

    files = parquet_files(root)
    if not files:
        raise InputError("no attribution files", source=root)
    lf = pl.scan_parquet([str(f) for f in files]).filter(
        pl.col("chrom") == chrom, pl.col("start") == start, pl.col("method") == method
    )
    if model_tf:
        lf = lf.filter(pl.col("model_tf") == model_tf)
    if regime:
        lf = lf.filter(pl.col("regime") == regime)
    df = lf.sort("pos").collect()
    if df.height == 0:
        have = pl.scan_parquet([str(f) for f in files]).select(pl.col("method").unique()).collect()
        raise InputError(
            f"no {method!r} attributions for a site at {chrom}:{start} (methods present: "
            f"{', '.join(sorted(have['method'].to_list()))})",
            source=root,
        )
    models = df.select("model_tf", "regime", "strand", "motif_id").unique()
    if models.height > 1:
        raise InputError(
            f"{models.height} instances/models match {chrom}:{start}: "
            + "; ".join(" ".join(map(str, r)) for r in models.rows())
            + "; choose with --tf/--regime",
            source=root,
        )
    return df


def plot_site(
    attributions_root: str | Path,
    chrom: str,
    start: int,
    out_png: str | Path,
    *,
    method: str = "ism",
    model_tf: str | None = None,
    regime: str | None = None,
    flank: int = 20,
    partners: int = 2,
    dpi: int = 150,
) -> Path:
    """Attribution track of one site, its logo, and logos of its strongest partner regions.

    Panels: (1) the per-position score over the explained window, site shaded, partner regions
    boxed; (2) a logo of the site +- ``flank``; (3..) logos of the ``partners`` strongest regions
    outside the site (windows of the site's length, by summed |score|, not overlapping each other
    or the site).

    Parameters
    ----------
    attributions_root : path
        ``OUT/attributions``.
    chrom, start : str, int
        The site (0-based start, as in every dataset).
    out_png : path
        PNG to write.
    method : str, optional
        Default ``"ism"``.
    model_tf, regime : str, optional
        Needed when several models explained the site.
    flank : int, optional
        Bases either side of the site in the site logo. Default 20.
    partners : int, optional
        Partner logos drawn. Default 2.
    dpi : int, optional
        Default 150.

    Returns
    -------
    Path
        ``out_png``.

    Raises
    ------
    InputError
        If no or several instances match.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    df = _site_rows(attributions_root, chrom, start, method, model_tf, regime)
    pos = df["pos"].to_numpy()
    score = df["score"].to_numpy().astype(float)
    bases = df["base"].to_list()
    end = int(df["end"][0])
    site_len = end - start
    regions = _partner_regions(pos, score, start, end, site_len, partners)
    n_logo = 1 + len(regions)
    fig = Figure(figsize=(12, 2.6 + 2.0 * n_logo))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1 + n_logo, 1, height_ratios=[1.4] + [1] * n_logo, hspace=0.55)
    ax = fig.add_subplot(grid[0])
    ax.bar(pos, score, width=1.0, color=np.where(score >= 0, "#255C99", "#D62839"), lw=0)
    ax.axvspan(start - 0.5, end - 0.5, color="#F7B32B", alpha=0.3, lw=0, label="site")
    for k, (lo, hi) in enumerate(regions):
        ax.axvspan(lo - 0.5, hi - 0.5, color="#109648", alpha=0.2, lw=0, label="partner" if k == 0 else None)
    ax.axhline(0, color="black", lw=0.5)
    row = df.row(0, named=True)
    ax.set_title(
        f"{row['tf']} {chrom}:{start}-{end} ({row['strand']}) - {method} - model {row['model_tf']}/{row['regime']}",
        fontsize=10,
    )
    ax.set_ylabel("score (logit)")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    spans = [(start - flank, end + flank, "site")] + [
        (lo - 5, hi + 5, f"partner {k + 1}") for k, (lo, hi) in enumerate(regions)
    ]
    for k, (lo, hi, label) in enumerate(spans):
        sel = (pos >= lo) & (pos < hi)
        lax = fig.add_subplot(grid[1 + k])
        if sel.any():
            draw_logo(lax, [bases[i] for i in np.flatnonzero(sel)], score[sel], x0=float(pos[sel][0]))
            lim = max(float(np.abs(score[sel]).max()), 1e-9) * 1.1
            lax.set_ylim(-lim, lim)
            lax.set_xlim(pos[sel][0] - 0.6, pos[sel][-1] + 0.6)
        if label == "site":
            lax.add_patch(
                Rectangle(
                    (start - 0.5, lax.get_ylim()[0]),
                    site_len,
                    sum(map(abs, lax.get_ylim())),
                    facecolor="#F7B32B",
                    alpha=0.15,
                    lw=0,
                )
            )
        lax.axhline(0, color="black", lw=0.5)
        lax.set_ylabel(label, fontsize=9)
        lax.xaxis.set_major_locator(MaxNLocator(integer=True))
        lax.ticklabel_format(axis="x", style="plain", useOffset=False)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi, bbox_inches="tight")
    return out_png


def _partner_regions(
    pos: np.ndarray, score: np.ndarray, start: int, end: int, width: int, k: int
) -> list[tuple[int, int]]:
    """Up to ``k`` non-overlapping windows of ``width`` bases with the largest sum |score|, at least one
    site length away from the site (so a partner is not the site's own flank)."""
    if k <= 0 or len(pos) < width:
        return []
    cum = np.concatenate([[0.0], np.cumsum(np.abs(score))])
    sums = cum[width:] - cum[:-width]  # window starting at index i covers pos[i : i + width]
    lo_pos = pos[: len(sums)]
    taken = [(start - width, end + width)]
    out = []
    for i in np.argsort(-sums, kind="stable"):
        lo, hi = int(lo_pos[i]), int(lo_pos[i]) + width
        if pos[i + width - 1] - pos[i] != width - 1:  # a gap (off-chromosome) inside
            continue
        if any(lo < b and a < hi for a, b in taken):
            continue
        taken.append((lo, hi))
        out.append((lo, hi))
        if len(out) == k:
            break
    return sorted(out)


def plot_benchmark(table: Any, out_png: str | Path, dpi: int = 150) -> Path:
    """Bar chart of the benchmark: auROC and auPRC per method, and seconds per 100 sequences."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    methods = table["method"].to_list()
    fig = Figure(figsize=(10, 3.6))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
    x = np.arange(len(methods))
    ax1.bar(x - 0.2, table["auroc"].to_numpy(), 0.4, label="auROC", color="#255C99")
    ax1.bar(x + 0.2, table["auprc"].to_numpy(), 0.4, label="auPRC", color="#F7B32B")
    ax1.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
    ax1.set_ylim(0, 1.15)
    ax1.set_title("causal context positions vs |score|", fontsize=10)
    ax1.legend(fontsize=8, frameon=False, ncol=2, loc="upper center")
    ax2.barh(x, table["seconds_per_100"].to_numpy(), color="#109648")
    ax2.set_yticks(x, methods, fontsize=8)
    ax2.set_xscale("log")
    ax2.set_title("seconds per 100 sequences (CPU)", fontsize=10)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi, bbox_inches="tight")
    return out_png
