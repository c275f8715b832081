"""Motif-informed first layers: detectors set to the log-odds of known motifs, on both strands.

A filter of width ``w`` for a motif of ``L`` columns holds the motif's log-odds matrix (bits, FIMO's
pseudocount against the given background; :func:`scanner.motifs.log_odds`) transposed to ``(4, L)``
and centred (``(w - L) // 2`` zero columns before it); a motif longer than ``w`` keeps the ``w``
consecutive columns of highest information content. Each motif gets two filters: the matrix and its
reverse complement (rows and columns reversed), because the network scans the window's + strand.
The bias is ``-bias_fraction`` times the matrix's best score, so that after the ReLU a detector fires
on good matches only. The site branch's first filter is set to the TF's own matrix at the site's
position (flanks zero), so the network starts from the motif score.

When more motifs are offered than half the detectors, :func:`select_motifs` keeps the ones whose best
match per window (either strand) separates bound from unbound training windows best (largest
``|auROC - 0.5|``), always keeping the TF's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scanner.motifs import Background, Motif, log_odds


@dataclass(frozen=True)
class MotifFilter:
    """One motif as a detector: ``weight`` (4, w) float64 log-odds, ``bias``, its name and strand."""

    name: str
    motif_id: str
    strand: str
    weight: np.ndarray
    bias: float


def _crop(lo: np.ndarray, probs: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` consecutive columns of highest information content (all when shorter)."""
    if lo.shape[0] <= width:
        return lo
    info = (probs * np.log2(np.clip(probs, 1e-12, 1.0) / 0.25)).sum(1)
    sums = np.convolve(info, np.ones(width), mode="valid")
    best = int(np.argmax(sums))
    return lo[best : best + width]


def motif_filters(
    motifs: Sequence[Motif],
    width: int,
    *,
    background: Background | None = None,
    bias_fraction: float = 0.5,
) -> list[MotifFilter]:
    """Detector weights of each motif on both strands (forward first, then reverse complement).

    Parameters
    ----------
    motifs : sequence of Motif
    width : int
        Filter width ``w``.
    background : Background, optional
        Background of the log-odds. Default uniform.
    bias_fraction : float, optional
        Bias = ``-bias_fraction * max score``. Default 0.5.

    Returns
    -------
    list of MotifFilter
        ``2 * len(motifs)`` filters.
    """
    bg = background or Background.uniform()
    out = []
    for m in motifs:
        lo = _crop(log_odds(m, bg), m.probs, width)
        for strand, mat in (("+", lo), ("-", lo[::-1, ::-1])):
            w = np.zeros((4, width))
            off = (width - mat.shape[0]) // 2
            w[:, off : off + mat.shape[0]] = mat.T
            out.append(MotifFilter(m.name, m.motif_id, strand, w, -bias_fraction * float(mat.max(1).sum())))
    return out


def select_motifs(
    candidates: Sequence[Motif],
    codes: np.ndarray,
    labels: np.ndarray,
    keep: int,
    *,
    required: Sequence[Motif] = (),
    background: Background | None = None,
    max_windows: int = 2000,
    seed: int = 0,
) -> list[Motif]:
    """The ``keep`` motifs whose best match per window separates the classes best (required ones first).

    Parameters
    ----------
    candidates : sequence of Motif
    codes : numpy.ndarray of uint8, shape (n, W)
        Training windows (A=0, C=1, G=2, T=3, other=4).
    labels : numpy.ndarray, shape (n,)
        1 bound, 0 unbound.
    keep : int
        How many motifs to return in all.
    required : sequence of Motif, optional
        Always kept, first (the TF's own).
    background : Background, optional
        Log-odds background. Default uniform.
    max_windows : int, optional
        Windows scored at most (a seeded sample). Default 2000.
    seed : int, optional
        Seed of that sample. Default 0.

    Returns
    -------
    list of Motif
        ``required`` then the best-separating others, at most ``keep``.
    """
    import torch
    import torch.nn.functional as F

    from scanner.evaluate import roc_auc
    from scanner.genome import one_hot

    chosen = list(required)[:keep]
    ids = {m.motif_id for m in chosen}
    rest = [m for m in candidates if m.motif_id not in ids]
    room = keep - len(chosen)
    if room <= 0 or not rest:
        return chosen
    if len(rest) <= room or len(np.unique(labels)) < 2:
        return chosen + rest[:room]
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(labels))[:max_windows]
    x = torch.from_numpy(one_hot(codes[idx]))
    y = np.asarray(labels)[idx]
    bg = background or Background.uniform()
    gaps = []
    with torch.no_grad():
        for m in rest:
            lo = log_odds(m, bg)
            w = torch.from_numpy(np.stack([lo.T, lo[::-1, ::-1].T]).copy()).float()
            best = F.conv1d(x, w).amax(dim=(1, 2)).numpy() if x.shape[2] >= lo.shape[0] else np.zeros(len(y))
            auc = roc_auc(y, best)
            gaps.append(0.0 if auc is None else abs(auc - 0.5))
    order = np.argsort(-np.asarray(gaps), kind="stable")[:room]
    return chosen + [rest[i] for i in order]


def init_detectors(model: object, filters: Sequence[MotifFilter]) -> np.ndarray:
    """Write ``filters`` into the first detectors of a SiteContextNet (in place, a model being trained).

    Parameters
    ----------
    model : SiteContextNet
        A freshly built network (its first ``len(filters)`` detectors are overwritten; the rest keep
        their random initialisation).
    filters : sequence of MotifFilter
        At most the number of detectors; each filter's width must equal the detectors'.

    Returns
    -------
    numpy.ndarray of bool, shape (C,)
        Which detectors were set (to freeze them, if wanted).

    Raises
    ------
    ValueError
        If there are more filters than detectors or a width differs.
    """
    import torch

    conv = model.conv
    c, _, w = conv.weight.shape
    if len(filters) > c:
        raise ValueError(f"{len(filters)} motif filters for {c} detectors")
    set_rows = np.zeros(c, dtype=bool)
    with torch.no_grad():
        for i, f in enumerate(filters):
            if f.weight.shape != (4, w):
                raise ValueError(f"filter of {f.name} is {f.weight.shape[1]} wide, detectors are {w}")
            conv.weight[i] = torch.from_numpy(f.weight).to(conv.weight)
            conv.bias[i] = f.bias
            set_rows[i] = True
    return set_rows


def init_site_filter(model: object, own: Motif, *, background: Background | None = None) -> bool:
    """Set the site branch's first filter to the TF's own log-odds at the site's position (flanks zero).

    Returns False (nothing changed) when the motif is longer than the filter.
    """
    import torch

    lo = log_odds(own, background or Background.uniform())
    site = model.site_conv
    span = site.weight.shape[2]
    flank = (span - lo.shape[0]) // 2
    if flank < 0:
        return False
    with torch.no_grad():
        site.weight[0].zero_()
        site.weight[0, :, flank : flank + lo.shape[0]] = torch.from_numpy(lo.T.copy()).to(site.weight)
        site.bias[0] = 0.0
    return True
