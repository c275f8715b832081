"""numba kernel behind :meth:`scanner.genome.Genome.read_codes` (compiled once, cached on disk)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def strip_encode(
    raw: np.ndarray, lut: np.ndarray, codes: np.ndarray, lower: np.ndarray, want_lower: bool
) -> int:  # pragma: no cover - numba
    """Codes (and lower-case flags) of the sequence letters in ``raw``, skipping line breaks.

    Returns the number of letters written (at most ``codes.shape[0]``).
    """
    n = 0
    cap = codes.shape[0]
    for i in range(raw.shape[0]):
        b = raw[i]
        if b == 10 or b == 13:
            continue
        if n >= cap:
            break
        codes[n] = lut[b]
        if want_lower:
            lower[n] = b >= 97 and b <= 122
        n += 1
    return n
