"""An inference-only copy of a model with batch normalisation folded into the preceding layer.

In eval mode ``BatchNorm1d(Conv1d(x))`` is an affine map per channel, so it can be folded into the
convolution's weights and bias (likewise for ``Linear``); ``Dropout`` is the identity; and
``MaxPool1d(ReLU(x)) == ReLU(MaxPool1d(x))`` because ReLU is monotone, so pooling first applies
the ReLU to a quarter of the values. The result computes the same function as the eval-mode model
up to float rounding (tested to 1e-5) and is about a third faster on CPU for the small network.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def fuse_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """Return a fused eval-mode copy of ``model`` (the argument is not modified).

    Parameters
    ----------
    model : torch.nn.Module
        A network from :func:`scanner.models.build_model`. A flat Sequential of Conv1d, Linear,
        BatchNorm1d, ReLU, MaxPool1d, Dropout, Flatten is fused; any other module (the site-and-context
        network, whose only batch norms act on pooled vectors, and ensembles) is copied as it is.

    Returns
    -------
    torch.nn.Module
        New module, eval mode, no gradients; only for inference (its BatchNorm statistics are gone
        where they were folded).
    """
    import torch.nn as nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    if not isinstance(model, nn.Sequential):
        out = copy.deepcopy(model).eval()
        for p in out.parameters():
            p.requires_grad_(False)
        return out

    layers = [copy.deepcopy(m).eval() for m in model.children() if not isinstance(m, nn.Dropout)]
    out: list[nn.Module] = []
    i = 0
    while i < len(layers):
        m = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(m, nn.Conv1d) and isinstance(nxt, nn.BatchNorm1d) and nxt.track_running_stats:
            out.append(fuse_conv_bn_eval(m, nxt))
            i += 2
            continue
        if isinstance(m, nn.Linear) and isinstance(nxt, nn.BatchNorm1d) and nxt.track_running_stats:
            out.append(fuse_linear_bn_eval(m, nxt))
            i += 2
            continue
        if isinstance(m, nn.ReLU) and isinstance(nxt, nn.MaxPool1d):
            out += [nxt, nn.ReLU(inplace=True)]
            i += 2
            continue
        out.append(nn.ReLU(inplace=True) if isinstance(m, nn.ReLU) else m)
        i += 1
    fused = nn.Sequential(*out).eval()
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused
