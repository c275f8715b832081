"""What one (TF, regime) model trains and stops on: files, row filters, window and site sizes, motifs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from scanner.data_loading import RowFilter, count_rows, label_values, partition_files, window_width
from scanner.errors import InputError
from scanner.io import open_parquet
from scanner.labels.datasets import ALL_ROWS
from scanner.motifs import Background, Motif
from scanner.train.config import TrainConfig

#: Below this many validation rows of either class, early stopping also watches a hold-out of training rows.
MIN_VAL_PER_CLASS = 20
#: Hold-out parts of the training rows (member ``i`` holds out part ``i % HOLDOUT_PARTS``).
HOLDOUT_PARTS = 5


@dataclass(frozen=True)
class TrainingData:
    """The rows one model is trained, stopped and evaluated on.

    Attributes
    ----------
    tf, regime : str
    data_root : Path
    train_files : list of Path
        Training rows: the regime's balanced ``train`` split, or every labelled training instance
        (``train_rows="all"``; ``train_filter`` keeps those in open chromatin for ``open``).
    train_filter : RowFilter or None
    val_files, test_files : list of Path
        The regime's own validation and test splits (``test_files`` empty when not evaluating).
    width : int
        Window width W.
    n_train : int
        Training rows (after the filter).
    val_counts : (int, int)
        Validation rows of label 0 and 1.
    site_len : int
        Longest site among the training rows (bp).
    """

    tf: str
    regime: str
    data_root: Path
    train_files: list[Path]
    train_filter: RowFilter | None
    val_files: list[Path]
    test_files: list[Path]
    width: int
    n_train: int
    val_counts: tuple[int, int]
    site_len: int

    @property
    def small_val(self) -> bool:
        """Too few validation rows of a class to stop on alone."""
        return min(self.val_counts) < MIN_VAL_PER_CLASS

    def member_rows(self, member: int) -> tuple[RowFilter | None, list[tuple[list[Path], RowFilter | None]]]:
        """Training filter and monitored row sets of ensemble member ``member``.

        With enough validation rows every member trains on all training rows and stops on the
        validation split. Otherwise member ``i`` also holds out part ``i % 5`` of the training rows
        (by a hash of the site) and stops on the validation rows plus that part.
        """
        if not self.small_val:
            return self.train_filter, [(self.val_files, None)]
        base = self.train_filter or RowFilter()
        part = (HOLDOUT_PARTS, member % HOLDOUT_PARTS)
        train = RowFilter(in_open=base.in_open, holdout=part, take_holdout=False)
        held = RowFilter(in_open=base.in_open, holdout=part, take_holdout=True)
        return train, [(self.val_files, None), (self.train_files, held)]

    def file_names(self) -> list[str]:
        """Every file's path relative to the data root (recorded in model.json)."""
        files = [*self.train_files, *self.val_files, *self.test_files]
        return [str(Path(f).relative_to(self.data_root)) for f in files]


def _filtered_count(files: Sequence[Path], row_filter: RowFilter | None) -> int:
    if row_filter is None:
        return count_rows(files)
    n = 0
    for f in files:
        t = open_parquet(f).read(columns=list(row_filter.columns()))
        n += int(np.count_nonzero(row_filter.mask(t)))
    return n


def _label_counts(files: Sequence[Path]) -> tuple[int, int]:
    pos = total = 0
    for f in files:
        y = open_parquet(f).read(columns=["label"]).column(0).to_numpy()
        pos += int(np.count_nonzero(y == 1))
        total += len(y)
    return total - pos, pos


def _longest_site(files: Sequence[Path]) -> int:
    longest = 0
    for f in files:
        t = open_parquet(f).read(columns=["start", "end"])
        if t.num_rows:
            longest = max(longest, int(pa.compute.max(pa.compute.subtract(t["end"], t["start"])).as_py()))
    return longest


def plan_training_data(
    data_root: str | Path, tf: str, regime: str, config: TrainConfig, *, evaluate: bool = True
) -> TrainingData:
    """Resolve and check the partitions of one (TF, regime) model.

    Raises
    ------
    InputError
        Missing partitions (the message lists what exists), windows of differing lengths, fewer than
        two training rows, or a training split with one class only.
    """
    data_root = Path(data_root)
    val = partition_files(data_root, regime, tf, "val")
    test = partition_files(data_root, regime, tf, "test") if evaluate else []
    if config.train_rows == ALL_ROWS:
        try:
            train = partition_files(data_root, ALL_ROWS, tf, "train")
        except InputError as exc:
            raise InputError(
                f"--train-rows all needs every labelled instance of {tf}: run `scanner label` with --all-rows ({exc})",
                source=data_root,
                field="--train-rows",
            ) from exc
        train_filter = RowFilter(in_open=True) if regime == "open" else None
    else:
        train, train_filter = partition_files(data_root, regime, tf, "train"), None
    width = window_width(train)
    for split, fs in (("val", val), ("test", test)):
        if fs and (w := window_width(fs)) != width:
            raise InputError(f"windows are {w} bp in split '{split}' but {width} bp in 'train'", source=fs[0])
    n_train = _filtered_count(train, train_filter)
    if n_train < 2:
        raise InputError(f"the training rows number {n_train}; at least 2 are needed", source=train[0])
    classes = label_values(train)
    if len(classes) < 2:
        raise InputError(
            f"the training split of {tf}/{regime} has one class only (labels {sorted(classes)}); "
            "both bound (1) and unbound (0) rows are needed",
            source=train[0],
            field="label",
        )
    return TrainingData(
        tf=tf,
        regime=regime,
        data_root=data_root,
        train_files=train,
        train_filter=train_filter,
        val_files=val,
        test_files=test,
        width=width,
        n_train=n_train,
        val_counts=_label_counts(val),
        site_len=max(1, _longest_site(train)),
    )


def run_motifs(data_root: str | Path) -> tuple[list[Motif], Background] | None:
    """The motifs and background of the scan behind a datasets directory, or None when unknown.

    The datasets record (``_datasets.json``) names the instances it was built from (older runs: the
    ``instances`` directory beside ``datasets``); their ``_scan.json`` holds every scanned motif.

    Returns
    -------
    (motifs, background) or None
    """
    from scanner.scan import load_scan_meta
    from scanner.store import RunDir

    root = Path(data_root)
    ds = RunDir.of("datasets", root)
    candidates = []
    inst = (ds.record() or {}).get("instances")
    if inst:
        candidates.append(RunDir.of("instances", inst))
    candidates.append(ds.run.dataset("instances"))
    for scan in candidates:
        if scan.record_path.is_file():
            meta = load_scan_meta(scan.root)
            return meta.motifs, meta.background
    return None
