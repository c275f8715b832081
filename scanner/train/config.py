"""Training settings: one frozen dataclass whose fields are the ``scanner train`` flags."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from scanner.errors import InputError

SCHEDULES = ("early-stop", "reference")
MONITORS = ("auroc", "loss")
TRAIN_ROWS = ("regime", "all")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; each field is a ``scanner train`` flag (``--batch-size`` etc.).

    The defaults are the recipe measured to learn from a few hundred to a few hundred thousand rows
    (benchmarks/science.py; docs/models.md "The training recipe"): the site-and-context network,
    detectors initialised from the run's motifs, reverse-complement and shift augmentation, early
    stopping on validation auROC after a minimum number of epochs, and a seed ensemble on small sets.

    Parameters
    ----------
    arch : {"sitectx", "small", "deepsea"}
        Network (see :class:`scanner.models.ModelSpec`). Default ``"sitectx"``.
    channels, filter_width, hidden : int, optional
        Size of the first layer (detectors, their width) and of the dense layer. Default: the
        architecture's (``sitectx``: 32, 15, 32).
    dropout : float, optional
        Dropout before the dense layer (``sitectx``). Default: the architecture's (0.2).
    epochs : int
        Maximum epochs. Default 30.
    min_epochs : int
        Epochs always trained before early stopping may act. Default 5.
    batch_size : int
        Training batch size; 0 chooses by training-set size (:func:`batch_size_for`: 32 below 2,000 rows,
        so that a few hundred rows still give enough optimiser steps, else the reference's 128).
        Default 0.
    lr : float
        AdamW learning rate. Default 3e-3.
    weight_decay : float
        AdamW's decoupled weight decay. Default 1e-2.
    patience : int
        Epochs without a better monitored value before stopping (or dividing the rate). Default 5.
    monitor : {"auroc", "loss"}
        What early stopping and the kept epoch follow on the validation rows. Default ``"auroc"``: the
        validation loss of a few hundred rows is noisy early in training and stopped models at epoch 1
        (issue 14); auROC is what is reported, and ties go to the lower loss.
    schedule : {"early-stop", "reference"}
        ``"early-stop"``: stop after ``patience`` epochs without improvement. ``"reference"`` (Zheng
        et al. 2021): divide the rate by 10 instead; stop once it is below ``min_lr``. Default
        ``"early-stop"``.
    min_lr : float
        ``"reference"`` schedule: stop once the rate is below this. Default 1e-4.
    ema : float, optional
        Decay of a weight EMA (e.g. 0.999); the EMA weights are validated and saved. Default None (off).
    seed : int
        Seeds weights, shuffling and augmentation; ensemble member ``i`` uses ``seed + i``. Default 0.
    ensemble : int
        Networks trained from different seeds whose logits are averaged; 0 chooses by training-set size
        (:func:`ensemble_size`: 5 below 2,000 rows, 3 below 20,000, else 1). Default 0.
    rc_augment : bool
        Replace each training row by its reverse complement with probability 1/2. Default True.
    max_shift : int
        Shift each training window by a random offset in ``[-max_shift, max_shift]`` bp (N-filled; the
        site branch searches the same offsets). Default 0.
    motif_init : bool
        Initialise the first layer from motifs: the TF's own (from the scan record) and the other
        motifs of the scan, then ``init_motifs``. Default True.
    init_motifs : tuple of str
        More motif files or JASPAR IDs for the first layer (e.g. a JASPAR collection); when they are more
        than the layer has room for, the ones whose best match per window separates the training
        classes best are kept. Default ().
    freeze_motifs : bool
        Keep the motif-initialised filters fixed during training. Default False.
    kmer_seeds : int
        Detectors also initialised from the k-mers most enriched near the site in bound training windows
        (de novo seeds, after the known motifs; 0 turns them off). Default 4.
    prefit : bool
        ``sitectx``: fit the network's linear site and k-mer composition terms first by regularised
        logistic regression, keep them fixed, start the dense head at zero and let the kept epoch be 0
        (the regression alone) when training does not improve on it (:mod:`scanner.train.prefit`).
        Default True.
    multitask : bool
        Train the models of each regime together: one set of first-layer detectors learned from every
        TF's rows, a network per TF (:mod:`scanner.train.multitask`). Default False.
    train_rows : {"regime", "all"}
        ``"regime"``: the regime's balanced training rows. ``"all"``: every labelled instance of the
        training chromosomes (inside open chromatin for ``open``; needs ``scanner label`` to have
        written them, which it does by default); validation and test rows stay the regime's own.
        Default ``"regime"``.
    gpus_per_model : float
        GPUs per training task when the cluster has GPUs (a fraction packs several per GPU). Default 1.0.
    cpus_per_model : float
        CPUs per training task (also its torch threads, at least 1). Default 1.0.
    shuffle_buffer : int
        Rows in the shuffle buffer. Default 65536.
    eval_batch_size : int
        Batch size for validation and evaluation. Default 256.
    baselines : bool
        Fit the k-mer and site logistic-regression baselines on the training rows and report them beside
        the model (with the motif score). Default True.
    """

    arch: str = "sitectx"
    channels: int | None = None
    filter_width: int | None = None
    hidden: int | None = None
    dropout: float | None = None
    epochs: int = 30
    min_epochs: int = 5
    batch_size: int = 0
    lr: float = 3e-3
    weight_decay: float = 1e-2
    patience: int = 5
    monitor: str = "auroc"
    schedule: str = "early-stop"
    min_lr: float = 1e-4
    ema: float | None = None
    seed: int = 0
    ensemble: int = 0
    rc_augment: bool = True
    max_shift: int = 0
    motif_init: bool = True
    init_motifs: tuple[str, ...] = ()
    freeze_motifs: bool = False
    kmer_seeds: int = 4
    prefit: bool = True
    multitask: bool = False
    train_rows: str = "regime"
    gpus_per_model: float = 1.0
    cpus_per_model: float = 1.0
    shuffle_buffer: int = 65536
    eval_batch_size: int = 256
    baselines: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "init_motifs", tuple(self.init_motifs))

    @classmethod
    def reference(cls, **overrides: Any) -> TrainConfig:
        """The reference's settings: DeepSEA net, lr 0.01, batch 128, EMA 0.999, lr/10 after 10 flat
        epochs on the validation loss, stop below 1e-4, reverse complements, one network, no motif
        initialisation, the L2 weight decay they used."""
        base = dict(
            arch="deepsea",
            epochs=200,
            min_epochs=1,
            batch_size=128,
            lr=0.01,
            weight_decay=5e-7,
            patience=10,
            monitor="loss",
            schedule="reference",
            min_lr=1e-4,
            ema=0.999,
            rc_augment=True,
            ensemble=1,
            motif_init=False,
            kmer_seeds=0,
            prefit=False,
        )
        base.update(overrides)
        return cls(**base)

    def validate(self) -> TrainConfig:
        """Return self, or raise :class:`InputError` naming the bad flag."""
        from scanner.models import ARCHITECTURES

        def bad(name: str, msg: str) -> InputError:
            return InputError(f"{msg}, got {getattr(self, name)!r}", field="--" + name.replace("_", "-"))

        if self.arch not in ARCHITECTURES:
            raise bad("arch", f"must be one of {', '.join(ARCHITECTURES)}")
        for name, choices in (("schedule", SCHEDULES), ("monitor", MONITORS), ("train_rows", TRAIN_ROWS)):
            if getattr(self, name) not in choices:
                raise bad(name, f"must be one of {', '.join(choices)}")
        for name in ("epochs", "min_epochs", "patience", "shuffle_buffer", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise bad(name, "must be >= 1")
        for name in ("channels", "filter_width", "hidden"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise bad(name, "must be >= 1")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise bad("dropout", "must be in [0, 1)")
        for name in ("lr", "min_lr", "cpus_per_model", "gpus_per_model"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be > 0")
        if self.weight_decay < 0:
            raise bad("weight_decay", "must be >= 0")
        if self.ensemble < 0:
            raise bad("ensemble", "must be >= 0 (0: chosen by training-set size)")
        if self.max_shift < 0:
            raise bad("max_shift", "must be >= 0")
        if self.kmer_seeds < 0:
            raise bad("kmer_seeds", "must be >= 0")
        if self.ema is not None and not 0 < self.ema < 1:
            raise bad("ema", "must be in (0, 1)")
        if self.batch_size < 0 or self.batch_size == 1:
            raise bad("batch_size", "must be >= 2 (batch normalisation), or 0 to choose by training-set size")
        return self


def ensemble_size(config: TrainConfig, n_train: int) -> int:
    """Members to train: ``config.ensemble``, or by size when it is 0 (5 / 3 / 1 below 2k / 20k rows / above).

    Averaging seeds lowers the variance that small training sets give a single network (measured on
    yeast Pho4, benchmarks/RESULTS.md "Models"); on large sets one network costs a third as much and the
    members agree.
    """
    if config.ensemble:
        return config.ensemble
    if n_train < 2_000:
        return 5
    if n_train < 20_000:
        return 3
    return 1


def batch_size_for(config: TrainConfig, n_train: int) -> int:
    """The training batch size: ``config.batch_size``, or by size when it is 0 (32 below 2,000 rows, else 128)."""
    if config.batch_size:
        return config.batch_size
    return 32 if n_train < 2_000 else 128


def config_from_flags(**flags: Any) -> TrainConfig:
    """Build a validated :class:`TrainConfig` from flag values (None means the default)."""
    names = {f.name for f in fields(TrainConfig)}
    unknown = set(flags) - names
    if unknown:
        raise ValueError(f"unknown training settings: {sorted(unknown)}")
    return TrainConfig(**{k: v for k, v in flags.items() if v is not None}).validate()
