"""Grad-CAM on a convolution layer, mapped back to base resolution, and the reference's guided variant.

Grad-CAM (Selvaraju et al. 2017) for one sequence: with ``A`` the feature map of the chosen
convolution (after its batch norm and activation; channels ``c``, conv positions ``j``) and
``g = d logit / d A``, ``cam[j] = relu(sum_c mean_j'(g[c, j']) * A[c, j])``, in logit units per
position of that layer. It is mapped to bases through the receptive field: base ``i`` gets the mean
of ``cam[j]`` over the conv positions ``j`` whose receptive field contains ``i`` (0 where none does).

The reference's guided variant (Zheng et al. 2021): Grad-CAM at the first convolution, spread over
the filter width that way, times gradient x input, giving ``(N, 4, L)`` scores that are non-zero only
at observed bases. Both use plain autograd on a split of the ``nn.Sequential`` (no hooks); the
site-and-context network is split after its detectors; an ensemble's maps are the mean of its
members' maps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from scanner.interpret._model_state import (
    _POINTWISE_NAMES,
    as_sequential,
    check_onehot,
    conv_indices,
    model_device_dtype,
    preserved_model,
    scalar_output,
)

if TYPE_CHECKING:
    import torch


def resolve_layer(model: torch.nn.Sequential, layer: int | str | None) -> int:
    """Index of the module whose output Grad-CAM uses.

    Parameters
    ----------
    model : torch.nn.Sequential
    layer : int, str or None
        ``None`` or ``"last"``: the last convolution; ``"first"``; ``"convK"``: the K-th Conv1d
        (1-based). For these the feature map is taken after the conv's batch norm and activation
        (the modules right after it, before any pooling). An int is a module index used as is.

    Raises
    ------
    ValueError
        For a name that matches no convolution or an index out of range.
    """
    import torch.nn as nn

    convs = conv_indices(model)
    if not convs:
        raise ValueError("Grad-CAM needs a model with at least one Conv1d layer")
    if isinstance(layer, int):
        if not 0 <= layer < len(model):
            raise ValueError(f"layer index {layer} is out of range for a model of {len(model)} modules")
        return layer
    name = "last" if layer is None else str(layer).lower()
    if name == "last":
        k = len(convs)
    elif name == "first":
        k = 1
    elif name.startswith("conv") and name[4:].isdigit():
        k = int(name[4:])
    else:
        raise ValueError(f"layer must be 'first', 'last', 'convK' or a module index, got {layer!r}")
    if not 1 <= k <= len(convs):
        raise ValueError(f"layer {layer!r}: the model has {len(convs)} convolutions (conv1..conv{len(convs)})")
    i = convs[k - 1]
    while i + 1 < len(model) and (
        isinstance(model[i + 1], nn.BatchNorm1d) or type(model[i + 1]).__name__ in _POINTWISE_NAMES
    ):
        i += 1
    return i


def receptive_field(model: torch.nn.Sequential, index: int) -> tuple[int, int, int]:
    """Input interval of each output position of module ``index``: ``(start, jump, size)``.

    Output position ``j`` sees input positions ``[start + j * jump, start + j * jump + size)``.

    Raises
    ------
    TypeError
        For a module before ``index`` whose effect on positions is unknown.
    """
    import torch.nn as nn

    start, jump, size = 0, 1, 1
    for i in range(index + 1):
        m = model[i]
        if isinstance(m, nn.Conv1d):
            if m.stride[0] != 1:
                raise TypeError(f"receptive field: strided Conv1d (layer {i}) is not supported")
            k, dil = m.kernel_size[0], m.dilation[0]
            pad = dil * (k - 1) // 2 if m.padding == "same" else (0 if m.padding == "valid" else m.padding[0])
            size += (k - 1) * dil * jump
            start -= pad * jump
        elif isinstance(m, nn.MaxPool1d | nn.AvgPool1d):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            s = m.stride if isinstance(m.stride, int) else (m.stride[0] if m.stride else k)
            pad = m.padding if isinstance(m.padding, int) else m.padding[0]
            size += (k - 1) * jump
            start -= pad * jump
            jump *= s
        elif not (isinstance(m, nn.BatchNorm1d | nn.Dropout | nn.Identity) or type(m).__name__ in _POINTWISE_NAMES):
            raise TypeError(f"receptive field: layer {i} ({type(m).__name__}) is not a convolution-stack layer")
    return start, jump, size


def gradcam(
    model: torch.nn.Module,
    x: Any,
    *,
    layer: int | str | None = None,
    target: int = 0,
    batch_size: int = 128,
) -> torch.Tensor:
    """Grad-CAM at a convolution, upsampled to bases (mean over covering receptive fields).

    Parameters
    ----------
    model : torch.nn.Module
        An ``nn.Sequential``, a site-and-context network or an ensemble of either; evaluated in eval
        mode on its own device, left unchanged.
    x : torch.Tensor or numpy.ndarray, shape (N, 4, L)
        One-hot sequences.
    layer : int, str or None, optional
        Which feature map (see :func:`resolve_layer`). Default: the last convolution.
    target : int, optional
        Output column to explain. Default 0.
    batch_size : int, optional
        Sequences per backward pass. Default 128.

    Returns
    -------
    torch.Tensor, shape (N, L), on the CPU
        Non-negative scores in logit units per position of the chosen layer.

    Raises
    ------
    TypeError
        If the model is none of those.
    ValueError
        For a bad ``x``, ``layer`` or ``target``.
    """
    import torch

    from scanner.models.ensemble import Ensemble

    x = check_onehot(x)
    if isinstance(model, Ensemble):  # Grad-CAM is not linear in the model: the members' maps are averaged
        maps = [gradcam(m, x, layer=layer, target=target, batch_size=batch_size) for m in model.members]
        return torch.stack(maps).mean(0)
    split = _split(model, layer)
    device, dtype = model_device_dtype(model)
    out = torch.empty((x.shape[0], x.shape[2]), dtype=dtype)
    with preserved_model(model):
        for lo in range(0, x.shape[0], batch_size):
            xi = x[lo : lo + batch_size].to(device=device, dtype=dtype)
            with torch.enable_grad():
                feat = split.features(xi).detach().requires_grad_(True)
                y = scalar_output(split.rest(feat, xi), target)
                (grad,) = torch.autograd.grad(y.sum(), feat)
            cam = torch.relu((grad.mean(dim=2, keepdim=True) * feat).sum(dim=1)).detach()  # (n, L')
            out[lo : lo + batch_size] = spread(cam, x.shape[2], *split.field).cpu()
    return out


class _Split(NamedTuple):
    """A model cut at a feature map: ``features(x)``, ``rest(features, x)`` and the map's receptive field."""

    features: Callable[[Any], Any]
    rest: Callable[[Any, Any], Any]
    field: tuple[int, int, int]


def _split(model: torch.nn.Module, layer: int | str | None) -> _Split:
    """Where Grad-CAM cuts ``model``: after a convolution's activation of a Sequential, or after the
    site-and-context network's detectors (its only convolution over the whole window; any ``layer``
    name but an index means that one)."""
    from scanner.models.sitectx import SiteContextNet

    if isinstance(model, SiteContextNet):
        if isinstance(layer, int):
            raise ValueError("the site-and-context network has one feature map: use layer 'first' or 'last'")
        width = model.conv.kernel_size[0]
        return _Split(model.detectors, model.forward_from_detectors, (0, 1, width))
    seq = as_sequential(model, "Grad-CAM")
    index = resolve_layer(seq, layer)
    return _Split(seq[: index + 1], lambda feat, _x: seq[index + 1 :](feat), receptive_field(seq, index))


def guided_gradcam(model: torch.nn.Module, x: Any, *, target: int = 0, batch_size: int = 128) -> torch.Tensor:
    """The reference's guided Grad-CAM: first-conv Grad-CAM spread over the filter width x (grad x input).

    Returns
    -------
    torch.Tensor, shape (N, 4, L), on the CPU
        Non-zero only at observed bases; sign of gradient x input.
    """
    from scanner.interpret.saliency import gradient_x_input

    cam = gradcam(model, x, layer="first", target=target, batch_size=batch_size)
    return cam.unsqueeze(1) * gradient_x_input(model, x, target=target, batch_size=batch_size)


def spread(cam: torch.Tensor, length: int, start: int, jump: int, size: int) -> torch.Tensor:
    """Map per-position layer scores (N, L') to bases (N, length): mean over covering receptive fields."""
    import torch
    import torch.nn.functional as F

    n = cam.shape[0]
    ones = torch.ones((1, 1, size), dtype=cam.dtype, device=cam.device)
    total = F.conv_transpose1d(cam.unsqueeze(1), ones, stride=jump).squeeze(1)  # covers [start, start+len)
    count = F.conv_transpose1d(torch.ones_like(cam[:1]).unsqueeze(1), ones, stride=jump).squeeze(1)
    out = torch.zeros((n, length), dtype=cam.dtype, device=cam.device)
    lo, hi = max(0, start), min(length, start + total.shape[1])
    if hi > lo:
        seg = slice(lo - start, hi - start)
        out[:, lo:hi] = total[:, seg] / count[:, seg].clamp(min=1)
    return out
