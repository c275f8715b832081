"""Early stopping, the kept epoch and the learning rate, decided from each epoch's validation metrics."""

from __future__ import annotations

import math

from scanner.train.config import TrainConfig


class Schedule:
    """Learning-rate and stopping decisions from the validation metrics of each epoch (pure logic).

    The monitored value is the validation auROC (higher is better; equal auROCs are ordered by the
    lower loss) or the validation loss (lower is better), per ``config.monitor``; a missing auROC
    (validation rows of one class) falls back to the loss for that epoch. An epoch is a new best when
    it beats every earlier one; after ``patience`` epochs without one, ``"early-stop"`` stops (but never
    before ``min_epochs`` epochs) and ``"reference"`` divides the rate by 10, stopping once it is below
    ``min_lr``. Both stop at ``epochs``.

    Parameters
    ----------
    config : TrainConfig
        Uses ``lr``, ``patience``, ``min_epochs``, ``monitor``, ``schedule`` and ``min_lr``.

    Attributes
    ----------
    lr : float
        The rate for the next epoch.
    best : float
        Lowest validation loss seen (any epoch).
    best_key : tuple
        Monitored key of the kept epoch (larger is better).
    epoch : int
        Epochs recorded.
    stop : bool
        True once training should end.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.lr = config.lr
        self.best = float("inf")
        self.best_key: tuple[float, float] = (-math.inf, -math.inf)
        self.flat = 0
        self.epoch = 0
        self.stop = False

    def key(self, val_loss: float, val_auroc: float | None = None) -> tuple[float, float]:
        """Ordering key of an epoch (larger is better)."""
        loss = val_loss if math.isfinite(val_loss) else math.inf
        if self.config.monitor == "auroc" and val_auroc is not None and math.isfinite(val_auroc):
            return (val_auroc, -loss)
        return (-loss, -loss)

    def start(self, val_loss: float, val_auroc: float | None = None) -> None:
        """Record the metrics of the weights before training (epoch 0) as the first candidate."""
        self.best = min(self.best, val_loss)
        self.best_key = self.key(val_loss, val_auroc)

    def step(self, val_loss: float, val_auroc: float | None = None) -> bool:
        """Record one epoch's validation metrics; return True when it is a new best (keep these weights)."""
        self.epoch += 1
        self.best = min(self.best, val_loss)
        key = self.key(val_loss, val_auroc)
        if key > self.best_key:
            self.best_key, self.flat = key, 0
            return True
        self.flat += 1
        if self.flat >= self.config.patience:
            if self.config.schedule == "early-stop":
                self.stop = self.epoch >= self.config.min_epochs
            else:
                self.lr, self.flat = self.lr / 10.0, 0
                self.stop = self.lr < self.config.min_lr * (1 - 1e-9)
        return False
