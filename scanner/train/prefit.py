"""Start the site-and-context network as a regularised logistic regression on the site and composition.

The network's logit has two linear terms besides its dense head (:class:`scanner.models.sitectx.SiteContextNet`):
the first site filter's best match (a linear function of the one-hot site and its flanks) and a linear
term on the standardised k-mer composition of the window. :func:`fit_wide` fits both at once by L2
logistic regression on the training rows, standardised, with the site block scaled by ``alpha`` (a
separate penalty: ``alpha = 0`` leaves the site out), choosing ``(alpha, C)`` by validation auROC
(or by 5-fold cross-validation on the training rows when the validation rows are too few), writes
the solution into the network, freezes those terms and sets the dense head's output layer to zero.
The network then starts as that regression, its epoch 0 is a candidate for the kept epoch, and
training learns what the regression misses. On small real sets (yeast Pho4) the network alone fell
well short of a k-mer regression; started this way it cannot fall below it on validation rows
(benchmarks/RESULTS.md "Models").

For fitting, each row's site is read on its motif's strand (the data say which); the network reads
it on the better-matching orientation, which for a regression dominated by the motif picks the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scanner.train.baselines import Rows, site_onehot

ALPHAS = (0.0, 0.3, 1.0)
C_GRID = (1e-3, 1e-2, 1e-1)
MAX_ROWS = 20_000


@dataclass(frozen=True)
class WideFit:
    """What :func:`fit_wide` chose: ``alpha`` (site block scale), ``C``, how (``"val"``/``"cv"``), rows used."""

    alpha: float
    c: float
    selected_by: str
    rows: int
    auroc: float


def composition_features(net: Any, codes: np.ndarray, batch: int = 512) -> np.ndarray:
    """The network's own k-mer composition of each window (before standardisation): (n, F) float64."""
    import torch

    from scanner.genome import one_hot

    device = next(net.parameters()).device
    out = []
    with torch.no_grad():
        for lo in range(0, len(codes), batch):
            x = torch.from_numpy(one_hot(codes[lo : lo + batch])).to(device)
            out.append(net.composition(net.kmer_indicators(x)).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def _blocks(net: Any, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    kmer = composition_features(net, rows.codes) if net.kmax else np.zeros((len(rows.y), 0))
    site = site_onehot(rows.codes, rows.strand, net.site_len, net.site_flank).astype(np.float64)
    return kmer, site


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(0) if len(x) else np.zeros(x.shape[1])
    std = x.std(0) if len(x) else np.ones(x.shape[1])
    scale = np.divide(1.0, std, out=np.zeros_like(std), where=std > 1e-12)
    return mean, scale


def _design(kmer: np.ndarray, site: np.ndarray, stats: tuple, alpha: float) -> np.ndarray:
    (mk, sk), (ms, ss) = stats
    parts = [(kmer - mk) * sk]
    if alpha:
        parts.append(alpha * (site - ms) * ss)
    return np.concatenate(parts, 1)


def _select(
    kmer: np.ndarray, site: np.ndarray, y: np.ndarray, val: tuple | None, stats: tuple, seed: int, alphas: tuple
) -> tuple[float, float, str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from scanner.metrics import roc_auc

    best: tuple[float, float, float] | None = None
    how = "val" if val is not None else "cv"
    folds = None
    if val is None:
        k = int(min(5, np.bincount(y.astype(int)).min()))
        folds = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(kmer, y)) if k >= 2 else []
    for alpha in alphas:
        x = _design(kmer, site, stats, alpha)
        if x.shape[1] == 0:
            continue
        for c in C_GRID:
            if val is not None:
                vk, vs, vy = val
                z = LogisticRegression(C=c, max_iter=2000).fit(x, y).decision_function(_design(vk, vs, stats, alpha))
                auc = roc_auc(vy, z)
            elif folds:
                z = np.zeros(len(y))
                for tr, te in folds:
                    z[te] = LogisticRegression(C=c, max_iter=2000).fit(x[tr], y[tr]).decision_function(x[te])
                auc = roc_auc(y, z)
            else:
                auc = None
            key = (-np.inf if auc is None else auc, -alpha, -c)  # ties: the simpler, stronger-penalty model
            if best is None or key > best:
                best = key
    if best is None:
        return 0.0, C_GRID[0], how, float("nan")
    return -best[1], -best[2], how, float(best[0])


def fit_wide(
    net: Any,
    train: Rows,
    val: Rows | None,
    *,
    seed: int = 0,
    min_val_per_class: int = 20,
    max_rows: int = MAX_ROWS,
    alphas: tuple[float, ...] = ALPHAS,
) -> WideFit | None:
    """Fit the network's two linear terms by logistic regression and start it there (in place).

    Parameters
    ----------
    net : SiteContextNet
        A freshly built network this call may modify (on any device).
    train : Rows
        Training rows (windows, labels, strands); at most ``max_rows`` are used (seeded sample).
    val : Rows, optional
        Validation rows; used to choose ``(alpha, C)`` when they hold ``min_val_per_class`` rows of
        each class, otherwise 5-fold cross-validation on the training rows chooses.
    seed : int, optional
        Seed of the sample and the folds. Default 0.
    min_val_per_class, max_rows : int, optional
        See above. Defaults 20 and 20,000.
    alphas : tuple of float, optional
        Scales of the site block tried. Default :data:`ALPHAS`.

    Returns
    -------
    WideFit or None
        None when the training rows hold one class (nothing is changed).
    """
    import torch
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(train.y)) < 2:
        return None
    if len(train.y) > max_rows:
        keep = np.sort(np.random.default_rng(seed).permutation(len(train.y))[:max_rows])
        train = Rows(*(getattr(train, f)[keep] for f in ("codes", "y", "score", "strand", "site_len")))
    kmer, site = _blocks(net, train)
    stats = (_standardise(kmer), _standardise(site))
    use_val = val is not None and len(val.y) and np.bincount(val.y.astype(int), minlength=2).min() >= min_val_per_class
    val_blocks = (*_blocks(net, val), val.y) if use_val else None
    alpha, c, how, auc = _select(kmer, site, train.y, val_blocks, stats, seed, tuple(alphas))
    model = LogisticRegression(C=c, max_iter=2000).fit(_design(kmer, site, stats, alpha), train.y)
    coef, intercept = model.coef_[0], float(model.intercept_[0])
    nk = kmer.shape[1]
    (mk, sk), (ms, ss) = stats
    site_w = alpha * coef[nk:] * ss if alpha else np.zeros(site.shape[1])
    intercept -= float((site_w * ms).sum()) if alpha else 0.0
    with torch.no_grad():
        dev = net.fc2.weight.device
        span = net.site_conv.weight.shape[2]
        net.site_conv.weight[0] = torch.from_numpy(site_w.reshape(span, 4).T.copy()).to(dev)
        net.site_conv.bias[0] = 0.0
        if net.kmax:
            net.kmer_scale.mean.copy_(torch.from_numpy(mk))
            net.kmer_scale.scale.copy_(torch.from_numpy(sk))
            net.wide.weight.copy_(torch.from_numpy(coef[:nk][None]))
            net.wide.bias.fill_(intercept)
        net.fc2.weight.zero_()
        net.fc2.bias.fill_(0.0 if net.kmax else intercept)
    return WideFit(alpha, c, how, len(train.y), auc)
