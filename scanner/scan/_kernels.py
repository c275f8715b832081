"""numba kernels of the CPU scan (compiled once, cached on disk).

A stretch of sequence is first keyed by the K-mer (K = 9) starting at each position (and, when a
matrix uses buckets, the positions are counting-sorted by key). Each motif matrix is then scanned one of two ways:

* ``bucket`` (selective matrices): only positions whose K-mer, over the matrix's most informative K
  contiguous columns, can still reach the cut (its score there plus the best the other columns could
  add) are visited, through the sorted positions;
* ``sweep`` (matrices whose K best columns prune less, e.g. long, weak motifs, and every matrix when
  a scan has only a few, where sorting the positions would cost more than it saves): every
  position, looking its K-mer up in a bitset of the K-mers that pass the same bound (32 KiB) and
  scoring the survivors, which are read in order (cache-friendly).

Either way a surviving window is scored exactly in float64, in the motif's own column order.
"""

from __future__ import annotations

import numba
import numpy as np

#: Columns covered by the k-mer filter (9: 262,144 buckets; measured faster than 8 and 10).
K = 9
N_KMERS = 1 << (2 * K)
METHOD_BUCKET = 0
METHOD_SWEEP = 1


@numba.njit(cache=True, nogil=True)
def kmer_keys(codes: np.ndarray, sort: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """K-mer key at every position (non-ACGT and past-the-end bases read as A), and, when ``sort``, the
    positions sorted by key: ``order[starts[k]:starts[k + 1]]`` start with K-mer k (positions whose
    first base is not A/C/G/T are left out of ``order``); without ``sort`` both are empty."""
    n = codes.shape[0]
    keys = np.empty(n, dtype=np.int32)
    counts = np.zeros(N_KMERS + 1 if sort else 1, dtype=np.int64)
    acc = 0
    for i in range(n + K - 1):
        c = 0
        if i < n:
            c = codes[i]
            if c > 3:
                c = 0
        acc = ((acc << 2) | c) & (N_KMERS - 1)
        j = i - (K - 1)
        if j >= 0:
            keys[j] = acc
            if sort and codes[j] <= 3:
                counts[acc + 1] += 1
    if not sort:
        return keys, np.empty(0, dtype=np.int32), counts
    for k in range(N_KMERS):
        counts[k + 1] += counts[k]
    starts = counts.copy()
    fill = counts[:-1].copy()
    order = np.empty(starts[N_KMERS], dtype=np.int32)
    for j in range(n):
        if codes[j] <= 3:
            k = keys[j]
            order[fill[k]] = j
            fill[k] += 1
    return keys, order, starts


@numba.njit(cache=True, inline="always")
def _exact(codes, p, length, rev, w_all, ws):  # pragma: no cover - numba
    s = 0.0
    if rev:
        for j in range(length - 1, -1, -1):
            c = codes[p + j]
            if c > 3:
                return -np.inf
            s += w_all[ws + j, c]
    else:
        for j in range(length):
            c = codes[p + j]
            if c > 3:
                return -np.inf
            s += w_all[ws + j, c]
    return s


@numba.njit(cache=True, nogil=True, inline="always")
def _record(p, m, s, out_pos, out_mat, out_score, n_out):  # pragma: no cover - numba
    """Append one candidate; the new count, or -1 when the buffers are full."""
    if n_out >= out_pos.shape[0]:
        return -1
    out_pos[n_out] = p
    out_mat[n_out] = m
    out_score[n_out] = s
    return n_out + 1


@numba.njit(cache=True, nogil=True)
def scan_matrices(
    codes: np.ndarray,
    keys: np.ndarray,
    order: np.ndarray,
    starts: np.ndarray,
    method: np.ndarray,
    lengths: np.ndarray,
    reverse: np.ndarray,
    w_all: np.ndarray,
    w_start: np.ndarray,
    cuts: np.ndarray,
    win_offset: np.ndarray,
    pass_kmers: np.ndarray,
    pass_start: np.ndarray,
    sweep_bits: np.ndarray,
    sweep_index: np.ndarray,
    core_end: int,
    out_pos: np.ndarray,
    out_mat: np.ndarray,
    out_score: np.ndarray,
) -> int:  # pragma: no cover - numba
    """Windows (start, matrix, float64 score) with score >= ``cuts[m]``; -1 when the buffers are full."""
    n = codes.shape[0]
    n_out = 0
    for m in range(cuts.shape[0]):
        length = lengths[m]
        ws = w_start[m]
        cut = cuts[m]
        rev = reverse[m]
        last = min(n - length + 1, core_end)
        if method[m] == 0:
            off = win_offset[m]
            for t in range(pass_start[m], pass_start[m + 1]):
                k = pass_kmers[t]
                # Touch every window of the bucket first: independent loads overlap their cache misses.
                touch = 0
                for q in range(starts[k], starts[k + 1]):
                    p = order[q] - off
                    if p >= 0 and p < last:
                        touch += codes[p]
                if touch < 0:  # never true: keeps the touching loads from being optimised away
                    return -2
                for q in range(starts[k], starts[k + 1]):
                    p = order[q] - off
                    if p < 0 or p >= last:
                        continue
                    s = _exact(codes, p, length, rev, w_all, ws)
                    if s >= cut:
                        n_out = _record(p, m, s, out_pos, out_mat, out_score, n_out)
                        if n_out < 0:
                            return -1
        else:
            bits = sweep_bits[sweep_index[m]]
            off = win_offset[m]
            for p in range(last):
                key = keys[p + off]
                if not (bits[key >> 3] >> (key & 7)) & 1:
                    continue
                s = _exact(codes, p, length, rev, w_all, ws)
                if s >= cut:
                    n_out = _record(p, m, s, out_pos, out_mat, out_score, n_out)
                    if n_out < 0:
                        return -1
    return n_out


@numba.njit(cache=True, nogil=True)
def clean_windows(bad: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:  # pragma: no cover
    """True where ``bad[start:start + length]`` is all False."""
    out = np.ones(starts.shape[0], dtype=np.bool_)
    for i in range(starts.shape[0]):
        for j in range(starts[i], starts[i] + length):
            if bad[j]:
                out[i] = False
                break
    return out


@numba.njit(cache=True, nogil=True)
def sequential_scores(words: np.ndarray, w: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """float64 scores of words (n, L) under w (L, 4), summed column 0 first (the canonical order)."""
    n, length = words.shape
    out = np.empty(n)
    for i in range(n):
        s = 0.0
        for j in range(length):
            s += w[j, words[i, j]]
        out[i] = s
    return out


@numba.njit(cache=True, nogil=True)
def kmer_pass(
    cols: np.ndarray, bg: np.ndarray, outside: float, cut: float, cut32: np.float32
) -> tuple[np.ndarray, float, np.ndarray]:  # pragma: no cover - numba
    """For every K-mer over ``cols`` (K, 4) (first base most significant): its score plus ``outside``
    (the best the other columns can add). Returns the K-mers reaching ``cut - 1e-6`` (sorted), their
    total background probability, and the bitset (little bit order) of those reaching ``cut32`` in
    float32."""
    n_hi = 4 ** (K - 4)
    hi_s = np.zeros(n_hi)
    hi_p = np.ones(n_hi)
    for key in range(n_hi):
        x = key
        for j in range(K - 5, -1, -1):
            b = x & 3
            x >>= 2
            hi_s[key] += cols[j, b]
            hi_p[key] *= bg[b]
    lo_s = np.zeros(256)
    lo_p = np.ones(256)
    for key in range(256):
        x = key
        for j in range(K - 1, K - 5, -1):
            b = x & 3
            x >>= 2
            lo_s[key] += cols[j, b]
            lo_p[key] *= bg[b]
    keep = np.empty(N_KMERS, dtype=np.int32)
    bits = np.zeros(N_KMERS // 8, dtype=np.uint8)
    n = 0
    prob = 0.0
    floor = cut - 1e-6
    for h in range(n_hi):
        base = hi_s[h] + outside
        for lo in range(256):
            s = base + lo_s[lo]
            key = h * 256 + lo
            if s >= floor:
                keep[n] = key
                n += 1
                prob += hi_p[h] * lo_p[lo]
            if np.float32(s) >= cut32:
                bits[key >> 3] |= np.uint8(1 << (key & 7))
    return keep[:n].copy(), prob, bits


def warm_up() -> None:
    """Load every kernel of the scan from numba's cache (a worker does it while the driver works).

    Calls each with tiny arrays of the exact types the scan passes, so that no shard pays the load.
    """
    from scanner._fasta_kernels import strip_encode

    codes = np.zeros(32, dtype=np.uint8)
    strip_encode(np.full(33, 65, dtype=np.uint8), np.zeros(256, dtype=np.uint8), codes, np.zeros(32, np.bool_), True)
    kmer_keys(codes, False)
    keys, order, starts = kmer_keys(codes, True)
    one = np.zeros(1, dtype=np.int64)
    scan_matrices(
        codes,
        keys,
        order,
        starts,
        np.zeros(1, dtype=np.int8),
        np.full(1, 2, dtype=np.int64),
        np.zeros(1, dtype=np.bool_),
        np.zeros((2, 4)),
        one,
        np.zeros(1),
        one,
        np.zeros(1, dtype=np.int32),
        np.array([0, 1], dtype=np.int64),
        np.zeros((1, N_KMERS // 8), dtype=np.uint8),
        one,
        32,
        np.empty(64, dtype=np.int64),
        np.empty(64, dtype=np.int64),
        np.empty(64),
    )
    clean_windows(np.zeros(32, dtype=np.bool_), one, 2)
    kmer_pass(np.zeros((K, 4)), np.full(4, 0.25), 0.0, 0.0, np.float32(0.0))
    sequential_scores(np.zeros((1, 2), dtype=np.uint8), np.zeros((2, 4)))
