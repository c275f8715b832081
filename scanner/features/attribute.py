"""Hypothetical contributions, the input TF-MoDISco needs, from the methods of :mod:`scanner.interpret`.

For every base ``b`` at every position ``p`` of a window, the contribution ``b`` would make to the
model's logit there (logit units):

* ``deeplift``: :func:`scanner.interpret.deeplift` with ``hypothetical=True``:
  ``mean_k sum_j (e_b[j] - ref_k[j, p]) * m_k[j, p]`` over the references ``k`` (dinucleotide shuffles by
  default), ``m_k`` the DeepLIFT multipliers. At the observed base it is the position's DeepLIFT
  contribution.
* ``ism``: the fast exact ISM values ``logit(x with b at p) - logit(x)`` centred per position (minus their
  mean over the four bases), the usual way to hand ISM to TF-MoDISco. At the observed base it is minus
  the mean ISM effect of the position, 3/4 of ``scanner interpret``'s ISM ``score``.

TF-MoDISco's actual contributions are ``one_hot * hypothetical``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scanner.interpret.methods import Attributor


def hypothetical_contributions(
    attributor: Attributor,
    x: Any,
    method: str,
    start: int = 0,
    end: int | None = None,
    *,
    seed: int | None = None,
) -> np.ndarray:
    """Hypothetical contributions of one-hot ``x`` at window positions ``[start, end)``.

    Parameters
    ----------
    attributor : scanner.interpret.Attributor
        Holds the model and the DeepLIFT settings (``reference``, ``n_shuffles``, ``seed``,
        ``batch_size``); its fast-ISM plans are reused between calls.
    x : torch.Tensor or numpy.ndarray, shape (N, 4, W)
        One-hot windows (A, C, G, T rows; N columns 0.25).
    method : {"deeplift", "ism"}
    start, end : int, optional
        Positions returned (ISM mutates only these). Default: the whole window.
    seed : int, optional
        Seed of the DeepLIFT shuffles of this call (one generator for the whole batch). Default: the
        attributor's.

    Returns
    -------
    numpy.ndarray of float32, shape (N, 4, end - start)

    Raises
    ------
    ValueError
        For another method or bad positions.
    """
    from scanner.interpret.deeplift import deeplift
    from scanner.interpret.methods import check_methods

    check_methods([method])
    width = int(x.shape[2])
    end = width if end is None else int(end)
    if not 0 <= start < end <= width:
        raise ValueError(f"positions [start, end) = [{start}, {end}) must lie within [0, {width}]")
    if method == "deeplift":
        o = attributor.options
        res = deeplift(
            attributor.model,
            x,
            reference=o.reference,
            n_shuffles=o.n_shuffles,
            seed=o.seed if seed is None else seed,
            target=o.target,
            batch_size=o.batch_size,
            hypothetical=True,
        )
        return res.hypothetical[:, :, start:end].float().numpy()
    if method == "ism":
        values = attributor(x, "ism", start, end).values.double().numpy()
        return (values - values.mean(axis=1, keepdims=True)).astype(np.float32)
    raise ValueError(f"method must be deeplift or ism for hypothetical contributions, got {method!r}")
