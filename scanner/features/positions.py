"""Where a pattern's seqlets lie: genome coordinates and distance to the explained site.

A seqlet's span is the trimmed pattern's columns ``[lo, hi)`` mapped into its window: forward seqlets
cover track positions ``[start + lo, start + hi)``, reverse ones ``[end - hi, end - lo)``; the genome
position is ``window_start + track_offset + track position``. The distance to the site is centre to
centre (centre = ``start + (end - start) // 2``, as ``scanner simulate`` places partners), signed along
the site's strand: positive when the seqlet lies 3' (downstream) of the site on the strand its motif
reads on. ``side``: the seqlet overlaps the site (``site``), or lies wholly 5' (``upstream``) or 3'
(``downstream``) of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SeqletPlaces:
    """Genome spans of one pattern's seqlets and their relation to the site (arrays of length S)."""

    start: np.ndarray
    end: np.ndarray
    minus: np.ndarray
    distance: np.ndarray
    side: np.ndarray  # 0 site, -1 upstream, +1 downstream


def seqlet_places(
    start: np.ndarray,
    end: np.ndarray,
    revcomp: np.ndarray,
    lo: int,
    hi: int,
    window_start: np.ndarray,
    track_offset: int,
    site_start: np.ndarray,
    site_end: np.ndarray,
    site_minus: np.ndarray,
) -> SeqletPlaces:
    """Genome spans, strands, signed distances and sides of seqlets.

    Parameters
    ----------
    start, end, revcomp : numpy.ndarray, shape (S,)
        Seqlet spans in track coordinates and strands (:class:`scanner.features.discover.Pattern`).
    lo, hi : int
        Trimmed pattern columns.
    window_start : numpy.ndarray of int64, shape (S,)
        Genome position of each seqlet's window start.
    track_offset : int
        Window position of track position 0.
    site_start, site_end : numpy.ndarray of int64, shape (S,)
        The explained site of each seqlet's window (0-based, half-open).
    site_minus : numpy.ndarray of bool, shape (S,)
        The site's motif reads on the - strand.

    Returns
    -------
    SeqletPlaces
    """
    start, end = np.asarray(start, np.int64), np.asarray(end, np.int64)
    rc = np.asarray(revcomp, bool)
    t0 = np.where(rc, end - hi, start + lo)
    t1 = np.where(rc, end - lo, start + hi)
    base = np.asarray(window_start, np.int64) + int(track_offset)
    g0, g1 = base + t0, base + t1
    ss, se = np.asarray(site_start, np.int64), np.asarray(site_end, np.int64)
    minus = np.asarray(site_minus, bool)
    d = (g0 + (g1 - g0) // 2) - (ss + (se - ss) // 2)
    d = np.where(minus, -d, d)
    side = np.zeros(d.size, dtype=np.int8)
    before, after = g1 <= ss, g0 >= se  # genome left / right of the site
    side[before] = np.where(minus[before], 1, -1)
    side[after] = np.where(minus[after], -1, 1)
    return SeqletPlaces(g0, g1, rc, d.astype(np.int32), side)


def distance_summary(distance: np.ndarray, side: np.ndarray) -> dict[str, object]:
    """The FEATURES distance columns of one pattern: |distance| quartiles, side shares, majority side."""
    n = int(distance.size)
    if n == 0:
        return {
            "abs_distance_q25": float("nan"),
            "abs_distance_median": float("nan"),
            "abs_distance_q75": float("nan"),
            "share_in_site": 0.0,
            "share_upstream": 0.0,
            "share_downstream": 0.0,
            "side": "both",
        }
    q25, q50, q75 = np.percentile(np.abs(distance.astype(np.float64)), [25, 50, 75])
    shares = {k: float(np.mean(side == v)) for k, v in (("site", 0), ("upstream", -1), ("downstream", 1))}
    majority = [k for k, v in shares.items() if v >= 2 / 3]
    return {
        "abs_distance_q25": float(q25),
        "abs_distance_median": float(q50),
        "abs_distance_q75": float(q75),
        "share_in_site": shares["site"],
        "share_upstream": shares["upstream"],
        "share_downstream": shares["downstream"],
        "side": majority[0] if majority else "both",
    }
