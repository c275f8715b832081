"""A plain, obviously-correct scanner used to test the fast one (small motifs only).

Every window is scored with a Python loop; p-values come from the full distribution of the score,
built by listing all ``4**L`` words (so keep ``L`` <= 9). Same conventions as the fast path: float64
scores summed from the motif's first column on the motif's strand, ties within
:data:`~scanner.scan.pvalues.TIE_TOLERANCE`, hits strictly below the threshold.
"""

from __future__ import annotations

import bisect
import itertools

import numpy as np

from scanner.scan.pvalues import TIE_TOLERANCE

_COMP = {0: 3, 1: 2, 2: 1, 3: 0}
_LETTERS = "ACGT"


def exact_distribution(w: np.ndarray, bg: np.ndarray) -> tuple[list[float], list[float]]:
    """All words' (score, probability), listed word by word (L <= 9)."""
    length = w.shape[0]
    if length > 9:
        raise ValueError("the reference lists 4**L words; use L <= 9")
    scores, probs = [], []
    for word in itertools.product(range(4), repeat=length):
        s = 0.0
        p = 1.0
        for j, b in enumerate(word):
            s += float(w[j, b])
            p *= float(bg[b])
        scores.append(s)
        probs.append(p)
    return scores, probs


class TailTable:
    """P(S >= s) from the listed distribution: words sorted by score, suffix sums of probability."""

    def __init__(self, dist: tuple[list[float], list[float]]) -> None:
        pairs = sorted(zip(*dist, strict=True))
        self.scores = [s for s, _ in pairs]
        self.suffix = [0.0] * (len(pairs) + 1)
        for i in range(len(pairs) - 1, -1, -1):
            self.suffix[i] = self.suffix[i + 1] + pairs[i][1]

    def __call__(self, score: float) -> float:
        """Sum of the probabilities of words scoring >= score (ties within the tolerance count)."""
        return self.suffix[bisect.bisect_left(self.scores, score - TIE_TOLERANCE)]


def reference_scan(
    codes: np.ndarray,
    w: np.ndarray,
    bg: np.ndarray,
    threshold: float,
    lower: np.ndarray | None = None,
    skip_masked: bool = False,
) -> list[tuple[int, str, float, float]]:
    """Hits ``(start, strand, score, pvalue)`` of one motif in one sequence, by plain loops.

    ``bg`` is the background of the ``+`` strand; a ``-`` hit's word is read on the reverse strand and
    its probability taken under the complemented background.
    """
    length = w.shape[0]
    tail_plus = TailTable(exact_distribution(w, bg))
    bg_comp = np.array([bg[3], bg[2], bg[1], bg[0]])
    tail_minus = (
        tail_plus if np.allclose(bg, bg_comp, rtol=0, atol=1e-15) else TailTable(exact_distribution(w, bg_comp))
    )
    hits = []
    for i in range(len(codes) - length + 1):
        window = [int(c) for c in codes[i : i + length]]
        if any(c > 3 for c in window):
            continue
        if skip_masked and lower is not None and any(lower[i : i + length]):
            continue
        for strand in "+-":
            word = window if strand == "+" else [_COMP[c] for c in reversed(window)]
            s = 0.0
            for j, b in enumerate(word):
                s += float(w[j, b])
            p = (tail_plus if strand == "+" else tail_minus)(s)
            if p < threshold:
                hits.append((i, strand, s, p))
    return hits


def word_string(codes: list[int]) -> str:
    """Letters of a list of codes."""
    return "".join(_LETTERS[c] for c in codes)
