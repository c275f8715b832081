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
    from scanner.scan._kernels import METHOD_BUCKET, kmer_keys, scan_matrices

    n = codes.shape[0]
    core_end = n if core_end is None else core_end
    keys, order, starts = kmer_keys(codes, bool((plan.method == METHOD_BUCKET).any()))
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
            plan.win_offset,
            plan.pass_kmers,
            plan.pass_start,
            plan.sweep_bits,
            plan.sweep_index,
            core_end,
            pos,
            mat,
            score,
        )
        if k >= 0:
            return pos[:k], mat[:k], score[:k]
        cap *= 4


#: Positions per ``conv1d`` call of :func:`candidates_torch` (bounds its device memory).
TORCH_STEP = 1 << 22


def candidates_torch(codes: np.ndarray, plan: LookupPlan, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Same as :func:`candidates_numba` with a float32 ``conv1d`` (GPU when ``device`` is CUDA)."""
    import torch

    from scanner.runtime import full_float32

    n = codes.shape[0]
    lmax = int(plan.lengths.max())
    weights = np.zeros((len(plan.genome_w), 4, lmax), dtype=np.float32)
    for m, gw in enumerate(plan.genome_w):
        weights[m, :, : gw.shape[0]] = gw.T
    # the codes travel (1 byte per base) and are one-hot encoded on the device; N is all zeros there
    # (windows with N are dropped after the filter), and lmax zero columns pad the end
    table = torch.zeros((N_CODE + 1, 4), dtype=torch.float32, device=device)
    table[torch.arange(4), torch.arange(4)] = 1.0
    c = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.uint8)).to(device).long()
    x = torch.nn.functional.pad(table[c].T, (0, lmax))[None]  # (1, 4, n + lmax)
    k = torch.from_numpy(weights).to(device)
    cut = torch.from_numpy(plan.cuts32).to(device)[:, None]
    pos_all, mat_all = [], []
    with full_float32(), torch.no_grad():  # float32 accuracy, for the margin to hold
        for s0 in range(0, n, TORCH_STEP):
            s1 = min(n, s0 + TORCH_STEP)
            y = torch.nn.functional.conv1d(x[:, :, s0 : s1 + lmax - 1], k)[0]  # (M, s1 - s0)
            mm, pp = torch.nonzero(y >= cut, as_tuple=True)
            pos_all.append((pp + s0).cpu().numpy())
            mat_all.append(mm.cpu().numpy())
    pos = np.concatenate(pos_all).astype(np.int64)
    mat = np.concatenate(mat_all).astype(np.int64)
    if len(pos_all) > 1:  # each step is grouped by matrix; the whole must be too (stable: positions stay sorted)
        order = np.argsort(mat, kind="stable")
        pos, mat = pos[order], mat[order]
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
    undecided: dict[str, int] | None = None,
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
    undecided : dict, optional
        When given, ``undecided[motif_id]`` is increased by the windows of that motif whose p-value
        could not be separated from the threshold (not reported; see
        :meth:`~scanner.scan.pvalues.PValueTable.decide`).

    Returns
    -------
    pyarrow.Table
        Rows in the :data:`~scanner.schemas.INSTANCES` schema, grouped by TF name, then sorted by
        motif (in ``prepared`` order), start, strand.
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
    # The numba kernel never proposes a window containing N; the torch one may.
    bad = (codes == N_CODE) if kernel == "torch" else None
    if skip_masked and lower is not None:
        bad = lower if bad is None else bad | lower

    # Candidates come grouped by matrix (both kernels emit matrix by matrix).
    bounds = np.searchsorted(mat, np.arange(len(plan.lengths) + 1))
    parts: dict[str, list] = {k: [] for k in ("start", "strand", "mi", "score", "pvalue", "letters")}
    for m in np.flatnonzero(np.diff(bounds)):
        pm_index = int(plan.motif_index[m])
        pm = prepared[pm_index]
        strand = "+" if plan.strand[m] == 0 else "-"
        length = pm.length
        p = pos[bounds[m] : bounds[m + 1]]
        known = None if scores is None else scores[bounds[m] : bounds[m + 1]]
        if bad is not None:
            ok = _clean_windows(bad, p, length)
            p = p[ok]
            known = None if known is None else known[ok]
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
            hit, pv, und = table.decide(score)
            if undecided is not None and und.any():
                undecided[pm.motif_id] = undecided.get(pm.motif_id, 0) + int(und.sum())
        k = int(np.count_nonzero(hit))
        if k == 0:
            continue
        parts["start"].append(p[hit])
        parts["strand"].append(np.full(k, plan.strand[m], dtype=np.int8))
        parts["mi"].append(np.full(k, pm_index, dtype=np.int64))
        parts["score"].append(score[hit])
        parts["pvalue"].append(pv[hit])
        parts["letters"].append(_LETTERS[words[hit]].ravel())
    if not parts["start"]:
        return INSTANCES.empty_table()
    start, strand, mi, score, pvalue = (np.concatenate(parts[k]) for k in ("start", "strand", "mi", "score", "pvalue"))
    lengths = np.array([p.length for p in prepared], dtype=np.int64)
    # Every site's letters, one string array (offsets from the site lengths), in candidate order.
    letters = np.concatenate(parts["letters"])
    offsets = np.zeros(start.size + 1, dtype=np.int32)
    np.cumsum(lengths[mi], out=offsets[1:])
    sites = pa.StringArray.from_buffers(start.size, pa.py_buffer(offsets), pa.py_buffer(letters))
    # Rows grouped by TF name (one Parquet part per TF), then motif, start, strand.
    names = np.array([p.name for p in prepared], dtype=object)
    tf_rank = np.unique(names, return_inverse=True)[1].astype(np.int64)
    order = np.lexsort((strand, start, mi, tf_rank[mi]))
    start, strand, mi, score, pvalue = (a[order] for a in (start, strand, mi, score, pvalue))
    if max_strand:
        keep = _max_strand_mask(start, strand, mi, score)
        start, strand, mi, score, pvalue = (a[keep] for a in (start, strand, mi, score, pvalue))
        order = order[keep]
    # Columns built from buffers: pyarrow's own numpy/list conversions import pandas (~0.3 s per process).
    ids = _strings([p.motif_id for p in prepared])
    tfs = _strings([p.name for p in prepared])
    mi_arrow = _numeric(mi, pa.int64())
    g_start = start + offset
    return pa.table(
        {
            "chrom": _strings([chrom]).take(_numeric(np.zeros(start.size, dtype=np.int64), pa.int64())),
            "start": _numeric(g_start, pa.int64()),
            "end": _numeric(g_start + lengths[mi], pa.int64()),
            "strand": _strings(["+", "-"]).take(_numeric(strand.astype(np.int64), pa.int64())),
            "motif_id": ids.take(mi_arrow),
            "tf": tfs.take(mi_arrow),
            "score": _numeric(score.astype(np.float32), pa.float32()),
            "pvalue": _numeric(pvalue, pa.float64()),
            "sequence": sites.take(_numeric(order.astype(np.int64), pa.int64())),
        },
        schema=INSTANCES,
    )


def _numeric(values: np.ndarray, kind: pa.DataType) -> pa.Array:
    """A pyarrow array over a numpy array's buffer (no nulls), without pyarrow's numpy conversion."""
    values = np.ascontiguousarray(values, dtype=kind.to_pandas_dtype())
    return pa.Array.from_buffers(kind, values.size, [None, pa.py_buffer(values)])


def _strings(items: list[str]) -> pa.StringArray:
    """A pyarrow string array from Python strings, built from its offsets and UTF-8 bytes."""
    data = [x.encode() for x in items]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    return pa.StringArray.from_buffers(len(data), pa.py_buffer(offsets), pa.py_buffer(b"".join(data)))


def _clean_windows(bad: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Whether each window ``[start, start + length)`` holds no ``bad`` position."""
    from scanner.scan._kernels import clean_windows

    return clean_windows(np.ascontiguousarray(bad, dtype=np.bool_), np.ascontiguousarray(starts, np.int64), length)


def _max_strand_mask(start: np.ndarray, strand: np.ndarray, mi: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Keep one hit per (motif, start): the higher score, '+' on ties (rows sorted by mi, start, strand)."""
    keep = np.ones(start.size, dtype=bool)
    i = np.flatnonzero((start[1:] == start[:-1]) & (mi[1:] == mi[:-1]))  # i is '+', i + 1 is '-'
    minus_better = score[i + 1] > score[i]
    keep[i[minus_better]] = False
    keep[i[~minus_better] + 1] = False
    return keep
