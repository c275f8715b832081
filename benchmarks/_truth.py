"""The exact hit set of a scan, computed with numpy only: no code shared with ``scanner``.

Definition (the one docs/scan.md states): a hit is a window of A/C/G/T (any case) whose tail
probability ``T(s) = P(S >= s - 1e-9)`` under the i.i.d. background is below the threshold, on either
strand; ``S`` is the float64 sum of FIMO-pseudocounted log-odds (bits) of the word read on the
motif's strand, first column first.

How: ``T`` for motifs of at most :data:`FULL_MAX` columns by listing all ``4**L`` words; for longer
ones rigorous bounds from a numpy dynamic program over per-column floored scores (grid :data:`EPS`),
and, where those bounds straddle the threshold, the exact tail by meet-in-the-middle over the two
halves (numpy sort + searchsorted; up to :data:`MITM_MAX` columns; beyond, the window is counted as
undecided). Candidate windows: every position whose best possible score, from a 6-mer over the
motif's most informative columns plus the other columns' maxima, can reach the lowest score that
could be a hit; then the exact score of each candidate.
"""

from __future__ import annotations

import numpy as np

TIE = 1e-9
FULL_MAX = 11
MITM_MAX = 22
EPS = 1e-5
_LUT = np.full(256, 4, dtype=np.uint8)
for _i, _c in enumerate(b"ACGT"):
    _LUT[_c] = _i
    _LUT[_c + 32] = _i


def read_fasta(path) -> dict[str, np.ndarray]:
    """Chromosome -> codes (A0 C1 G2 T3, anything else 4), case ignored."""
    out, name, parts = {}, None, []
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b">"):
                if name is not None:
                    out[name] = _LUT[np.frombuffer(b"".join(parts), dtype=np.uint8)]
                name, parts = line[1:].split()[0].decode(), []
            else:
                parts.append(line.strip())
    if name is not None:
        out[name] = _LUT[np.frombuffer(b"".join(parts), dtype=np.uint8)]
    return out


def read_meme(path) -> list[tuple[str, np.ndarray, float]]:
    """(motif id, probabilities (L, 4), nsites) of a minimal MEME file."""
    motifs, cur = [], None
    with open(path) as fh:
        for line in fh:
            f = line.split()
            if not f:
                continue
            if f[0] == "MOTIF":
                cur = [f[1], [], 20.0]
                motifs.append(cur)
            elif cur is not None and f[0] == "letter-probability":
                if "nsites=" in f:
                    cur[2] = float(f[f.index("nsites=") + 1])
            elif cur is not None and len(f) == 4:
                try:
                    cur[1].append([float(x) for x in f])
                except ValueError:
                    pass
    return [(m, np.array(rows), n) for m, rows, n in motifs]


def log_odds(probs: np.ndarray, nsites: float, bg: np.ndarray) -> np.ndarray:
    p = (probs * nsites + 0.1 * bg[None, :]) / (nsites + 0.1)
    return np.log2(p / bg[None, :])


def _sequential(w: np.ndarray, words: np.ndarray) -> np.ndarray:
    s = np.zeros(words.shape[0])
    for j in range(w.shape[0]):
        s = s + w[j, words[:, j]]
    return s


def _all_words(w: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every word's sequential score and probability (first column most significant)."""
    s, p = np.zeros(1), np.ones(1)
    for j in range(w.shape[0]):
        s = (s[:, None] + w[j][None, :]).ravel()
        p = (p[:, None] * bg[None, :]).ravel()
    return s, p


class Tail:
    """``T(s)`` of one matrix: exact, or bounded with exact decisions near the threshold."""

    def __init__(self, w: np.ndarray, bg: np.ndarray, threshold: float) -> None:
        self.w, self.bg, self.t = w, bg, threshold
        self.length = w.shape[0]
        at_max = w >= w.max(axis=1, keepdims=True) - 1e-12
        self.best_pvalue = float(np.prod((at_max * bg[None, :]).sum(axis=1)))
        if self.length <= FULL_MAX:
            s, p = _all_words(w, bg)
            o = np.argsort(s)
            self._s = s[o]
            self._suffix = np.append(np.cumsum(p[o][::-1])[::-1], 0.0)
        else:
            self._s = None
            shifted = w - w.min(axis=1, keepdims=True)
            q = np.floor(shifted / EPS).astype(np.int64)
            r = shifted - q * EPS
            pmf = np.ones(1)
            for j in range(self.length):
                new = np.zeros(pmf.size + int(q[j].max()))
                for b in range(4):
                    new[q[j, b] : q[j, b] + pmf.size] += pmf * bg[b]
                pmf = new
            self._tail = np.append(np.cumsum(pmf[::-1])[::-1], 0.0)
            self._base = float(w.min(axis=1).sum())
            self._rmin, self._rmax = float(r.min(axis=1).sum()), float(r.max(axis=1).sum())
            self._halves = None

    def bounds(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rigorous (lower, upper) of ``T(s)``; equal when exact."""
        s = np.asarray(s, dtype=np.float64) - TIE
        if self._s is not None:
            v = self._suffix[np.searchsorted(self._s, s, side="left")]
            return v, v

        def at(x):
            return self._tail[np.clip(np.ceil(x / EPS).astype(np.int64), 0, self._tail.size - 1)]

        return at(s - self._base - self._rmin + 1e-9), at(s - self._base - self._rmax - 1e-9)

    def exact_one(self, s: float) -> float | None:
        """Exact ``T(s)`` by meet-in-the-middle (None beyond :data:`MITM_MAX` columns)."""
        if self.length > MITM_MAX:
            return None
        if self._halves is None:
            h = self.length // 2
            a, pa = _all_words(self.w[:h], self.bg)
            b, pb = _all_words(self.w[h:], self.bg)
            o = np.argsort(b)
            self._halves = (a, pa, b[o], np.append(np.cumsum(pb[o][::-1])[::-1], 0.0))
        a, pa, b, suffix = self._halves
        return float((pa * suffix[np.searchsorted(b, s - TIE - a, side="left")]).sum())

    def lowest_possible(self) -> float:
        """A score below which no window can be a hit (lower bound of T at it >= threshold)."""
        lo, hi = float(self.w.min(axis=1).sum()), float(self.w.max(axis=1).sum()) + 1.0
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if self.bounds(np.array([mid]))[0][0] < self.t:
                hi = mid
            else:
                lo = mid
        return lo - 1e-6


class _Chrom:
    """One chromosome's codes, 6-mer keys and a prefix count of non-A/C/G/T bases."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes
        c = np.minimum(codes, 3).astype(np.int32)
        n = max(0, codes.size - 5)
        self.key6 = np.zeros(n, dtype=np.int32)
        for j in range(6):
            self.key6 = self.key6 * 4 + c[j : j + n]
        self.bad_prefix = np.concatenate([[0], np.cumsum(codes > 3)])


def _candidates(ch: _Chrom, gw: np.ndarray, cut: float) -> np.ndarray:
    """Starts of windows (all A/C/G/T) whose best possible score along ``gw`` reaches ``cut``."""
    length = gw.shape[0]
    n = ch.codes.size - length + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    k = min(6, length)
    gain = gw.max(axis=1) - gw.min(axis=1)
    off = int(np.argmax(np.convolve(gain, np.ones(k), mode="valid")))
    cols = gw[off : off + k]
    rest = float(gw.max(axis=1).sum() - cols.max(axis=1).sum())
    kmer_score = np.zeros(1)
    for j in range(k):
        kmer_score = (kmer_score[:, None] + cols[j][None, :]).ravel()
    ok = kmer_score + rest >= cut - 1e-6
    if k < 6:  # the 6-mer key's first k bases are the k-mer (its last 6 - k bases vary freely)
        ok = np.repeat(ok, 4 ** (6 - k))
        n6 = min(n, ch.key6.size - off)
        pos = np.flatnonzero(ok[ch.key6[off : off + n6]])
        tail = np.arange(n6, n)  # the last windows have no full 6-mer: checked one by one
        pos = np.concatenate([pos, tail]).astype(np.int64)
    else:
        pos = np.flatnonzero(ok[ch.key6[off : off + n]]).astype(np.int64)
    return pos[ch.bad_prefix[pos + length] == ch.bad_prefix[pos]]


def exact_hits(genome, meme, threshold: float, bg: np.ndarray) -> tuple[dict, dict]:
    """Exact hits ``{(motif, chrom, start, strand): pvalue}`` and per-motif facts.

    ``facts[motif] = {"best_pvalue", "unreachable", "undecided"}``; a window the reference cannot
    decide (beyond :data:`MITM_MAX` columns, bounds straddling) is counted, not listed.
    """
    chroms = {name: _Chrom(c) for name, c in read_fasta(genome).items()}
    comp = np.array([3, 2, 1, 0])
    hits, facts = {}, {}
    for motif_id, probs, nsites in read_meme(meme):
        w = log_odds(probs, nsites, bg)
        tails = {"+": Tail(w, bg, threshold)}
        tails["-"] = tails["+"] if np.allclose(bg, bg[comp]) else Tail(w, bg[comp], threshold)
        info = {"best_pvalue": min(t.best_pvalue for t in tails.values()), "undecided": 0}
        info["unreachable"] = info["best_pvalue"] >= threshold
        facts[motif_id] = info
        if info["unreachable"]:
            continue
        for strand, tail in tails.items():
            cut = tail.lowest_possible()
            gw = w if strand == "+" else w[::-1, comp]  # along the genome's + strand
            for chrom, ch in chroms.items():
                c = ch.codes
                pos = _candidates(ch, gw, cut)
                if pos.size == 0:
                    continue
                words = c[pos[:, None] + np.arange(w.shape[0])[None, :]].astype(np.int64)
                if strand == "-":
                    words = comp[words[:, ::-1]]
                s = _sequential(w, words)
                lo, hi = tail.bounds(s)
                p = np.where(hi < threshold, hi, lo)
                sure = hi < threshold
                for i in np.flatnonzero(~sure & (lo < threshold)):
                    exact = tail.exact_one(float(s[i]))
                    if exact is None:
                        info["undecided"] += 1
                        continue
                    sure[i], p[i] = exact < threshold, exact
                for i in np.flatnonzero(sure):
                    hits[(motif_id, chrom, int(pos[i]), strand)] = float(p[i])
    return hits, facts


def true_pvalue(tail_cache: dict, meme_motifs: dict, motif_id: str, word: np.ndarray, bg: np.ndarray) -> float:
    """A window's p-value (exact, or the midpoint of rigorous bounds), for classifying differences."""
    if motif_id not in tail_cache:
        probs, nsites = meme_motifs[motif_id]
        w = log_odds(probs, nsites, bg)
        tail_cache[motif_id] = (w, Tail(w, bg, 1.0))
    w, tail = tail_cache[motif_id]
    s = _sequential(w, word[None, :].astype(np.int64))
    lo, hi = tail.bounds(s)
    return float(0.5 * (lo[0] + hi[0]))
