"""Streaming ``(one-hot, label)`` batches from the training-set partitions (schema ``DATASETS``).

The datasets live at ``DATA/regime=<r>/tf=<tf>/split=<train|val|test>/part-*.parquet``. Each row holds
an instance's ``window`` (W letters on the + strand, upper case ACGTN), its ``label`` (int8, 1 bound)
and the motif ``score``. Batches are read one Parquet row group at a time into a bounded shuffle
buffer, so memory stays at about ``buffer_rows * W`` bytes (plus one row group being decoded) whatever
the size of the partition: the whole set is never held in memory.

Shuffling (training): the row groups of all files are visited in a seeded random order and rows are
permuted inside the buffer; rows farther apart than the buffer are not mixed, so a partition sorted by
label and larger than the buffer is only partly shuffled (raise ``buffer_rows``, or write several row
groups). Reverse-complement augmentation replaces each row, independently with probability 1/2, by its
reverse complement (the reference instead doubled every split with reverse complements). Shift
augmentation moves each row's window by a random offset in ``[-S, S]`` bases (:func:`shift_codes`):
the bases that leave one end are dropped and N fills the other, so the site stays inside the window
as long as ``S`` is at most the distance from the site to the window's ends.

A row filter (:class:`RowFilter`) selects rows as they are read: the instances inside open
chromatin, or a seeded hold-out share of the training rows (for early stopping when the validation
split is too small).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scanner.errors import InputError
from scanner.genome import encode, one_hot, reverse_complement_codes
from scanner.io import hive_children, open_parquet, parquet_files, partition_dir

SPLITS = ("train", "val", "test")

#: Columns the loader reads from a DATASETS file.
LOADER_COLUMNS = ("window", "label", "score")


class RowFilter(NamedTuple):
    """Which rows of a DATASETS file to keep.

    Attributes
    ----------
    in_open : bool
        Keep only rows with ``in_open`` true (the ``open`` regime's rows out of every instance).
    holdout : (int, int) or None
        ``(k, i)``: a row belongs to hold-out part ``i`` of ``k`` by a hash of its site (chrom, start,
        end), the same in every epoch and process. None: no hold-out.
    take_holdout : bool
        Keep the rows of hold-out part ``i`` (True) or every row outside it (False).
    """

    in_open: bool = False
    holdout: tuple[int, int] | None = None
    take_holdout: bool = False

    def columns(self) -> tuple[str, ...]:
        """Extra columns the filter reads."""
        return (("in_open",) if self.in_open else ()) + (("chrom", "start", "end") if self.holdout else ())

    def mask(self, rb: pa.RecordBatch) -> np.ndarray:
        """Boolean mask of the rows to keep."""
        keep = np.ones(rb.num_rows, dtype=bool)
        if self.in_open:
            keep &= rb.column("in_open").to_numpy(zero_copy_only=False).astype(bool)
        if self.holdout is not None:
            k, i = self.holdout
            part = site_hash(rb) % np.uint64(k) == np.uint64(i)
            keep &= part if self.take_holdout else ~part
        return keep


def site_hash(rb: pa.RecordBatch | pa.Table) -> np.ndarray:
    """A 64-bit hash of each row's (chrom, start, end), stable across processes (uint64, shape (n,))."""
    import zlib

    chroms = rb.column("chrom").to_pylist()
    codes = {c: zlib.crc32(c.encode()) for c in set(chroms)}
    c = np.fromiter((codes[x] for x in chroms), dtype=np.uint64, count=len(chroms))
    start = rb.column("start").to_numpy(zero_copy_only=False).astype(np.uint64)
    end = rb.column("end").to_numpy(zero_copy_only=False).astype(np.uint64)
    h = c * np.uint64(0x9E3779B97F4A7C15) ^ start * np.uint64(0xBF58476D1CE4E5B9) ^ end * np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h * np.uint64(0xD6E8FEB86659FD93)


def shift_codes(codes: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each row moved right by its shift (left when negative), N (code 4) filling the vacated bases.

    Parameters
    ----------
    codes : numpy.ndarray of uint8, shape (n, W)
    shifts : numpy.ndarray of int, shape (n,)
        Offsets with ``|shift| < W``; row ``i`` of the result holds ``codes[i, p - shifts[i]]`` at
        position ``p`` (N where that is outside the window).

    Returns
    -------
    numpy.ndarray of uint8, shape (n, W)
        A new array.
    """
    w = codes.shape[1]
    out = np.full_like(codes, 4)
    for s in np.unique(shifts):
        rows = shifts == s
        if s >= 0:
            out[rows, s:] = codes[rows, : w - s]
        else:
            out[rows, : w + s] = codes[rows, -s:]
    return out


class Batch(NamedTuple):
    """One mini-batch.

    Attributes
    ----------
    x : numpy.ndarray of float32, shape (B, 4, W)
        One-hot windows (A, C, G, T rows; N = 0.25).
    y : numpy.ndarray of float32, shape (B,)
        Labels, 1.0 bound and 0.0 unbound.
    score : numpy.ndarray of float32, shape (B,)
        Motif log-odds scores (the baseline predictor).
    """

    x: np.ndarray
    y: np.ndarray
    score: np.ndarray


def available_partitions(data_root: str | Path) -> dict[tuple[str, str], set[str]]:
    """Which ``(regime, tf)`` pairs have data, and their splits.

    Parameters
    ----------
    data_root : str or Path
        The datasets directory (``OUT/datasets``).

    Returns
    -------
    dict
        ``{(regime, tf): {"train", "val", ...}}`` for every split directory holding at least one
        visible Parquet file.

    Raises
    ------
    InputError
        If ``data_root`` is not a directory.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise InputError("datasets directory not found (expected DATA/regime=<r>/tf=<tf>/split=<s>/)", source=root)
    out: dict[tuple[str, str], set[str]] = {}
    for regime, rdir in hive_children(root, "regime"):
        for tf, tdir in hive_children(rdir, "tf"):
            splits = {s for s, sdir in hive_children(tdir, "split") if parquet_files(sdir)}
            if splits:
                out[(regime, tf)] = splits
    return out


def partition_files(data_root: str | Path, regime: str, tf: str, split: str) -> list[Path]:
    """The Parquet files of one partition.

    Raises
    ------
    InputError
        If the partition has no Parquet file; the message lists what the datasets directory holds.
    """
    directory = partition_dir(data_root, [("regime", regime), ("tf", tf), ("split", split)])
    files = parquet_files(directory) if directory.is_dir() else []
    if files:
        return files
    have = available_partitions(data_root)
    tfs = sorted({t for (r, t) in have if r == regime})
    if not have:
        hint = "it holds no dataset partitions"
    elif not tfs:
        hint = f"regime '{regime}' has no data; regimes present: {sorted({r for r, _ in have})}"
    elif tf not in tfs:
        hint = f"TF '{tf}' has no data under regime '{regime}'; TFs present: {tfs}"
    else:
        hint = f"splits present for {tf}/{regime}: {sorted(have[(regime, tf)])}"
    raise InputError(f"no Parquet files for split '{split}' ({hint})", source=directory)


def windows_to_codes(
    windows: pa.Array | pa.ChunkedArray | Sequence[str],
    width: int | None = None,
    *,
    source: str | None = None,
) -> np.ndarray:
    """Encode equal-length window strings as a code matrix with :func:`scanner.genome.encode`.

    Parameters
    ----------
    windows : pyarrow string array or sequence of str, length n
        Window sequences, all ``width`` letters (any case; non-ACGT letters become N).
    width : int, optional
        Expected length W. Default: the length of the first window.
    source : str, optional
        File name used in error messages.

    Returns
    -------
    numpy.ndarray of uint8, shape (n, W)
        Codes A=0, C=1, G=2, T=3, other=4.

    Raises
    ------
    InputError
        If a window is null or its length differs from ``width``.
    """
    if not isinstance(windows, (pa.Array, pa.ChunkedArray)):
        windows = pa.array(list(windows), type=pa.string())
    if isinstance(windows, pa.ChunkedArray):
        windows = windows.combine_chunks() if windows.num_chunks else pa.array([], type=pa.string())
    if windows.null_count:
        raise InputError(f"{windows.null_count} null window(s)", source=source, field="window")
    windows = windows.cast(pa.large_string())
    n = len(windows)
    if n == 0:
        return np.zeros((0, width or 0), dtype=np.uint8)
    offsets = np.frombuffer(windows.buffers()[1], dtype=np.int64)[windows.offset : windows.offset + n + 1]
    lengths = np.diff(offsets)
    w = int(lengths[0]) if width is None else int(width)
    bad = np.flatnonzero(lengths != w)
    if bad.size:
        raise InputError(
            f"window {int(bad[0])} of this batch has {int(lengths[bad[0]])} letters, expected {w} "
            f"({bad.size} window(s) of the wrong length)",
            source=source,
            field="window",
        )
    data = np.frombuffer(windows.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return encode(data.tobytes()).reshape(n, w)


def window_width(files: Sequence[Path]) -> int:
    """Window length W of a partition (from the first non-empty file's first row).

    Raises
    ------
    InputError
        If the files hold no rows or no ``window`` column.
    """
    for f in files:
        pf = open_parquet(f)
        if "window" not in pf.schema_arrow.names:
            raise InputError("no 'window' column (expected the DATASETS schema)", source=f, field="window")
        for rg in range(pf.num_row_groups):
            if pf.metadata.row_group(rg).num_rows:
                first = pf.read_row_group(rg, columns=["window"]).column(0)[0].as_py()
                return len(first)
    raise InputError("partition holds no rows", source=files[0] if files else None)


def count_rows(files: Sequence[Path]) -> int:
    """Total rows of the files (from Parquet metadata, nothing decoded)."""
    return sum(open_parquet(f).metadata.num_rows for f in files)


def label_values(files: Sequence[Path]) -> set[int]:
    """Distinct labels of the files (reads the one-byte ``label`` column only)."""
    seen: set[int] = set()
    for f in files:
        pf = open_parquet(f)
        _check_columns(pf, f, ["label"])
        for rb in pf.iter_batches(batch_size=1 << 16, columns=["label"]):
            seen.update(np.unique(rb.column(0).to_numpy(zero_copy_only=False)).tolist())
            if len(seen) > 1:
                return seen
    return seen


def _check_columns(pf: pq.ParquetFile, path: Path, columns: Sequence[str]) -> None:
    names = pf.schema_arrow.names
    for c in columns:
        if c not in names:
            raise InputError(f"column '{c}' is missing (expected the DATASETS schema)", source=path, field=c)


def _read_units(
    files: Sequence[Path], order: np.ndarray | None, columns: Sequence[str], read_rows: int
) -> Iterator[tuple[Path, pa.RecordBatch]]:
    units = []
    handles = {}
    for f in files:
        pf = open_parquet(f)
        _check_columns(pf, f, columns)
        handles[f] = pf
        units += [(f, rg) for rg in range(pf.num_row_groups)]
    seq = range(len(units)) if order is None else order[: len(units)]
    for i in seq:
        f, rg = units[i]
        for rb in handles[f].iter_batches(batch_size=read_rows, row_groups=[rg], columns=list(columns)):
            yield f, rb


def num_row_groups(files: Sequence[Path]) -> int:
    """Total row groups of the files (from metadata)."""
    return sum(open_parquet(f).num_row_groups for f in files)


def iter_batches(
    files: Sequence[str | Path],
    batch_size: int,
    *,
    width: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    rc_augment: bool = False,
    max_shift: int = 0,
    buffer_rows: int = 65536,
    drop_last: bool = False,
    row_filter: RowFilter | None = None,
) -> Iterator[Batch]:
    """Stream one-hot batches from DATASETS files.

    Parameters
    ----------
    files : sequence of path
        Parquet files of one partition (or several).
    batch_size : int
        Rows per batch; the last batch may be smaller unless ``drop_last``.
    width : int, optional
        Expected window length W; every window is checked. Default: the first window's length.
    shuffle : bool, optional
        Visit row groups in a seeded random order and permute rows inside the shuffle buffer.
        Default False (file order, deterministic).
    seed : int, optional
        Seed of the shuffle and of the augmentation (use a different one per epoch). Default 0.
    rc_augment : bool, optional
        Reverse-complement each row with probability 1/2. Default False.
    max_shift : int, optional
        Shift each row's window by a uniform random offset in ``[-max_shift, max_shift]``
        (:func:`shift_codes`). Default 0 (off).
    buffer_rows : int, optional
        Shuffle buffer size in rows. Default 65536 (65 MB at W = 1000).
    drop_last : bool, optional
        Drop a final batch smaller than ``batch_size``. Default False.
    row_filter : RowFilter, optional
        Keep only the rows it selects. Default: every row.

    Yields
    ------
    Batch
        ``x`` (B, 4, W) float32, ``y`` (B,) float32, ``score`` (B,) float32.

    Raises
    ------
    InputError
        For a missing column, a null or wrong-length window, or a label other than 0/1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    files = [Path(f) for f in files]
    rng = np.random.default_rng(seed)
    order = rng.permutation(num_row_groups(files)) if shuffle else None
    buffer_rows = max(buffer_rows, batch_size)
    codes_parts: list[np.ndarray] = []
    y_parts: list[np.ndarray] = []
    s_parts: list[np.ndarray] = []
    held = 0

    def emit(final: bool) -> Iterator[Batch]:
        nonlocal codes_parts, y_parts, s_parts, held
        if not held:
            return
        codes = np.concatenate(codes_parts)
        y = np.concatenate(y_parts)
        s = np.concatenate(s_parts)
        if shuffle:
            perm = rng.permutation(len(y))
            codes, y, s = codes[perm], y[perm], s[perm]
        n_full = (len(y) // batch_size) * batch_size
        stop = len(y) if final and not drop_last else n_full
        for lo in range(0, stop, batch_size):
            hi = min(lo + batch_size, stop)
            c = codes[lo:hi]
            if max_shift:
                c = shift_codes(c, rng.integers(-max_shift, max_shift + 1, size=hi - lo))
            if rc_augment:
                flip = rng.random(hi - lo) < 0.5
                if flip.any():
                    c = c.copy()
                    c[flip] = reverse_complement_codes(c[flip])
            yield Batch(one_hot(c), y[lo:hi].astype(np.float32), s[lo:hi].astype(np.float32))
        rest = slice(stop, None)
        codes_parts, y_parts, s_parts = [codes[rest]], [y[rest]], [s[rest]]
        held = len(y) - stop

    read_rows = min(buffer_rows, 8192)
    columns = LOADER_COLUMNS + (row_filter.columns() if row_filter is not None else ())
    for path, rb in _read_units(files, order, columns, read_rows):
        if row_filter is not None:
            rb = rb.filter(pa.array(row_filter.mask(rb)))
        codes = windows_to_codes(rb.column("window"), width, source=str(path))
        if width is None and len(codes):
            width = codes.shape[1]
        labels = rb.column("label").to_numpy(zero_copy_only=False)
        if labels.size and not np.isin(labels, (0, 1)).all():
            bad = labels[~np.isin(labels, (0, 1))][0]
            raise InputError(f"label {int(bad)} is not 0 or 1", source=path, field="label")
        codes_parts.append(codes)
        y_parts.append(labels.astype(np.int8))
        s_parts.append(rb.column("score").to_numpy(zero_copy_only=False).astype(np.float32))
        held += len(labels)
        if held >= buffer_rows:
            yield from emit(final=False)
    yield from emit(final=True)


def dataset_hash(files: Sequence[str | Path], root: str | Path | None = None) -> str:
    """SHA-256 over the files' relative names and bytes (identifies the exact training data).

    Parameters
    ----------
    files : sequence of path
        Files to hash, in the given order.
    root : path, optional
        Names are taken relative to it. Default: the bare file names.

    Returns
    -------
    str
        ``"sha256:<hex>"``.
    """
    h = hashlib.sha256()
    for f in files:
        f = Path(f)
        name = str(f.relative_to(root)) if root is not None else f.name
        h.update(name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()


def prefetch(batches: Iterator[Batch], depth: int = 2) -> Iterator[Batch]:
    """Yield ``batches`` as produced by a background thread up to ``depth`` batches ahead.

    Reading, decoding and one-hot encoding (numpy and pyarrow, which release the GIL) then overlap
    the consumer's training step. The order is unchanged, so training stays deterministic. An
    exception raised while producing is re-raised in the consumer; a consumer that stops early stops
    the thread.

    Parameters
    ----------
    batches : iterator of Batch
        Typically :func:`iter_batches`.
    depth : int, optional
        Batches produced ahead. Default 2.
    """
    import queue
    import threading

    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for b in batches:
                if not put(b):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failure(exc))
            return
        put(end)

    thread = threading.Thread(target=produce, name="batch-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


class _Failure(NamedTuple):
    exc: BaseException
