"""The baselines every model is measured against, fitted and scored on the model's own rows.

* ``score``: the motif log-odds score of the instance (no fitting).
* ``kmer``: logistic regression on the window's k-mer spectrum, k = 1..6, each k-mer merged with its
  reverse complement (2,772 frequencies; a gkm-SVM stand-in).
* ``site``: logistic regression on the one-hot site and 15 bp on either side, read on the motif's
  strand, plus the motif score (what a PWM misses at the site itself).

The regressions standardise their features and choose the L2 strength ``C`` from
:data:`C_GRID` by validation auROC (the validation loss when one class is missing); training rows
above ``max_rows`` are subsampled (seeded). Nothing here shares code with the networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from scanner.data_loading import RowFilter, windows_to_codes
from scanner.errors import InputError
from scanner.genome import reverse_complement_codes
from scanner.io import open_parquet

BASELINES = ("score", "kmer", "site")
C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
KMAX = 6
SITE_FLANK = 15


@dataclass(frozen=True)
class Rows:
    """Rows of a partition in memory: window codes (n, W) uint8, labels, motif scores, strands, site lengths."""

    codes: np.ndarray
    y: np.ndarray
    score: np.ndarray
    strand: np.ndarray
    site_len: np.ndarray


def read_rows(files: Sequence[Path], *, row_filter: RowFilter | None = None) -> Rows:
    """Read the rows of DATASETS files into memory (for the baselines; the networks stream).

    Raises
    ------
    InputError
        For a missing column or a malformed window (see :func:`scanner.data_loading.windows_to_codes`).
    """
    cols = ["window", "label", "score", "strand", "start", "end"]
    extra = [c for c in (row_filter.columns() if row_filter else ()) if c not in cols]
    parts = []
    for f in files:
        try:
            t = open_parquet(f).read(columns=cols + extra)
        except (pa.ArrowInvalid, KeyError) as exc:
            raise InputError(f"cannot read the baseline columns {cols}: {exc}", source=f) from exc
        if row_filter is not None:
            t = t.filter(pa.array(row_filter.mask(t)))
        parts.append((f, t))
    codes = [windows_to_codes(t.column("window"), source=str(f)) for f, t in parts]
    cat = pa.concat_tables([t for _, t in parts]) if parts else None
    if cat is None or cat.num_rows == 0:
        return Rows(np.zeros((0, 0), np.uint8), np.zeros(0, np.int8), np.zeros(0), np.zeros(0, "<U1"), np.zeros(0, int))
    return Rows(
        np.concatenate(codes),
        cat.column("label").to_numpy().astype(np.int8),
        cat.column("score").to_numpy().astype(np.float64),
        np.asarray(cat.column("strand").to_pylist()),
        (cat.column("end").to_numpy() - cat.column("start").to_numpy()).astype(np.int64),
    )


def _canonical_index(k: int) -> tuple[np.ndarray, int]:
    """Map each k-mer index to the index of its canonical (min of itself and reverse complement) class."""
    idx = np.arange(4**k)
    digits = (idx[:, None] // 4 ** np.arange(k - 1, -1, -1)) % 4
    rc = ((3 - digits[:, ::-1]) * 4 ** np.arange(k - 1, -1, -1)).sum(1)
    canon = np.minimum(idx, rc)
    classes, inverse = np.unique(canon, return_inverse=True)
    return inverse, len(classes)


def kmer_spectrum(codes: np.ndarray, kmax: int = KMAX, chunk: int = 2048) -> np.ndarray:
    """Frequencies of every k-mer (k = 1..kmax) merged with its reverse complement, per window.

    Parameters
    ----------
    codes : numpy.ndarray of uint8, shape (n, W)
    kmax : int, optional
        Longest k. Default 6.

    Returns
    -------
    numpy.ndarray of float32, shape (n, F)
        Count of each canonical k-mer over the windows' A/C/G/T-only k-mers, divided by ``W - k + 1``.
    """
    n, w = codes.shape
    out = []
    valid = codes < 4
    base = np.where(valid, codes, 0).astype(np.int64)
    for k in range(1, kmax + 1):
        inverse, n_classes = _canonical_index(k)
        m = w - k + 1
        feats = np.zeros((n, n_classes), dtype=np.float32)
        if m > 0:
            for lo in range(0, n, chunk):
                b = base[lo : lo + chunk]
                ok = valid[lo : lo + chunk, :m].copy()
                key = b[:, :m].copy()
                for j in range(1, k):
                    key = key * 4 + b[:, j : j + m]
                    ok &= valid[lo : lo + chunk, j : j + m]
                cls = np.where(ok, inverse[key], n_classes)  # invalid k-mers to a spill class
                rows = np.repeat(np.arange(len(b)), m) * (n_classes + 1)
                counts = np.bincount((rows + cls.ravel()), minlength=len(b) * (n_classes + 1))
                feats[lo : lo + len(b)] = counts.reshape(len(b), n_classes + 1)[:, :n_classes] / m
        out.append(feats)
    return np.concatenate(out, axis=1)


def site_onehot(codes: np.ndarray, strand: np.ndarray, site_len: int, flank: int = SITE_FLANK) -> np.ndarray:
    """One-hot of the site and ``flank`` bases on either side, read on the motif's strand.

    The window is centred on the site (``W // 2 - L // 2`` is its first base on the + strand); rows on
    the - strand are reverse-complemented first. Returns float32 ``(n, 4 * (L + 2 * flank))``.
    """
    n, w = codes.shape
    span = site_len + 2 * flank
    a = w // 2 - site_len // 2 - flank
    ar = w - w // 2 - (site_len - site_len // 2) - flank
    if min(a, ar) < 0 or max(a, ar) + span > w:
        raise ValueError(f"a {site_len} bp site with {flank} bp flanks does not fit {w} bp windows")
    seg = codes[:, a : a + span].copy()
    minus = np.asarray(strand) == "-"
    if minus.any():
        seg[minus] = reverse_complement_codes(codes[minus])[:, ar : ar + span]
    onehot = np.zeros((n, span, 4), dtype=np.float32)
    acgt = seg < 4
    onehot[np.nonzero(acgt)[0], np.nonzero(acgt)[1], seg[acgt]] = 1.0
    onehot[~acgt] = 0.25
    return onehot.reshape(n, -1)


class _Regression:
    """Standardised L2 logistic regression with ``C`` chosen on validation rows."""

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        from scanner.metrics import bce_with_logits, roc_auc

        self.scaler = StandardScaler().fit(x_train)
        xt, xv = self.scaler.transform(x_train), self.scaler.transform(x_val)
        best: tuple[float, float, Any] | None = None
        for c in C_GRID:
            model = LogisticRegression(C=c, max_iter=2000).fit(xt, y_train)
            z = model.decision_function(xv)
            auc = roc_auc(y_val, z) if len(y_val) else None
            key = (auc if auc is not None else -np.inf, -(bce_with_logits(y_val, z) or 0.0))
            if best is None or key > best[:2]:
                best = (*key, model)
        self.model = best[2]
        self.c = float(self.model.C)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.model.decision_function(self.scaler.transform(x)) if len(x) else np.zeros(0)


@dataclass
class Baselines:
    """Fitted baselines of one (TF, regime): call :meth:`scores` on any rows of the same window width."""

    site_len: int
    kmer: _Regression | None
    site: _Regression | None

    def scores(self, rows: Rows) -> dict[str, np.ndarray]:
        """``{baseline: scores}`` for ``rows`` (higher = more likely bound); fitted ones only."""
        out = {"score": rows.score}
        if self.kmer is not None:
            out["kmer"] = self.kmer(kmer_spectrum(rows.codes))
        if self.site is not None:
            out["site"] = self.site(_site_features(rows, self.site_len))
        return out


def _site_features(rows: Rows, site_len: int) -> np.ndarray:
    return np.column_stack([site_onehot(rows.codes, rows.strand, site_len), rows.score])


def fit_baselines(train: Rows, val: Rows, *, max_rows: int = 20_000, seed: int = 0) -> Baselines:
    """Fit the k-mer and site regressions on ``train`` (C chosen on ``val``).

    A regression is skipped (None) when the training rows hold one class only.

    Parameters
    ----------
    train, val : Rows
    max_rows : int, optional
        Training rows used at most (seeded sample). Default 20,000.
    seed : int, optional
        Seed of that sample. Default 0.
    """
    if len(train.y) > max_rows:
        keep = np.sort(np.random.default_rng(seed).permutation(len(train.y))[:max_rows])
        train = Rows(*(getattr(train, f)[keep] for f in ("codes", "y", "score", "strand", "site_len")))
    site_len = int(train.site_len.max()) if len(train.site_len) else 1
    if len(np.unique(train.y)) < 2:
        return Baselines(site_len, None, None)
    kmer = _Regression(kmer_spectrum(train.codes), train.y, kmer_spectrum(val.codes), val.y)
    try:
        site = _Regression(_site_features(train, site_len), train.y, _site_features(val, site_len), val.y)
    except ValueError:  # the site and its flanks do not fit the window
        site = None
    return Baselines(site_len, kmer, site)


def partition_baselines(
    data_root: str | Path, tf: str, regime: str, *, train_rows: str = "regime", seed: int = 0
) -> Baselines:
    """Baselines of one (TF, regime) fitted on its training rows as a model of those settings was.

    ``train_rows="all"`` uses every labelled training instance (inside open chromatin for ``open``).

    Raises
    ------
    InputError
        For a missing partition (the message lists what exists).
    """
    from scanner.data_loading import partition_files
    from scanner.labels.datasets import ALL_ROWS

    if train_rows == ALL_ROWS:
        train = read_rows(
            partition_files(data_root, ALL_ROWS, tf, "train"),
            row_filter=RowFilter(in_open=regime == "open") if regime == "open" else None,
        )
    else:
        train = read_rows(partition_files(data_root, regime, tf, "train"))
    return fit_baselines(train, read_rows(partition_files(data_root, regime, tf, "val")), seed=seed)
