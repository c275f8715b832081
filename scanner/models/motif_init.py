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

    from scanner.genome import one_hot
    from scanner.metrics import roc_auc

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


def enriched_kmers(
    codes: np.ndarray,
    labels: np.ndarray,
    *,
    k: int = 8,
    top: int = 4,
    radius: int = 250,
    exclude: tuple[int, int] | None = None,
    min_fraction: float = 0.05,
    max_windows: int = 5000,
    seed: int = 0,
) -> list[str]:
    """The k-mers whose presence near the site best separates bound from unbound windows (de novo seeds).

    Each window's k-mers within ``radius`` bp of its centre (outside ``exclude``, the site itself) are
    counted once per window, a k-mer and its reverse complement as one. A k-mer present in ``a`` of ``P``
    bound and ``b`` of ``N`` unbound windows scores the two-proportion z statistic of ``a / P > b / N``;
    k-mers in fewer than ``min_fraction`` of the bound windows are ignored, and a k-mer sharing a
    (k-2)-mer with a better one (either strand) is skipped as a shifted copy of it.

    Parameters
    ----------
    codes : numpy.ndarray of uint8, shape (n, W)
    labels : numpy.ndarray, shape (n,)
        1 bound, 0 unbound.
    k, top, radius : int, optional
        k-mer length (8), how many to return (4), half-width of the counted region (250 bp).
    exclude : (int, int), optional
        Window positions ``[a, b)`` not counted (the site and its flanks).
    min_fraction : float, optional
        Least share of bound windows holding a k-mer. Default 0.05.
    max_windows, seed : int, optional
        At most this many windows are counted (seeded sample). Defaults 5000 and 0.

    Returns
    -------
    list of str
        Up to ``top`` k-mers (upper case), best first; empty when a class is missing.
    """
    y = np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        return []
    if len(y) > max_windows:
        idx = np.sort(np.random.default_rng(seed).permutation(len(y))[:max_windows])
        codes, y = codes[idx], y[idx]
    w = codes.shape[1]
    lo, hi = max(0, w // 2 - radius), min(w, w // 2 + radius)
    region = codes[:, lo:hi]
    m = region.shape[1] - k + 1
    if m < 1:
        return []
    valid = region < 4
    base = np.where(valid, region, 0).astype(np.int64)
    key = base[:, :m].copy()
    ok = valid[:, :m].copy()
    for j in range(1, k):
        key = key * 4 + base[:, j : j + m]
        ok &= valid[:, j : j + m]
    if exclude is not None:
        starts = np.arange(lo, lo + m)
        ok &= ~((starts[None, :] + k > exclude[0]) & (starts[None, :] < exclude[1]))
    digits = 4 ** np.arange(k - 1, -1, -1)
    rc = ((3 - (key[..., None] // digits) % 4)[..., ::-1] * digits).sum(-1)
    canon = np.where(ok, np.minimum(key, rc), -1)
    present = {}
    for label in (True, False):
        rows = canon[y == label]
        pairs = np.unique(np.stack([np.repeat(np.arange(len(rows)), m), rows.ravel()], 1), axis=0)
        pairs = pairs[pairs[:, 1] >= 0]
        uniq, counts = np.unique(pairs[:, 1], return_counts=True)
        present[label] = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    cands = [km for km, a in present[True].items() if a >= max(3, min_fraction * n_pos)]
    a = np.array([present[True][km] for km in cands], dtype=float)
    b = np.array([present[False].get(km, 0) for km in cands], dtype=float)
    pool = (a + b) / (n_pos + n_neg)
    z = (a / n_pos - b / n_neg) / np.sqrt(np.maximum(pool * (1 - pool) * (1 / n_pos + 1 / n_neg), 1e-12))
    order = np.argsort(-z, kind="stable")
    chosen: list[str] = []
    cores: set[str] = set()
    comp = str.maketrans("ACGT", "TGCA")
    for i in order:
        if z[i] <= 0 or len(chosen) >= top:
            break
        word = "".join("ACGT"[(cands[i] // d) % 4] for d in digits)
        subs = {word[j : j + k - 2] for j in range(3)}
        subs |= {s[::-1].translate(comp) for s in subs}
        if subs & cores:
            continue
        cores |= subs
        chosen.append(word)
    return chosen


def kmer_motif(word: str, *, match: float = 0.85) -> Motif:
    """A motif whose consensus is ``word`` (``match`` on the letter, the rest shared by the others)."""
    probs = np.full((len(word), 4), (1 - match) / 3)
    probs[np.arange(len(word)), ["ACGT".index(c) for c in word]] = match
    return Motif(f"kmer:{word}", f"kmer:{word}", probs, 20, source="de novo k-mer seed")
