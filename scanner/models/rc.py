"""Reverse-complement helpers for one-hot batches and reverse-complement-averaged prediction."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def reverse_complement_one_hot(x: torch.Tensor) -> torch.Tensor:
    """Reverse complement of one-hot sequences.

    Parameters
    ----------
    x : torch.Tensor, shape (N, 4, L)
        One-hot rows in A, C, G, T order (N = 0.25 in every row).

    Returns
    -------
    torch.Tensor, shape (N, 4, L)
        The reverse complement: channels reversed (A<->T, C<->G) and positions reversed. A new tensor.
    """
    return x.flip(dims=(1, 2))


def predict_logits(model: torch.nn.Module, x: torch.Tensor, *, rc_average: bool = False) -> torch.Tensor:
    """Logits of ``model`` for a one-hot batch, optionally averaged with the reverse complement's.

    The caller sets the model's mode (``eval()`` for prediction) and any ``no_grad`` context; this
    function changes neither.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(N, 4, L)`` to ``(N, 1)`` logits.
    x : torch.Tensor, shape (N, 4, L)
        One-hot input, on the model's device.
    rc_average : bool, optional
        Return ``(f(x) + f(rc(x))) / 2`` (the mean of the two logits). Default False.

    Returns
    -------
    torch.Tensor, shape (N,)
        Logits.
    """
    out = model(x).reshape(-1)
    if rc_average:
        out = 0.5 * (out + model(reverse_complement_one_hot(x)).reshape(-1))
    return out
