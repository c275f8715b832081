"""Seed ensembles: networks of one shape trained from different seeds, their logits averaged."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn


class Ensemble(nn.Module):
    """The mean of its members' logits.

    Every attribution method of :mod:`scanner.interpret` is linear in the explained function for a
    mean of models (ISM, DeepLIFT against the same references, gradients), so it explains an
    ensemble as the mean of its members' attributions; Grad-CAM, which is not linear, is averaged the
    same way (documented there).

    Parameters
    ----------
    members : sequence of torch.nn.Module
        Networks mapping ``(N, 4, L)`` to ``(N, 1)`` logits (at least one).

    Raises
    ------
    ValueError
        If ``members`` is empty.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members], 0).mean(0)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's logit: ``(M, N)``."""
        return torch.stack([m(x).reshape(-1) for m in self.members], 0)
