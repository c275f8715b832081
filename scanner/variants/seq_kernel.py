"""The sequence-pair kernel of ``scanner variants --sequences``: one work item of REF/ALT pairs scored.

:func:`score_sequence_item` fits each sequence to the model's window, runs every model of the TF and
returns the VARIANT_SEQUENCES rows; :mod:`scanner.variants.sequences` reads the pairs and drives it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from scanner.genome import N_CODE, encode
from scanner.predict.apply import ModelRef, predict_codes
from scanner.schemas import VARIANT_SEQUENCES
from scanner.variants.alleles import trim_alleles
from scanner.variants.items import VariantConfig, VariantItem, model_columns
from scanner.variants.motif import MotifSet, best_site


def fit_to_window(codes: np.ndarray, width: int) -> np.ndarray:
    """Crop or N-pad ``codes`` to ``width``, centred (the odd base at the right end)."""
    n = len(codes)
    if n >= width:
        lo = (n - width) // 2
        return codes[lo : lo + width]
    out = np.full(width, N_CODE, dtype=np.uint8)
    left = (width - n) // 2
    out[left : left + n] = codes
    return out


def score_sequence_item(
    item: VariantItem,
    load: Callable[[ModelRef], Any],
    motifs: MotifSet | None,
    config: VariantConfig,
    device: str = "cpu",
) -> pa.Table:
    """VARIANT_SEQUENCES rows of one item: for each model, the item's pairs in file order."""
    t = item.variants
    n, width = t.num_rows, item.seq_len
    refs, alts = t.column("ref").to_pylist(), t.column("alt").to_pylist()
    x = np.empty((2 * n, width), dtype=np.uint8)
    starts, ends, kinds = [], [], []
    site = {k: [] for k in ("motif_id", "site_pvalue_ref", "site_pvalue_alt", "hit_ref", "hit_alt")}
    for i in range(n):
        rc, ac = encode(refs[i]), encode(alts[i])
        x[i], x[n + i] = fit_to_window(rc, width), fit_to_window(ac, width)
        s, e, ins, kind = trim_alleles(0, refs[i], alts[i])
        starts.append(s)
        ends.append(e)
        kinds.append(kind)
        if motifs is not None:
            lo_r, hi_r = (s, e) if kind != "none" else (-1, -1)
            lo_a, hi_a = (s, s + len(ins)) if kind != "none" else (-1, -1)
            mid, pr, hr = best_site(rc, lo_r, hi_r, motifs)
            mid_a, pa_, ha = best_site(ac, lo_a, hi_a, motifs)
            site["motif_id"].append(mid if mid is not None else mid_a)
            site["site_pvalue_ref"].append(None if np.isnan(pr) else pr)
            site["site_pvalue_alt"].append(None if np.isnan(pa_) else pa_)
            site["hit_ref"].append(hr if mid is not None else None)
            site["hit_alt"].append(ha if mid_a is not None else None)
        else:
            for k in site:
                site[k].append(None)
    common = {
        "id": t.column("id"),
        "line": t.column("line"),
        "tf": pa.array([item.tf] * n, pa.string()),
        "seq_len": pa.array(np.full(n, width, np.int32), pa.int32()),
        "ref_length": pa.array([len(r) for r in refs], pa.int32()),
        "alt_length": pa.array([len(a) for a in alts], pa.int32()),
        "kind": pa.array(kinds, pa.string()),
        "var_start": pa.array(starts, pa.int64()),
        "var_end": pa.array(ends, pa.int64()),
        "motif_id": pa.array(site["motif_id"], pa.string()),
        "site_pvalue_ref": pa.array(site["site_pvalue_ref"], pa.float64()),
        "site_pvalue_alt": pa.array(site["site_pvalue_alt"], pa.float64()),
        "hit_ref": pa.array(site["hit_ref"], pa.bool_()),
        "hit_alt": pa.array(site["hit_alt"], pa.bool_()),
    }
    parts = []
    for ref in item.models:
        z = predict_codes(load(ref), x, batch_size=config.batch_size, rc_average=config.rc_average, device=device)
        parts.append(pa.table({**common, **model_columns(z[:n], z[n:], ref.regime)}, schema=VARIANT_SEQUENCES))
    return pa.concat_tables(parts) if parts else VARIANT_SEQUENCES.empty_table()
