"""Export the instances dataset as FIMO's TSV (1-based inclusive) or BED6 (0-based half-open)."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import numpy as np
import pyarrow as pa

from scanner.errors import InputError
from scanner.io import parquet_files, read_dataset
from scanner.schemas import INSTANCES


def _complete_scan(instances_dir: Path) -> bool:
    """Whether ``instances_dir/_scan.json`` records a finished scan."""
    import json

    try:
        return bool(json.loads((instances_dir / "_scan.json").read_text()).get("complete"))
    except (OSError, ValueError):
        return False


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


def _load(instances_dir: Path) -> pa.Table:
    if not instances_dir.is_dir() or not parquet_files(instances_dir):
        if _complete_scan(instances_dir):  # a finished scan with no hit: a valid, empty result
            return INSTANCES.empty_table()
        raise InputError("no instances found (run `scanner scan` first)", source=instances_dir)
    table = read_dataset(instances_dir, INSTANCES)
    idx = np.lexsort(
        (
            table.column("strand").to_numpy(zero_copy_only=False),
            table.column("start").to_numpy(),
            table.column("chrom").to_numpy(zero_copy_only=False),
            table.column("motif_id").to_numpy(zero_copy_only=False),
        )
    )
    return table.take(pa.array(idx))


def write_fimo_tsv(instances_dir: str | Path, out: TextIO) -> int:
    """Write FIMO's TSV columns (start/stop 1-based inclusive; q-value left empty). Returns rows written."""
    table = _load(Path(instances_dir))
    out.write("\t".join(FIMO_COLUMNS) + "\n")
    for r in table.to_pylist():
        out.write(
            f"{r['motif_id']}\t{r['tf']}\t{r['chrom']}\t{r['start'] + 1}\t{r['end']}\t{r['strand']}\t"
            f"{r['score']:.6g}\t{r['pvalue']:.3g}\t\t{r['sequence']}\n"
        )
    return table.num_rows


def write_bed(instances_dir: str | Path, out: TextIO) -> int:
    """Write BED6: chrom, start, end, name (motif_id:tf), score (bits), strand. Returns rows written."""
    table = _load(Path(instances_dir))
    for r in table.to_pylist():
        out.write(
            f"{r['chrom']}\t{r['start']}\t{r['end']}\t{r['motif_id']}:{r['tf']}\t{r['score']:.4f}\t{r['strand']}\n"
        )
    return table.num_rows
