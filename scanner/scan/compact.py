"""Merging a finished scan's shard parts into one file per ``tf=/chrom=`` partition.

Each shard writes one part per TF it found, so a genome of many shards scanned with many motifs
leaves ``shards x motifs`` small files (a human genome with the JASPAR vertebrate set: ~700k files of
~1k rows), slow for every reader and one work item each for ``scanner predict``. When every shard is
done and the scan holds more than :data:`MERGE_MIN_FILES` parts, every partition of two parts or more
is merged into one file ``part-<chrom_index>-all.parquet`` (rows in shard order, i.e. genome order,
as the parts had them; streamed, so memory holds one row group of ~64k rows whatever the partition's
size) and its parts are deleted. Below that the parts stay: the merge reads every
part once more (~0.5-1.5 ms each here), 10-25% of the scan's own time.

The merged file is written through a temporary name and renamed, then the parts are deleted; a crash
in between leaves both, and the next run of the same scan (every shard marker present) deletes the
parts, whose rows the merged file already holds.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scanner.io import atomic_path

#: A finished scan with more part files than this has its partitions merged.
MERGE_MIN_FILES = 10_000
MERGED_SUFFIX = "-all.parquet"
#: Rows gathered into one row group of a merged file (the parts hold ~1k rows each).
ROW_GROUP_ROWS = 65_536


def _parts(directory: Path) -> tuple[list[Path], list[Path]]:
    """(shard parts in genome order, merged files) of one partition directory."""
    parts, merged = [], []
    for p in directory.glob("part-*.parquet"):
        (merged if p.name.endswith(MERGED_SUFFIX) else parts).append(p)
    return sorted(parts), merged  # part-<chrom_index:05d>-<shard:05d>: name order = genome order


def partitions_to_merge(root: str | Path, min_files: int | None = None) -> list[Path]:
    """The partitions under ``root`` (``tf=*/chrom=*``) that :func:`compact_partition` should merge.

    Every partition with two parts or more when the dataset holds more than ``min_files`` parts
    (default :data:`MERGE_MIN_FILES`), and in any case a partition where an interrupted merge left its
    merged file beside parts.
    """
    min_files = MERGE_MIN_FILES if min_files is None else min_files
    found = [(d, *_parts(d)) for d in sorted(Path(root).glob("tf=*/chrom=*"))]
    total = sum(len(parts) for _, parts, _ in found)
    return [d for d, parts, merged in found if parts and (merged or (total > min_files and len(parts) >= 2))]


def _merge(parts: list[Path], path: Path) -> None:
    """Stream ``parts`` into ``path`` (atomically), about :data:`ROW_GROUP_ROWS` rows per row group:
    memory holds one row group, whatever the partition's size."""
    group_rows = ROW_GROUP_ROWS
    first = pq.ParquetFile(parts[0]).schema_arrow
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, first, compression="zstd") as writer:
        pending: list[pa.Table] = []
        rows = 0
        for p in parts:
            table = pq.ParquetFile(p).read()
            pending.append(table)
            rows += table.num_rows
            if rows >= group_rows:
                writer.write_table(pa.concat_tables(pending))
                pending, rows = [], 0
        if pending:
            writer.write_table(pa.concat_tables(pending))


def compact_partition(directory: str | Path) -> int:
    """Merge the shard parts of one finished ``tf=/chrom=`` partition; return the files removed.

    Parameters
    ----------
    directory : str or Path
        ``OUT/instances/tf=<tf>/chrom=<chrom>``; every shard of the chromosome must be done.

    Returns
    -------
    int
        Number of part files removed (0 when there were fewer than two and no merged file).

    Raises
    ------
    OSError
        If a part cannot be read or the merged file cannot be written (the parts are then kept).
    """
    directory = Path(directory)
    parts, merged = _parts(directory)
    if not merged:
        if len(parts) < 2:
            return 0
        chrom_index = parts[0].name.split("-")[1]
        _merge(parts, directory / f"part-{chrom_index}{MERGED_SUFFIX}")
    for p in parts:  # their rows are in the merged file
        p.unlink(missing_ok=True)
    return len(parts)
