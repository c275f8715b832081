"""Attribution tracks as bigWig (pyBigWig), converted from the bedGraph files of ``scanner interpret``.

Each ``<name>.bedGraph`` (0-based half-open, sorted, one line per explained position: the mean
``score`` of the windows covering it) becomes ``<name>.bw`` with the same intervals and values (bigWig
stores float32). The header lists the chromosomes with intervals, in the bedGraph's order, with their
lengths from the genome.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from scanner.errors import InputError
from scanner.io import atomic_path


def bedgraph_to_bigwig(bedgraph: str | Path, chrom_sizes: Mapping[str, int], out: str | Path) -> Path:
    """Convert one bedGraph file to bigWig (written atomically).

    Parameters
    ----------
    bedgraph : path
        Four tab-separated columns ``chrom start end value``, sorted by chromosome then start, no
        overlaps (as :func:`scanner.interpret.run.write_bedgraphs` writes them).
    chrom_sizes : mapping of str to int
        Chromosome lengths (e.g. ``Genome.lengths``).
    out : path
        bigWig to write.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        A chromosome missing from ``chrom_sizes``, or intervals out of order or past its end.
    """
    import polars as pl
    import pyBigWig

    bedgraph, out = Path(bedgraph), Path(out)
    df = pl.read_csv(
        bedgraph,
        separator="\t",
        has_header=False,
        new_columns=["chrom", "start", "end", "value"],
        schema_overrides={"chrom": pl.String, "start": pl.Int64, "end": pl.Int64, "value": pl.Float64},
    )
    chroms = df.get_column("chrom").unique(maintain_order=True).to_list()
    for c in chroms:
        if c not in chrom_sizes:
            raise InputError(f"chromosome {c!r} is not in the genome", source=bedgraph)
    with atomic_path(out) as tmp:
        bw = pyBigWig.open(str(tmp), "w")
        try:
            bw.addHeader([(c, int(chrom_sizes[c])) for c in chroms])
            for c in chroms:
                part = df.filter(pl.col("chrom") == c)
                starts = part.get_column("start").to_numpy()
                ends = part.get_column("end").to_numpy()
                if np.any(ends <= starts) or np.any(starts[1:] < ends[:-1]) or ends.max() > chrom_sizes[c]:
                    raise InputError(f"intervals on {c} are unsorted, overlapping or past its end", source=bedgraph)
                bw.addEntries([c] * len(starts), starts.tolist(), ends=ends.tolist(), values=part["value"].to_list())
        finally:
            bw.close()
    return out


def write_bigwigs(bedgraph_dir: str | Path, chrom_sizes: Mapping[str, int], out_dir: str | Path) -> list[Path]:
    """:func:`bedgraph_to_bigwig` for every ``*.bedGraph`` in ``bedgraph_dir`` into ``out_dir/<name>.bw``."""
    return [
        bedgraph_to_bigwig(p, chrom_sizes, Path(out_dir) / (p.stem + ".bw"))
        for p in sorted(Path(bedgraph_dir).glob("*.bedGraph"))
    ]
