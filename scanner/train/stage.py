"""One (TF, regime) model: a seed ensemble, evaluated beside its baselines, saved as a checkpoint.

:func:`train_model` is the pure stage for one model: DATASETS partitions in, a checkpoint directory out
(``tf=<tf>/regime=<regime>/{model.pt, model.json, roc.png, pr.png}``). It plans the rows
(:mod:`scanner.train.data`), builds each ensemble member (detectors initialised from the run's motifs,
:mod:`scanner.models.motif_init`; a fitted start, :mod:`scanner.train.prefit`), trains it
(:func:`scanner.train.loop.fit_networks`), averages the members, fits the baselines on the same
training rows (:mod:`scanner.train.baselines`) and evaluates the model beside them on the validation
and test splits. :mod:`scanner.train.run` runs many of them.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from scanner.data_loading import available_partitions, dataset_hash, partition_files
from scanner.errors import InputError
from scanner.io import partition_dir
from scanner.train.config import TrainConfig, batch_size_for, ensemble_size
from scanner.train.data import ALL_ROWS, TrainingData, plan_training_data, run_motifs


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced.

    Attributes
    ----------
    tf, regime : str
    checkpoint : str
        Directory holding ``model.pt`` and ``model.json``.
    epochs_run, best_epoch : int
        Epochs trained and the 1-based epoch kept, of the first ensemble member.
    best_val_loss : float
        The first member's validation loss at its kept epoch.
    history : dict
        The first member's per-epoch ``train_loss``, ``val_loss``, ``val_auroc``, ``lr``.
    n_train, n_val : int
    seconds : float
        Wall time of the training loops of all members (evaluation excluded).
    samples_per_s : float
        Training rows per second over the epochs run (validation excluded).
    data_hash : str
    metrics : list of dict
        METRICS rows (empty when evaluation was skipped).
    epoch_seconds : list of float
        Wall time of each epoch of the first member (the first epoch of a fresh process includes the
        device's start: CUDA, cuDNN's algorithm choice).
    members : list of dict
        Per member: seed, epochs_run, best_epoch, best_val_loss, best_val_auroc.
    """

    tf: str
    regime: str
    checkpoint: str
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    history: dict[str, list[float]]
    n_train: int
    n_val: int
    seconds: float
    samples_per_s: float
    data_hash: str
    metrics: list[dict[str, Any]] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)


def checkpoint_dir(models_root: str | Path, tf: str, regime: str) -> Path:
    """``models_root/tf=<tf>/regime=<regime>`` (values percent-encoded)."""
    return partition_dir(models_root, [("tf", tf), ("regime", regime)])


@contextmanager
def _deterministic_cudnn() -> Iterator[None]:
    """cuDNN's deterministic algorithms (and no autotuning) inside the block; previous flags restored."""
    import torch

    before = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before


def model_spec(config: TrainConfig, data: TrainingData) -> Any:
    """The network's :class:`~scanner.models.ModelSpec` for this data (one member; window, site, sizes)."""
    from scanner.models import ModelSpec

    kw: dict[str, Any] = {"arch": config.arch, "seq_len": data.width}
    if config.channels is not None:
        kw["conv_channels"] = (config.channels,) if config.arch == "sitectx" else None
    if config.filter_width is not None and config.arch == "sitectx":
        kw["conv_widths"] = (config.filter_width,)
    if config.dropout is not None and config.arch == "sitectx":
        kw["dropouts"] = (config.dropout,)
    if config.hidden is not None:
        kw["dense_units"] = config.hidden
    if config.arch == "sitectx":
        kw.update(site_len=data.site_len, site_shift=config.max_shift)
    try:
        return ModelSpec(**{k: v for k, v in kw.items() if v is not None}).resolved()
    except ValueError as exc:
        raise InputError(str(exc), field="--arch") from exc


@dataclass(frozen=True)
class MotifPlan:
    """The motifs the first layer starts from: filters (both strands each) and the TF's own motif."""

    filters: list[Any]
    own: Any | None
    names: list[str]


def plan_motifs(config: TrainConfig, data: TrainingData, spec: Any, log: Callable[[str], None]) -> MotifPlan:
    """Which motifs initialise the detectors: the TF's own, the scan's others, ``init_motifs``, then seeds.

    At most a quarter of the detectors' count of motifs (two filters each: half the detectors) is
    motif-initialised; the rest learn freely. When more known motifs are offered,
    :func:`scanner.models.motif_init.select_motifs` keeps those that separate the training classes best,
    the TF's own always first. Up to ``kmer_seeds`` of the remaining places go to the k-mers most
    enriched near the site in bound training windows (:func:`scanner.models.motif_init.enriched_kmers`),
    so that a partner no database names is detectable from a few hundred rows.
    """
    from scanner.models.motif_init import enriched_kmers, kmer_motif, motif_filters, select_motifs
    from scanner.motifs import load_motifs
    from scanner.train.baselines import read_rows

    if not config.motif_init or spec.arch != "sitectx":
        return MotifPlan([], None, [])
    found = run_motifs(data.data_root)
    scanned, background = found if found else ([], None)
    own = [m for m in scanned if m.name == data.tf]
    candidates = [m for m in scanned if m.name != data.tf]
    candidates += load_motifs(list(config.init_motifs)) if config.init_motifs else []
    capacity = spec.conv_channels[0] // 4  # two filters per motif, half the detectors
    rows = None
    if len(own) + len(candidates) > capacity or config.kmer_seeds:
        rows = read_rows(data.train_files, row_filter=data.train_filter)
    if len(own) + len(candidates) > capacity:
        chosen = select_motifs(candidates, rows.codes, rows.y, capacity, required=own, background=background)
    else:
        chosen = own + candidates
    room = min(config.kmer_seeds, capacity - len(chosen))
    if room > 0 and rows is not None and len(rows.y):
        w = data.width
        site = (
            w // 2 - spec.site_len // 2 - spec.site_flank,
            w // 2 - spec.site_len // 2 + spec.site_len + spec.site_flank,
        )
        words = enriched_kmers(rows.codes, rows.y, top=room, exclude=site, seed=config.seed)
        chosen += [kmer_motif(word) for word in words]
    if not chosen:
        log(f"{data.tf}/{data.regime}: no motif to initialise the detectors with")
    filters = motif_filters(chosen, spec.conv_widths[0], background=background)
    return MotifPlan(filters, own[0] if own else None, [m.name for m in chosen])


def prepare_network(
    config: TrainConfig,
    data: TrainingData,
    spec: Any,
    motifs: MotifPlan,
    member: int,
    *,
    device: str,
    val_rows: Any = None,
    shared: Any = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """One ensemble member, ready to train: built, motif-initialised, fitted start; and its :class:`Task`.

    Parameters
    ----------
    member : int
        Member index (seed ``config.seed + member``; its hold-out part when the validation rows are few).
    val_rows : Rows, optional
        Validation rows for the fitted start's choice (read here when None).
    shared : torch.nn.Conv1d, optional
        Detectors shared with other TFs' networks (multi-task); this network then uses them as they are.

    Returns
    -------
    (network, task, fitted start)
        The fitted start is ``asdict(WideFit)`` or ``{}``.
    """
    import torch

    from scanner.models import build_model
    from scanner.models.motif_init import init_detectors, init_site_filter
    from scanner.train.baselines import read_rows
    from scanner.train.loop import Task
    from scanner.train.prefit import fit_wide

    torch.manual_seed(config.seed + member)
    net = build_model(spec).to(device)
    fixed: list[tuple[Any, np.ndarray]] = []
    if shared is not None:
        net.conv = shared
    elif motifs.filters:
        rows = init_detectors(net, motifs.filters)
        if config.freeze_motifs:
            fixed += [(net.conv.weight, np.flatnonzero(rows)), (net.conv.bias, np.flatnonzero(rows))]
    if motifs.own is not None and spec.arch == "sitectx":
        init_site_filter(net, motifs.own)
    train_filter, monitor = data.member_rows(member)
    start: dict[str, Any] = {}
    if config.prefit and spec.arch == "sitectx":
        val = val_rows if val_rows is not None else read_rows(data.val_files)
        wide = fit_wide(net, read_rows(data.train_files, row_filter=train_filter), val, seed=config.seed + member)
        if wide is not None:
            start = asdict(wide)
            fixed += [(net.site_conv.weight, np.array([0])), (net.site_conv.bias, np.array([0]))]
            if net.kmax:
                net.wide.requires_grad_(False)
    task = Task(net, data.train_files, monitor, train_filter, fixed, f"{data.tf}/{data.regime}")
    return net, task, start


def _train_members(
    config: TrainConfig,
    data: TrainingData,
    spec: Any,
    motifs: MotifPlan,
    *,
    device: str,
    log: Callable[[str], None] | None,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
) -> tuple[Any, list[Any], list[dict[str, Any]]]:
    """Train each ensemble member; return the averaged model (eval mode), the members' FitResults and
    what each member's fitted start chose."""
    from scanner.train.baselines import read_rows
    from scanner.train.loop import fit_networks

    n_members = ensemble_size(config, data.n_train)
    val_rows = read_rows(data.val_files) if config.prefit else None
    nets, fits, starts = [], [], []
    for i in range(n_members):
        net, task, start = prepare_network(config, data, spec, motifs, i, device=device, val_rows=val_rows)
        fit = fit_networks(
            [task],
            config,
            width=data.width,
            seed=config.seed + i,
            device=device,
            start_candidate=bool(start),
            log=log,
            on_epoch=on_epoch if i == 0 else None,
            name=task.name + (f" member {i + 1}/{n_members}" if n_members > 1 else ""),
        )
        nets.append(finish_network(net, fit.state))
        fits.append(fit)
        starts.append(start)
    return combine(nets), fits, starts


def finish_network(net: Any, state: dict[str, Any]) -> Any:
    """The kept weights loaded, every parameter trainable again, eval mode."""
    net.load_state_dict(state)
    net.requires_grad_(True)
    return net.eval()


def combine(nets: list[Any]) -> Any:
    """One network, or the :class:`~scanner.models.ensemble.Ensemble` of several (eval mode)."""
    from scanner.models.ensemble import Ensemble

    return nets[0] if len(nets) == 1 else Ensemble(nets).eval()


def _evaluate(model: Any, config: TrainConfig, data: TrainingData, device: str, out_dir: Path) -> list[dict[str, Any]]:
    """METRICS rows of the model and its baselines on the regime's validation and test rows."""
    from scanner.evaluate import evaluate_model
    from scanner.train.baselines import fit_baselines, read_rows

    baselines = None
    if config.baselines:
        baselines = fit_baselines(
            read_rows(data.train_files, row_filter=data.train_filter), read_rows(data.val_files), seed=config.seed
        )
    return evaluate_model(
        model,
        data.data_root,
        model_tf=data.tf,
        regime=data.regime,
        data_tfs=[data.tf],
        splits=("val", "test"),
        batch_size=config.eval_batch_size,
        device=device,
        seq_len=data.width,
        plot_dir=out_dir,
        baselines=baselines,
    )


def finish_model(
    model: Any,
    fits: list[Any],
    starts: list[dict[str, Any]],
    *,
    config: TrainConfig,
    data: TrainingData,
    spec: Any,
    motifs: MotifPlan,
    device: str,
    out_dir: str | Path,
    evaluate: bool,
    seconds: float,
    extra_meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Evaluate a trained model beside its baselines and write its checkpoint; the stage's result."""
    import torch

    from scanner.models import save_checkpoint

    out_dir = Path(out_dir)
    metrics = _evaluate(model, config, data, device, out_dir) if evaluate else []
    all_files = [*data.train_files, *data.val_files, *data.test_files]
    data_hash = dataset_hash(all_files, root=data.data_root)
    train_s = sum(sum(f.epoch_seconds) for f in fits)
    members = [
        {
            "seed": config.seed + i,
            "epochs_run": len(f.history["val_loss"]),
            "best_epoch": f.best_epoch,
            "best_val_loss": f.best_val_loss,
            "best_val_auroc": f.best_val_auroc,
            "fitted_start": start or None,
        }
        for i, (f, start) in enumerate(zip(fits, starts, strict=True))
    ]
    first = fits[0]
    result = TrainResult(
        tf=data.tf,
        regime=data.regime,
        checkpoint=str(out_dir),
        epochs_run=len(first.history["val_loss"]),
        best_epoch=first.best_epoch,
        best_val_loss=first.best_val_loss,
        history=first.history,
        n_train=data.n_train,
        n_val=sum(data.val_counts),
        seconds=seconds,
        samples_per_s=sum(f.samples for f in fits) / train_s if train_s > 0 else 0.0,
        data_hash=data_hash,
        metrics=metrics,
        epoch_seconds=first.epoch_seconds,
        members=members,
    )
    meta = {
        "tf": data.tf,
        "regime": data.regime,
        "data": str(data.data_root.resolve()),
        "data_hash": data_hash,
        "files": data.file_names(),
        "train_config": asdict(config),
        "train_rows": config.train_rows,
        "early_stopping": {
            "monitor": config.monitor,
            "min_epochs": config.min_epochs,
            "patience": config.patience,
            "holdout": data.small_val,
        },
        "motif_init": motifs.names,
        "history": first.history,
        "members": members,
        "best_epoch": first.best_epoch,
        "best_val_loss": first.best_val_loss,
        "epochs_run": result.epochs_run,
        "n_train": data.n_train,
        "n_val": result.n_val,
        "seconds": seconds,
        "samples_per_s": result.samples_per_s,
        "metrics": metrics,
        "device": device,
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        **(extra_meta or {}),
    }
    save_checkpoint(model, replace(spec, members=len(fits)), out_dir, meta)
    return result


@_deterministic_cudnn()  # a fresh context per call (contextmanager objects are decorators)
def train_model(
    data_root: str | Path,
    tf: str,
    regime: str,
    out_dir: str | Path,
    config: TrainConfig = TrainConfig(),
    *,
    device: str | None = None,
    evaluate: bool = True,
    log: Callable[[str], None] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Train, checkpoint and evaluate the model of one TF under one regime (no Ray).

    Parameters
    ----------
    data_root : path
        ``OUT/datasets`` (DATASETS schema, ``regime=/tf=/split=`` partitions).
    tf, regime : str
        Which partitions to use.
    out_dir : path
        Checkpoint directory (created): ``model.pt``, ``model.json``, ``roc.png``, ``pr.png``.
    config : TrainConfig, optional
        Hyper-parameters. Default ``TrainConfig()``.
    device : str, optional
        Torch device. Default :func:`scanner.runtime.torch_device`. On CUDA, cuDNN runs its
        deterministic algorithms during the call (restored after), so the same seed gives the same
        weights run to run, as on the CPU.
    evaluate : bool, optional
        Evaluate the model and its baselines on ``val`` and ``test`` (needs a ``test`` split) and draw
        curves. Default True.
    log : callable, optional
        Receives one line per epoch.
    on_epoch : callable, optional
        Called after each epoch of the first member with its validation metrics (Ray Tune).
    extra_meta : dict, optional
        More JSON-ready entries for ``model.json`` (a search's chosen settings).

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError
        Missing partitions, windows of differing lengths, a training split with one class only,
        bad labels or windows, or a bad setting.
    """
    from scanner.runtime import keep_freed_memory, torch_device

    config.validate()
    keep_freed_memory()  # batches of the same size every step: keep their pages
    device = device or torch_device()
    say = log or (lambda _m: None)
    data = plan_training_data(data_root, tf, regime, config, evaluate=evaluate)
    config = replace(config, batch_size=batch_size_for(config, data.n_train))
    spec = model_spec(config, data)
    motifs = plan_motifs(config, data, spec, say)
    t0 = time.perf_counter()
    model, fits, starts = _train_members(config, data, spec, motifs, device=device, log=log, on_epoch=on_epoch)
    return finish_model(
        model,
        fits,
        starts,
        config=config,
        data=data,
        spec=spec,
        motifs=motifs,
        device=device,
        out_dir=out_dir,
        evaluate=evaluate,
        seconds=time.perf_counter() - t0,
        extra_meta=extra_meta,
    )


def empty_datasets(data_root: str | Path) -> bool:
    """Whether ``data_root`` holds training sets that ``scanner label`` published empty (a scan with no
    hit): a valid, empty input to train, with nothing to do."""
    from scanner.store import RunDir

    ds = RunDir.of("datasets", data_root)
    rec = ds.record() if ds.record_path.is_file() else None
    return rec is not None and not rec.get("sizes") and not available_partitions(data_root)


def resolve_jobs(
    data_root: str | Path, tfs: Sequence[str] | None, regimes: Sequence[str] | None, *, need_test: bool = True
) -> list[tuple[str, str]]:
    """The (TF, regime) pairs to train, checked against the datasets directory.

    Parameters
    ----------
    tfs, regimes : sequence of str, optional
        Requested TFs and regimes; None means every one present (the ``all`` rows are a source of
        training rows, not a regime).
    need_test : bool, optional
        Also require a ``test`` split. Default True.

    Raises
    ------
    InputError
        If the directory holds no data, or a requested TF or regime lacks a needed split; the
        message lists what is there.
    """
    have = {k: v for k, v in available_partitions(data_root).items() if k[0] != ALL_ROWS}
    if not have:
        raise InputError(
            "no dataset partitions found (expected regime=<r>/tf=<tf>/split=<s>/part-*.parquet)",
            source=data_root,
        )
    regimes = list(regimes) if regimes else sorted({r for r, _ in have})
    tfs = list(tfs) if tfs else sorted({t for r, t in have if r in regimes})
    needed = ("train", "val", "test") if need_test else ("train", "val")
    jobs = []
    for regime in regimes:
        for tf in tfs:
            for split in needed:
                partition_files(data_root, regime, tf, split)  # raises a precise InputError
            jobs.append((tf, regime))
    return jobs


__all__ = [
    "TrainResult",
    "checkpoint_dir",
    "model_spec",
    "resolve_jobs",
    "train_model",
]
