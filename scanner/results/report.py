"""``scanner report RUN``: one self-contained HTML page summarising a run.

Writes ``RUN/report/index.html`` with every image embedded (base64 PNG, so the page can be mailed or
moved alone) and the same PNGs beside it. Sections appear when the run has what they need:

* warnings: what a reader must not miss: splits that are small or hold one class, models that predict
  every instance alike (degenerate), models at or below chance or below a baseline;
* stages: the manifest (status, work units, rows, time per stage);
* training sets: rows, bound and unbound per regime, TF and split (the sizes in the datasets' record);
* instances: per TF, instances found, labelled bound, predicted bound (``prob_bound >= 0.5``, own model,
  with the share of the TF's instances);
* metrics: ``metrics.parquet``: per TF / model / regime / split the class counts and prevalence, auROC
  and auPRC beside the motif-score, k-mer and site baselines, whether the model beats them, and the
  spread over the ensemble's networks;
* ROC and PR curves per TF and regime (the ``roc.png`` / ``pr.png`` evaluation draws beside each
  model, the PR plot with each split's prevalence as a dashed line) and the cross-TF auROC heatmaps
  (``models/cross_tf_<regime>.png``);
* interpretation benchmark (``interpret_benchmark/benchmark.parquet`` and its figure);
* features: what each regime taught (``features/comparison.parquet``: patterns x regimes per TF, its
  figure, and the logo of each model's strongest patterns);
* top sites: the explained instances of highest ``prob_bound`` with their attribution track and
  logos (:func:`scanner.interpret.plots.plot_site`).
"""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import polars as pl

from scanner.errors import InputError
from scanner.store import RunDir


@dataclass(frozen=True)
class ReportResult:
    """The page written and the sections it has."""

    path: Path
    sections: tuple[str, ...]
    images: tuple[Path, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1150px;
color:#1d2330;line-height:1.45}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:1px solid #d6dae3;padding-bottom:.2em;margin-top:2em}
.sub{color:#5b6475;margin-top:.2em}table{border-collapse:collapse;font-size:.86em;margin:.6em 0}
th,td{border:1px solid #d6dae3;padding:3px 8px;text-align:right}th{background:#f1f3f7}
td.l,th.l{text-align:left}.grid{display:flex;flex-wrap:wrap;gap:14px}.card{border:1px solid #d6dae3;
padding:6px;border-radius:4px}.card p{margin:.2em 0;font-size:.85em;color:#5b6475}img{max-width:100%}
.note{color:#5b6475;font-size:.9em}.warn{background:#fff4e5;border-left:4px solid #e8a33d;padding:.4em .8em}
.warn li{margin:.2em 0}
"""


def _img(path: Path, width: int | None = None) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    w = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}"{w}>'


def _table(df: pl.DataFrame, left: int = 0, digits: int = 3) -> str:
    def cell(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return html.escape(str(v))

    head = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(c)}</th>' for i, c in enumerate(df.columns))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{cell(v)}</td>' for i, v in enumerate(row)) + "</tr>"
        for row in df.iter_rows()
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _hive_value(path: Path, key: str) -> str | None:
    for part in path.parts:
        if part.startswith(key + "="):
            return unquote(part[len(key) + 1 :])
    return None


def _section_stages(run: Path) -> str | None:
    from scanner.run.manifest import read_manifest, status_rows

    if not RunDir(run).manifest_path.is_file():
        return None
    rows = status_rows(read_manifest(run))
    df = pl.DataFrame(rows).select("stage", "status", "progress", "rows", "elapsed", "note")
    return "<h2>Stages</h2>" + _table(df, left=6)


#: The threshold behind every "predicted bound" count.
THRESHOLD = 0.5


def _predicted(run: Path) -> pl.DataFrame | None:
    """Per (TF, regime), own-TF model: instances, predicted bound (prob_bound >= 0.5), min and max prob_bound."""
    from scanner.results import query as q

    if "predictions" not in q.available(run):
        return None
    return (
        q.dataset(run, "predictions")
        .filter(pl.col("model_tf") == pl.col("tf"))
        .group_by("tf", "regime")
        .agg(
            pl.len().alias("n"),
            (pl.col("prob_bound") >= THRESHOLD).sum().cast(pl.Int64).alias("bound"),
            pl.col("prob_bound").min().alias("lo"),
            pl.col("prob_bound").max().alias("hi"),
        )
        .sort("tf", "regime")
        .collect()
    )


def _section_instances(run: Path) -> str | None:
    from scanner.results import query as q

    have = q.available(run)
    if "instances" not in have:
        return None
    df = q.dataset(run, "instances").group_by("tf").agg(pl.len().alias("instances")).collect()
    if "labelled" in have:
        lab = q.dataset(run, "labelled").group_by("tf").agg(pl.col("bound").sum().cast(pl.Int64).alias("bound (peaks)"))
        df = df.join(lab.collect(), on="tf", how="left")
    pred = _predicted(run)
    if pred is not None:
        for regime in sorted(pred["regime"].unique().to_list()):
            part = pred.filter(pl.col("regime") == regime).select(
                "tf",
                pl.format("{} of {} ({}%)", "bound", "n", (100 * pl.col("bound") / pl.col("n")).round(1)).alias(
                    f"predicted bound ({regime})"
                ),
            )
            df = df.join(part, on="tf", how="left")
    return (
        "<h2>Instances</h2><p class='note'>Predicted bound: <code>prob_bound &ge; 0.5</code> under the TF's own "
        "model of each regime, of every instance of the TF genome-wide.</p>" + _table(df.sort("tf"), left=1)
    )


def _section_training_sets(run: Path) -> str | None:
    sizes = _sizes(run)
    if sizes is None:
        return None
    df = sizes.select(
        "regime",
        "tf",
        "split",
        "n",
        pl.col("n_pos").alias("bound"),
        pl.col("n_neg").alias("unbound"),
        (pl.col("n_pos") / pl.col("n")).alias("share bound"),
    )
    return (
        "<h2>Training sets</h2><p class='note'>Rows of each regime's sets by split, bound and unbound. Each "
        "regime draws as many matched negatives as its rule finds, so a split is balanced only where the "
        "share bound is near 0.5.</p>" + _table(df, left=3, digits=2)
    )


def _sizes(run: Path) -> pl.DataFrame | None:
    """The training sets' sizes table (the datasets record's ``sizes``), or None."""
    from scanner.labels.datasets import ALL_ROWS
    from scanner.store import RunDir

    try:
        record = RunDir(run).dataset("datasets").record()
        sizes = pl.DataFrame(record["sizes"]) if record and record.get("sizes") else None
    except (InputError, TypeError, ValueError, pl.exceptions.PolarsError):
        return None
    if sizes is None or not {"regime", "tf", "split", "n", "n_pos", "n_neg"} <= set(sizes.columns):
        return None
    return sizes.filter(pl.col("regime") != ALL_ROWS)


def report_warnings(run: str | Path) -> list[str]:
    """What a reader of the run must not miss, one sentence each.

    Small or one-class splits (:func:`scanner.labels.split_warnings`); degenerate models (every
    instance predicted bound, or none, or one constant ``prob_bound``); test auROC undefined, at or
    below chance, or below the best baseline (own-TF models; ``beats_baselines`` of ``metrics.parquet``).
    """
    from scanner.labels.run import split_warnings

    run = Path(run)
    out: list[str] = []
    sizes = _sizes(run)
    if sizes is not None:
        out += split_warnings(sizes)
    pred = _predicted(run)
    for r in pred.iter_rows(named=True) if pred is not None else ():
        name = f"{r['tf']}/{r['regime']}"
        if r["hi"] - r["lo"] < 1e-4:
            out.append(f"model {name} gives every one of its {r['n']:,} instances the same prob_bound ({r['hi']:.3f})")
        elif r["bound"] == r["n"]:
            out.append(f"model {name} predicts all {r['n']:,} of its instances bound (prob_bound >= 0.5): degenerate")
        elif r["bound"] == 0:
            out.append(f"model {name} predicts none of its {r['n']:,} instances bound (prob_bound >= 0.5)")
    path = RunDir(run).metrics_path
    if path.is_file():
        m = pl.read_parquet(path).filter((pl.col("split") == "test") & (pl.col("model_tf") == pl.col("tf")))
        for r in m.sort("tf", "regime").iter_rows(named=True):
            name = f"{r['tf']}/{r['regime']}"
            counts = f"{r['n']} rows: {r['n_pos']} bound, {r['n_neg']} unbound"
            if r["auroc"] is None or r["auroc"] != r["auroc"]:
                out.append(f"model {name}: test auROC undefined ({counts})")
                continue
            if r["auroc"] <= 0.5:
                out.append(f"model {name}: test auROC {r['auroc']:.3f}, no better than chance ({counts})")
            if r.get("beats_baselines") is False:
                best = r.get("best_baseline")
                base = r.get(f"{best}_auroc") if best else None
                vs = f" ({base:.3f})" if isinstance(base, float) else ""
                out.append(f"model {name}: test auROC {r['auroc']:.3f} is below the {best} baseline{vs} ({counts})")
    return out


def _section_warnings(warnings: list[str]) -> str | None:
    if not warnings:
        return None
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return f"<h2>Warnings</h2><div class='warn'><ul>{items}</ul></div>"


def _section_metrics(run: Path) -> str | None:
    path = RunDir(run).metrics_path
    if not path.is_file():
        return None
    df = pl.read_parquet(path).sort("regime", "tf", "model_tf", "split")
    df = df.with_columns((pl.col("n_pos") / pl.col("n")).alias("prevalence"))
    cols = ["tf", "model_tf", "regime", "split", "n", "n_pos", "n_neg", "prevalence", "auroc", "auprc", "score_auroc"]
    cols += [c for c in ("kmer_auroc", "site_auroc", "best_baseline", "beats_baselines") if c in df.columns]
    if {"members", "member_auroc_mean", "member_auroc_std"} <= set(df.columns):
        spread = [
            f"{m:.3f} ± {sd:.3f}" if k and k > 1 and m is not None and sd is not None else None
            for k, m, sd in df.select("members", "member_auroc_mean", "member_auroc_std").iter_rows()
        ]
        df = df.with_columns(pl.Series("member auROC", spread, dtype=pl.String))
        cols += ["members", "member auROC"]
    return (
        "<h2>Metrics</h2><p class='note'>auROC / auPRC of each model on its regime's validation and test rows "
        "(n_pos bound, n_neg unbound; prevalence = n_pos / n, the auPRC of a random ranking), beside the "
        "baselines fitted on the same training rows: the motif score alone (score_auroc), a k-mer regression "
        "on the window (kmer_auroc) and a regression on the site &plusmn; 15 bp (site_auroc); "
        "beats_baselines: above all of them. member auROC: mean &plusmn; sd over the ensemble's networks. "
        "Rows with model_tf &ne; tf are cross-TF.</p>" + _table(df.select(cols), left=4)
    )


def _section_curves(run: Path, out: Path, images: list[Path]) -> str | None:
    models = RunDir(run).dataset("models")
    cards = []
    for roc in sorted(models.root.glob(f"tf=*/regime=*/{models.part('roc', root=Path()).name}")):
        tf, regime = _hive_value(roc, "tf"), _hive_value(roc, "regime")
        pr = models.part("pr", root=roc.parent)
        pngs = [roc] + ([pr] if pr.is_file() else [])
        for p in pngs:
            copy = out / f"{p.stem}_{tf}_{regime}.png"
            copy.write_bytes(p.read_bytes())
            images.append(copy)
        cards.append(
            f"<div class='card'><p>{html.escape(str(tf))} / {html.escape(str(regime))}</p>"
            + "".join(_img(p, 330) for p in pngs)
            + "</div>"
        )
    heat = sorted(models.root.glob(models.part("cross_tf", root=Path(), regime="*").name))
    if not cards and not heat:
        return None
    text = (
        "<h2>ROC and PR curves</h2><p class='note'>Model and baselines per split; on the PR plots the dashed "
        "line is the split's prevalence (the precision of a random ranking).</p><div class='grid'>"
        + "".join(cards)
        + "</div>"
    )
    for h in heat:
        copy = out / h.name
        copy.write_bytes(h.read_bytes())
        images.append(copy)
        text += f"<h3>Cross-TF auROC ({html.escape(h.stem.removeprefix('cross_tf_'))})</h3>{_img(h, 560)}"
    return text


def _section_benchmark(run: Path, out: Path, images: list[Path]) -> str | None:
    bench = RunDir(run).dataset("interpret_benchmark")
    table = bench.part("table")
    if not table.is_file():
        return None
    df = pl.read_parquet(table)
    text = (
        "<h2>Interpretation benchmark</h2><p class='note'>Simulated sequences with known causal context "
        "positions: per-position auROC/auPRC of |attribution| against them, and cost.</p>" + _table(df, left=1)
    )
    meta = bench.record_path
    if meta.is_file():
        m = json.loads(meta.read_text())
        text += (
            f"<p class='note'>model test auROC {m.get('model_test_auroc', float('nan')):.3f}; "
            f"{m.get('positives', '?')} causal of {m.get('positions', '?')} positions</p>"
        )
    png = bench.part("plot")
    if png.is_file():
        copy = out / "interpret_benchmark.png"
        copy.write_bytes(png.read_bytes())
        images.append(copy)
        text += _img(png, 900)
    return text


def _section_features(run: Path, out: Path, images: list[Path], logos: int = 3) -> str | None:
    from scanner.features.compare import format_comparison

    feats = RunDir(run).dataset("features")
    root = feats.root
    comp_path = feats.part("comparison")
    if not comp_path.is_file():
        return None
    comp = pl.read_parquet(comp_path)
    text = (
        "<h2>What each regime taught</h2><p class='note'>TF-MoDISco patterns in each model's attributions over "
        "its explained windows, named by their TomTom match (q &lt; threshold) or <i>novel:consensus</i>; "
        "cells: share of windows with the pattern (- absent).</p>"
    )
    if comp.height == 0:
        return text + "<p>No pattern was discovered.</p>"
    for (tf, method), part in comp.group_by(["tf", "method"], maintain_order=True):
        wide = part.with_columns(pl.when(pl.col("present")).then(pl.col("share")).otherwise(None).alias("share")).pivot(
            on="regime", index=["feature", "sign", "status"], values="share", aggregate_function="first"
        )
        regimes = sorted(part["regime"].unique().to_list())
        wide = wide.select("feature", "sign", *regimes, "status")
        text += f"<h3>{html.escape(str(tf))} ({html.escape(str(method))})</h3>" + _table(wide, left=2, digits=2)
    text += "<pre class='note'>" + html.escape("\n".join(format_comparison(comp))) + "</pre>"
    png = feats.part("comparison_plot")
    if png.is_file():
        copy = out / "features_comparison.png"
        copy.write_bytes(png.read_bytes())
        images.append(copy)
        text += _img(png, 900)
    pats = feats.part("patterns")
    if pats.is_dir():
        df = (
            pl.scan_parquet(pats / "**" / "*.parquet", hive_partitioning=False)
            .filter(pl.col("rank") < logos)
            .sort("tf", "method", "regime", "sign", "rank", descending=[False, False, False, True, False])
            .collect()
        )
        cards = []
        for r in df.iter_rows(named=True):
            logo = root / r["logo"]
            if not logo.is_file():
                continue
            copy = out / f"pattern_{r['tf']}_{r['regime']}_{r['method']}_{r['pattern']}.png"
            copy.write_bytes(logo.read_bytes())
            images.append(copy)
            match = r["best_match"] or "no match"
            cards.append(
                f"<div class='card'><p>{html.escape(r['tf'])} / {html.escape(r['regime'])} / {r['pattern']}: "
                f"{r['n_seqlets']} seqlets, share {r['share']:.2f}, {html.escape(match)}, "
                f"median |distance| {r['abs_distance_median']:.0f} bp</p>{_img(logo, 330)}</div>"
            )
        if cards:
            text += "<div class='grid'>" + "".join(cards) + "</div>"
    return text


def _section_sites(run: Path, out: Path, images: list[Path], top_sites: int) -> str | None:
    from scanner.interpret.plots import plot_site
    from scanner.results import query as q

    if "attributions" not in q.available(run) or top_sites < 1:
        return None
    attr = q.dataset(run, "attributions")
    sites = (
        attr.select("chrom", "start", "end", "strand", "motif_id", "tf", "model_tf", "regime", "method")
        .unique()
        .collect()
    )
    methods = sorted(sites["method"].unique().to_list())
    method = "ism" if "ism" in methods else methods[0]
    sites = sites.filter(pl.col("method") == method).drop("method")
    if "predictions" in q.available(run):
        pred = q.dataset(run, "predictions").select(
            "chrom", "start", "end", "strand", "motif_id", "model_tf", "regime", "prob_bound"
        )
        sites = sites.join(
            pred.collect(), on=["chrom", "start", "end", "strand", "motif_id", "model_tf", "regime"], how="left"
        )
    else:
        sites = sites.with_columns(pl.lit(None, pl.Float32).alias("prob_bound"))
    sites = sites.sort(["prob_bound", "chrom", "start"], descending=[True, False, False], nulls_last=True).head(
        top_sites
    )
    cards = []
    for i, r in enumerate(sites.iter_rows(named=True)):
        png = out / f"site_{i + 1:02d}_{r['model_tf']}_{r['regime']}_{r['chrom']}_{r['start']}.png"
        try:
            plot_site(
                RunDir(run).path("attributions"),
                r["chrom"],
                r["start"],
                png,
                method=method,
                model_tf=r["model_tf"],
                regime=r["regime"],
            )
        except InputError as exc:  # e.g. two sites at one start on different strands
            cards.append(f"<p class='note'>{html.escape(str(exc))}</p>")
            continue
        images.append(png)
        prob = "-" if r["prob_bound"] is None else f"{r['prob_bound']:.3f}"
        cards.append(
            f"<div class='card'><p>{html.escape(r['tf'])} {html.escape(r['chrom'])}:{r['start']}-{r['end']} "
            f"({r['strand']}), model {html.escape(r['model_tf'])}/{html.escape(r['regime'])}, prob_bound {prob}, "
            f"{html.escape(method)}</p>{_img(png, 1000)}</div>"
        )
    if not cards:
        return None
    return "<h2>Top sites</h2>" + "".join(cards)


def build_report(run: str | Path, *, out: str | Path | None = None, top_sites: int = 6) -> ReportResult:
    """Write the HTML report of a run.

    Parameters
    ----------
    run : path
        Run directory.
    out : path, optional
        Output directory. Default ``RUN/report``.
    top_sites : int, optional
        Explained sites drawn (highest ``prob_bound`` first). Default 6.

    Returns
    -------
    ReportResult

    Raises
    ------
    InputError
        If ``run`` is not a directory or holds nothing to report.
    """
    run = Path(run)
    if not run.is_dir():
        raise InputError("run directory not found", source=run)
    out = Path(out) if out is not None else RunDir(run).path("report")
    out.mkdir(parents=True, exist_ok=True)
    images: list[Path] = []
    warnings = report_warnings(run)
    parts: list[tuple[str, str | None]] = [
        ("warnings", _section_warnings(warnings)),
        ("stages", _section_stages(run)),
        ("training sets", _section_training_sets(run)),
        ("instances", _section_instances(run)),
        ("metrics", _section_metrics(run)),
        ("curves", _section_curves(run, out, images)),
        ("interpretation benchmark", _section_benchmark(run, out, images)),
        ("features", _section_features(run, out, images)),
        ("top sites", _section_sites(run, out, images, top_sites)),
    ]
    present = [(name, body) for name, body in parts if body]
    if not present:
        raise InputError("nothing to report: no manifest, instances, metrics or other outputs", source=run)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>scanner report: {html.escape(run.name)}</title><style>{_CSS}</style></head><body>"
        f"<h1>scanner report</h1><p class='sub'>{html.escape(str(run.resolve()))} &middot; {when}</p>"
        + "".join(body for _, body in present)
        + "<p class='note'>Coordinates are 0-based, half-open. Query the datasets with "
        f"<code>scanner query {html.escape(str(run))} --sql ...</code>.</p></body></html>\n"
    )
    from scanner.io import write_text_atomic

    path = write_text_atomic(page, RunDir(run).dataset("report", out).part("page"))
    return ReportResult(
        path=path, sections=tuple(n for n, _ in present), images=tuple(images), warnings=tuple(warnings)
    )
