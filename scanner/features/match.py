"""TomTom matches of discovered patterns against motif databases (memelite's ``tomtom``).

Every database file (MEME, JASPAR, HOMER or probability rows: :func:`scanner.motifs.read_motif_file`)
joins one target set, so each query is compared with all targets at once and its p-values use the
columns of every database as their background (TomTom's p-values depend on the targets: with fewer than
25 of them memelite warns and they can move by orders of magnitude). Both strands of every target are
tried. q-values are Benjamini-Hochberg over all targets of a query, as MEME's ``tomtom`` reports them.
Queries are the patterns' position probability matrices, trimmed (:func:`trim_bounds`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scanner.errors import InputError
from scanner.motifs import Motif

#: Below this many targets TomTom's p-values depend strongly on which targets are given.
MIN_TARGETS = 25


@dataclass(frozen=True)
class MotifDatabase:
    """Target motifs and the database (file stem) each came from."""

    motifs: tuple[Motif, ...]
    databases: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.motifs)


@dataclass(frozen=True)
class Match:
    """One TomTom match of a query."""

    motif_id: str
    name: str
    database: str
    pvalue: float
    qvalue: float
    #: TomTom's offset of the best alignment.
    offset: int
    #: '+' the target as given, '-' its reverse complement.
    strand: str


def load_databases(paths: Sequence[str | Path]) -> MotifDatabase:
    """Read motif files into one target set (a motif id seen twice in one file keeps both).

    Raises
    ------
    InputError
        For a missing or malformed file, or when no file is given.
    """
    from scanner.motifs import read_motif_file

    if not paths:
        raise InputError("no motif database given (MEME or JASPAR files)", field="--motifs")
    motifs: list[Motif] = []
    dbs: list[str] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise InputError("motif database not found", source=path, field="--motifs")
        found = read_motif_file(path)
        if not found:
            raise InputError("no motif in file", source=path, field="--motifs")
        motifs.extend(found)
        dbs.extend([path.name.split(".")[0]] * len(found))
    return MotifDatabase(tuple(motifs), tuple(dbs))


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of the p-values ``p`` (1-d), capped at 1."""
    p = np.asarray(p, dtype=np.float64)
    n = p.size
    if n == 0:
        return p.copy()
    order = np.argsort(p, kind="mergesort")
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def match_patterns(
    queries: Sequence[np.ndarray], database: MotifDatabase, top: int = 3, threads: int | None = None
) -> list[list[Match]]:
    """The ``top`` TomTom matches of each query, best p-value first.

    Parameters
    ----------
    queries : sequence of numpy.ndarray, shape (L, 4)
        Probability matrices (rows sum to 1), A C G T columns.
    database : MotifDatabase
    top : int, optional
        Matches kept per query. Default 3.
    threads : int, optional
        numba threads for TomTom. Default: numba's.

    Returns
    -------
    list of list of Match
    """
    if not queries:
        return []
    if len(database) == 0:
        return [[] for _ in queries]
    from memelite import tomtom

    qs = [np.ascontiguousarray(np.asarray(q, dtype=np.float64).T) for q in queries]
    ts = [np.ascontiguousarray(m.probs.T, dtype=np.float64) for m in database.motifs]
    with warnings.catch_warnings():
        # the small-target warning: the caller reports it once (see MIN_TARGETS)
        warnings.filterwarnings("ignore", message="tomtom was given")
        pvals, _scores, offsets, _overlaps, strands = tomtom(qs, ts, n_jobs=threads or -1)
    out = []
    for i in range(len(queries)):
        p = np.clip(pvals[i], 0.0, 1.0)
        q = benjamini_hochberg(p)
        best = np.lexsort((np.arange(p.size), p))[:top]
        out.append(
            [
                Match(
                    motif_id=database.motifs[j].motif_id,
                    name=database.motifs[j].name,
                    database=database.databases[j],
                    pvalue=float(p[j]),
                    qvalue=float(q[j]),
                    offset=int(offsets[i, j]),
                    strand="-" if strands[i, j] else "+",
                )
                for j in best
            ]
        )
    return out
