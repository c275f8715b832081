"""auROC / auPRC against plain definitions, loss, metrics file merging, curves."""

from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from scanner.errors import InputError
from scanner.evaluate import (
    average_precision,
    average_precision_naive,
    bce_with_logits,
    below_baseline_warnings,
    evaluate_models,
    format_metrics,
    metric_row,
    metrics_table,
    plot_curves,
    pr_curve,
    roc_auc,
    roc_auc_naive,
    roc_curve,
    write_metrics,
)
from scanner.schemas import METRICS


@pytest.mark.parametrize("seed", range(12))
def test_fast_metrics_equal_plain_definitions_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    y = rng.random(n) < rng.uniform(0.05, 0.95)
    # few distinct values -> many ties; seeds alternate between heavy ties and continuous scores
    s = rng.integers(0, 6, n).astype(float) if seed % 2 == 0 else rng.normal(size=n) + y
    if y.all() or not y.any():
        y[0] = not y[0]
    assert roc_auc(y, s) == pytest.approx(roc_auc_naive(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(average_precision_naive(y, s), abs=1e-12)


def test_hand_computed_values():
    y = np.array([1, 0, 1])
    s = np.array([0.9, 0.8, 0.7])
    # thresholds .9 (P=1, R=.5), .8 (P=.5, R=.5), .7 (P=2/3, R=1)
    assert average_precision(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert roc_auc(y, s) == pytest.approx(0.5)  # (1 > 0.8) + (0.7 < 0.8)
    # all tied: one threshold, chance auROC, AP = prevalence
    assert roc_auc([1, 0, 0, 1], [3, 3, 3, 3]) == 0.5
    assert average_precision([1, 0, 0, 0], [3, 3, 3, 3]) == pytest.approx(0.25)
    assert roc_auc([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0
    assert roc_auc([1, 1, 0, 0], [1, 2, 3, 4]) == 0.0


def test_one_class_gives_none():
    assert roc_auc([1, 1], [0.1, 0.2]) is None
    assert roc_auc([0, 0], [0.1, 0.2]) is None
    assert average_precision([0, 0], [0.1, 0.2]) is None
    assert average_precision([1, 1], [0.1, 0.2]) == 1.0
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="length"):
        roc_auc([0, 1], [0.1])


def test_curves_end_points_and_area():
    rng = np.random.default_rng(3)
    y = rng.random(200) < 0.4
    s = rng.normal(size=200) + y
    fpr, tpr = roc_curve(y, s)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, s))
    recall, precision = pr_curve(y, s)
    assert recall[-1] == 1.0 and precision[-1] == pytest.approx(y.mean())


def test_bce_matches_torch():
    import torch

    rng = np.random.default_rng(0)
    y = (rng.random(50) < 0.5).astype(float)
    z = rng.normal(scale=30, size=50)  # large logits: must stay finite
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y)).item()
    assert bce_with_logits(y, z) == pytest.approx(expected, rel=1e-10)
    assert bce_with_logits([], []) is None


def _row(tf="A", model_tf="A", regime="pvalue", split="test", seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random(40) < 0.5
    return metric_row(tf, model_tf, regime, split, y, rng.normal(size=40) + 2 * y, rng.normal(size=40))


def test_metric_row_fields_and_table_schema():
    row = _row()
    assert row["n"] == 40 and row["n_pos"] + row["n_neg"] == 40
    assert 0.5 < row["auroc"] <= 1.0
    t = metrics_table([row, _row(split="val"), metric_row("A", "A", "r", "test", [], [], [])])
    assert t.schema.equals(METRICS, check_metadata=False)
    empty = next(r for r in t.to_pylist() if r["n"] == 0)
    assert empty["auroc"] is None and empty["loss"] is None
    assert "auROC" in format_metrics(t).splitlines()[0]


def test_metric_row_compares_the_model_with_its_baselines():
    y = np.array([1, 1, 1, 0, 0, 0])
    logits = np.array([3.0, 2.0, 1.0, 0.0, -1.0, -2.0])  # perfect
    score = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    kmer = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.0])
    members = np.stack([logits, -logits])  # one perfect, one reversed member
    row = metric_row("A", "A", "r", "test", y, logits, score, baselines={"kmer": kmer}, member_logits=members)
    assert row["kmer_auroc"] == pytest.approx(roc_auc(y, kmer)) and "site_auroc" not in row
    assert row["best_baseline"] == "kmer" and row["beats_baselines"] is True
    assert row["members"] == 2 and row["member_auroc_mean"] == pytest.approx(0.5)
    assert row["member_auroc_std"] == pytest.approx(0.5)
    worse = metric_row("A", "A", "r", "test", y, -logits, score, baselines={"kmer": kmer})
    assert worse["beats_baselines"] is False
    t = metrics_table([row, worse | {"split": "val"}])
    text = format_metrics(t)
    assert "ok" in text and "BELOW kmer" in text
    (warning,) = below_baseline_warnings(t, split="val")
    assert "A/r" in warning and "kmer" in warning


def test_write_metrics_merges_and_replaces_by_key(tmp_path):
    path = tmp_path / "metrics.parquet"
    write_metrics([_row(tf="A", seed=1), _row(tf="B", model_tf="B", seed=2)], path)
    new_a = _row(tf="A", seed=3)
    merged = write_metrics([new_a], path)
    rows = pq.read_table(path).to_pylist()
    assert len(rows) == merged.num_rows == 2
    a = next(r for r in rows if r["tf"] == "A")
    assert a["auroc"] == pytest.approx(new_a["auroc"])
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="cannot be merged"):
        write_metrics([new_a], tmp_path / "bad.parquet")


def test_plot_curves_writes_pngs(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.random(100) < 0.5
    curves = {"test": (y, rng.normal(size=100) + y, {"motif score": rng.normal(size=100)})}
    roc, pr = plot_curves(curves, tmp_path, title="A / pvalue")
    for p in (roc, pr):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not math.isnan(roc_auc(y, curves["test"][1]))


def test_evaluate_models_cross_tf(tmp_path):
    import torch

    from scanner.models import ModelSpec, build_model, save_checkpoint
    from scanner.toydata import write_toy_datasets

    data = write_toy_datasets(tmp_path / "datasets", tfs=("A", "B"), sizes={"val": 30, "test": 40})
    for i, tf in enumerate(("A", "B")):
        torch.manual_seed(i)
        spec = ModelSpec(seq_len=200)
        save_checkpoint(
            build_model(spec).eval(),
            spec,
            tmp_path / "models" / f"tf={tf}" / "regime=pvalue",
            {"tf": tf, "regime": "pvalue"},
        )
    metrics = tmp_path / "metrics.parquet"
    t = evaluate_models(data, tmp_path / "models", metrics, cross_tf=True, use_ray=False)
    pairs = {(r["tf"], r["model_tf"], r["split"]) for r in t.to_pylist()}
    assert pairs == {(a, b, s) for a in "AB" for b in "AB" for s in ("val", "test")}
    assert all(r["n"] == (30 if r["split"] == "val" else 40) for r in t.to_pylist())
    assert (tmp_path / "models" / "cross_tf_pvalue.png").read_bytes()[:4] == b"\x89PNG"
    assert pq.read_table(metrics).num_rows == 8
    with pytest.raises(InputError, match="no model for tf 'C'"):
        evaluate_models(data, tmp_path / "models", metrics, tfs=["C"], use_ray=False)
