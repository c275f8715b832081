"""``scanner predict``: bound probabilities for every motif instance (Ray Data actors or in-process).

:mod:`scanner.predict.apply` loads models and scores windows (shared with interpret and variants);
:mod:`scanner.predict.run` plans work items and writes the predictions dataset.
"""

from scanner.predict.run import PredictConfig, PredictSummary, predict

__all__ = ["PredictConfig", "PredictSummary", "predict"]
