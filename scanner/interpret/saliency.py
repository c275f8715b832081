"""Saliency (input gradient) and gradient x input.

Both differentiate the model's logit with respect to the one-hot input with plain autograd (no hooks):

* :func:`saliency` returns ``d logit / d x[n, b, p]`` (logit per unit of one-hot input), for every
  base, observed or not; its per-position summary (Simonyan et al. 2014) is ``max_b |gradient|``.
* :func:`gradient_x_input` returns ``gradient * x``: non-zero only at the observed base (a quarter of
  each gradient at an N), summing over bases to the first-order contribution of the position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scanner.interpret._model_state import check_onehot, model_device_dtype, preserved_model, scalar_output

if TYPE_CHECKING:
    import torch


def saliency(model: torch.nn.Module, x: Any, *, target: int = 0, batch_size: int = 128) -> torch.Tensor:
    """Gradient of the logit with respect to the one-hot input.

    Parameters
    ----------
    model : torch.nn.Module
        The network; evaluated in eval mode on its own device, left unchanged.
    x : torch.Tensor or numpy.ndarray, shape (N, 4, L)
        One-hot sequences.
    target : int, optional
        Output column to explain. Default 0.
    batch_size : int, optional
        Sequences per backward pass. Default 128.

    Returns
    -------
    torch.Tensor, shape (N, 4, L), on the CPU
        ``d logit / d x``.

    Raises
    ------
    ValueError
        For a bad ``x`` or ``target``.
    """
    import torch

    x = check_onehot(x)
    device, dtype = model_device_dtype(model)
    out = torch.empty(x.shape, dtype=dtype)
    with preserved_model(model):
        for lo in range(0, x.shape[0], batch_size):
            xi = x[lo : lo + batch_size].to(device=device, dtype=dtype).requires_grad_(True)
            with torch.enable_grad():
                y = scalar_output(model(xi), target)
                (grad,) = torch.autograd.grad(y.sum(), xi)
            out[lo : lo + batch_size] = grad.detach().cpu()
    return out


def gradient_x_input(model: torch.nn.Module, x: Any, *, target: int = 0, batch_size: int = 128) -> torch.Tensor:
    """Gradient times input, shape (N, 4, L), on the CPU; see :func:`saliency` for the parameters."""
    x = check_onehot(x)
    grad = saliency(model, x, target=target, batch_size=batch_size)
    return grad * x.to(dtype=grad.dtype, device="cpu")
