"""The instances dataset as FIMO's TSV: ``fimo.tsv`` with q-values, or the ``fimo --text`` flavour.

Coordinates: FIMO's ``start``/``stop`` are 1-based inclusive (``start = start + 1``, ``stop = end``
of the 0-based half-open dataset). BED and narrowPeak exports of every dataset are in
:mod:`scanner.results.export`.

q-values (``fimo.tsv`` flavour) follow FIMO: Benjamini-Hochberg per motif over every window the scan
tested for that motif, ``m = 2 x`` (windows of the motif's length made of A/C/G/T only, and not
soft-masked with ``--skip-masked``, on the scanned chromosomes; both strands count, also with
``--max-strand``), computed from the reported p-values as FIMO computes them from its stored ones. Every
unreported window has a p-value at or above the threshold, so the hits are the ``n`` smallest of the
``m`` p-values and their ranks are their ranks among the hits: ``q_(i) = min(1, min_{j >= i, j <= n}
p_(j) m / j)``. A BH run over all ``m`` p-values could only be lower where the unreported windows just
above the threshold enter that minimum, which happens only for q-values near 1. FIMO further multiplies
by its estimate of the share of null windows (pi0 <= 1, from a sample of all p-values, which a scan does
not keep), so its q-values are the same or lower by that factor (a few per cent on a small random
genome, ~0 on a real one).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scanner.errors import InputError
from scanner.io import parquet_files, read_dataset
from scanner.schemas import INSTANCES
from scanner.store import DATASETS

#: The column header of ``fimo.tsv`` (and of ``fimo --text``, whose q-values are empty).
FIMO_COLUMNS = (
    "motif_id",
    "motif_alt_id",
    "sequence_name",
    "start",
    "stop",
    "strand",
    "score",
    "p-value",
    "q-value",
    "matched_sequence",
)

SCAN_META = DATASETS["instances"].record  # layout owned by scanner.store
#: Bases read per call when counting windows.
_CHUNK = 8_000_000


def scan_record(instances_dir: str | Path) -> dict | None:
    """The parsed ``_scan.json`` of an instances directory, or None when there is none (or it is unreadable)."""
    path = Path(instances_dir) / SCAN_META
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def empty_reason(instances_dir: str | Path) -> str | None:
    """Why an instances directory holds no rows, in words, or None when it has rows.

    Raises
    ------
    InputError
        If it is no scan output at all, or a scan that has not finished (with the fix).
    """
    d = Path(instances_dir)
    if parquet_files(d) and any(pq.ParquetFile(f).metadata.num_rows for f in parquet_files(d)):
        return None
    meta = scan_record(d)
    if meta is None:
        raise InputError(
            "no instances here and no _scan.json: not a scan output (run `scanner scan --out RUN`, then export "
            "RUN/instances)",
            source=d,
        )
    if not meta.get("complete", False):
        raise InputError("the scan has not finished (rerun the same `scanner scan` to resume it)", source=d)
    motifs = meta.get("motifs") or []
    unreachable = meta.get("unreachable") or {}
    cannot = f"; {len(unreachable)} of them cannot reach it, see _scan.json 'unreachable'" if unreachable else ""
    return f"the scan found 0 instances ({len(motifs)} motif(s), p < {meta.get('pvalue', '?')}{cannot})"


def load_instances(instances_dir: str | Path) -> pa.Table:
    """Every instance (schema :data:`~scanner.schemas.INSTANCES`); an empty table for a finished scan without hits.

    Raises
    ------
    InputError
        As :func:`empty_reason`.
    """
    d = Path(instances_dir)
    if not d.is_dir():
        raise InputError("no such directory (give RUN/instances, written by `scanner scan`)", source=d)
    if empty_reason(d) is not None:
        return INSTANCES.empty_table()
    return read_dataset(d, INSTANCES)


def bh_qvalues(pvalues: np.ndarray, m: int) -> np.ndarray:
    """Benjamini-Hochberg q-values of the ``n`` smallest of ``m`` p-values (order of ``pvalues`` kept).

    Parameters
    ----------
    pvalues : numpy.ndarray of float64, shape (n,)
        The reported p-values (every unreported test has a larger p-value).
    m : int
        Number of tests, ``m >= n``.

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        ``min(1, min_{j >= rank} p_(j) m / j)``.

    Raises
    ------
    ValueError
        If ``m < n``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    n = p.size
    if m < n:
        raise ValueError(f"m = {m} tests but {n} p-values")
    if n == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, n + 1)
    q_sorted = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    out = np.empty(n)
    out[order] = q_sorted
    return out


def _runs(ok: np.ndarray) -> np.ndarray:
    """Lengths of the maximal runs of True in ``ok``, in order."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], ok, [False])).astype(np.int8)))
    return edges[1::2] - edges[::2]


def count_windows(
    genome_path: str | Path, lengths: Iterable[int], chroms: Iterable[str] | None = None, skip_masked: bool = False
) -> dict[int, int]:
    """Windows of each length made of A/C/G/T only (one strand), over the given chromosomes.

    Parameters
    ----------
    genome_path : path
        FASTA.
    lengths : iterable of int
        Window lengths (motif widths).
    chroms : iterable of str, optional
        Chromosomes. Default: all.
    skip_masked : bool
        Windows touching a lower-case base do not count. Default False.

    Returns
    -------
    dict
        ``{length: windows}``.
    """
    from scanner.genome import open_genome

    widths = sorted({int(x) for x in lengths})
    counts = dict.fromkeys(widths, 0)
    g = open_genome(genome_path)
    try:
        for chrom in list(chroms) if chroms is not None else g.chroms:
            runs: list[np.ndarray] = []
            carry = 0  # the run still open at the end of the previous chunk
            n = g.lengths[chrom]
            for lo in range(0, n, _CHUNK):
                codes, lower = g.read_codes(chrom, lo, min(n, lo + _CHUNK), lower=skip_masked)
                ok = codes < 4
                if skip_masked:
                    ok &= ~lower
                if ok.size == 0:
                    continue
                r = _runs(ok)
                if carry and ok[0]:
                    r[0] += carry
                elif carry:
                    runs.append(np.array([carry]))
                carry = int(r[-1]) if ok[-1] else 0
                runs.append(r[:-1] if ok[-1] else r)
            runs.append(np.array([carry]))
            all_runs = np.concatenate(runs)
            for w in widths:
                counts[w] += int(np.maximum(all_runs - w + 1, 0).sum())
    finally:
        g.close()
    return counts


def fimo_qvalues(table: pa.Table, meta: dict, genome: str | Path | None = None) -> np.ndarray:
    """q-values of the instances in ``table`` (its row order), BH per motif as described in the module.

    Parameters
    ----------
    table : pyarrow.Table
        Instances (``motif_id``, ``pvalue``).
    meta : dict
        The scan's ``_scan.json`` (motif lengths, genome, chromosomes, ``skip_masked``).
    genome : path, optional
        FASTA to count windows in. Default: the one ``meta`` names.

    Raises
    ------
    InputError
        If the genome cannot be read (with the fix: ``--genome``, or ``--fimo-text``).
    """
    fp = meta.get("fingerprint") or {}
    cfg = fp.get("config") or {}
    path = Path(genome) if genome is not None else Path(meta.get("genome", ""))
    if not path.is_file():
        raise InputError(
            "q-values count the windows the scan tested, which needs its genome: pass --genome FASTA, or "
            "use --fimo-text (fimo --text's flavour, q-values left empty)",
            source=path,
            field="--genome",
        )
    width = {m["motif_id"]: len(m["probs"]) for m in meta.get("motifs", [])}
    ids = table.column("motif_id").to_pylist()
    missing = sorted(set(ids) - set(width))
    if missing:
        raise InputError(f"motif(s) {', '.join(missing[:5])} are not in _scan.json; was the scan rerun?")
    windows = count_windows(path, set(width[i] for i in set(ids)), fp.get("chroms"), bool(cfg.get("skip_masked")))
    p = table.column("pvalue").to_numpy()
    q = np.empty(len(ids))
    motif = np.asarray(ids, dtype=object)
    for mid in set(ids):
        sel = np.flatnonzero(motif == mid)
        q[sel] = bh_qvalues(p[sel], 2 * windows[width[mid]])
    return q


def write_fimo_tsv(
    instances_dir: str | Path, out: TextIO, *, qvalues: bool = True, genome: str | Path | None = None
) -> int:
    """Write FIMO's TSV; returns the rows written.

    Parameters
    ----------
    instances_dir : path
        ``OUT/instances``.
    out : text stream
    qvalues : bool
        True (default): ``fimo.tsv``: rows by motif (scan order), then p-value, with q-values, and
        FIMO's trailing ``#`` comment lines. False: ``fimo --text``: rows by motif, chromosome,
        start, strand, q-value column empty.
    genome : path, optional
        FASTA for the q-values. Default: the scan's genome.

    Raises
    ------
    InputError
        No instances directory, an unfinished scan, or (q-values) an unreadable genome.
    """
    d = Path(instances_dir)
    table = load_instances(d)
    meta = scan_record(d) or {}
    order_of = {m["motif_id"]: i for i, m in enumerate(meta.get("motifs", []))}
    motif_rank = np.array([order_of.get(x, len(order_of)) for x in table.column("motif_id").to_pylist()])
    chrom = table.column("chrom").to_numpy(zero_copy_only=False)
    start = table.column("start").to_numpy()
    strand = table.column("strand").to_numpy(zero_copy_only=False)
    motif_id = table.column("motif_id").to_numpy(zero_copy_only=False)
    if qvalues and table.num_rows:
        q = fimo_qvalues(table, meta, genome)
        idx = np.lexsort((strand, start, chrom, table.column("pvalue").to_numpy(), motif_id, motif_rank))
    else:
        q = None
        idx = np.lexsort((strand, start, chrom, motif_id, motif_rank))
    out.write("\t".join(FIMO_COLUMNS) + "\n")
    rows = table.take(pa.array(idx)).to_pylist()
    qs = q[idx] if q is not None else None
    for k, r in enumerate(rows):
        qv = "" if qs is None else f"{qs[k]:.3g}"
        out.write(
            f"{r['motif_id']}\t{r['tf']}\t{r['chrom']}\t{r['start'] + 1}\t{r['end']}\t{r['strand']}\t"
            f"{r['score']:.6g}\t{r['pvalue']:.3g}\t{qv}\t{r['sequence']}\n"
        )
    if qvalues and rows:
        out.write(
            "\n# scanner export --fimo: FIMO's fimo.tsv columns (start/stop 1-based inclusive)\n"
            "# q-value: Benjamini-Hochberg per motif over every window scanned (both strands), without FIMO's "
            "pi0 factor\n"
        )
    return table.num_rows
