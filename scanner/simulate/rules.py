"""The simulated TFs: their motifs, binding rules and locus designs, and exact motif-score thresholds.

What :func:`scanner.simulate.simulate` plants: each TF's core motif (:func:`simulated_motif`), the rule
that decides whether a core site is bound (:class:`SimulatedTF`) and the mix of designs its loci follow
(:class:`Design`); the rules are described in :mod:`scanner.simulate.genome` and docs/labels.md. Core sites are
sampled from their motif above an exact score threshold (:func:`score_threshold`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scanner.errors import InputError
from scanner.motifs import Background, Motif, log_odds


# ---- motifs ---------------------------------------------------------------------------------------
def _motif_from_consensus(motif_id: str, name: str, consensus: str, nsites: int = 50) -> Motif:
    """Upper-case letters: 0.85 on the letter (0.05 others); lower case: 0.55 (0.15 others)."""
    probs = np.empty((len(consensus), 4))
    for i, ch in enumerate(consensus):
        main, other = (0.85, 0.05) if ch.isupper() else (0.55, 0.15)
        probs[i] = other
        probs[i, "ACGT".index(ch.upper())] = main
    return Motif(motif_id, name, probs, nsites, source="scanner.simulate.genome")


#: Consensus of every simulated motif (non-palindromic, mutually dissimilar; see module docstring).
_CONSENSUS: dict[str, tuple[str, str]] = {
    "ALPHA": ("SIM0001", "CTATaCTCCCgCTC"),
    "BETA": ("SIM0002", "TGCgCCCATAaATG"),
    "GAMMA": ("SIM0003", "CTTGgGACTCaAGA"),
    "ALPHA_P": ("SIM0101", "TTGCTGCCCTA"),
    "GAMMA_P": ("SIM0103", "CCTTGTCACAT"),
    "PIONEER": ("SIM0201", "GGTCTTCCGTAA"),
}


def simulated_motif(name: str) -> Motif:
    """The motif ``name`` (``ALPHA``, ``BETA``, ``GAMMA``, ``ALPHA_P``, ``GAMMA_P`` or ``PIONEER``).

    Raises
    ------
    InputError
        For an unknown name.
    """
    if name not in _CONSENSUS:
        raise InputError(f"unknown simulated motif {name!r}; known: {', '.join(_CONSENSUS)}", field="tfs")
    motif_id, consensus = _CONSENSUS[name]
    return _motif_from_consensus(motif_id, name, consensus)


# ---- TF rules and designs -------------------------------------------------------------------------
@dataclass(frozen=True)
class Design:
    """What is planted with a core: open region, partner (none/near/far), lone pioneer."""

    name: str
    fraction: float
    open: bool = False
    partner: str = "none"
    single_pioneer: bool = False


@dataclass(frozen=True)
class SimulatedTF:
    """A simulated TF: its core motif, its rule and the designs of its loci."""

    name: str
    partner: str | None
    needs_open: bool
    needs_partner: bool
    designs: tuple[Design, ...]

    def rule(self, is_open: np.ndarray, near: np.ndarray) -> np.ndarray:
        """Bound under the rule (before noise), shape like the inputs, bool."""
        ok = np.ones_like(is_open, dtype=bool)
        if self.needs_open:
            ok &= is_open
        if self.needs_partner:
            ok &= near
        return ok


SIMULATED_TFS: dict[str, SimulatedTF] = {
    "ALPHA": SimulatedTF(
        "ALPHA",
        "ALPHA_P",
        needs_open=True,
        needs_partner=True,
        designs=(
            Design("open+partner", 0.35, open=True, partner="near"),
            Design("open", 0.20, open=True),
            Design("partner", 0.20, partner="near"),
            Design("open+far_partner", 0.10, open=True, partner="far"),
            Design("none", 0.15),
        ),
    ),
    "BETA": SimulatedTF(
        "BETA",
        None,
        needs_open=True,
        needs_partner=False,
        designs=(
            Design("open", 0.40, open=True),
            Design("single_pioneer", 0.25, single_pioneer=True),
            Design("none", 0.35),
        ),
    ),
    "GAMMA": SimulatedTF(
        "GAMMA",
        "GAMMA_P",
        needs_open=False,
        needs_partner=True,
        designs=(
            Design("partner", 0.30, partner="near"),
            Design("open+partner", 0.10, open=True, partner="near"),
            Design("far_partner", 0.20, partner="far"),
            Design("open", 0.10, open=True),
            Design("none", 0.30),
        ),
    ),
}


# ---- exact score thresholds -----------------------------------------------------------------------
def _half_scores(lo: np.ndarray) -> np.ndarray:
    scores = np.zeros(1)
    for col in lo:
        scores = (scores[:, None] + col[None, :]).ravel()
    return scores


def score_threshold(lo: np.ndarray, pvalue: float) -> float:
    """Smallest achievable score ``t`` with ``P(S >= t) <= pvalue`` when letters are uniform.

    Exact: the motif is split in two halves whose ``4**k`` partial scores are enumerated; the tail
    ``P(S >= t)`` is a merge of the two sorted lists, bisected over ``t`` and snapped to an
    achievable score.

    Parameters
    ----------
    lo : numpy.ndarray, shape (L, 4)
        Log-odds matrix, ``L <= 18``.
    pvalue : float
        Target tail probability.

    Returns
    -------
    float
        The threshold; ``inf`` when ``pvalue < 4**-L`` (no score is that rare).
    """
    if lo.shape[0] > 18:
        raise ValueError("score_threshold enumerates 4**(L/2) scores; L must be <= 18")
    k = lo.shape[0] // 2
    a = np.sort(_half_scores(lo[:k]))
    b = np.sort(_half_scores(lo[k:]))
    total = float(a.size) * b.size

    def tail(t: float) -> float:
        return float((b.size - np.searchsorted(b, t - a, side="left")).sum()) / total

    low, high = float(a[0] + b[0]) - 1.0, float(a[-1] + b[-1]) + 1e-9
    if tail(high) > pvalue:
        return float("inf")
    for _ in range(100):
        mid = 0.5 * (low + high)
        if tail(mid) <= pvalue:
            high = mid
        else:
            low = mid
    # the smallest achievable score above ``low`` (tail(low) > pvalue >= tail of that score)
    idx = np.searchsorted(b, low - a, side="right")
    ok = idx < b.size
    return float((a[ok] + b[idx[ok]]).min())


def sample_sites(motif: Motif, n: int, min_log10p: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` site sequences (codes, motif strand) sampled from the motif, scoring at p < 10**-min_log10p."""
    lo = log_odds(motif, Background.uniform())
    thresh = score_threshold(lo, 10.0 ** (-min_log10p))
    cdf = np.cumsum(motif.probs, axis=1)
    cdf[:, -1] = 1.0
    out = np.empty((0, motif.length), dtype=np.uint8)
    for _ in range(200):
        if out.shape[0] >= n:
            break
        m = max(64, 2 * (n - out.shape[0]))
        u = rng.random((m, motif.length))
        codes = (u[:, :, None] > cdf[None, :, :]).sum(axis=2).astype(np.uint8)
        scores = lo[np.arange(motif.length)[None, :], codes].sum(axis=1)
        out = np.concatenate([out, codes[scores >= thresh - 1e-9]])
    if out.shape[0] < n:  # pragma: no cover - motifs are defined so this never happens
        raise RuntimeError(f"could not sample {n} sites of {motif.name} at p < 1e-{min_log10p}")
    return out[:n]
