"""numba kernels behind :mod:`scanner.scan.pvalues` (compiled on first use, cached on disk)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def dp_pmf(q: np.ndarray, probs: np.ndarray, qmax: int) -> np.ndarray:  # pragma: no cover - numba
    """Distribution of Q = sum_j q[j, b_j] with b_j ~ probs independently; q (L, 4) int64 >= 0."""
    length = q.shape[0]
    cur = np.zeros(qmax + 1)
    nxt = np.zeros(qmax + 1)
    cur[0] = 1.0
    top = 0
    for j in range(length):
        colmax = 0
        for b in range(4):
            if q[j, b] > colmax:
                colmax = q[j, b]
        for k in range(top + colmax + 1):
            nxt[k] = 0.0
        for b in range(4):
            s = q[j, b]
            p = probs[b]
            for k in range(top + 1):
                v = cur[k]
                if v != 0.0:
                    nxt[k + s] += v * p
        top += colmax
        for k in range(top + 1):
            cur[k] = nxt[k]
    return cur


@numba.njit(cache=True, nogil=True)
def enumerate_tail(
    w: np.ndarray, bg: np.ndarray, suffix_max: np.ndarray, target: float, capacity: int
) -> tuple[np.ndarray, np.ndarray, int]:  # pragma: no cover - numba
    """Every configuration whose sequential float64 score is >= target, with its probability.

    Depth-first over columns 0..L-1; a branch is cut when its partial sum plus the best possible rest
    is below ``target`` (``suffix_max[j]`` = sum of column maxima from j on, with a safety margin
    applied by the caller). Returns (scores, probs, n); n = -1 when more than ``capacity`` exist.
    """
    length = w.shape[0]
    scores = np.empty(capacity)
    probs = np.empty(capacity)
    n = 0
    choice = np.zeros(length + 1, dtype=np.int64)
    partial = np.zeros(length + 1)
    pprob = np.ones(length + 1)
    depth = 0
    choice[0] = -1
    while depth >= 0:
        choice[depth] += 1
        if choice[depth] > 3:
            depth -= 1
            continue
        b = choice[depth]
        s = partial[depth] + w[depth, b]
        p = pprob[depth] * bg[b]
        if s + suffix_max[depth + 1] < target:
            continue
        if depth == length - 1:
            if s >= target:
                if n >= capacity:
                    return scores, probs, -1
                scores[n] = s
                probs[n] = p
                n += 1
            continue
        depth += 1
        partial[depth] = s
        pprob[depth] = p
        choice[depth] = -1
    return scores, probs, n


@numba.njit(cache=True, nogil=True)
def enumerate_all(w: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Sequential float64 sums and probabilities of all 4**L configurations of w (L, 4)."""
    length = w.shape[0]
    total = 4**length
    scores = np.zeros(total)
    probs = np.ones(total)
    size = 1
    for j in range(length):
        for k in range(size - 1, -1, -1):
            s = scores[k]
            p = probs[k]
            for b in range(3, -1, -1):
                scores[k * 4 + b] = s + w[j, b]
                probs[k * 4 + b] = p * bg[b]
        size *= 4
    return scores, probs


@numba.njit(cache=True, nogil=True)
def mitm_tail(
    a_desc: np.ndarray, pa_desc: np.ndarray, b_asc: np.ndarray, suffix_b: np.ndarray, s: float
) -> float:  # pragma: no cover - numba
    """P(A + B >= s) from A sorted descending and B ascending (suffix_b[i] = P(B >= b_asc[i]))."""
    total = 0.0
    nb = b_asc.shape[0]
    j = 0
    for i in range(a_desc.shape[0]):
        need = s - a_desc[i]
        while j < nb and b_asc[j] < need:
            j += 1
        if j >= nb:
            break
        total += pa_desc[i] * suffix_b[j]
    return total


@numba.njit(cache=True, nogil=True)
def tail_window(vals: np.ndarray, probs: np.ndarray, k_lo: int, k_hi: int) -> np.ndarray:  # pragma: no cover
    """``tail[i] = P(Q >= k_lo + i)`` for ``i = 0 .. k_hi - k_lo``, where ``Q = sum_c vals[c, x_c]``,
    ``x_c ~ probs[c]`` independently; vals (C, V) int64 >= 0, probs (C, V) float64.

    Only the partial sums that can still end in ``[k_lo, k_hi)`` are kept, as a dense array: a partial
    sum that can no longer reach ``k_lo`` is dropped, one already at ``k_hi`` or above is added to a
    single "reached" mass (the rest of the columns add >= 0), so memory is the widest such window.
    """
    n_cols, n_vals = vals.shape
    colmax = np.zeros(n_cols, dtype=np.int64)
    for c in range(n_cols):
        for v in range(n_vals):
            if vals[c, v] > colmax[c]:
                colmax[c] = vals[c, v]
    restmax = np.zeros(n_cols + 1, dtype=np.int64)
    for c in range(n_cols - 1, -1, -1):
        restmax[c] = restmax[c + 1] + colmax[c]
    # windows [lo_c, hi_c] of partial sums after c columns (empty when lo > hi)
    los = np.zeros(n_cols + 1, dtype=np.int64)
    his = np.zeros(n_cols + 1, dtype=np.int64)
    width = 1
    for c in range(n_cols):
        los[c + 1] = max(los[c], k_lo - restmax[c + 1])
        his[c + 1] = min(his[c] + colmax[c], k_hi - 1)
        width = max(width, his[c + 1] - los[c + 1] + 1)
    cur = np.zeros(width)
    nxt = np.zeros(width)
    cur[0] = 1.0 if k_hi > 0 else 0.0
    reached = 1.0 if k_hi <= 0 else 0.0
    for c in range(n_cols):
        lo, hi = los[c], his[c]
        nlo, nhi = los[c + 1], his[c + 1]
        if nhi >= nlo:
            for i in range(nhi - nlo + 1):
                nxt[i] = 0.0
        if hi >= lo:
            for v in range(n_vals):
                s = vals[c, v]
                p = probs[c, v]
                if p == 0.0:
                    continue
                q0 = max(lo, nlo - s)
                q1 = min(hi, k_hi - 1 - s)
                for q in range(q0, q1 + 1):
                    nxt[q + s - nlo] += cur[q - lo] * p
                acc = 0.0
                for q in range(max(lo, k_hi - s), hi + 1):
                    acc += cur[q - lo]
                reached += acc * p
        cur, nxt = nxt, cur
    lo, hi = los[n_cols], his[n_cols]
    out = np.zeros(k_hi - k_lo + 1)
    out[k_hi - k_lo] = reached
    for k in range(k_hi - 1, k_lo - 1, -1):
        m = cur[k - lo] if lo <= k <= hi else 0.0
        out[k - k_lo] = out[k - k_lo + 1] + m
    return out
