"""Why regimes disagree about a variant: the learned pattern its position falls in under each regime.

For each allele of ``OUT/variants/comparison.parquet`` flagged ``sign_flip`` or ``rank_flip`` and each
regime ``r``, the patterns that ``scanner features`` found for the allele's TF under ``r`` are scanned
over the REF bases around it: a pattern *covers* the allele when a window of the pattern's length that
overlaps the REF allele's bases ``[pos, pos + len(REF))`` matches the pattern's PPM (log-odds against a
uniform background, FIMO's pseudocount, either strand) at p < ``pvalue`` (exact p-values, as the scan
computes them). ``pattern_<r>`` is the covering pattern with the smallest p-value (null: none, or the
allele does not disagree, or ``r`` has no features) and ``pattern_match_<r>`` that pattern's database
match (``best_match``; null when unmatched).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from scanner.errors import InputError
from scanner.store import RunDir


def _prepared_patterns(patterns: object, pvalue: float) -> dict[tuple[str, str], list[tuple[str, str | None, object]]]:
    """``(tf, regime) -> [(pattern, best_match, PreparedMotif)]``."""
    from scanner.motifs import Background, Motif
    from scanner.scan.prepare import prepare_motifs

    out: dict[tuple[str, str], list] = {}
    for r in patterns.iter_rows(named=True):
        ppm = np.asarray(r["ppm"], dtype=np.float64)
        ppm = ppm / ppm.sum(axis=1, keepdims=True)
        motif = Motif(r["pattern"], r["pattern"], ppm, nsites=max(1, int(r["n_seqlets"])), source="features")
        (prep,) = prepare_motifs([motif], Background.uniform(), pvalue=pvalue, threads=1)
        out.setdefault((r["tf"], r["regime"]), []).append((r["pattern"], r["best_match"], prep))
    return out


def _best_cover(codes: np.ndarray, lo: int, a: int, b: int, candidates: list) -> tuple[str | None, str | None]:
    """The candidate whose best hit overlapping ``[a, b)`` has the smallest p-value.

    ``codes`` are the bases from genome position ``lo`` on (A=0..T=3, N=4).
    """
    from scanner.genome import reverse_complement_codes

    best: tuple[float, str, str | None] | None = None
    for name, match, prep in candidates:
        length = prep.length
        starts = np.arange(max(lo, a - length + 1), b) - lo
        starts = starts[(starts >= 0) & (starts + length <= codes.size)]
        if starts.size == 0:
            continue
        words = codes[starts[:, None] + np.arange(length)[None, :]]
        ok = ~(words == 4).any(axis=1)
        words = words[ok]
        if words.size == 0:
            continue
        cols = np.arange(length)[None, :]
        for strand, w in (("+", words), ("-", reverse_complement_codes(words))):
            scores = prep.w[cols, w].sum(axis=1)
            hit, p = prep.tables[strand].evaluate(scores, w)
            if hit.any():
                pmin = float(p[hit].min())
                if best is None or pmin < best[0]:
                    best = (pmin, name, match)
    return (None, None) if best is None else (best[1], best[2])


def pattern_columns(
    comparison: pa.Table,
    features_root: str | Path,
    genome: str | Path,
    *,
    pvalue: float = 1e-4,
    method: str | None = None,
) -> pa.Table:
    """``comparison`` with ``pattern_<r>`` and ``pattern_match_<r>`` for each of its regimes.

    Parameters
    ----------
    comparison : pyarrow.Table
        :func:`scanner.variants.compare.compare_regimes` output keyed on VCF alleles.
    features_root : path
        ``OUT/features``.
    genome : path
        The FASTA the variants were scored on.
    pvalue : float, optional
        Pattern hit threshold. Default 1e-4.
    method : str, optional
        Attribution method whose patterns are used. Default: ``deeplift`` if present, else the first.

    Returns
    -------
    pyarrow.Table
        Schema :func:`scanner.schemas.variant_comparison_schema` with ``patterns=True``.

    Raises
    ------
    InputError
        If ``features_root`` holds no features or the genome lacks a chromosome.
    """
    import polars as pl

    from scanner.features.run import read_features
    from scanner.genome import open_genome
    from scanner.schemas import VARIANT_KEY, variant_comparison_schema

    patterns = pl.from_arrow(read_features(features_root)[0])
    cmp = pl.from_arrow(comparison)
    regimes = sorted(
        c.removeprefix("delta_") for c in cmp.columns if c.startswith("delta_") and c not in ("delta_min", "delta_max")
    )
    schema = variant_comparison_schema(regimes, VARIANT_KEY, patterns=True)
    if patterns.height and method is None:
        methods = patterns.get_column("method").unique().sort().to_list()
        method = "deeplift" if "deeplift" in methods else methods[0]
    patterns = patterns.filter(pl.col("method") == method) if patterns.height else patterns
    prepared = _prepared_patterns(patterns, pvalue) if patterns.height else {}
    names: dict[str, list] = {f"pattern_{r}": [] for r in regimes}
    names |= {f"pattern_match_{r}": [] for r in regimes}
    lmax = max((p.length for c in prepared.values() for _, _, p in c), default=1)
    g = open_genome(genome)
    try:
        for row in cmp.iter_rows(named=True):
            todo = (row["sign_flip"] or row["rank_flip"]) and any((row["tf"], r) in prepared for r in regimes)
            codes = lo = a = b = None
            if todo:
                g.check_chrom(row["chrom"], source="comparison")
                a, b = int(row["pos"]), int(row["pos"]) + max(1, len(row["ref"]))
                lo, hi = max(0, a - lmax), min(g.lengths[row["chrom"]], b + lmax)
                codes = g.codes(row["chrom"], lo, hi)
            for r in regimes:
                found = (None, None)
                if todo and (row["tf"], r) in prepared:
                    found = _best_cover(codes, lo, a, b, prepared[(row["tf"], r)])
                names[f"pattern_{r}"].append(found[0])
                names[f"pattern_match_{r}"].append(found[1])
    finally:
        g.close()
    cols = {name: comparison.column(name) for name in comparison.column_names}
    cols |= {k: pa.array(v, pa.string()) for k, v in names.items()}
    if not regimes and not cols:
        return schema.empty_table()
    return pa.table(cols).select(schema.names).cast(schema)


def check_features_dir(path: str | Path) -> Path:
    """``path`` if it holds a features output, else :class:`InputError` naming ``--features``."""
    p = Path(path)
    if not RunDir.of("features", p).part("patterns").is_dir():
        raise InputError("no features here (expected patterns/ from scanner features)", source=p, field="--features")
    return p
