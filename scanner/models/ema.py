"""Exponential moving average of a model's weights (the reference trained with decay 0.999)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class WeightEMA:
    """Shadow copy of a model whose floating-point parameters and buffers track an EMA of the model's.

    After each optimiser step call :meth:`update`; evaluate or save :attr:`module`. As in TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)`` the effective decay is
    ``min(decay, (1 + k) / (10 + k))`` at update ``k``, so early averages are not dominated by the
    random initial weights. Integer buffers (BatchNorm's batch counter) are copied, not averaged.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained (not modified).
    decay : float
        EMA decay in (0, 1), e.g. 0.999.

    Raises
    ------
    ValueError
        If ``decay`` is not in (0, 1).
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def update(self, model: torch.nn.Module) -> None:
        """Move the shadow weights toward ``model``'s current weights."""
        import torch

        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        self.updates += 1
        with torch.no_grad():
            src = model.state_dict()
            for name, shadow in self.module.state_dict().items():
                value = src[name].detach()
                if shadow.dtype.is_floating_point:
                    shadow.mul_(d).add_(value.to(shadow.dtype), alpha=1.0 - d)
                else:
                    shadow.copy_(value)
