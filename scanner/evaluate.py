"""Evaluation of bound/unbound classifiers: auROC, auPRC (average precision), loss, curves and plots.

The metrics themselves (exact ties, and the naive definitions they are tested against) are in
:mod:`scanner.metrics`, re-exported here.

Metrics rows follow :data:`scanner.schemas.METRICS`: one per (data TF, model TF, regime, split).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from scanner.data_loading import RowFilter, iter_batches, partition_files, window_width
from scanner.errors import InputError
from scanner.io import write_bytes_atomic, write_parquet_atomic
from scanner.metrics import (  # noqa: F401  (re-exported)
    average_precision,
    average_precision_naive,
    bce_with_logits,
    pr_curve,
    roc_auc,
    roc_auc_naive,
    roc_curve,
)
from scanner.models.checkpoint import record_path
from scanner.schemas import METRICS
from scanner.store import RunDir, part_name

if TYPE_CHECKING:
    import torch

    from scanner.train.baselines import Baselines

METRIC_KEY = ("tf", "model_tf", "regime", "split")


def metric_row(
    tf: str,
    model_tf: str,
    regime: str,
    split: str,
    labels: np.ndarray,
    logits: np.ndarray,
    scores: np.ndarray,
    *,
    baselines: dict[str, np.ndarray] | None = None,
    member_logits: np.ndarray | None = None,
) -> dict[str, Any]:
    """One METRICS row from labels, model logits and motif scores of one partition.

    Parameters
    ----------
    labels, logits, scores : numpy.ndarray, shape (n,)
    baselines : dict, optional
        ``{"kmer": scores, "site": scores}`` of fitted baselines on the same rows (the motif score is
        always one). Default: the motif score only.
    member_logits : numpy.ndarray, shape (M, n), optional
        Each ensemble member's logits (for the spread over seeds). Default: one network.
    """
    y = np.asarray(labels).astype(bool)
    has = bool(y.size)
    row: dict[str, Any] = {
        "tf": tf,
        "model_tf": model_tf,
        "regime": regime,
        "split": split,
        "n": int(y.size),
        "n_pos": int(y.sum()),
        "n_neg": int(y.size - y.sum()),
        "auroc": roc_auc(y, logits) if has else None,
        "auprc": average_precision(y, logits) if has else None,
        "score_auroc": roc_auc(y, scores) if has else None,
        "score_auprc": average_precision(y, scores) if has else None,
        "loss": bce_with_logits(y, logits),
        "members": 1 if member_logits is None else len(member_logits),
    }
    for name, values in (baselines or {}).items():
        if name != "score":
            row[f"{name}_auroc"] = roc_auc(y, values) if has else None
            row[f"{name}_auprc"] = average_precision(y, values) if has else None
    base = {b: row.get(f"{b}_auroc") for b in ("score", "kmer", "site") if row.get(f"{b}_auroc") is not None}
    if base:
        best = max(base, key=lambda b: base[b])
        row["best_baseline"] = best
        row["beats_baselines"] = None if row["auroc"] is None else bool(row["auroc"] > base[best])
    if member_logits is not None and has:
        aucs = [a for a in (roc_auc(y, z) for z in member_logits) if a is not None]
        if aucs:
            row["member_auroc_mean"] = float(np.mean(aucs))
            row["member_auroc_std"] = float(np.std(aucs))
    return row


def predict_files(
    model: torch.nn.Module,
    files: Sequence[Path],
    *,
    width: int,
    batch_size: int = 256,
    rc_average: bool = False,
    device: str = "cpu",
    row_filter: RowFilter | None = None,
    members: bool = False,
) -> tuple[np.ndarray, ...]:
    """Stream a partition through ``model`` (eval mode, no grad; the model's mode is restored).

    Parameters
    ----------
    row_filter : RowFilter, optional
        Score only the rows it keeps. Default: every row.
    members : bool, optional
        Also return each ensemble member's logits (a plain network counts as one member).

    Returns
    -------
    (labels, logits, scores) or (labels, logits, scores, member_logits)
        int8, float32 and float32 arrays of shape (n,), in file order; ``member_logits`` (M, n) float32.
    """
    import torch

    from scanner.models import predict_logits
    from scanner.models.ensemble import Ensemble

    was_training = model.training
    model.eval()
    nets = list(model.members) if members and isinstance(model, Ensemble) else [model]
    ys, zs, ss, ms = [], [], [], []
    try:
        with torch.no_grad():
            for b in iter_batches(files, batch_size, width=width, row_filter=row_filter):
                x = torch.from_numpy(b.x).to(device)
                if members:
                    each = torch.stack([predict_logits(m, x, rc_average=rc_average).float() for m in nets])
                    ms.append(each.cpu().numpy())
                    zs.append(each.mean(0).cpu().numpy())
                else:
                    zs.append(predict_logits(model, x, rc_average=rc_average).float().cpu().numpy())
                ys.append(b.y.astype(np.int8))
                ss.append(b.score)
    finally:
        model.train(was_training)
    if not ys:
        empty = (np.zeros(0, np.int8), np.zeros(0, np.float32), np.zeros(0, np.float32))
        return (*empty, np.zeros((len(nets), 0), np.float32)) if members else empty
    out = (np.concatenate(ys), np.concatenate(zs), np.concatenate(ss))
    return (*out, np.concatenate(ms, axis=1)) if members else out


def evaluate_model(
    model: torch.nn.Module,
    data_root: str | Path,
    *,
    model_tf: str,
    regime: str,
    data_tfs: Sequence[str],
    splits: Sequence[str] = ("val", "test"),
    batch_size: int = 256,
    rc_average: bool = False,
    device: str = "cpu",
    seq_len: int | None = None,
    plot_dir: str | Path | None = None,
    baselines: Baselines | None = None,
) -> list[dict[str, Any]]:
    """Evaluate one model on the given TFs' partitions of its regime, beside the baselines.

    Parameters
    ----------
    model : torch.nn.Module
        The trained network (input ``(N, 4, W)``).
    data_root : path
        ``OUT/datasets``.
    model_tf, regime : str
        Whose model it is.
    data_tfs : sequence of str
        TFs whose partitions to score (``[model_tf]`` normally; every TF for the cross-TF matrix).
    splits : sequence of str, optional
        Default ``("val", "test")``.
    batch_size : int, optional
        Rows per forward pass. Default 256.
    rc_average : bool, optional
        Average the logits of each window and its reverse complement. Default False.
    device : str, optional
        Torch device of the model. Default ``"cpu"``.
    seq_len : int, optional
        The model's input length; windows of another length raise. Default: not checked.
    plot_dir : path, optional
        When given, ROC and PR curves of the model's own TF go to ``plot_dir/roc.png`` and ``pr.png``.
    baselines : Baselines, optional
        Fitted baselines of the model's TF and regime (:func:`scanner.train.baselines.fit_baselines`),
        scored on the model's own TF's rows. Default: the motif score only. An ensemble's members are
        always scored alone too (``member_auroc_mean``/``_std``).

    Returns
    -------
    list of dict
        METRICS rows.

    Raises
    ------
    InputError
        For a missing partition or a window length different from the model's input length.
    """
    rows, curves = [], {}
    for tf in data_tfs:
        for split in splits:
            files = partition_files(data_root, regime, tf, split)
            width = window_width(files)
            if seq_len is not None and width != seq_len:
                raise InputError(
                    f"windows are {width} bp but the model of {model_tf}/{regime} takes {seq_len} bp",
                    source=files[0],
                    field="window",
                )
            y, z, s, zm = predict_files(
                model, files, width=width, batch_size=batch_size, rc_average=rc_average, device=device, members=True
            )
            extra = None
            if baselines is not None and tf == model_tf:
                from scanner.train.baselines import read_rows

                extra = baselines.scores(read_rows(files))
            members = zm if len(zm) > 1 else None
            rows.append(metric_row(tf, model_tf, regime, split, y, z, s, baselines=extra, member_logits=members))
            if tf == model_tf:
                curves[split] = (y, z, {"motif score": s, **{k: v for k, v in (extra or {}).items() if k != "score"}})
    if plot_dir is not None and curves:
        plot_curves(curves, Path(plot_dir), title=f"{model_tf} / {regime}")
    return rows


def plot_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]], out_dir: Path, *, title: str = ""
) -> tuple[Path, Path]:
    """Write ``roc.png`` and ``pr.png`` (matplotlib Agg) for each split, with the baselines.

    The PR plot draws each split's prevalence (the precision of a random ranking) as a dashed line.

    Parameters
    ----------
    curves : dict
        ``{split: (labels, logits, {baseline name: scores})}``.
    out_dir : Path
        Directory for the two PNGs (written atomically).
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    paths = []
    for kind in ("roc", "pr"):
        fig = Figure(figsize=(4.2, 4.0), dpi=110)
        ax = fig.add_subplot()
        for split, (y, z, base) in curves.items():
            yb = np.asarray(y).astype(bool)
            if not yb.any() or yb.all():
                continue
            styles = [":", "--", "-."]
            pairs = [("model", z, "-")] + [(n, v, styles[i % 3]) for i, (n, v) in enumerate(base.items())]
            if kind == "pr":
                ax.axhline(yb.mean(), color="0.7", lw=0.8, ls="--", label=f"{split} prevalence ({yb.mean():.2f})")
            for name, values, style in pairs:
                if kind == "roc":
                    fx, fy = roc_curve(yb, values)
                    metric = roc_auc(yb, values)
                else:
                    fx, fy = pr_curve(yb, values)
                    metric = average_precision(yb, values)
                ax.plot(fx, fy, style, label=f"{split} {name} ({metric:.3f})", drawstyle="steps-post")
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="0.8", lw=0.8)
            ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC {title}")
        else:
            ax.set(xlabel="recall", ylabel="precision", title=f"PR {title}", ylim=(0, 1.02))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right" if kind == "roc" else "lower left")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        paths.append(write_bytes_atomic(buf.getvalue(), out_dir / part_name("models", kind)))
    return paths[0], paths[1]


def metrics_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """METRICS table from rows (NaN metrics become null), sorted by regime, tf, model_tf, split."""
    clean = []
    for r in rows:
        r = dict(r)
        for k in METRICS.names:
            v = r.get(k)
            if isinstance(v, float | np.floating):
                r[k] = None if math.isnan(v) else float(v)
            else:
                r[k] = v
        clean.append(r)
    clean.sort(key=lambda r: (r["regime"], r["tf"], r["model_tf"], r["split"]))
    return pa.Table.from_pylist(clean, schema=METRICS)


def write_metrics(rows: Sequence[dict[str, Any]], path: str | Path) -> pa.Table:
    """Merge rows into the metrics file at ``path`` (rows with the same key are replaced) atomically.

    Returns
    -------
    pyarrow.Table
        The whole merged table as written.

    Raises
    ------
    InputError
        If an existing file at ``path`` is not a METRICS table.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    new = metrics_table(rows)
    if path.exists():
        try:
            table = pq.read_table(path)
            for f in METRICS:  # files written before a column existed: that column is null
                if f.name not in table.column_names:
                    table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
            old = table.select(METRICS.names).cast(METRICS)
        except Exception as exc:
            raise InputError(f"existing metrics file cannot be merged: {exc}", source=path) from exc
        keys = {tuple(r[k] for k in METRIC_KEY) for r in new.to_pylist()}
        kept = [r for r in old.to_pylist() if tuple(r[k] for k in METRIC_KEY) not in keys]
        new = metrics_table(kept + new.to_pylist())
    write_parquet_atomic(new, path)
    return new


def format_metrics(table: pa.Table, split: str | None = None) -> str:
    """Plain-text table of METRICS rows for the terminal: the model beside its baselines.

    Columns: ``n`` (positives / negatives), model auROC and auPRC, the auROC of each baseline (motif
    score, k-mer regression, site regression), the ensemble's spread (member auROC mean +- sd) and a
    verdict: ``ok`` when the model beats every baseline, ``BELOW <baseline>`` otherwise.

    Parameters
    ----------
    split : str, optional
        Only rows of this split. Default: every row.
    """
    rows = [r for r in table.to_pylist() if split is None or r["split"] == split]

    def f(v: object, digits: int = 3) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    head = [
        "tf",
        "model_tf",
        "regime",
        "split",
        "n (pos/neg)",
        "auROC",
        "auPRC",
        "score",
        "k-mer",
        "site",
        "members",
        "vs baselines",
    ]
    cells = [head]
    for r in rows:
        spread = f"{r['members'] or 1}"
        if r.get("member_auroc_mean") is not None and (r["members"] or 1) > 1:
            spread += f" ({f(r['member_auroc_mean'])}+-{f(r['member_auroc_std'])})"
        verdict = (
            "-"
            if r.get("beats_baselines") is None
            else ("ok" if r["beats_baselines"] else f"BELOW {r['best_baseline']}")
        )
        cells.append(
            [
                r["tf"],
                r["model_tf"],
                r["regime"],
                r["split"],
                f"{r['n']} ({r['n_pos']}/{r['n_neg']})",
                f(r["auroc"]),
                f(r["auprc"]),
                f(r["score_auroc"]),
                f(r.get("kmer_auroc")),
                f(r.get("site_auroc")),
                spread,
                verdict,
            ]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 4 or i >= 10 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    return "\n".join(lines)


def below_baseline_warnings(table: pa.Table, split: str = "test") -> list[str]:
    """One warning line per model that does not beat its best baseline on ``split`` (its own TF's rows)."""
    out = []
    for r in table.to_pylist():
        if r["split"] == split and r["tf"] == r["model_tf"] and r.get("beats_baselines") is False:
            base = r["best_baseline"]
            out.append(
                f"model {r['model_tf']}/{r['regime']} does not beat the {base} baseline on the {split} rows "
                f"(auROC {r['auroc']:.3f} vs {r[base + '_auroc']:.3f}, n = {r['n']}): do not trust its "
                "predictions over that baseline's"
            )
    return out


def evaluate_checkpoint(
    model_dir: str | Path,
    data_root: str | Path,
    *,
    data_tfs: Sequence[str] | None = None,
    splits: Sequence[str] = ("val", "test"),
    batch_size: int = 256,
    rc_average: bool = False,
    plots: bool = True,
    threads: float | None = None,
    baselines_fit: bool = True,
) -> list[dict[str, Any]]:
    """Load a checkpoint and evaluate it (on its own TF by default); body of one Ray evaluation task.

    Parameters
    ----------
    model_dir : path
        ``OUT/models/tf=<tf>/regime=<regime>``.
    data_tfs : sequence of str, optional
        TFs whose partitions (of the model's regime) to score. Default: the model's own TF.
    plots : bool, optional
        Redraw ``roc.png`` / ``pr.png`` in ``model_dir`` (own TF only). Default True.
    threads : float, optional
        Torch threads to use (Ray tasks). Default: unchanged.
    baselines_fit : bool, optional
        Refit the model's baselines on its training rows and report them beside it (skipped when those
        rows are gone). Default True.

    Raises
    ------
    InputError
        Checkpoint or data problems (see :func:`evaluate_model`).
    """
    from scanner.models import load_checkpoint
    from scanner.runtime import set_torch_threads, torch_device
    from scanner.train.baselines import partition_baselines

    if threads is not None:
        set_torch_threads(threads)
    device = torch_device()
    model, meta = load_checkpoint(model_dir, map_location=device)
    tf, regime = meta.get("tf"), meta.get("regime")
    if not tf or not regime:
        raise InputError("model.json lacks 'tf' or 'regime'", source=record_path(model_dir))
    settings = meta.get("train_config") or {}
    baselines = None
    if baselines_fit and _has_train(data_root, tf, regime, settings.get("train_rows", "regime")):
        baselines = partition_baselines(
            data_root, tf, regime, train_rows=settings.get("train_rows", "regime"), seed=int(settings.get("seed", 0))
        )
    return evaluate_model(
        model,
        data_root,
        model_tf=tf,
        regime=regime,
        data_tfs=list(data_tfs or [tf]),
        splits=splits,
        batch_size=batch_size,
        rc_average=rc_average,
        device=device,
        seq_len=meta["spec"].seq_len,
        plot_dir=model_dir if plots else None,
        baselines=baselines,
    )


def _has_train(data_root: str | Path, tf: str, regime: str, train_rows: str) -> bool:
    """Whether the training rows the baselines are fitted on exist (they may have been deleted)."""
    from scanner.data_loading import available_partitions

    source = "all" if train_rows == "all" else regime
    return "train" in available_partitions(data_root).get((source, tf), set())


def evaluate_models(
    data_root: str | Path,
    models_root: str | Path,
    metrics_path: str | Path,
    *,
    tfs: Sequence[str] | None = None,
    regimes: Sequence[str] | None = None,
    cross_tf: bool = False,
    splits: Sequence[str] = ("val", "test"),
    batch_size: int = 256,
    rc_average: bool = False,
    use_ray: bool = True,
    address: str | None = None,
    log: Any = None,
) -> pa.Table:
    """Evaluate trained models, one Ray task per model, and merge the rows into ``metrics_path``.

    With ``cross_tf`` every model is applied to every TF's partitions of its regime (the reference's
    TF x TF matrix: rows with ``model_tf != tf``) and a heatmap of test auROC per regime is drawn
    beside the models (``models_root/cross_tf_<regime>.png``).

    Returns
    -------
    pyarrow.Table
        The rows of this evaluation (the file also keeps earlier rows with other keys).

    Raises
    ------
    InputError
        No models, a requested TF or regime without a model or data, missing partitions.
    """
    from scanner.data_loading import available_partitions
    from scanner.predict.apply import discover_models

    models = discover_models(models_root, tfs, regimes)
    have = available_partitions(data_root)
    jobs = []
    for m in models:
        data_tfs = sorted({t for (r, t) in have if r == m.regime}) if cross_tf else [m.tf]
        if tfs and cross_tf:
            data_tfs = [t for t in data_tfs if t in tfs]
        for t in data_tfs:
            for s in splits:
                partition_files(data_root, m.regime, t, s)
        jobs.append((m.path, data_tfs))
    say = log or (lambda _m: None)
    kwargs = dict(splits=tuple(splits), batch_size=batch_size, rc_average=rc_average)
    if use_ray:
        rows = _evaluate_on_ray(jobs, str(data_root), kwargs, address, say)
    else:
        rows = [r for path, d in jobs for r in evaluate_checkpoint(path, data_root, data_tfs=d, **kwargs)]
    table = metrics_table(rows)
    write_metrics(rows, metrics_path)
    if cross_tf:
        for regime in sorted({m.regime for m in models}):
            plot_cross_tf(table, regime, RunDir.of("models", models_root).part("cross_tf", regime=regime))
    return table


def _evaluate_on_ray(jobs: list, data_root: str, kwargs: dict, address: str | None, say: Any) -> list:
    from contextlib import nullcontext

    import ray

    from scanner.runtime import cluster_resources, describe_resources, ray_session

    with nullcontext() if ray.is_initialized() else ray_session(address):
        res = cluster_resources()
        opts = {"num_gpus": 1, "num_cpus": 1} if res.use_gpu else {"num_cpus": 1}
        task = ray.remote(max_retries=1, **opts)(evaluate_checkpoint)
        say(f"evaluating {len(jobs)} model(s) as Ray tasks, {describe_resources(opts)}")
        refs = [task.remote(path, data_root, data_tfs=d, threads=1, **kwargs) for path, d in jobs]
        try:
            return [r for rows in ray.get(refs) for r in rows]
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, InputError):
                raise cause from None
            raise


def plot_cross_tf(table: pa.Table, regime: str, path: Path, split: str = "test") -> Path | None:
    """Heatmap of auROC, model TF (rows) x data TF (columns), for one regime and split."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows = [r for r in table.to_pylist() if r["regime"] == regime and r["split"] == split]
    if not rows:
        return None
    model_tfs = sorted({r["model_tf"] for r in rows})
    data_tfs = sorted({r["tf"] for r in rows})
    m = np.full((len(model_tfs), len(data_tfs)), np.nan)
    for r in rows:
        if r["auroc"] is not None:
            m[model_tfs.index(r["model_tf"]), data_tfs.index(r["tf"])] = r["auroc"]
    size = 2.5 + 0.3 * max(len(model_tfs), len(data_tfs))
    fig = Figure(figsize=(size, size), dpi=110)
    ax = fig.add_subplot()
    im = ax.imshow(m, vmin=0.5, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(data_tfs)), data_tfs, rotation=90, fontsize=7)
    ax.set_yticks(range(len(model_tfs)), model_tfs, fontsize=7)
    ax.set(xlabel="instances of TF", ylabel="model of TF", title=f"{split} auROC, regime {regime}")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return write_bytes_atomic(buf.getvalue(), path)
