"""Parquet dataset I/O: hive partition paths, atomic writes, typed reads.

Every file is written to a temporary name in its final directory and renamed into place, so a reader
never sees a partial file and a retried or resumed shard replaces its earlier file instead of adding
a duplicate.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.parquet as pq

_SAFE = "-_.+=~@,"


def encode_partition_value(value: object) -> str:
    """Percent-encode a partition value for a directory name (``FOS::JUN`` -> ``FOS%3A%3AJUN``)."""
    text = str(value)
    if not text:
        raise ValueError("partition value is empty")
    return quote(text, safe=_SAFE)


def partition_dir(root: str | Path, parts: Mapping[str, object] | Sequence[tuple[str, object]]) -> Path:
    """Return ``root/k1=v1/k2=v2`` for the given ordered partition keys and values."""
    items = parts.items() if isinstance(parts, Mapping) else parts
    path = Path(root)
    for key, value in items:
        path = path / f"{key}={encode_partition_value(value)}"
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed to ``path`` when the block succeeds.

    The temporary name is hidden (``.<name>.<uuid>.tmp``: readers skip it) and removed if the block
    raises, so a reader sees the old file or the whole new one, never part of one. Parent
    directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_parquet_atomic(
    table: pa.Table,
    path: str | Path,
    *,
    compression: str = "zstd",
    row_group_size: int | None = None,
) -> Path:
    """Write ``table`` to ``path`` through a temporary file and an atomic rename.

    Parameters
    ----------
    table : pyarrow.Table
        The rows to write.
    path : str or Path
        Final file name; parent directories are created.
    compression : str, optional
        Parquet codec. Default ``"zstd"``.
    row_group_size : int, optional
        Rows per row group. Default: pyarrow's.

    Returns
    -------
    Path
        ``path``.
    """
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=compression, row_group_size=row_group_size)
    return Path(path)


def write_bytes_atomic(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` through a temporary file, flushed to disk, and an atomic rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes_atomic(text.encode("utf-8"), path)


def hive_children(directory: str | Path, key: str) -> list[tuple[str, Path]]:
    """The ``key=<value>`` subdirectories of ``directory`` as ``(decoded value, path)``, sorted by name;
    empty when ``directory`` does not exist."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    prefix = key + "="
    return [
        (unquote(c.name[len(prefix) :]), c)
        for c in sorted(directory.iterdir())
        if c.is_dir() and c.name.startswith(prefix)
    ]


def parquet_files(root: str | Path) -> list[Path]:
    """All visible ``*.parquet`` files under ``root`` (hidden and ``_``-prefixed names skipped), sorted."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        out.extend(Path(dirpath) / f for f in filenames if f.endswith(".parquet") and not f.startswith((".", "_")))
    return sorted(out)


def open_parquet(path: str | Path) -> pq.ParquetFile:
    """Open a Parquet file, turning a corrupt, truncated or unreadable one into an error naming it.

    Raises
    ------
    InputError
        If the file cannot be read as Parquet (the message says what is wrong and names the path).
    """
    from scanner.errors import InputError

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"not a readable Parquet file ({exc}); was it cut short? re-create it", source=path) from exc


def read_dataset(root: str | Path, schema: pa.Schema | None = None) -> pa.Table:
    """Read every visible Parquet file under ``root`` into one table (partition columns are in the files).

    Parameters
    ----------
    root : str or Path
        Dataset directory.
    schema : pyarrow.Schema, optional
        If given, the result is cast to it (and an empty dataset yields an empty table of it).

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"dataset directory {root} does not exist")
    files = parquet_files(root)
    if not files:
        if schema is None:
            return pa.table({})
        return schema.empty_table()
    tables = [open_parquet(f).read() for f in files]
    table = pa.concat_tables(tables, promote_options="default")
    if schema is not None:
        table = table.select(schema.names).cast(schema)
    return table
