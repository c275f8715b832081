"""Training bound/unbound classifiers: one model per (TF, regime), each run a Ray task (or in-process).

Modules: :mod:`~scanner.train.config` (the settings), :mod:`~scanner.train.data` (which rows),
:mod:`~scanner.train.schedule` (early stopping), :mod:`~scanner.train.loop` (one network's loop),
:mod:`~scanner.train.baselines` (motif score, k-mer and site regressions),
:mod:`~scanner.train.stage` (one model: ensembles, evaluation, checkpoints), :mod:`~scanner.train.run`
(many models: Ray tasks, the models dataset), :mod:`~scanner.train.multitask`, :mod:`~scanner.train.tune`.
"""

from scanner.train.config import MONITORS, SCHEDULES, TRAIN_ROWS, TrainConfig, config_from_flags, ensemble_size
from scanner.train.run import train_models
from scanner.train.schedule import Schedule
from scanner.train.stage import TrainResult, checkpoint_dir, model_spec, resolve_jobs, train_model

__all__ = [
    "MONITORS",
    "SCHEDULES",
    "TRAIN_ROWS",
    "Schedule",
    "TrainConfig",
    "TrainResult",
    "checkpoint_dir",
    "config_from_flags",
    "ensemble_size",
    "model_spec",
    "resolve_jobs",
    "train_model",
    "train_models",
]
