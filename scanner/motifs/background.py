"""Zero-order backgrounds: uniform, read from a MEME background file, or counted from a genome."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scanner.errors import InputError


@dataclass(frozen=True, eq=False)
class Background:
    """Letter frequencies in A, C, G, T order (float64, sum 1, all > 0)."""

    freqs: np.ndarray
    source: str = "uniform"

    def __post_init__(self) -> None:
        f = np.asarray(self.freqs, dtype=np.float64)
        if f.shape != (4,) or not np.all(np.isfinite(f)) or np.any(f <= 0):
            raise InputError(f"background must be 4 positive finite frequencies (A,C,G,T), got {f.tolist()}")
        object.__setattr__(self, "freqs", f / f.sum())

    @classmethod
    def uniform(cls) -> Background:
        """0.25 each."""
        return cls(np.full(4, 0.25), "uniform")

    @property
    def is_symmetric(self) -> bool:
        """True when A == T and C == G (then both strands share one score distribution)."""
        f = self.freqs
        return bool(abs(f[0] - f[3]) < 1e-12 and abs(f[1] - f[2]) < 1e-12)

    def to_list(self) -> list[float]:
        """Frequencies as a list (A, C, G, T)."""
        return [float(x) for x in self.freqs]


def background_from_counts(counts: np.ndarray, source: str = "genome") -> Background:
    """Strand-symmetric background from A, C, G, T counts of one strand (as MEME's tools do).

    ``A`` and ``T`` get ``(nA + nT) / 2N`` each, ``C`` and ``G`` ``(nC + nG) / 2N``.

    Raises
    ------
    InputError
        If there are no A/C/G/T bases.
    """
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        raise InputError(f"cannot compute a background from {source}: it has no A/C/G/T bases")
    at = (c[0] + c[3]) / (2 * total)
    cg = (c[1] + c[2]) / (2 * total)
    return Background(np.array([at, cg, cg, at]), source)


def background_from_codes(codes: np.ndarray, source: str = "sequence") -> Background:
    """Strand-symmetric background from uint8 base codes (code 4 ignored)."""
    counts = np.bincount(np.asarray(codes, dtype=np.uint8), minlength=5)[:4]
    return background_from_counts(counts, source)


def read_background(path: str | Path) -> Background:
    """Read a MEME-style background file (``A 0.3`` lines; ``#`` comments; higher-order lines ignored).

    Raises
    ------
    InputError
        Naming the file and line for a malformed line, a missing or duplicated letter.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("background file not found", source=path)
    freqs: dict[str, float] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise InputError(f"expected '<letter> <frequency>', got {raw!r}", source=path, line=lineno)
        key, val = parts[0].upper(), parts[1]
        if len(key) != 1:
            continue  # higher-order Markov entries (e.g. "AC 0.05")
        if key not in "ACGT":
            raise InputError(f"unknown letter {parts[0]!r}; expected A, C, G or T", source=path, line=lineno)
        try:
            value = float(val)
        except ValueError:
            raise InputError(f"frequency {val!r} is not a number", source=path, line=lineno) from None
        if not np.isfinite(value) or value <= 0:
            raise InputError(f"frequency of {key} must be positive, got {val}", source=path, line=lineno)
        if key in freqs:
            raise InputError(f"letter {key} is given twice", source=path, line=lineno)
        freqs[key] = value
    missing = [b for b in "ACGT" if b not in freqs]
    if missing:
        raise InputError(f"no frequency for {', '.join(missing)}", source=path)
    return Background(np.array([freqs[b] for b in "ACGT"]), str(path))
