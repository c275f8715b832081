"""``scanner label``: bound/unbound labels from ChIP-seq peaks, splits, and the balanced training sets.

:mod:`scanner.labels.config` (settings), :mod:`scanner.labels.intervals` (BED/narrowPeak reading and
interval joins), :mod:`scanner.labels.splits` (chromosome splits), :mod:`scanner.labels.datasets` (the
per-regime balanced sets and their windows) and :mod:`scanner.labels.run` (the stage).
"""

from scanner.labels.config import REGIMES, LabelConfig
from scanner.labels.run import LabelResult, label, split_warnings

__all__ = ["REGIMES", "LabelConfig", "LabelResult", "label", "split_warnings"]
