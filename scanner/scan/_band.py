"""Rigorous hit/no-hit bracket of a long motif's threshold band, from a fine windowed grid.

Used by :class:`scanner.scan.pvalues.PValueTable` for motifs whose upper tail is too large to enumerate
and whose halves are too large for meet-in-the-middle (in JASPAR: the longest, e.g. CTCF MA1929.2 and
MA1930.2 with 31-33 columns). The score of a window is ``S = sum_j W[j, x_j]``; the tail is
``T(s) = P(S >= s - TIE_TOLERANCE)`` under the background.

Method. Consecutive columns are grouped in blocks of :data:`BLOCK` columns; each block's ``4**BLOCK``
words get their exact float64 partial score ``v`` and probability, and ``v = min_b + eps * q + r`` with
an integer ``q`` and a residual ``0 <= r < eps`` (one rounding per block rather than per column). Then
``S = base + eps * Q + R`` with ``Q = sum q`` and ``R`` between the sums of the blocks' smallest and
largest residuals ``[r_min, r_max]``, so ``P(Q >= k1(s)) <= T(s) <= P(Q >= k2(s))`` with
``k1 = ceil((s - base - r_min) / eps)`` and ``k2 = ceil((s - base - r_max) / eps)`` (plus a margin for
float rounding). ``P(Q >= k)`` is computed exactly (up to float64 rounding of the probabilities) for
the ``k`` of the threshold band only, by a dynamic program that keeps the partial sums that can still
land there (:func:`~scanner.scan._pvalue_kernels.tail_window`); ``eps`` is chosen so that this window
holds at most :data:`MAX_CELLS` cells.

Because ``T`` is non-increasing, this gives two scores ``miss_to < hit_from``: every window scoring at
most ``miss_to`` is proven not to be a hit, every window scoring at least ``hit_from`` is proven to be
one. The bracket between them is about ``r_max - r_min`` wide (~1e-4 bits for CTCF's 33 columns);
a window scoring inside it cannot be decided at this precision: the scan does not report it as a hit
and counts it (``undecided_windows`` in ``_scan.json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Columns per block (one rounding per block). 2 gives the same precision per unit of work as 1 with
#: half the memory; 3 costs 1.8x the work for 1.5x the precision.
BLOCK = 2
#: Most cells of the dynamic program's window (two float64 buffers of this size: 64 MiB).
MAX_CELLS = 1 << 22
#: Margin (bits) for float64 rounding between the sequential score and the blocks' sums.
FLOAT_MARGIN = 1e-10


@dataclass
class FineBand:
    """Bounds of ``T(s)`` for scores in a band, and the proven hit/no-hit bracket.

    Attributes
    ----------
    miss_to, hit_from : float
        Windows scoring ``<= miss_to`` are proven misses, ``>= hit_from`` proven hits.
    eps, base, r_min, r_max : float
        The grid (see the module docstring).
    k_lo : int
        Absolute index of ``tail[0]``.
    tail : numpy.ndarray of float64
        ``tail[i] = P(Q >= k_lo + i)``.
    tie : float
        Tie tolerance subtracted from a score before bounding ``P(S >= s - tie)``.
    """

    miss_to: float
    hit_from: float
    eps: float
    base: float
    r_min: float
    r_max: float
    k_lo: int
    tail: np.ndarray
    tie: float

    def _at(self, k: np.ndarray) -> np.ndarray:
        return self.tail[np.clip(k - self.k_lo, 0, self.tail.size - 1)]

    def lower(self, s: np.ndarray) -> np.ndarray:
        """Lower bound of ``P(S >= s - tie)`` (scores inside the band)."""
        x = s - self.tie - self.base - self.r_min + FLOAT_MARGIN
        return self._at(np.ceil(x / self.eps).astype(np.int64))

    def upper(self, s: np.ndarray) -> np.ndarray:
        """Upper bound of ``P(S >= s - tie)`` (scores inside the band)."""
        x = s - self.tie - self.base - self.r_max - FLOAT_MARGIN
        return self._at(np.ceil(x / self.eps).astype(np.int64))


def _blocks(w: np.ndarray, bg: np.ndarray, block: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each block's exact partial scores (summed in column order) and probabilities."""
    values, probs = [], []
    for c0 in range(0, w.shape[0], block):
        v = np.zeros(1)
        p = np.ones(1)
        for j in range(c0, min(c0 + block, w.shape[0])):
            v = (v[:, None] + w[j][None, :]).ravel()  # sequential: earlier columns first
            p = (p[:, None] * bg[None, :]).ravel()
        values.append(v)
        probs.append(p)
    return values, probs


def fine_band(
    w: np.ndarray,
    bg: np.ndarray,
    threshold: float,
    lo_score: float,
    hi_score: float,
    tie: float,
    max_cells: int = MAX_CELLS,
    block: int = BLOCK,
) -> FineBand:
    """The proven bracket of the hit boundary for scores in ``[lo_score, hi_score]``.

    Parameters
    ----------
    w : numpy.ndarray of float64, shape (L, 4)
        Log-odds (bits).
    bg : numpy.ndarray of float64, shape (4,)
        Background (A, C, G, T).
    threshold : float
        Hits have ``T(s) < threshold``.
    lo_score, hi_score : float
        The band: the caller knows every score below ``lo_score`` is a miss and every score above
        ``hi_score`` a hit.
    tie : float
        Tie tolerance (bits).
    max_cells : int
        Largest window of the dynamic program. Default :data:`MAX_CELLS`.
    block : int
        Columns per block. Default :data:`BLOCK`.

    Returns
    -------
    FineBand
    """
    from scanner.scan._pvalue_kernels import tail_window

    values, probs = _blocks(w, bg, block)
    mins = np.array([v.min() for v in values])
    spans = np.array([v.max() - v.min() for v in values])
    # the window's widest point, in bits: partial sums that can still end in the band
    proc = np.cumsum(spans)
    rest = np.concatenate([np.cumsum(spans[::-1])[::-1][1:], [0.0]])
    widest = float(np.max(np.minimum(proc, rest + (hi_score - lo_score))))
    eps = max(widest, 1e-6) / max_cells
    q = [np.floor((v - m) / eps).astype(np.int64) for v, m in zip(values, mins, strict=True)]
    resid = [v - m - qq * eps for v, m, qq in zip(values, mins, q, strict=True)]
    base = float(mins.sum())
    r_min = float(sum(r.min() for r in resid))
    r_max = float(sum(r.max() for r in resid))
    n_vals = max(v.size for v in values)
    vals = np.zeros((len(values), n_vals), dtype=np.int64)
    prob = np.zeros((len(values), n_vals))
    for c, (qq, p) in enumerate(zip(q, probs, strict=True)):
        vals[c, : qq.size] = qq
        prob[c, : p.size] = p
    k_lo = max(0, math.ceil((lo_score - tie - base - r_max - FLOAT_MARGIN) / eps) - 1)
    k_hi = max(k_lo + 1, math.ceil((hi_score - tie - base - r_min + FLOAT_MARGIN) / eps) + 1)
    tail = tail_window(vals, prob, k_lo, k_hi)
    below = np.flatnonzero(tail < threshold)
    band = FineBand(-math.inf, math.inf, eps, base, r_min, r_max, k_lo, tail, tie)
    if below.size == 0:  # no proven hit inside the band (the caller's hi_score still holds)
        band.miss_to = base + r_min - FLOAT_MARGIN + tie + eps * k_hi
        return band
    kb = k_lo + int(below[0])
    # upper(s) < threshold  <=>  k2(s) >= kb  <=>  s > base + r_max + margin + tie + eps * (kb - 1)
    band.hit_from = math.nextafter(base + r_max + FLOAT_MARGIN + tie + eps * (kb - 1), math.inf)
    # lower(s) >= threshold  <=>  k1(s) <= kb - 1  <=>  s <= base + r_min - margin + tie + eps * (kb - 1)
    if kb > k_lo:
        band.miss_to = base + r_min - FLOAT_MARGIN + tie + eps * (kb - 1)
    return band
