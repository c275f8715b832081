"""One allocator setting for every contender of a benchmark (imported by the model benchmarks).

``scanner`` keeps freed memory in its processes (:func:`scanner.runtime.keep_freed_memory`): glibc
otherwise returns the multi-MB buffers of every batch to the OS and faults them in again (measured:
~3.2k against ~5.2k rows/s per core for CPU prediction). A bare torch loop would pay that, and
threads other than the main one (Ray Data runs its UDFs in one) partly escape it, which made
framework overhead look negative. So the benchmark re-executes itself once with glibc's own
environment switches for the same setting: the bare loops, the in-process runs, spawned processes
and Ray's workers (started from this process) all allocate the same way.
"""

from __future__ import annotations

import os
import sys

SETTING = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}


def same_allocator_for_all() -> None:
    """Re-execute this script with :data:`SETTING` in the environment unless it is already there."""
    if all(os.environ.get(k) == v for k, v in SETTING.items()):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **SETTING})
