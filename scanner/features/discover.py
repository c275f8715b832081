"""Motif discovery on attributions with TF-MoDISco (modisco-lite 3.0.0's Python API).

:func:`discover_patterns` runs ``modiscolite.tfmodisco.TFMoDISco`` on one-hot windows and their
hypothetical contributions and returns plain :class:`Pattern` records (matrices and seqlet
coordinates; no modisco objects), which pickle small across Ray. modisco-lite compiles its numba
kernels on first use (cached on disk afterwards: about 20 s once per environment) and forks helper
processes while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scanner.features.config import ModiscoSettings


@dataclass(frozen=True)
class Pattern:
    """One TF-MoDISco pattern.

    Attributes
    ----------
    name : str
        ``pos_<k>`` (supports the logit) or ``neg_<k>``, ``k`` its rank by seqlets within the sign.
    sign : int
        1 or -1.
    rank : int
        ``k``.
    ppm, cwm, hcwm : numpy.ndarray of float64, shape (L, 4)
        Position probability matrix of the seqlets, their mean contributions and mean hypothetical
        contributions (A, C, G, T columns), untrimmed.
    example, start, end : numpy.ndarray of int64, shape (S,)
        Each seqlet's window index and its span ``[start, end)`` in the window's track coordinates
        (0-based, the attribution slice given to TF-MoDISco); ``end - start == L``.
    revcomp : numpy.ndarray of bool, shape (S,)
        The seqlet reads on the reverse strand: pattern column ``j`` is track position ``end - 1 - j``,
        complemented.
    """

    name: str
    sign: int
    rank: int
    ppm: np.ndarray
    cwm: np.ndarray
    hcwm: np.ndarray
    example: np.ndarray
    start: np.ndarray
    end: np.ndarray
    revcomp: np.ndarray

    @property
    def n_seqlets(self) -> int:
        return int(self.example.size)


def prepare_modisco() -> None:
    """Make modisco-lite's numba kernels compile once per environment rather than once per process.

    modisco-lite caches its kernels on disk only when its ``precompile.start()`` may fork helpers (no
    other Python thread, numba's thread pool not started): true in a fresh CLI process, false in a
    Ray actor or after ``numba.set_num_threads``. Call this before anything starts numba's threads;
    when it cannot fork, caching is turned on for the same kernels here, so the first run's in-process
    compile (about 20 s) lands in the cache. Best effort: any failure only costs compile time.
    """
    try:
        from modiscolite import precompile

        precompile.start()
        for group in precompile._kernels():  # the kernels start() would have cached
            for dispatcher, _sig in group:
                if hasattr(dispatcher, "enable_caching") and dispatcher._cache.__class__.__name__ == "NullCache":
                    dispatcher.enable_caching()
    except Exception:  # pragma: no cover - a modisco-lite internals change: compile in-process, uncached
        return


def discover_patterns(one_hot: np.ndarray, hypothetical: np.ndarray, settings: ModiscoSettings) -> list[Pattern]:
    """TF-MoDISco patterns of a set of windows.

    Parameters
    ----------
    one_hot : numpy.ndarray, shape (N, 4, P)
        One-hot windows (A, C, G, T rows; N columns 0.25).
    hypothetical : numpy.ndarray, shape (N, 4, P)
        Their hypothetical contributions (:func:`scanner.features.attribute.hypothetical_contributions`).
    settings : ModiscoSettings

    Returns
    -------
    list of Pattern
        Positive patterns first, then negative ones, each in TF-MoDISco's order (most seqlets first).
        Empty when no seqlet passes or a sign has fewer than ``settings.min_seqlets`` seqlets.

    Raises
    ------
    ValueError
        If the shapes differ or are not (N, 4, P), or P is shorter than a seqlet.
    """
    import modiscolite

    s = settings.validate()
    prepare_modisco()
    if one_hot.shape != hypothetical.shape or one_hot.ndim != 3 or one_hot.shape[1] != 4:
        raise ValueError(f"one_hot {one_hot.shape} and hypothetical {hypothetical.shape} must both be (N, 4, P)")
    if one_hot.shape[2] < s.size + 2 * s.seqlet_flank:
        raise ValueError(
            f"windows of {one_hot.shape[2]} bp are shorter than a seqlet ({s.size} + 2 x {s.seqlet_flank})"
        )
    if one_hot.shape[0] == 0 or not np.any(hypothetical):
        return []
    ohe = np.ascontiguousarray(one_hot.transpose(0, 2, 1), dtype=np.float32)
    hyp = np.ascontiguousarray(hypothetical.transpose(0, 2, 1), dtype=np.float32)
    pos, neg = modiscolite.tfmodisco.TFMoDISco(
        one_hot=ohe,
        hypothetical_contribs=hyp,
        max_seqlets_per_metacluster=s.max_seqlets,
        sliding_window_size=s.size,
        flank_size=s.seqlet_flank,
        trim_to_window_size=s.trim_size,
        initial_flank_to_add=s.initial_flank,
        final_flank_to_add=s.final_flank,
        target_seqlet_fdr=s.target_fdr,
        n_leiden_runs=s.n_leiden,
        min_metacluster_size=s.min_seqlets,
        final_min_cluster_size=s.min_cluster_size,
        verbose=False,
    )
    out: list[Pattern] = []
    for sign, prefix, patterns in ((1, "pos", pos), (-1, "neg", neg)):
        for k, p in enumerate(patterns or []):
            seqlets = p.seqlets
            out.append(
                Pattern(
                    name=f"{prefix}_{k}",
                    sign=sign,
                    rank=k,
                    ppm=np.asarray(p.sequence, dtype=np.float64),
                    cwm=np.asarray(p.contrib_scores, dtype=np.float64),
                    hcwm=np.asarray(p.hypothetical_contribs, dtype=np.float64),
                    example=np.array([q.example_idx for q in seqlets], dtype=np.int64),
                    start=np.array([q.start for q in seqlets], dtype=np.int64),
                    end=np.array([q.end for q in seqlets], dtype=np.int64),
                    revcomp=np.array([bool(q.is_revcomp) for q in seqlets], dtype=bool),
                )
            )
    return out


def trim_bounds(cwm: np.ndarray, threshold: float = 0.3) -> tuple[int, int]:
    """``[lo, hi)``: the span from the first to the last position whose summed ``|cwm|`` reaches
    ``threshold`` times its maximum (modisco-lite's report trims logos and TomTom queries this way)."""
    score = np.abs(np.asarray(cwm)).sum(axis=1)
    if score.size == 0 or score.max() <= 0:
        return 0, int(score.size)
    keep = np.flatnonzero(score >= threshold * score.max())
    return int(keep[0]), int(keep[-1]) + 1
