"""Motif p-value tables cached on disk, so that a second scan with the same motifs skips building them.

One file per table, named by a SHA-256 of everything the table depends on: the log-odds matrix and the
background (their float64 bytes), the threshold, the p-value mode and the code version (the package
version and the source of the modules that build tables), so a changed matrix, background, threshold,
mode or algorithm never reads a stale entry. Location: ``--table-cache DIR``, else the environment
variable ``SCANNER_CACHE_DIR``, else ``$XDG_CACHE_HOME/scanner/motif-tables`` (``~/.cache/...``).

Safe to delete at any time (a missing entry is rebuilt). Safe to share between concurrent scans: an
entry is written to a temporary file in the same directory and renamed into place (atomic on POSIX),
so a reader sees a whole entry or none; two writers of the same entry write the same bytes. An entry
that cannot be read or does not match its key (a truncated or foreign file) is ignored and replaced.
Entries are Python pickles: keep the directory private to its user, as numba's own cache.
About 16 bytes per enumerated upper-tail word (~100 MB for 50 JASPAR motifs at p < 1e-4), and 8 MB
for each motif too long to enumerate.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

ENV_VAR = "SCANNER_CACHE_DIR"
#: ``--table-cache`` value that turns the cache off.
OFF = "off"
_SOURCES = ("pvalues.py", "_band.py", "_pvalue_kernels.py", "table_cache.py")


def default_cache_dir() -> Path:
    """``$SCANNER_CACHE_DIR``, else ``$XDG_CACHE_HOME/scanner/motif-tables`` (``~/.cache`` by default)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "scanner" / "motif-tables"


def resolve_cache_dir(spec: str | None) -> Path | None:
    """The cache directory for a ``--table-cache`` value: None -> default, ``"off"`` -> no cache."""
    if spec == OFF:
        return None
    return Path(spec) if spec else default_cache_dir()


@lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus a hash of the modules that build tables (changes invalidate entries)."""
    import scanner

    h = hashlib.sha256(getattr(scanner, "__version__", "0").encode())
    here = Path(__file__).resolve().parent
    for name in _SOURCES:
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


def table_key(w: np.ndarray, bg: np.ndarray, threshold: float, mode: str) -> str:
    """SHA-256 (hex) of the matrix, background, threshold, mode and :func:`code_version`."""
    h = hashlib.sha256()
    h.update(code_version().encode())
    h.update(np.ascontiguousarray(w, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(bg, dtype=np.float64).tobytes())
    h.update(float(threshold).hex().encode() + b"\0" + mode.encode())
    h.update(str(np.asarray(w).shape).encode())
    return h.hexdigest()


def load_table(cache_dir: Path, w: np.ndarray, bg: np.ndarray, threshold: float, mode: str):
    """The cached :class:`~scanner.scan.pvalues.PValueTable`, or None (absent, unreadable or foreign)."""
    from scanner.scan.pvalues import PValueTable

    path = cache_dir / f"{table_key(w, bg, threshold, mode)}.pkl"
    try:
        with open(path, "rb") as fh:
            table = pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception:  # truncated, corrupt or written by something else: rebuilt and replaced
        return None
    ok = (
        isinstance(table, PValueTable)
        and table.mode == mode
        and table.threshold == threshold
        and np.array_equal(table.w, w)
        and np.array_equal(table.bg, bg)
    )
    return table if ok else None


def store_table(cache_dir: Path, table) -> bool:
    """Write ``table`` atomically (temporary file + rename); False when the directory is not writable."""
    path = cache_dir / f"{table_key(table.w, table.bg, table.threshold, table.mode)}.pkl"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:16]}.", suffix=".tmp", dir=cache_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(table, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return False
    return True


def cached_build(cache_dir: Path | None, w: np.ndarray, bg: np.ndarray, threshold: float, mode: str):
    """:meth:`PValueTable.build` through the cache (``cache_dir`` None: no cache)."""
    from scanner.scan.pvalues import PValueTable

    if cache_dir is not None:
        table = load_table(cache_dir, w, bg, threshold, mode)
        if table is not None:
            return table
    table = PValueTable.build(w, bg, threshold, mode)
    if cache_dir is not None:
        store_table(cache_dir, table)
    return table
