"""The motif hit itself under REF and ALT: site p-values, and hits that only the ALT allele has.

P-values follow the scan that produced the instances (:func:`scanner.scan.load_scan_meta`): same
motifs, background, pseudocount, threshold and p-value mode. Hits are decided exactly (as the scan
does); the p-value of a word that is not a hit is the p-value table's estimate (exact where the tail
was enumerated). A word containing N has no p-value (NaN, written as null) and is not a hit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scanner.genome import N_CODE, reverse_complement_codes
from scanner.scan.chunk import scan_chunk
from scanner.scan.prepare import LookupPlan, PreparedMotif, build_lookup_plan


def word_pvalues(pm: PreparedMotif, words: np.ndarray, strand: str) -> tuple[np.ndarray, np.ndarray]:
    """P-values and hit flags of words read on the motif's strand.

    Parameters
    ----------
    pm : PreparedMotif
    words : numpy.ndarray of uint8, shape (n, L)
        Codes on the motif's strand (reverse-complemented already for ``-`` sites).
    strand : {"+", "-"}
        Genome strand of the sites (selects the p-value table).

    Returns
    -------
    (pvalue, hit) : numpy.ndarray of float64 (NaN where a word has N), numpy.ndarray of bool
    """
    words = np.ascontiguousarray(words, dtype=np.uint8).reshape(-1, pm.length)
    n = words.shape[0]
    pv = np.full(n, np.nan)
    hit = np.zeros(n, dtype=bool)
    ok = ~(words >= N_CODE).any(axis=1)
    if not ok.any():
        return pv, hit
    w = words[ok]
    table = pm.tables[strand]
    if table.mode == "fimo":
        _, p = table.fimo_scores(w)
        h = p < table.threshold
    else:
        from scanner.scan._kernels import sequential_scores

        scores = sequential_scores(w, pm.w)
        h, p = table.evaluate(scores)
        p = p.copy()
        if (~h).any():
            p[~h] = table.pvalue(scores[~h])
    pv[ok] = p
    hit[ok] = h
    return pv, hit


def site_words(windows: np.ndarray, offsets: np.ndarray, length: int, minus: np.ndarray) -> np.ndarray:
    """Words of length ``length`` at ``offsets`` of each window, read on the site's strand.

    Parameters
    ----------
    windows : numpy.ndarray of uint8, shape (n, W)
    offsets : numpy.ndarray of int64, shape (n,)
        Site start within each window.
    length : int
    minus : numpy.ndarray of bool, shape (n,)
        Reverse-complement these words.
    """
    idx = np.asarray(offsets)[:, None] + np.arange(length)[None, :]
    words = np.take_along_axis(windows, idx, axis=1)
    if minus.any():
        words[minus] = reverse_complement_codes(words[minus])
    return words


@dataclass(frozen=True)
class MotifSet:
    """The motifs of one TF prepared for scanning short stretches."""

    prepared: list[PreparedMotif]
    plan: LookupPlan

    @classmethod
    def build(cls, prepared: list[PreparedMotif]) -> MotifSet:
        return cls(list(prepared), build_lookup_plan(prepared))

    @property
    def max_length(self) -> int:
        return max(p.length for p in self.prepared)

    def by_id(self, motif_id: str) -> PreparedMotif:
        for p in self.prepared:
            if p.motif_id == motif_id:
                return p
        raise KeyError(motif_id)


def _scan_stretches(stretches: list[np.ndarray], motifs: MotifSet) -> tuple[np.ndarray, ...]:
    """Hits in each stretch: (stretch index, local start, motif index, strand, p-value)."""
    if not stretches:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z, np.zeros(0, dtype=object), np.zeros(0)
    sep = np.array([N_CODE], dtype=np.uint8)
    parts, offsets, pos = [], [], 0
    for s in stretches:
        offsets.append(pos)
        parts += [s.astype(np.uint8), sep]
        pos += len(s) + 1
    codes = np.concatenate(parts)
    table = scan_chunk(codes, None, motifs.prepared, motifs.plan, chrom="_")
    starts = table.column("start").to_numpy()
    which = np.searchsorted(np.asarray(offsets), starts, side="right") - 1
    ids = {p.motif_id: i for i, p in enumerate(motifs.prepared)}
    mi = np.array([ids[m] for m in table.column("motif_id").to_pylist()], dtype=np.int64)
    strand = np.asarray(table.column("strand").to_pylist(), dtype=object)
    return which, starts - np.asarray(offsets)[which], mi, strand, table.column("pvalue").to_numpy()


@dataclass(frozen=True)
class CreatedHits:
    """Hits the ALT allele creates: present in ALT, touching the allele, absent from REF.

    ``start``/``end`` are REF coordinates: ALT bases before the allele map to themselves, bases inside
    it to ``var_start``, bases after it shift back by the length change; ``end = start + L``.
    """

    variant: np.ndarray  # int64 index into the variants given
    motif: np.ndarray  # int64 index into MotifSet.prepared
    strand: np.ndarray  # object '+'/'-'
    start: np.ndarray  # int64
    end: np.ndarray  # int64
    pvalue_alt: np.ndarray  # float64


def created_hits(
    ref_context: list[np.ndarray],
    var_start: np.ndarray,
    var_end: np.ndarray,
    inserted: list[np.ndarray],
    motifs: MotifSet,
) -> CreatedHits:
    """Find, for each variant, the motif hits only its ALT allele has.

    Parameters
    ----------
    ref_context : list of numpy.ndarray of uint8
        For variant i, REF codes of ``[var_start - (Lmax - 1), var_end + Lmax - 1)`` (N-padded),
        ``Lmax`` = :attr:`MotifSet.max_length`.
    var_start, var_end : numpy.ndarray of int64, shape (n,)
    inserted : list of numpy.ndarray of uint8
        Inserted codes of each variant.
    motifs : MotifSet

    Returns
    -------
    CreatedHits
        Sorted by variant, start, strand, motif.
    """
    k = motifs.max_length - 1
    n = len(ref_context)
    lens = np.array([p.length for p in motifs.prepared], dtype=np.int64)
    ref_len = np.asarray(var_end) - np.asarray(var_start)
    alt_ctx = [np.concatenate([ref_context[i][:k], inserted[i], ref_context[i][k + ref_len[i] :]]) for i in range(n)]
    ref_hits = _scan_stretches(ref_context, motifs)
    alt_hits = _scan_stretches(alt_ctx, motifs)

    def touching(hits: tuple[np.ndarray, ...], size: np.ndarray) -> np.ndarray:
        which, a, mi = hits[0], hits[1], hits[2]
        y = k + size[which]
        return (a < y) & (a + lens[mi] > k)

    ins_len = np.array([len(x) for x in inserted], dtype=np.int64)
    keep_ref = touching(ref_hits, ref_len)
    ref_keys = {
        (int(v), int(m), str(s), int(a))
        for v, a, m, s in zip(
            ref_hits[0][keep_ref],
            ref_hits[1][keep_ref],
            ref_hits[2][keep_ref],
            ref_hits[3][keep_ref],
            strict=True,
        )
    }
    keep_alt = touching(alt_hits, ins_len)
    which, a, mi, strand, pv = (x[keep_alt] for x in alt_hits)
    d = ins_len[which] - ref_len[which]
    ref_local = np.where(a < k, a, np.where(a < k + ins_len[which], k, a - d))
    new = np.array(
        [
            (int(v), int(m), str(s), int(r)) not in ref_keys
            for v, m, s, r in zip(which, mi, strand, ref_local, strict=True)
        ],
        dtype=bool,
    )
    which, mi, strand, pv, ref_local = which[new], mi[new], strand[new], pv[new], ref_local[new]
    start = np.asarray(var_start)[which] - k + ref_local
    order = np.lexsort((mi, strand == "-", start, which))
    return CreatedHits(
        variant=which[order].astype(np.int64),
        motif=mi[order].astype(np.int64),
        strand=strand[order],
        start=start[order].astype(np.int64),
        end=(start + lens[mi])[order].astype(np.int64),
        pvalue_alt=pv[order].astype(np.float64),
    )


def best_site(codes: np.ndarray, lo: int, hi: int, motifs: MotifSet) -> tuple[str | None, float, bool]:
    """The best site (lowest p-value, either strand) of any motif among windows touching ``[lo, hi)``.

    Parameters
    ----------
    codes : numpy.ndarray of uint8, shape (n,)
        A sequence on its + strand.
    lo, hi : int
        The changed bases (``lo == hi``: an insertion point; windows must hold bases on both sides).
        With ``lo == hi == -1`` every window counts.
    motifs : MotifSet

    Returns
    -------
    (motif_id, pvalue, hit)
        ``(None, nan, False)`` when no window of A/C/G/T fits.
    """
    best: tuple[str | None, float, bool] = (None, np.nan, False)
    n = len(codes)
    for pm in motifs.prepared:
        length = pm.length
        if n < length:
            continue
        starts = np.arange(n - length + 1)
        if lo >= 0:
            starts = starts[(starts < max(hi, lo)) & (starts + length > lo)]
        if starts.size == 0:
            continue
        words = codes[starts[:, None] + np.arange(length)[None, :]]
        words = words[~(words >= N_CODE).any(axis=1)]
        if words.shape[0] == 0:
            continue
        from scanner.scan._kernels import sequential_scores

        for strand, w in (("+", words), ("-", reverse_complement_codes(words))):
            scores = sequential_scores(np.ascontiguousarray(w), pm.w)
            top = w[int(np.argmax(scores))][None, :]
            pv, hit = word_pvalues(pm, top, strand)
            if best[0] is None or pv[0] < best[1]:
                best = (pm.motif_id, float(pv[0]), bool(hit[0]))
    return best
