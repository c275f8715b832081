"""Settings of ``scanner label`` (each maps onto a flag) and the names of the negative regimes."""

from __future__ import annotations

from dataclasses import dataclass

from scanner.errors import InputError

REGIMES = ("pvalue", "gc", "open", "random")


@dataclass(frozen=True)
class LabelConfig:
    """Settings of ``scanner label`` (each maps onto a flag).

    Parameters
    ----------
    window : int
        Window width W in bp. Default 1000.
    summit_distance : int, optional
        Bound = within this many bp of a summit (instead of inside a peak). Default None.
    val_chroms, test_chroms : tuple of str, optional
        Explicit splits; None applies :func:`resolve_splits`'s rule. Default None.
    regimes : tuple of str, optional
        Regimes to build; None = all four (``open`` only when open chromatin is given).
    mask_core : bool
        Replace the motif site in each window by N. Default False.
    seed : int
        Seed of the negative sampling. Default 0.
    pvalue_bin : float
        Width of the -log10 p bins. Default 0.1.
    gc_tolerance : float
        Width of the GC bins of the ``gc`` regime (matched negatives differ by less). Default 0.02.
    batch_size : int
        Rows per window-fetch batch. Default 2048.
    all_rows : bool
        Also write every labelled instance of the training chromosomes, unbalanced, as the DATASETS
        partitions ``regime=all/tf=<tf>/split=train`` (each site once, on its better strand): the rows
        ``scanner train --train-rows all`` trains on. Default False (one more window per training
        instance on disk).
    """

    window: int = 1000
    summit_distance: int | None = None
    val_chroms: tuple[str, ...] | None = None
    test_chroms: tuple[str, ...] | None = None
    regimes: tuple[str, ...] | None = None
    mask_core: bool = False
    seed: int = 0
    pvalue_bin: float = 0.1
    gc_tolerance: float = 0.02
    batch_size: int = 2048
    all_rows: bool = False

    def __post_init__(self) -> None:
        if self.window < 1:
            raise InputError(f"window must be >= 1 bp, got {self.window}", field="--window")
        if self.summit_distance is not None and self.summit_distance < 0:
            raise InputError(f"summit distance must be >= 0, got {self.summit_distance}", field="--summit-distance")
        if self.regimes is not None:
            bad = [r for r in self.regimes if r not in REGIMES]
            if bad or not self.regimes:
                raise InputError(
                    f"unknown regime(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(REGIMES)}",
                    field="--regime",
                )
        if not self.pvalue_bin > 0 or not 0 < self.gc_tolerance <= 1:
            raise InputError("pvalue_bin must be > 0 and gc_tolerance in (0, 1]", field="--gc-tolerance")
        if self.batch_size < 1:
            raise InputError("batch size must be >= 1", field="--batch-size")
