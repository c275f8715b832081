"""Exact p-values of motif scores, and FIMO's integer-rounded p-values as an option.

The score of a window is ``S = sum_j W[j, x_j]`` (bits; ``W`` from :func:`scanner.motifs.log_odds`),
summed in float64 from the first column to the last. Its p-value is the tail probability
``P(S' >= S)`` of the score of a random window drawn base by base from the background.

``mode="exact"`` (default)
    1. A dynamic program over scores floored to a grid of width ``eps`` gives the distribution of the
       floored sum ``Q``; since every column loses less than ``eps`` to the floor, each tail
       probability is bracketed: ``lo(s) <= P(S >= s) <= hi(s)`` (both from the same table).
    2. When the motif's whole upper tail (every configuration that could reach the threshold) holds at
       most ``ENUMERATION_CAP`` words, they are enumerated with their float64 scores and
       probabilities: then every hit decision and every reported p-value is exact.
    3. Otherwise (long motifs) the top of the tail is still enumerated (exact p-values for the
       strongest sites), a finer grid gives the other p-values within rigorous bounds (their worst
       relative width over every score that can be a hit is :attr:`PValueTable.max_rel_error`), and
       windows whose bounds straddle the threshold are decided rigorously: when both halves of the
       motif are small enough (every motif up to 22 columns, longer ones whose half-words that can
       reach the threshold number at most ``MITM_HALF_CAP``), the exact tail from meet-in-the-middle
       is bisected once, when the table is built, down to the score from which windows are hits
       (``BAND_RESOLUTION`` bits; the rare window inside that last bracket gets its own exact tail):
       hit calls are exact. Longer motifs (e.g. CTCF MA1929.2 and MA1930.2) get a proven bracket from a
       fine windowed grid (:mod:`scanner.scan._band`): windows scoring inside it (~1e-4 bits wide)
       are *undecided*, not reported as hits, and counted.
       A reported p-value always lies within its rigorous bounds, and on the right side of the
       threshold.
    Scores that differ by less than ``TIE_TOLERANCE`` bits are treated as equal.

``mode="fimo"``
    FIMO's own convention (MEME suite ``pssm.c``): ``offset = floor(min W)``,
    ``scale = floor(1000 / (max W - offset))``, each entry rounded to ``nint((W - offset) * scale)``;
    the p-value of a window is looked up at its rounded integer score, and the reported score is that
    integer mapped back, ``k / scale + L * offset``. Rounding moves each column by up to
    ``0.5 / scale`` bits (up to ``L / (2 * scale)`` for a window), so hits near the threshold differ
    from the exact ones.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from scanner.errors import InputError
from scanner.scan._band import FineBand

#: Scores within this many bits are ties (float64 sums of the same real number in another order).
TIE_TOLERANCE = 1e-9
#: Grid bins over a motif's score range for the bounding dynamic program.
DP_BINS = 1 << 15
#: Grid bins for motifs whose upper tail is too large to enumerate.
DP_BINS_LONG = 1 << 20
#: Largest number of upper-tail words enumerated for exact p-values.
ENUMERATION_CAP = 4_000_000
#: Words enumerated at the top of a long motif's tail (exact p-values for the strongest sites).
TOP_CAP = 1_000_000
#: Most half-words kept on either side of meet-in-the-middle (every motif up to 22 columns; longer ones
#: when few half-words can reach the threshold).
MITM_HALF_CAP = 4**11
#: Width (bits) to which the exact hit/no-hit boundary of a long motif is bisected.
BAND_RESOLUTION = 1e-11
#: FIMO's PSSM_RANGE.
FIMO_RANGE = 1000

MODES = ("exact", "fimo")


def _kernels():
    from scanner.scan import _pvalue_kernels

    return _pvalue_kernels


@dataclass
class _Grid:
    """Floored-score distribution: S = base + eps * Q + E with E in [min_e, max_e]."""

    eps: float
    base: float
    min_e: float
    max_e: float
    mean_e: float
    tail: np.ndarray  # tail[k - k0] = P(Q >= k), up to qmax + 1 (last entry 0)
    k0: int = 0  # first index kept (see truncated)

    def _index(self, x: np.ndarray) -> np.ndarray:
        k = np.ceil((x - self.base) / self.eps)
        return (np.clip(k, self.k0, self.k0 + self.tail.size - 1) - self.k0).astype(np.int64)

    def truncated(self, s: float) -> _Grid:
        """The same grid keeping only what bounds scores >= ``s`` (scores below it must not be asked)."""
        k0 = max(self.k0, int(np.floor((s - self.max_e - 1e-6 - self.base) / self.eps)) - 2)
        return _Grid(self.eps, self.base, self.min_e, self.max_e, self.mean_e, self.tail[k0 - self.k0 :].copy(), k0)

    def lower(self, s: np.ndarray) -> np.ndarray:
        """Lower bound of P(S >= s)."""
        return self.tail[self._index(s - self.min_e + 1e-12)]

    def upper(self, s: np.ndarray) -> np.ndarray:
        """Upper bound of P(S >= s)."""
        return self.tail[self._index(s - self.max_e - 1e-12)]

    def estimate(self, s: np.ndarray) -> np.ndarray:
        """Grid estimate (mean residual), clipped into the bounds."""
        k = np.minimum(self._index(s - self.mean_e), self.tail.size - 2)
        return np.clip(self.tail[k], self.lower(s), self.upper(s))


def _build_grid(w: np.ndarray, bg: np.ndarray, bins: int, clamp: bool = True) -> _Grid:
    cmin = w.min(axis=1)
    span = float((w.max(axis=1) - cmin).sum())
    eps = span / bins if span > 0 else 1.0
    shifted = w - cmin[:, None]
    q = np.floor(shifted / eps).astype(np.int64)
    resid = shifted - q * eps
    pmf = _kernels().dp_pmf(q, bg, int(q.max(axis=1).sum()))
    tail = np.concatenate([np.cumsum(pmf[::-1])[::-1], [0.0]])
    return _Grid(
        eps=eps,
        base=float(cmin.sum()),
        min_e=float(resid.min(axis=1).sum()),
        max_e=float(resid.max(axis=1).sum()),
        mean_e=float((resid * bg[None, :]).sum()),
        tail=np.minimum(tail, 1.0) if clamp else tail,
    )


@dataclass
class PValueTable:
    """Score -> p-value for one motif matrix (one strand) under a background.

    Build with :meth:`build`. All methods take float64 scores of A/C/G/T windows.

    Attributes
    ----------
    cut : float
        No window scoring below ``cut`` can be a hit; used to filter candidates.
    exact : bool
        True when every p-value this table reports is exact (the upper tail was enumerated, or the
        mode is ``"fimo"``, which is exact about its own rounded scores).
    max_rel_error : float
        Largest relative width ``(upper - lower) / lower`` of the bounds of any p-value this table can
        report for a hit (0 when exact); every reported p-value is within it of the true one.
    calls_exact : bool
        False when some windows may be undecided (motifs too long for meet-in-the-middle).
    best_pvalue : float
        P-value of the best-scoring word: the motif has no hit at all when it is >= ``threshold``.
    """

    mode: str
    threshold: float
    w: np.ndarray
    bg: np.ndarray
    cut: float
    exact: bool
    max_rel_error: float = 0.0
    _grid: _Grid | None = None
    _tail_scores: np.ndarray | None = None  # ascending
    _tail_suffix: np.ndarray | None = None  # P(S >= _tail_scores[i]), then a final 0
    _tail_from: float = math.inf  # every word scoring >= this is enumerated
    _definite: float = math.inf  # scores above this are hits for sure (grid mode)
    _fimo: dict | None = None
    _mitm: tuple | None = field(default=None, repr=False)
    _mitm_infeasible: bool = False
    _band: FineBand | None = field(default=None, repr=False)
    _coarse: _Grid | None = field(default=None, repr=False)  # 2^15-bin grid of a long motif
    _hit_from: float = math.inf  # band scores >= this are hits (exact tail _tail_hit_from there)
    _tail_hit_from: float = 1.0
    _miss_to: float = -math.inf  # band scores <= this are not hits
    calls_exact: bool = True
    best_pvalue: float = 0.0

    @classmethod
    def build(
        cls,
        w: np.ndarray,
        bg: np.ndarray,
        threshold: float,
        mode: str = "exact",
        enumeration_cap: int = ENUMERATION_CAP,
    ) -> PValueTable:
        """Prepare the table for log-odds ``w`` (L, 4) float64 and background ``bg`` (4,).

        Parameters
        ----------
        w : numpy.ndarray, shape (L, 4)
            Log-odds in bits (finite).
        bg : numpy.ndarray, shape (4,)
            Background frequencies (A, C, G, T).
        threshold : float
            Hits are windows with p-value strictly below it (0 < threshold <= 1).
        mode : {"exact", "fimo"}
            See the module docstring. Default ``"exact"``.
        enumeration_cap : int
            Most upper-tail words to enumerate. Default :data:`ENUMERATION_CAP`.

        Raises
        ------
        InputError
            For a non-finite matrix, a bad threshold or an unknown mode.
        """
        w = np.ascontiguousarray(w, dtype=np.float64)
        bg = np.ascontiguousarray(bg, dtype=np.float64)
        if mode not in MODES:
            raise InputError(f"p-value mode must be one of {MODES}, got {mode!r}", field="pvalue_mode")
        if not (0 < threshold <= 1):
            raise InputError(f"p-value threshold must be in (0, 1], got {threshold}", field="pvalue")
        if w.ndim != 2 or w.shape[1] != 4 or w.shape[0] == 0:
            raise InputError(f"log-odds matrix must have shape (L, 4) with L > 0, got {w.shape}")
        if not np.all(np.isfinite(w)):
            raise InputError("log-odds matrix has infinite entries (a zero probability with no pseudocount)")
        if mode == "fimo":
            return cls._build_fimo(w, bg, threshold)
        return cls._build_exact(w, bg, threshold, enumeration_cap)

    # ---- exact ---------------------------------------------------------------------------------
    @classmethod
    def _build_exact(cls, w: np.ndarray, bg: np.ndarray, threshold: float, cap: int) -> PValueTable:
        grid = _build_grid(w, bg, DP_BINS)
        possible, definite = _cuts(grid, threshold)
        table = cls(mode="exact", threshold=threshold, w=w, bg=bg, cut=possible, exact=False, _grid=grid)
        table._definite = definite
        table.best_pvalue = _best_pvalue(w, bg)
        if table.best_pvalue >= threshold:  # not even the best word is a hit: nothing to prepare
            table.cut = float(w.max(axis=1).sum()) + 1.0
            table.exact = True
            return table
        # Upper bound on the number of words scoring >= x: a counting DP on a grid.
        counts = _build_grid(w, np.ones(4), DP_BINS // 4, clamp=False)
        start = possible - 2 * TIE_TOLERANCE
        if float(counts.upper(np.array([start]))[0]) <= cap:
            if table._enumerate(start, cap):
                table.exact = True
                return table
        # Long motif: a finer grid for the dense part of the tail, the top of the tail enumerated.
        coarse = grid
        grid = _build_grid(w, bg, DP_BINS_LONG)
        table._grid = grid
        table.cut, table._definite = _cuts(grid, threshold)
        top_cap = min(cap, TOP_CAP)
        k = int(np.flatnonzero(counts.tail <= top_cap)[0])
        top = counts.base + counts.max_e + counts.eps * k + 1e-9
        table._enumerate(max(top, table.cut), top_cap)
        table.max_rel_error = _max_rel_width(grid, table.cut, table._tail_from)
        table._resolve_band()
        # Only scores >= cut are evaluated on this grid (others: the coarse one): keep that part only
        # (a 2^20-bin tail is 8 MB; above the cut ~30% of it for JASPAR's long motifs).
        table._coarse = coarse
        table._grid = grid.truncated(table.cut)
        return table

    def _resolve_band(self) -> None:
        """Settle the band ``[cut, _definite)`` where the grid's bounds straddle the threshold.

        With meet-in-the-middle (both halves small enough): one bisection of the exact tail, which is
        monotone in the score, down to ``BAND_RESOLUTION`` bits; a window inside that last bracket gets
        its own exact tail in :meth:`decide`. Otherwise a fine windowed grid
        (:func:`~scanner.scan._band.fine_band`) proves a bracket ``(_miss_to, _hit_from)``; a window
        scoring inside it is undecided.
        """
        if self.cut >= self._definite:
            self._miss_to, self._hit_from = self.cut, self.cut
            return
        lo, hi = self.cut - 2 * TIE_TOLERANCE, self._definite
        tail_lo = self._exact_tail_one(lo)
        if tail_lo is None:  # too long for meet-in-the-middle
            from scanner.scan._band import fine_band

            band = fine_band(self.w, self.bg, self.threshold, lo, hi, TIE_TOLERANCE)
            self._band = band
            self._miss_to, self._hit_from = band.miss_to, band.hit_from
            self.calls_exact = False
            return
        self.calls_exact = True
        if tail_lo < self.threshold:  # every window of the band is a hit
            self._miss_to, self._hit_from, self._tail_hit_from = -math.inf, lo, tail_lo
            self._mitm = None
            return
        tail_hi = self._exact_tail_one(hi)
        while hi - lo > BAND_RESOLUTION:
            mid = 0.5 * (lo + hi)
            t = self._exact_tail_one(mid)
            if t < self.threshold:
                hi, tail_hi = mid, t
            else:
                lo = mid
        self._miss_to, self._hit_from, self._tail_hit_from = lo, hi, tail_hi
        self._mitm = None  # tens of MB for the longest motifs; rebuilt only if a window falls in (lo, hi)

    def _enumerate(self, target: float, capacity: int) -> bool:
        """Enumerate every word scoring >= target; False when there are more than ``capacity``."""
        suffix_max = np.concatenate([np.cumsum(self.w.max(axis=1)[::-1])[::-1], [0.0]]) + 1e-9
        scores, probs, n = _kernels().enumerate_tail(self.w, self.bg, suffix_max, target, capacity)
        if n < 0:
            return False
        order = np.argsort(scores[:n])
        self._tail_scores = scores[:n][order]
        self._tail_suffix = np.append(np.cumsum(probs[:n][order][::-1])[::-1], 0.0)
        self._tail_from = target
        return True

    def _enumerated_tail(self, s: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self._tail_scores, s - TIE_TOLERANCE, side="left")
        return self._tail_suffix[idx]

    def _exact_tail_one(self, s: float) -> float | None:
        """Exact P(S >= s - tie) by meet-in-the-middle, or None when the halves are too large.

        Only half-words that can take part in a sum reaching ``cut`` are kept (exact for every
        ``s >= cut``); a query below ``cut`` keeps every half-word that can reach ``s``. Each half
        holds at most :data:`MITM_HALF_CAP` words.
        """
        if self._mitm_infeasible:
            return None
        floor = min(self.cut - 1e-6, s - 1e-6)
        with _MITM_LOCK:
            if self._mitm is None or floor < self._mitm[4]:
                halves = _mitm_halves(self.w, self.bg, floor)
                if halves is None:
                    self._mitm_infeasible = True
                    return None
                self._mitm = halves
            a_desc, pa_desc, b_asc, suffix, _ = self._mitm
        return float(_kernels().mitm_tail(a_desc, pa_desc, b_asc, suffix, s - TIE_TOLERANCE))

    # ---- fimo ----------------------------------------------------------------------------------
    @classmethod
    def _build_fimo(cls, w: np.ndarray, bg: np.ndarray, threshold: float) -> PValueTable:
        small, large = float(w.min()), float(w.max())
        if large == small:
            small = large - 1
        offset = math.floor(small)
        scale = math.floor(FIMO_RANGE / (large - offset))
        scaled = _nint((w - offset) * scale).astype(np.int64)
        pmf = _kernels().dp_pmf(scaled, bg, int(scaled.max(axis=1).sum()))
        pv = np.minimum(np.cumsum(pmf[::-1])[::-1], 1.0)
        sig = np.flatnonzero(pv < threshold)
        k_min = int(sig[0]) if sig.size else pv.size
        length = w.shape[0]
        # An integer score >= k_min needs a raw score >= (k_min - L/2) / scale + L * offset.
        cut = (k_min - length / 2) / scale + length * offset - 1e-6
        fimo = {"offset": offset, "scale": scale, "scaled": scaled, "pv": pv}
        table = cls(mode="fimo", threshold=threshold, w=w, bg=bg, cut=cut, exact=True, _fimo=fimo)
        table.best_pvalue = float(pv[-1])
        return table

    def fimo_scores(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FIMO's (score, p-value) of windows given as codes (n, L) (fimo mode only)."""
        f = self._fimo
        k = f["scaled"][np.arange(words.shape[1])[None, :], words].sum(axis=1)
        score = k / f["scale"] + words.shape[1] * f["offset"]
        pv = f["pv"][np.minimum(k, f["pv"].size - 1)]
        return score, pv

    # ---- public --------------------------------------------------------------------------------
    def evaluate(self, scores: np.ndarray, words: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Decide hits and p-values for windows: :meth:`decide` without the undecided mask."""
        hit, pv, _ = self.decide(scores, words)
        return hit, pv

    def decide(self, scores: np.ndarray, words: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decide hits and p-values for windows.

        Parameters
        ----------
        scores : numpy.ndarray of float64, shape (n,)
            Sequential float64 window scores (bits).
        words : numpy.ndarray of uint8, shape (n, L), optional
            The windows' codes; required in ``"fimo"`` mode (its score is recomputed on its grid).

        Returns
        -------
        (is_hit, pvalue, undecided) : three numpy.ndarray of shape (n,): bool, float64, bool
            ``is_hit`` is proven (``pvalue`` below the threshold, exactly or within rigorous bounds).
            ``pvalue`` is meaningful where ``is_hit`` (1 elsewhere when not computed); for a hit it lies
            within the rigorous bounds of the window's p-value, whose relative width is at most
            :attr:`max_rel_error`. ``undecided`` marks windows whose p-value could not be separated from
            the threshold (only for motifs too long for meet-in-the-middle; see
            :mod:`scanner.scan._band`): they are not hits.
            In ``"fimo"`` mode the reported score should be taken from :meth:`fimo_scores`.

        Raises
        ------
        ValueError
            In ``"fimo"`` mode without ``words``.
        """
        scores = np.asarray(scores, dtype=np.float64)
        undecided = np.zeros(scores.size, dtype=bool)
        if self.mode == "fimo":
            if words is None:
                raise ValueError("fimo mode needs the window codes")
            _, pv = self.fimo_scores(words)
            return pv < self.threshold, pv, undecided
        pv = np.ones(scores.size)
        live = scores >= self.cut
        if not live.any():
            return live, pv, undecided
        s = scores[live]
        und = np.zeros(s.size, dtype=bool)
        if self.exact:
            p = self._enumerated_tail(s)
        else:
            p = self._grid.estimate(s)
            top = s - TIE_TOLERANCE >= self._tail_from
            if top.any():
                p[top] = self._enumerated_tail(s[top])
            band = (s < self._definite) & ~top
            sure_hit = band & (s >= self._hit_from)
            sure_miss = band & (s <= self._miss_to)
            p[sure_miss] = np.maximum(p[sure_miss], self.threshold)
            if self._band is not None:  # fine-grid bracket: bounds of the band's hits are tighter there
                b = self._band
                p[sure_hit] = np.clip(p[sure_hit], b.lower(s[sure_hit]), b.upper(s[sure_hit]))
            else:
                p[sure_hit] = np.minimum(p[sure_hit], self._tail_hit_from)
            rest = band & ~(sure_hit | sure_miss)
            for i in np.flatnonzero(rest):
                exact = self._exact_tail_one(float(s[i]))
                if exact is None:  # inside the fine bracket: cannot be decided at its precision
                    und[i] = True
                    p[i] = max(p[i], self.threshold)
                else:
                    p[i] = exact
        pv[live] = p
        undecided[live] = und
        return live & (pv < self.threshold), pv, undecided

    def pvalue(self, scores: np.ndarray) -> np.ndarray:
        """P-values of arbitrary scores (exact where enumerated, else the grid estimate); exact mode only."""
        scores = np.asarray(scores, dtype=np.float64)
        if self.mode == "fimo":
            raise ValueError("use fimo_scores in fimo mode")
        out = self._grid.estimate(scores - TIE_TOLERANCE)
        below = scores < self.cut
        if self._coarse is not None and below.any():  # the fine grid keeps only scores >= cut
            out[below] = self._coarse.estimate(scores[below] - TIE_TOLERANCE)
        if self._tail_scores is not None:
            inside = scores - TIE_TOLERANCE >= self._tail_from
            if inside.any():
                out[inside] = self._enumerated_tail(scores[inside])
        return out

    def __getstate__(self) -> dict:
        # caches rebuilt on demand are not shipped (object store, disk cache)
        return {**self.__dict__, "_mitm": None}


_MITM_LOCK = threading.Lock()


def _mitm_halves(w: np.ndarray, bg: np.ndarray, floor: float) -> tuple | None:
    """Both halves of the motif for meet-in-the-middle, keeping half-words that can reach ``floor``
    with the other half's best; None when a half would hold more than :data:`MITM_HALF_CAP` words."""
    k = _kernels()
    half = w.shape[0] // 2
    parts = (w[:half], w[half:])
    best = [float(x.max(axis=1).sum()) for x in parts]
    out = []
    for part, other in zip(parts, best[::-1], strict=True):
        need = floor - other - 1e-6
        if 4 ** part.shape[0] <= MITM_HALF_CAP:
            v, pv = k.enumerate_all(part, bg)
            keep = v >= need
            v, pv = v[keep], pv[keep]
        else:
            suffix_max = np.concatenate([np.cumsum(part.max(axis=1)[::-1])[::-1], [0.0]]) + 1e-9
            v, pv, n = k.enumerate_tail(part, bg, suffix_max, need, MITM_HALF_CAP)
            if n < 0:
                return None
            v, pv = v[:n], pv[:n]
        out.append((v, pv))
    (a, pa), (b, pb) = out
    oa = np.argsort(-a, kind="stable")
    ob = np.argsort(b, kind="stable")
    suffix = np.cumsum(pb[ob][::-1])[::-1]
    return a[oa].copy(), pa[oa].copy(), b[ob].copy(), suffix, floor


def _best_pvalue(w: np.ndarray, bg: np.ndarray) -> float:
    """P(S >= max - tie): the probability of the best-scoring words (every column at its maximum)."""
    at_max = w >= w.max(axis=1, keepdims=True) - TIE_TOLERANCE / w.shape[0]
    return float(np.prod((at_max * bg[None, :]).sum(axis=1)))


def _max_rel_width(grid: _Grid, lo: float, hi: float) -> float:
    """Largest ``(upper(s) - lower(s)) / lower(s)`` of the grid's bounds over scores ``s`` in
    ``[lo, hi]``: a bound that holds for every p-value the grid gives there."""
    if not hi > lo:
        return 0.0
    hi = min(hi, grid.base + grid.max_e + grid.eps * grid.tail.size)
    k1 = grid._index(np.array([lo - grid.min_e + 1e-12, hi - grid.min_e + 1e-12]))
    d = int(np.floor((grid.max_e - grid.min_e) / grid.eps)) + 1
    k = np.arange(int(k1[0]), int(k1[1]) + 1)
    low = grid.tail[k]
    up = grid.tail[np.clip(k - d, 0, grid.tail.size - 1)]
    pos = low > 0
    if not pos.all():
        return math.inf
    return float(np.max((up[pos] - low[pos]) / low[pos]))


def _cuts(grid: _Grid, threshold: float) -> tuple[float, float]:
    """Scores below the first cannot be hits; scores above the second are hits for sure."""
    below = np.flatnonzero(grid.tail < threshold)
    k_lo = int(below[0]) if below.size else grid.tail.size - 1
    # lower(s) < threshold  <=>  index(s - min_e) >= k_lo
    possible = grid.base + grid.min_e + grid.eps * (k_lo - 1) - 1e-9
    definite = grid.base + grid.max_e + grid.eps * k_lo + 1e-9
    return possible, definite


def _nint(x: np.ndarray) -> np.ndarray:
    """C's nint (round half away from zero)."""
    return np.where(x >= 0, np.floor(x + 0.5), -np.floor(-x + 0.5))
