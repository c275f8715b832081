"""Ranking metrics with exact ties: auROC, average precision, their curves, and the logistic loss.

Ties are handled exactly: tied scores count one half in the auROC (the Mann-Whitney statistic with
mid-ranks) and are a single threshold in the precision-recall curve (average precision as in
scikit-learn: ``sum_k (R_k - R_{k-1}) P_k`` over distinct thresholds, highest first). The ``*_naive``
functions are the plain O(n^2) / O(n * thresholds) definitions the fast ones are tested against.
Nothing here knows about models or datasets (:mod:`scanner.evaluate` and the baselines use it).
"""

from __future__ import annotations

import numpy as np


def _check(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(bool).reshape(-1)
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve, ties counted one half (mid-ranks). O(n log n).

    Parameters
    ----------
    labels : array of {0, 1} or bool, shape (n,)
    scores : array of float, shape (n,)
        Higher means more likely positive.

    Returns
    -------
    float or None
        P(score_pos > score_neg) + 0.5 P(score_pos == score_neg); None when a class is absent.
    """
    y, s = _check(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # mid-rank (1-based) of each distinct value
    upper = np.cumsum(counts)
    midrank = upper - (counts - 1) / 2.0
    rank_sum = midrank[inverse][y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc_naive(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Reference auROC by comparing every positive with every negative (O(n_pos * n_neg))."""
    y, s = _check(labels, scores)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return None
    total = 0.0
    for p in pos:
        total += float(np.sum(p > neg)) + 0.5 * float(np.sum(p == neg))
    return total / (pos.size * neg.size)


def _threshold_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct threshold, highest first."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), y.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    return tps.astype(np.float64), fps.astype(np.float64), s_sorted[last]


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the precision-recall curve as average precision (step-wise, ties as one threshold).

    Returns
    -------
    float or None
        ``sum_k (R_k - R_{k-1}) P_k`` over distinct score thresholds; None when there is no positive.
    """
    y, s = _check(labels, scores)
    n_pos = int(y.sum())
    if n_pos == 0:
        return None
    tps, fps, _ = _threshold_counts(y, s)
    precision = tps / (tps + fps)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def average_precision_naive(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Reference average precision: for each distinct threshold t, precision and recall of ``s >= t``."""
    y, s = _check(labels, scores)
    n_pos = int(y.sum())
    if n_pos == 0:
        return None
    total, prev_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        called = s >= t
        tp = float(np.sum(called & y))
        precision = tp / float(np.sum(called))
        recall = tp / n_pos
        total += (recall - prev_recall) * precision
        prev_recall = recall
    return total


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr)`` at every distinct threshold, starting at (0, 0). Requires both classes."""
    y, s = _check(labels, scores)
    tps, fps, _ = _threshold_counts(y, s)
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos]


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision-recall curve ``(recall, precision)`` at every distinct threshold, highest first."""
    y, s = _check(labels, scores)
    tps, fps, _ = _threshold_counts(y, s)
    n_pos = max(int(y.sum()), 1)
    return tps / n_pos, tps / (tps + fps)


def bce_with_logits(labels: np.ndarray, logits: np.ndarray) -> float | None:
    """Mean binary cross-entropy of logits (numerically stable); None for no rows."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    if y.size == 0:
        return None
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))
