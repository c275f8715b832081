"""Scan one stretch of sequence with prepared motifs: the unit of work of a shard."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from scanner.genome import N_CODE
from scanner.scan.prepare import LookupPlan, PreparedMotif
from scanner.schemas import INSTANCES

_COMP = np.array([3, 2, 1, 0, 4], dtype=np.uint8)
_LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)
KERNELS = ("numba", "torch")


def candidates_numba(
    codes: np.ndarray, plan: LookupPlan, core_end: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, matrix, float64 score) of windows reaching their matrix's cut (numba kernels)."""
    from scanner.scan._kernels import kmer_keys, scan_matrices

    n = codes.shape[0]
    core_end = n if core_end is None else core_end
    keys, order, starts = kmer_keys(codes)
    cap = max(4096, n // 8)
    while True:
        pos = np.empty(cap, dtype=np.int64)
        mat = np.empty(cap, dtype=np.int64)
        score = np.empty(cap, dtype=np.float64)
        k = scan_matrices(
            codes,
            keys,
            order,
            starts,
            plan.method,
            plan.lengths,
            plan.reverse,
            plan.w_all,
            plan.w_start,
            plan.cuts,
            plan.cuts32,
            plan.win_offset,
            plan.pass_kmers,
            plan.pass_start,
            plan.sweep_tables,
            plan.sweep_index,
            core_end,
            pos,
            mat,
            score,
        )
        if k >= 0:
            return pos[:k], mat[:k], score[:k]
        cap *= 4


def candidates_torch(codes: np.ndarray, plan: LookupPlan, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Same as :func:`candidates_numba` with a float32 ``conv1d`` (GPU when ``device`` is CUDA)."""
    import torch

    n = codes.shape[0]
    lmax = int(plan.lengths.max())
    weights = np.zeros((len(plan.genome_w), 4, lmax), dtype=np.float32)
    for m, gw in enumerate(plan.genome_w):
        weights[m, :, : gw.shape[0]] = gw.T
    onehot = np.zeros((4, n + lmax), dtype=np.float32)
    valid = codes < N_CODE
    onehot[codes[valid], np.flatnonzero(valid)] = 1.0
    x = torch.from_numpy(onehot).to(device)[None]
    k = torch.from_numpy(weights).to(device)
    cut = torch.from_numpy(plan.cuts32).to(device)[:, None]
    prev = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # keep float32 accuracy for the margin to hold
    try:
        pos_all, mat_all = [], []
        step = 1 << 22
        for s0 in range(0, n, step):
            s1 = min(n, s0 + step)
            with torch.no_grad():
                y = torch.nn.functional.conv1d(x[:, :, s0 : s1 + lmax - 1], k)[0]  # (M, s1 - s0)
            mm, pp = torch.nonzero(y >= cut, as_tuple=True)
            pos_all.append((pp + s0).cpu().numpy())
            mat_all.append(mm.cpu().numpy())
    finally:
        torch.backends.cudnn.allow_tf32 = prev
    pos = np.concatenate(pos_all).astype(np.int64)
    mat = np.concatenate(mat_all).astype(np.int64)
    keep = pos + plan.lengths[mat] <= n
    return pos[keep], mat[keep]


def scan_chunk(
    codes: np.ndarray,
    lower: np.ndarray | None,
    prepared: list[PreparedMotif],
    plan: LookupPlan,
    *,
    chrom: str,
    offset: int = 0,
    core_end: int | None = None,
    skip_masked: bool = False,
    max_strand: bool = False,
    kernel: str = "numba",
    device: str = "cpu",
) -> pa.Table:
    """All hits whose site starts in ``[0, core_end)`` of ``codes``.

    Parameters
    ----------
    codes : numpy.ndarray of uint8, shape (n,)
        Base codes (A=0, C=1, G=2, T=3, other=4) of the stretch.
    lower : numpy.ndarray of bool, shape (n,), optional
        Soft-masked positions; windows touching one are skipped when ``skip_masked``.
    prepared, plan
        From :func:`~scanner.scan.prepare.prepare_motifs` and
        :func:`~scanner.scan.prepare.build_lookup_plan`.
    chrom : str
        Chromosome name written to the rows.
    offset : int
        0-based genome coordinate of ``codes[0]``. Default 0.
    core_end : int, optional
        Only sites starting before this index (relative to ``codes``) are reported, so that
        overlapping shards report each site once. Default: ``n``.
    skip_masked, max_strand : bool
        FIMO's ``--skip-masked``-like filter and ``--max-strand``. Default False.
    kernel : {"numba", "torch"}
        Candidate filter. Default ``"numba"``.
    device : str
        Torch device for ``kernel="torch"``. Default ``"cpu"``.

    Returns
    -------
    pyarrow.Table
        Rows in the :data:`~scanner.schemas.INSTANCES` schema, sorted by motif, start, strand.
    """
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n = codes.shape[0]
    core_end = n if core_end is None else core_end
    if n == 0 or not prepared:
        return INSTANCES.empty_table()
    if kernel == "numba":
        pos, mat, scores = candidates_numba(codes, plan, core_end)
    elif kernel == "torch":
        pos, mat = candidates_torch(codes, plan, device)
        keep = pos < core_end
        pos, mat, scores = pos[keep], mat[keep], None
    else:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    bad = (codes == N_CODE).astype(np.int64)
    if skip_masked and lower is not None:
        bad |= lower.astype(np.int64)
    bad_prefix = np.concatenate([[0], np.cumsum(bad)])

    cols: dict[str, list] = {k: [] for k in ("start", "strand", "mi", "score", "pvalue", "word")}
    for m in np.unique(mat):
        pm_index = int(plan.motif_index[m])
        pm = prepared[pm_index]
        strand = "+" if plan.strand[m] == 0 else "-"
        length = pm.length
        sel = mat == m
        p = pos[sel]
        ok = bad_prefix[p + length] - bad_prefix[p] == 0
        p = p[ok]
        known = None if scores is None else scores[sel][ok]
        if p.size == 0:
            continue
        words = codes[p[:, None] + np.arange(length)[None, :]]
        if strand == "-":
            words = _COMP[words[:, ::-1]]
        table = pm.tables[strand]
        if table.mode == "fimo":
            score, pv = table.fimo_scores(words)
            hit = pv < table.threshold
        else:
            if known is None:
                from scanner.scan._kernels import sequential_scores

                known = sequential_scores(np.ascontiguousarray(words), pm.w)
            score = known
            hit, pv = table.evaluate(score)
        if not hit.any():
            continue
        cols["start"].append(p[hit])
        cols["strand"].append(np.full(int(hit.sum()), plan.strand[m], dtype=np.int8))
        cols["mi"].append(np.full(int(hit.sum()), pm_index, dtype=np.int64))
        cols["score"].append(score[hit])
        cols["pvalue"].append(pv[hit])
        letters = np.ascontiguousarray(_LETTERS[words[hit]])
        cols["word"].append(pa.array(letters.view(f"S{length}").ravel(), type=pa.binary(length)).cast(pa.string()))
    if not cols["start"]:
        return INSTANCES.empty_table()
    start = np.concatenate(cols["start"])
    strand = np.concatenate(cols["strand"])
    mi = np.concatenate(cols["mi"])
    score = np.concatenate(cols["score"])
    pvalue = np.concatenate(cols["pvalue"])
    order = np.lexsort((strand, start, mi))
    start, strand, mi, score, pvalue = (a[order] for a in (start, strand, mi, score, pvalue))
    if max_strand:
        keep = _max_strand_mask(start, strand, mi, score)
        start, strand, mi, score, pvalue = (a[keep] for a in (start, strand, mi, score, pvalue))
        order = order[keep]
    words = pa.concat_arrays(cols["word"]).take(pa.array(order))
    lengths = np.array([p.length for p in prepared], dtype=np.int64)
    ids = np.array([p.motif_id for p in prepared], dtype=object)
    names = np.array([p.name for p in prepared], dtype=object)
    g_start = start + offset
    return pa.table(
        {
            "chrom": pa.array(np.full(start.size, chrom, dtype=object), pa.string()),
            "start": pa.array(g_start, pa.int64()),
            "end": pa.array(g_start + lengths[mi], pa.int64()),
            "strand": pa.array(np.where(strand == 0, "+", "-").astype(object), pa.string()),
            "motif_id": pa.array(ids[mi], pa.string()),
            "tf": pa.array(names[mi], pa.string()),
            "score": pa.array(score.astype(np.float32), pa.float32()),
            "pvalue": pa.array(pvalue, pa.float64()),
            "sequence": words,
        },
        schema=INSTANCES,
    )


def _max_strand_mask(start: np.ndarray, strand: np.ndarray, mi: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Keep one hit per (motif, start): the higher score, '+' on ties (rows sorted by mi, start, strand)."""
    keep = np.ones(start.size, dtype=bool)
    same = (start[1:] == start[:-1]) & (mi[1:] == mi[:-1])
    for i in np.flatnonzero(same):  # i is '+', i + 1 is '-'
        if score[i + 1] > score[i]:
            keep[i] = False
        else:
            keep[i + 1] = False
    return keep
