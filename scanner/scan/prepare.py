"""Motifs prepared for scanning: log-odds, p-value tables per strand, and lookahead lookup tables."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scanner.motifs import Background, Motif, log_odds
from scanner.motifs.model import DEFAULT_PSEUDOCOUNT
from scanner.scan._kernels import METHOD_BUCKET, METHOD_SWEEP, K
from scanner.scan.pvalues import PValueTable
from scanner.scan.table_cache import cached_build

_COMP = np.array([3, 2, 1, 0])


@dataclass
class PreparedMotif:
    """One motif ready to scan.

    Attributes
    ----------
    motif_id, name : str
    w : numpy.ndarray of float64, shape (L, 4)
        Log-odds (bits) of the motif's own strand. Every score is ``sum_j w[j, word[j]]`` over the
        word read on the motif's strand (the reverse complement of the genome for ``-`` hits).
    tables : dict
        ``{"+": PValueTable, "-": PValueTable}``; the same object when the background is strand
        symmetric (for ``-`` hits a word's probability is taken under the complemented background).
    """

    motif_id: str
    name: str
    w: np.ndarray
    tables: dict[str, PValueTable]

    @property
    def length(self) -> int:
        return int(self.w.shape[0])


def prepare_motifs(
    motifs: list[Motif],
    background: Background,
    pvalue: float = 1e-4,
    mode: str = "exact",
    pseudocount: float = DEFAULT_PSEUDOCOUNT,
    threads: int | None = None,
    cache_dir: Path | None = None,
) -> list[PreparedMotif]:
    """Build log-odds and p-value tables for each motif.

    Parameters
    ----------
    motifs : list of Motif
    background : Background
        Used for the pseudocount, the log-odds and the p-values.
    pvalue : float
        Hit threshold (strict: p < pvalue). Default 1e-4.
    mode : {"exact", "fimo"}
        P-value convention (see :mod:`scanner.scan.pvalues`). Default ``"exact"``.
    pseudocount : float
        FIMO's motif pseudocount. Default 0.1.
    threads : int, optional
        Threads building tables (the numba kernels release the GIL). Default: one per CPU.
    cache_dir : Path, optional
        Directory of cached p-value tables (:mod:`scanner.scan.table_cache`); default None: no cache.

    Returns
    -------
    list of PreparedMotif
    """
    bg = background.freqs
    bg_comp = bg[_COMP]

    def one(m: Motif) -> PreparedMotif:
        w = log_odds(m, background, pseudocount)
        plus = cached_build(cache_dir, w, bg, pvalue, mode)
        minus = plus if background.is_symmetric else cached_build(cache_dir, w, bg_comp, pvalue, mode)
        return PreparedMotif(m.motif_id, m.name, w, {"+": plus, "-": minus})

    workers = min(len(motifs), threads or os.cpu_count() or 1)
    if len(motifs) < 4 or workers < 2:
        return [one(m) for m in motifs]
    # The numba kernels release the GIL: tables of different motifs are built in parallel threads,
    # longest motifs first (they take longest).
    order = sorted(range(len(motifs)), key=lambda i: -motifs[i].length)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        built = dict(zip(order, pool.map(one, [motifs[i] for i in order]), strict=True))
    return [built[i] for i in range(len(motifs))]


@dataclass
class LookupPlan:
    """Every (motif, strand) matrix as the kernels want it, read along the genome's + strand.

    Matrix ``m`` is motif ``motif_index[m]`` on strand ``strand[m]`` (0 ``+``, 1 ``-``). Its 8-mer
    filter covers genome-strand columns ``[win_offset[m], win_offset[m] + 8)``: a window can reach
    ``cuts[m]`` only if the 8-mer there is in ``pass_kmers[pass_start[m]:pass_start[m + 1]]``.
    """

    genome_w: list[np.ndarray]  # per matrix (L, 4) float64 along the genome's + strand
    w_all: np.ndarray  # concatenation of genome_w
    w_start: np.ndarray  # (M,) int64
    lengths: np.ndarray  # (M,) int64
    reverse: np.ndarray  # (M,) bool: sum columns backwards along the genome ('-' matrices)
    cuts: np.ndarray  # (M,) float64: exact candidate cut
    cuts32: np.ndarray  # (M,) float32: cut lowered by a rounding margin, for float32 scores and bounds
    win_offset: np.ndarray  # (M,) int64
    pass_kmers: np.ndarray  # int32
    pass_start: np.ndarray  # (M + 1,) int64
    method: np.ndarray  # (M,) int8: METHOD_BUCKET or METHOD_SWEEP
    sweep_bits: np.ndarray  # (S, 4**K // 8) uint8: bitset (little bit order) of the K-mers whose score
    #                         plus the best the other columns can add reaches cuts32
    sweep_index: np.ndarray  # (M,) int64: row of sweep_bits (-1 for bucket matrices)
    motif_index: np.ndarray  # (M,) int64
    strand: np.ndarray  # (M,) int8


def _float32_margin(w: np.ndarray) -> float:
    # float32 conv: relative error ~6e-8 per product/sum over at most 4L terms.
    return 1e-4 + 1e-6 * float(np.abs(w).max(axis=1).sum())


#: A matrix is swept when at least this fraction of windows would pass its K-mer filter.
SWEEP_ABOVE = 0.3
#: With at most this many bucket matrices, every matrix is swept instead: sorting the positions costs
#: about as much as sweeping this many bitsets (measured on a 4 Mb shard).
SWEEP_ALL_UP_TO = 6


def _kmer_bound(gw: np.ndarray, bg: np.ndarray, cut: float) -> tuple[int, np.ndarray, float, np.ndarray]:
    """Best K-column window of ``gw`` (its offset); per K-mer there, its score plus the best the other
    columns can add: the K-mers that can still reach ``cut``, the background probability of passing,
    and the bitset of those passing ``cut`` lowered by the float32 margin (for sweeps)."""
    from scanner.scan._kernels import kmer_pass

    length = gw.shape[0]
    pad = np.zeros((max(length, K), 4))
    pad[:length] = gw
    gain = pad.max(axis=1) - pad @ bg
    if length <= K:
        off = 0
    else:
        sums = np.convolve(gain, np.ones(K), mode="valid")
        off = int(np.argmax(sums))
    cols = np.ascontiguousarray(pad[off : off + K])
    outside = float(pad.max(axis=1).sum() - cols.max(axis=1).sum())
    cut32 = np.float32(cut - _float32_margin(gw))
    keep, prob, bits = kmer_pass(cols, np.ascontiguousarray(bg, dtype=np.float64), outside, float(cut), cut32)
    return off, keep, float(prob), bits


def build_lookup_plan(prepared: list[PreparedMotif]) -> LookupPlan:
    """Lay out every (motif, strand) matrix for the kernels (see :class:`LookupPlan`)."""
    gws, starts, lengths, reverse, cuts, cuts32, offs, kmers, kstart, midx, strands = ([] for _ in range(11))
    methods, sweep_bits, sweep_index = [], [], []
    bounds = []
    for pm in prepared:
        for strand in "+-":
            table = pm.tables[strand]
            # Along the genome's + strand, a '-' hit's word is reversed and complemented.
            gw = np.ascontiguousarray(pm.w if strand == "+" else pm.w[::-1, _COMP])
            bg_genome = table.bg if strand == "+" else table.bg[_COMP]
            bounds.append((gw, table, *_kmer_bound(gw, bg_genome, table.cut)))
    sweep_all = sum(b[4] < SWEEP_ABOVE for b in bounds) <= SWEEP_ALL_UP_TO
    row = 0
    kstart.append(0)
    for m, (gw, table, off, keep, prob, bits) in enumerate(bounds):
        cut32 = np.float32(table.cut - _float32_margin(gw))
        if sweep_all or prob >= SWEEP_ABOVE:
            methods.append(METHOD_SWEEP)
            sweep_index.append(len(sweep_bits))
            sweep_bits.append(bits)
            keep = keep[:0]
        else:
            methods.append(METHOD_BUCKET)
            sweep_index.append(-1)
        gws.append(gw)
        starts.append(row)
        row += gw.shape[0]
        lengths.append(gw.shape[0])
        reverse.append(m % 2 == 1)  # '-' matrices are summed backwards along the genome
        cuts.append(table.cut)
        cuts32.append(cut32)
        offs.append(off)
        kmers.append(keep)
        kstart.append(kstart[-1] + keep.size)
        midx.append(m // 2)
        strands.append(m % 2)
    return LookupPlan(
        genome_w=gws,
        w_all=np.ascontiguousarray(np.concatenate(gws)) if gws else np.zeros((0, 4)),
        w_start=np.array(starts, dtype=np.int64),
        lengths=np.array(lengths, dtype=np.int64),
        reverse=np.array(reverse, dtype=np.bool_),
        cuts=np.array(cuts, dtype=np.float64),
        cuts32=np.array(cuts32, dtype=np.float32),
        win_offset=np.array(offs, dtype=np.int64),
        pass_kmers=np.concatenate(kmers).astype(np.int32) if kmers else np.zeros(0, np.int32),
        pass_start=np.array(kstart, dtype=np.int64),
        method=np.array(methods, dtype=np.int8),
        sweep_bits=np.ascontiguousarray(np.array(sweep_bits, dtype=np.uint8).reshape(-1, 4**K // 8)),
        sweep_index=np.array(sweep_index, dtype=np.int64),
        motif_index=np.array(midx, dtype=np.int64),
        strand=np.array(strands, dtype=np.int8),
    )
