"""Alleles against windows: trimming, which instance windows hold a variant, and the ALT window.

Coordinates are 0-based half-open on the genome's + strand. A variant is reduced to the REF bases it
changes, ``[var_start, var_end)``, and the bases put in their place (``inserted``): the shared suffix
of REF and ALT is removed, then the shared prefix (:func:`trim_alleles`). A pure insertion or deletion
is then shifted to the leftmost position that gives the same ALT sequence (:func:`left_align`, as
``bcftools norm`` and ``vt normalize`` do), so every representation of an indel in a repeat lands on
one interval. An insertion has ``var_start == var_end`` (its bases go before ``var_start``).

The window of a site ``[start, end)`` is ``[ws, ws + W)`` with ``ws = (start + end) // 2 - W // 2``
(as in prediction); write ``c = (start + end) // 2`` for its centre. A variant is *in* the window when
it changes its content: ``ws < var_end`` and ``var_start < ws + W`` (an insertion: strictly inside,
``ws < var_start < ws + W``); both read ``ws in [var_start - W + 1, var_end - 1]``.

The ALT window keeps the site where it was: a variant wholly upstream of the centre
(``var_end <= c``) is *right-anchored* (the bases from the variant to ``ws + W`` stay; upstream bases
shift by the length change ``d = len(inserted) - (var_end - var_start)``), any other variant is
*left-anchored* (the bases from ``ws`` to the variant stay; downstream bases shift). The window is
then filled from the genome (or N past a chromosome end) to exactly W bases: an insertion pushes bases
out of the far end, a deletion pulls in the next genome bases.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

KINDS = ("snv", "mnv", "insertion", "deletion", "complex")


def trim_alleles(pos: int, ref: str, alt: str) -> tuple[int, int, str, str]:
    """The changed REF interval, the inserted bases and the kind of a (REF, ALT) pair.

    Parameters
    ----------
    pos : int
        0-based position of ``ref[0]``.
    ref, alt : str
        Alleles (same case).

    Returns
    -------
    (var_start, var_end, inserted, kind)
        ``kind`` is one of :data:`KINDS`, or ``"none"`` when ``ref == alt``.
    """
    r, a = ref, alt
    k = 0
    while k < min(len(r), len(a)) and r[len(r) - 1 - k] == a[len(a) - 1 - k]:
        k += 1
    r, a = r[: len(r) - k], a[: len(a) - k]
    k = 0
    while k < min(len(r), len(a)) and r[k] == a[k]:
        k += 1
    r, a = r[k:], a[k:]
    start = pos + k
    if not r and not a:
        kind = "none"
    elif len(r) == len(a):
        kind = "snv" if len(r) == 1 else "mnv"
    elif not r:
        kind = "insertion"
    elif not a:
        kind = "deletion"
    else:
        kind = "complex"
    return start, start + len(r), a, kind


def left_align(
    var_start: int, var_end: int, inserted: str, fetch: Callable[[int, int], str], block: int = 64
) -> tuple[int, int, str]:
    """Shift a pure insertion or deletion left as far as the ALT sequence stays the same.

    While the base before ``var_start`` equals the last base of the indel's bases (the deleted REF
    bases, or ``inserted``), the indel moves one base left and its bases rotate right by one
    (deleting ``A`` of ``CAAAG`` at any of its three ``A`` s is the deletion of the first). Stops at the
    chromosome start and at a base that is not A/C/G/T. SNVs, MNVs and complex alleles are returned
    unchanged.

    Parameters
    ----------
    var_start, var_end : int
        The trimmed changed REF interval (0-based half-open; :func:`trim_alleles`).
    inserted : str
        The trimmed inserted bases (upper case).
    fetch : callable
        ``fetch(start, end)`` returns the REF bases of ``[start, end)`` (any case).
    block : int
        Bases read per call while walking left. Default 64.

    Returns
    -------
    (var_start, var_end, inserted)
        The leftmost equivalent interval and the (rotated) inserted bases.
    """
    deleted = var_end - var_start
    if (deleted == 0) == (len(inserted) == 0):  # not a pure indel
        return var_start, var_end, inserted
    unit = fetch(var_start, var_end).upper() if deleted else inserted
    s, lo, left = var_start, var_start, ""
    while s > 0:
        if s - 1 < lo:  # read the next block to the left
            lo = max(0, s - block)
            left = fetch(lo, s).upper()
        base = left[s - 1 - lo]
        if base != unit[-1] or base not in "ACGT":
            break
        unit = unit[-1] + unit[:-1]
        s -= 1
    return (s, s + deleted, "") if deleted else (s, s, unit)


def inserted_bases(pos: int, ref: str, alt: str, var_start: int) -> str:
    """The ALT bases put at ``var_start`` for a VCF allele whose changed interval starts there: the
    trimmed inserted bases (:func:`trim_alleles`), rotated right by one per base :func:`left_align`
    moved the allele left of where trimming put it."""
    start, _end, ins, _kind = trim_alleles(pos, ref, alt)
    k = (start - var_start) % len(ins) if ins else 0
    return ins[len(ins) - k :] + ins[: len(ins) - k] if k else ins


def pair_windows(
    var_start: np.ndarray, var_end: np.ndarray, window_starts: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """All (variant, window) pairs where the window holds the variant.

    Parameters
    ----------
    var_start, var_end : numpy.ndarray of int64, shape (n,)
        Changed REF intervals.
    window_starts : numpy.ndarray of int64, shape (m,)
        Window starts ``ws``, **sorted** ascending.
    width : int
        W.

    Returns
    -------
    (variant_index, window_index) : numpy.ndarray of int64 each
        Sorted by variant, then window.
    """
    lo = np.searchsorted(window_starts, np.asarray(var_start) - width + 1, side="left")
    hi = np.searchsorted(window_starts, np.asarray(var_end) - 1, side="right")
    counts = np.maximum(hi - lo, 0)
    vi = np.repeat(np.arange(len(counts)), counts)
    first = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    wi = first + np.arange(int(counts.sum()))
    return vi.astype(np.int64), wi.astype(np.int64)


def gap(var_start: np.ndarray, var_end: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Bases between a changed interval and a site (0 when adjacent or overlapping)."""
    return np.maximum(0, np.maximum(np.asarray(start) - var_end, np.asarray(var_start) - end))


def nearest_gap(var_start: np.ndarray, var_end: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each variant, :func:`gap` to the nearest site; -1 when there is no site.

    Parameters
    ----------
    var_start, var_end : numpy.ndarray of int64, shape (n,)
    starts, ends : numpy.ndarray of int64, shape (m,)
        Sites (any order).
    """
    n = len(var_start)
    if len(starts) == 0:
        return np.full(n, -1, dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = np.asarray(starts)[order], np.asarray(ends)[order]
    max_end = np.maximum.accumulate(e)
    vs, ve = np.asarray(var_start), np.asarray(var_end)
    # sites starting at or before the variant's end can overlap or lie left of it
    k = np.searchsorted(s, ve, side="right")  # sites [0, k) start <= ve
    left = np.where(k > 0, np.maximum(0, vs - max_end[np.maximum(k - 1, 0)]), np.iinfo(np.int64).max)
    right = np.where(k < len(s), s[np.minimum(k, len(s) - 1)] - ve, np.iinfo(np.int64).max)
    return np.minimum(left, np.maximum(right, 0)).astype(np.int64)


def site_in_variant(var_start: int, var_end: int, start: int, end: int) -> bool:
    """True when the variant changes a base of the site (an insertion: strictly inside it)."""
    if var_end == var_start:
        return start < var_start < end
    return var_start < end and var_end > start


def bases_deleted(var_start: int, var_end: int, inserted_len: int, start: int, end: int) -> int:
    """Site bases an allele deletes: its overlap with the site, at most its net length loss."""
    loss = (var_end - var_start) - inserted_len
    if loss <= 0:
        return 0
    return int(min(loss, max(0, min(var_end, end) - max(var_start, start))))


def right_anchored(var_end: int, centre: int) -> bool:
    """True when the ALT window keeps its right end (the variant is wholly upstream of the centre)."""
    return var_end <= centre


def alt_window(
    ext: np.ndarray,
    margin: int,
    width: int,
    window_start: int,
    var_start: int,
    var_end: int,
    inserted: np.ndarray,
    centre: int,
) -> np.ndarray:
    """The ALT window of one (site, variant) pair.

    Parameters
    ----------
    ext : numpy.ndarray of uint8, shape (W + 2 * margin,)
        REF codes of ``[window_start - margin, window_start + W + margin)``.
    margin : int
        Must exceed the longest REF or ALT allele.
    width : int
        W.
    window_start : int
        ``ws`` of the site.
    var_start, var_end : int
        Changed REF interval (must lie inside the extended region).
    inserted : numpy.ndarray of uint8
        Codes of the inserted bases.
    centre : int
        ``(start + end) // 2`` of the site.

    Returns
    -------
    numpy.ndarray of uint8, shape (W,)
    """
    lo = window_start - margin
    i0, i1 = var_start - lo, var_end - lo
    if not (0 <= i0 <= i1 <= ext.shape[0]):
        raise ValueError(f"variant [{var_start}, {var_end}) is outside the extended window at {lo}")
    region = np.concatenate([ext[:i0], inserted.astype(np.uint8), ext[i1:]])
    d = len(inserted) - (var_end - var_start)
    first = margin + d if right_anchored(var_end, centre) else margin
    out = region[first : first + width]
    if out.shape[0] != width:
        raise ValueError("margin too small for this allele")
    return out
