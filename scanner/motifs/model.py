"""The motif record and FIMO's pseudocount convention for turning it into log-odds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scanner.motifs.background import Background

#: FIMO's default motif pseudocount (``--motif-pseudo``).
DEFAULT_PSEUDOCOUNT = 0.1


@dataclass(frozen=True, eq=False)
class Motif:
    """A position frequency matrix.

    Parameters
    ----------
    motif_id : str
        Identifier, e.g. ``MA0139.2``.
    name : str
        Motif (TF) name, e.g. ``CTCF``; becomes the ``tf`` column and partition.
    probs : numpy.ndarray of float64, shape (L, 4)
        Column frequencies in A, C, G, T order; each row sums to 1.
    nsites : int
        Number of sites behind the matrix (MEME header ``nsites``; JASPAR: rounded mean column sum;
        20 when a format does not say, as MEME does).
    source : str
        Where it was read from (file:line or database release).
    """

    motif_id: str
    name: str
    probs: np.ndarray
    nsites: int = 20
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Number of columns L."""
        return int(self.probs.shape[0])


def motif_probabilities(motif: Motif, background: Background, pseudocount: float = DEFAULT_PSEUDOCOUNT) -> np.ndarray:
    """Column probabilities with FIMO's pseudocount: ``p' = (p * nsites + c * bg) / (nsites + c)``.

    Parameters
    ----------
    motif : Motif
    background : Background
        Letter frequencies ``bg`` (A, C, G, T).
    pseudocount : float, optional
        Total pseudocount ``c`` spread by the background. Default 0.1 (FIMO's ``--motif-pseudo``).

    Returns
    -------
    numpy.ndarray of float64, shape (L, 4)
    """
    bg = background.freqs
    return (motif.probs * motif.nsites + pseudocount * bg[None, :]) / (motif.nsites + pseudocount)


def log_odds(motif: Motif, background: Background, pseudocount: float = DEFAULT_PSEUDOCOUNT) -> np.ndarray:
    """Log-odds matrix in bits, ``log2(p' / bg)``, shape (L, 4), float64 (see :func:`motif_probabilities`)."""
    p = motif_probabilities(motif, background, pseudocount)
    return np.log2(p / background.freqs[None, :])
