"""The VCF kernel of ``scanner variants``: every (allele, instance) pair of one work item scored.

:func:`score_vcf_item` adds the sites the ALT allele creates, cuts the REF windows (once per site) and
the ALT windows (once per pair), computes site p-values, runs every model of the TF in ``batch_size``
batches and returns the VARIANTS rows. It runs in :class:`scanner.variants.runner.VariantScorer`
(Ray Data actors or this process); :mod:`scanner.variants.score` plans the items and drives them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from scanner.errors import InputError
from scanner.genome import Genome, encode
from scanner.predict.apply import ModelRef, fetch_windows, predict_codes
from scanner.schemas import VARIANTS
from scanner.variants.alleles import (
    alt_window,
    bases_deleted,
    gap,
    inserted_bases,
    site_in_variant,
)
from scanner.variants.items import VariantConfig, VariantItem, model_columns
from scanner.variants.motif import MotifSet, created_hits, site_words, word_pvalues


def _null(n: int, typ: pa.DataType) -> pa.Array:
    return pa.nulls(n, typ)


def _pairs_with_created(
    item: VariantItem,
    genome: Genome,
    motifs: MotifSet | None,
    config: VariantConfig,
    inserted: list[np.ndarray],
) -> dict[str, np.ndarray]:
    v, p = item.variants, item.pairs
    vs, ve = v.column("var_start").to_numpy(), v.column("var_end").to_numpy()
    out = {
        "var": p.column("var").to_numpy().astype(np.int64),
        "start": p.column("inst_start").to_numpy().astype(np.int64),
        "end": p.column("inst_end").to_numpy().astype(np.int64),
        "strand": np.asarray(p.column("inst_strand").to_pylist(), dtype=object),
        "motif_id": np.asarray(p.column("motif_id").to_pylist(), dtype=object),
        "created": np.zeros(p.num_rows, dtype=bool),
        "pv_alt": np.full(p.num_rows, np.nan),
    }
    n = v.num_rows
    if config.created_hits and motifs is not None and n:
        k = motifs.max_length - 1
        width = 2 * (int((ve - vs).max()) + k + 1)
        ctx = fetch_windows(genome, np.full(n, item.chrom, dtype=object), vs, vs, width)
        h = width // 2
        ref_context = [ctx[i, h - k : h + int(ve[i] - vs[i]) + k] for i in range(n)]
        ch = created_hits(ref_context, vs, ve, inserted, motifs)
        ids = np.array([motifs.prepared[m].motif_id for m in ch.motif], dtype=object)
        known = set(
            zip(
                out["var"].tolist(),
                out["start"].tolist(),
                out["strand"].tolist(),
                out["motif_id"].tolist(),
                strict=True,
            )
        )
        new = np.array(
            [
                (int(a), int(b), c, d) not in known
                for a, b, c, d in zip(ch.variant, ch.start, ch.strand, ids, strict=True)
            ],
            dtype=bool,
        )
        for key, arr in (
            ("var", ch.variant),
            ("start", ch.start),
            ("end", ch.end),
            ("strand", ch.strand),
            ("motif_id", ids),
            ("created", np.ones(len(ch.variant), dtype=bool)),
            ("pv_alt", ch.pvalue_alt),
        ):
            out[key] = np.concatenate([out[key], np.asarray(arr)[new]])
    order = np.lexsort((out["created"], out["motif_id"].astype(str), out["strand"] == "-", out["start"], out["var"]))
    return {k: a[order] for k, a in out.items()}


def score_vcf_item(
    item: VariantItem,
    genome: Genome,
    load: Callable[[ModelRef], Any],
    motifs: MotifSet | None,
    config: VariantConfig,
    device: str = "cpu",
) -> pa.Table:
    """VARIANTS rows of one VCF work item.

    Rows: for each model in ``item.models``, the (allele, site) pairs sorted by allele, site start,
    strand, motif, existing sites before created ones; then one row per allele of the item in no
    window (``in_window`` false).

    Parameters
    ----------
    item : VariantItem
        ``kind == "vcf"``.
    genome : Genome
    load : callable
        ``ModelRef -> torch model`` (eval mode, on ``device``); callers cache.
    motifs : MotifSet, optional
        The TF's motifs (site p-values and created hits). None leaves the site columns null.
    config : VariantConfig
    device : str, optional

    Raises
    ------
    InputError
        For a chromosome the genome lacks.
    """
    v = item.variants
    n = v.num_rows
    width, margin = item.seq_len, config.margin
    pos = v.column("pos").to_numpy()
    refs, alts = v.column("ref").to_pylist(), v.column("alt").to_pylist()
    vs, ve = v.column("var_start").to_numpy(), v.column("var_end").to_numpy()
    inserted = [encode(inserted_bases(int(pos[i]), refs[i], alts[i], int(vs[i]))) for i in range(n)]
    pairs = _pairs_with_created(item, genome, motifs, config, inserted)
    var, start, end = pairs["var"], pairs["start"], pairs["end"]
    m = len(var)

    centre = (start + end) // 2
    ws = centre - width // 2
    uniq, inv = np.unique(centre, return_inverse=True)
    ext = fetch_windows(genome, np.full(len(uniq), item.chrom, dtype=object), uniq, uniq, width + 2 * margin)
    ref_u = np.ascontiguousarray(ext[:, margin : margin + width])
    alt = np.empty((m, width), dtype=np.uint8)
    for j in range(m):
        i = var[j]
        alt[j] = alt_window(ext[inv[j]], margin, width, int(ws[j]), int(vs[i]), int(ve[i]), inserted[i], int(centre[j]))

    pv_ref, pv_alt = np.full(m, np.nan), np.full(m, np.nan)
    hit_ref, hit_alt = np.zeros(m, dtype=bool), np.zeros(m, dtype=bool)
    if motifs is not None and m:
        offsets = start - ws
        for mid in dict.fromkeys(pairs["motif_id"].tolist()):
            try:
                pm = motifs.by_id(mid)
            except KeyError:
                raise InputError(
                    f"instance motif {mid!r} of TF {item.tf} is not among the scan's motifs "
                    f"({', '.join(p.motif_id for p in motifs.prepared)}); were the instances made by this scan?",
                    field="motif_id",
                ) from None
            for strand in ("+", "-"):
                sel = np.flatnonzero((pairs["motif_id"] == mid) & (pairs["strand"] == strand))
                if sel.size == 0:
                    continue
                minus = np.full(sel.size, strand == "-")
                wr = site_words(ref_u[inv[sel]], offsets[sel], pm.length, minus)
                wa = site_words(alt[sel], offsets[sel], pm.length, minus)
                pv_ref[sel], hit_ref[sel] = word_pvalues(pm, wr, strand)
                pv_alt[sel], hit_alt[sel] = word_pvalues(pm, wa, strand)
        created = pairs["created"]
        pv_alt[created] = pairs["pv_alt"][created]
        hit_alt[created] = True
    has_site = motifs is not None

    ins_len = np.array([len(x) for x in inserted], dtype=np.int64)
    base = v.drop_columns(["nearest"]).take(pa.array(var, pa.int64()))
    pair_cols: dict[str, pa.Array] = {
        "tf": pa.array([item.tf] * m, pa.string()),
        "seq_len": pa.array(np.full(m, width, np.int32), pa.int32()),
        "in_window": pa.array(np.ones(m, dtype=bool), pa.bool_()),
        "distance": pa.array(gap(vs[var], ve[var], start, end), pa.int64()),
        "inst_start": pa.array(start, pa.int64()),
        "inst_end": pa.array(end, pa.int64()),
        "inst_strand": pa.array(pairs["strand"].tolist(), pa.string()),
        "motif_id": pa.array(pairs["motif_id"].tolist(), pa.string()),
        "inst_source": pa.array(np.where(pairs["created"], "created", "scan").tolist(), pa.string()),
        "window_start": pa.array(ws, pa.int64()),
        "var_in_site": pa.array(
            [site_in_variant(int(vs[i]), int(ve[i]), int(s), int(e)) for i, s, e in zip(var, start, end, strict=True)],
            pa.bool_(),
        ),
        "site_bases_deleted": pa.array(
            [
                bases_deleted(int(vs[i]), int(ve[i]), int(ins_len[i]), int(s), int(e))
                for i, s, e in zip(var, start, end, strict=True)
            ],
            pa.int32(),
        ),
        "site_pvalue_ref": pa.array(pv_ref, pa.float64(), mask=np.isnan(pv_ref))
        if has_site
        else _null(m, pa.float64()),
        "site_pvalue_alt": pa.array(pv_alt, pa.float64(), mask=np.isnan(pv_alt))
        if has_site
        else _null(m, pa.float64()),
        "hit_ref": pa.array(hit_ref, pa.bool_()) if has_site else _null(m, pa.bool_()),
        "hit_alt": pa.array(hit_alt, pa.bool_()) if has_site else _null(m, pa.bool_()),
    }
    parts = []
    if m:
        inputs = np.concatenate([ref_u, alt])
        for ref in item.models:
            z = predict_codes(
                load(ref), inputs, batch_size=config.batch_size, rc_average=config.rc_average, device=device
            )
            cols = {
                **{c: base.column(c) for c in base.column_names},
                **pair_cols,
                **model_columns(z[: len(uniq)][inv], z[len(uniq) :], ref.regime),
            }
            parts.append(pa.table(cols, schema=VARIANTS))
    lonely = np.setdiff1d(np.arange(n), var)
    if lonely.size:
        k = lonely.size
        near = v.column("nearest").to_numpy()[lonely]
        cols = {c: v.column(c).take(pa.array(lonely)) for c in v.column_names if c != "nearest"}
        cols.update(
            tf=pa.array([item.tf] * k, pa.string()),
            seq_len=pa.array(np.full(k, width, np.int32), pa.int32()),
            in_window=pa.array(np.zeros(k, dtype=bool), pa.bool_()),
            distance=pa.array(near, pa.int64(), mask=near < 0),
        )
        for f in VARIANTS:
            if f.name not in cols:
                cols[f.name] = _null(k, f.type)
        parts.append(pa.table({f.name: cols[f.name] for f in VARIANTS}, schema=VARIANTS))
    return pa.concat_tables(parts) if parts else VARIANTS.empty_table()
