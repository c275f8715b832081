"""The ``scanner train`` stage: one model per (TF, regime), each a seed ensemble, evaluated beside its baselines.

:func:`train_model` is the pure stage for one model: DATASETS partitions in, a checkpoint directory out
(``OUT/models/tf=<tf>/regime=<regime>/{model.pt, model.json, roc.png, pr.png}``). It plans the rows
(:mod:`scanner.train.data`), builds each ensemble member (detectors initialised from the run's motifs,
:mod:`scanner.models.motif_init`), trains it (:func:`scanner.train.loop.fit_network`), averages the
members, fits the baselines on the same training rows (:mod:`scanner.train.baselines`) and evaluates
the model beside them on the validation and test splits. :func:`train_models` runs one
:func:`train_model` per (TF, regime) as a Ray task (``num_gpus`` = ``gpus_per_model`` when the cluster
has GPUs, else ``cpus_per_model`` CPUs) or in this process, and merges the evaluation rows into
``OUT/metrics.parquet``.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from scanner.data_loading import available_partitions, dataset_hash, partition_files
from scanner.errors import InputError
from scanner.io import hive_children, partition_dir
from scanner.manifest import hash_json
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


@contextmanager
def models_output(
    out_root: Path, data_root: Path, settings: dict[str, Any], jobs: Sequence[tuple[str, str]]
) -> Iterator[tuple[Any, dict[tuple[str, str], TrainResult]]]:
    """The models dataset being written (:mod:`scanner.store`): locked, staged by the settings and the
    training data, published in one step when the block succeeds.

    Yields the staging area (checkpoints go to ``staging.path(tf, regime)``) and the results of the
    models an interrupted attempt with the same settings finished (their checkpoints are reused).
    Models of the published dataset that ``jobs`` does not retrain are carried over.
    """
    from scanner.store import RunDir, tree_signature

    ds = RunDir.of("models", out_root)
    ds.run.check_no_overlap(out_root, {"datasets directory": data_root})
    ds.check_writable()
    with ds.run.lock(out_root.name):
        ds.run.recover()
        fingerprint = hash_json({"data": tree_signature(data_root), "settings": settings, "jobs": sorted(jobs)})
        existing = [(tf, r) for tf, tdir in hive_children(out_root, "tf") for r, _ in hive_children(tdir, "regime")]
        staging = ds.staging(fingerprint, carry=[k for k in existing if k not in set(jobs)])
        done = {}
        for tf, regime in jobs:
            meta_path = staging.path(tf, regime) / "model.json"  # written last: its presence means complete
            if meta_path.is_file():
                done[(tf, regime)] = result_from_meta(json.loads(meta_path.read_text()), meta_path.parent)
        yield staging, done
        staging.publish()


def result_from_meta(meta: dict[str, Any], checkpoint: Path) -> TrainResult:
    """The :class:`TrainResult` a finished checkpoint's ``model.json`` records."""
    return TrainResult(
        tf=meta["tf"],
        regime=meta["regime"],
        checkpoint=str(checkpoint),
        epochs_run=meta["epochs_run"],
        best_epoch=meta["best_epoch"],
        best_val_loss=meta["best_val_loss"],
        history=meta["history"],
        n_train=meta["n_train"],
        n_val=meta["n_val"],
        seconds=meta["seconds"],
        samples_per_s=meta["samples_per_s"],
        data_hash=meta["data_hash"],
        metrics=meta.get("metrics", []),
        members=meta.get("members", []),
    )


def _groups(jobs: list[tuple[str, str]], multitask: bool) -> list[tuple[list[str], str]]:
    """Training units: one (TF, regime) each, or with ``multitask`` every TF of a regime together."""
    if not multitask:
        return [([tf], regime) for tf, regime in jobs]
    by_regime: dict[str, list[str]] = {}
    for tf, regime in jobs:
        by_regime.setdefault(regime, []).append(tf)
    return [(tfs, regime) for regime, tfs in by_regime.items()]


def _train_group(
    data_root: str,
    tfs: list[str],
    regime: str,
    out_dirs: list[str],
    config: TrainConfig,
    evaluate: bool,
    *,
    device: str | None = None,
    log: Callable[[str], None] | None = None,
) -> list[TrainResult]:
    """One training unit: a single model, or the multi-task models of one regime."""
    if len(tfs) == 1:
        return [train_model(data_root, tfs[0], regime, out_dirs[0], config, device=device, evaluate=evaluate, log=log)]
    from scanner.train.multitask import train_multitask

    return train_multitask(data_root, tfs, regime, out_dirs, config, device=device, evaluate=evaluate, log=log)


def _train_job(
    data_root: str,
    tfs: list[str],
    regime: str,
    out_dirs: list[str],
    config: TrainConfig,
    evaluate: bool,
    threads: float,
) -> list[TrainResult]:
    """Body of one Ray training task: set threads, pick the device, train one unit."""
    from scanner.runtime import set_torch_threads, torch_device

    set_torch_threads(threads)
    return _train_group(data_root, tfs, regime, out_dirs, config, evaluate, device=torch_device())


def train_models(
    data_root: str | Path,
    out_root: str | Path,
    config: TrainConfig = TrainConfig(),
    *,
    tfs: Sequence[str] | None = None,
    regimes: Sequence[str] | None = None,
    use_ray: bool = True,
    address: str | None = None,
    evaluate: bool = True,
    metrics_path: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> list[TrainResult]:
    """Train one model per (TF, regime), in parallel Ray tasks or sequentially in-process.

    Parameters
    ----------
    data_root : path
        ``OUT/datasets``.
    out_root : path
        ``OUT/models``; each model goes to ``out_root/tf=<tf>/regime=<regime>/``.
    config : TrainConfig, optional
    tfs, regimes : sequence of str, optional
        Default: every TF / regime present in ``data_root``.
    use_ray : bool, optional
        Run each model as a Ray task (connecting to ``address`` or starting local Ray if Ray is not
        initialised). Default True. False runs in this process (same results for the same seed).
    address : str, optional
        Ray address; see :func:`scanner.runtime.ray_session`.
    evaluate : bool, optional
        Evaluate each model on val/test and merge the rows into ``metrics_path``. Default True.
    metrics_path : path, optional
        Default ``out_root/../metrics.parquet`` (``OUT/metrics.parquet`` for ``--out OUT/models``).
    log : callable, optional
        Receives progress lines.

    Returns
    -------
    list of TrainResult
        In (regime, TF) order of the jobs.

    Raises
    ------
    InputError
        Bad settings or missing/ill-formed data (raised before any training starts where it can be
        detected from the directory layout).
    """
    from scanner.evaluate import write_metrics

    config.validate()
    jobs = resolve_jobs(data_root, tfs, regimes, need_test=evaluate)
    data_root, out_root = Path(data_root), Path(out_root)
    say = log or (lambda _m: None)
    with models_output(out_root, data_root, {"config": asdict(config), "evaluate": evaluate}, jobs) as (staging, done):
        groups = [g for g in _groups(jobs, config.multitask) if any((tf, g[1]) not in done for tf in g[0])]
        args = [
            (str(data_root), tfs_, regime, [str(staging.path(tf, regime)) for tf in tfs_], config, evaluate)
            for tfs_, regime in groups
        ]
        if done:
            say(f"{len(done)} model(s) trained by an earlier attempt with these settings: kept")
        if use_ray and args:
            results = _run_on_ray(args, config, address, say)
        else:
            results = []
            for a in args:
                say(f"training {'+'.join(a[1])}/{a[2]} in-process")
                results += _train_group(*a, log=log)
        results += [r for key, r in done.items() if key not in {(x.tf, x.regime) for x in results}]
    results = [replace(r, checkpoint=str(checkpoint_dir(out_root, r.tf, r.regime))) for r in results]
    order = {job: i for i, job in enumerate(jobs)}
    results.sort(key=lambda r: order[(r.tf, r.regime)])
    if evaluate:
        rows = [r for res in results for r in res.metrics]
        write_metrics(rows, Path(metrics_path) if metrics_path else out_root.parent / "metrics.parquet")
    return results


def _run_on_ray(args: list[tuple], config: TrainConfig, address: str | None, say: Callable[[str], None]) -> list:
    import ray

    from scanner.runtime import cluster_resources, ray_session

    ctx = nullcontext() if ray.is_initialized() else ray_session(address)
    with ctx:
        res = cluster_resources()
        if config.cpus_per_model > res.cpus:
            raise InputError(
                f"each model asks for {config.cpus_per_model} CPUs but the cluster has {res.cpus:g}",
                field="--cpus-per-model",
            )
        if res.use_gpu:
            if config.gpus_per_model > res.gpus:
                raise InputError(
                    f"each model asks for {config.gpus_per_model} GPUs but the cluster has {res.gpus:g}",
                    field="--gpus-per-model",
                )
            opts = {"num_gpus": config.gpus_per_model, "num_cpus": config.cpus_per_model}
        else:
            opts = {"num_gpus": 0, "num_cpus": config.cpus_per_model}
        say(f"training {sum(len(a[1]) for a in args)} model(s) in {len(args)} Ray task(s) ({opts})")
        task = ray.remote(max_retries=1, retry_exceptions=False, **opts)(_train_job)
        refs = {task.remote(*a, config.cpus_per_model): a for a in args}
        done: dict[Any, list[TrainResult]] = {}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:
                for r in pending:
                    ray.cancel(r)
                cause = getattr(exc, "cause", None)
                if isinstance(cause, InputError):
                    raise cause from None
                raise
            done[ready[0]] = result
            for r in result:
                kept = ", ".join(f"{m['best_epoch']}/{m['epochs_run']}" for m in r.members)
                say(f"trained {r.tf}/{r.regime}: {len(r.members)} network(s), kept epoch/run {kept}")
        return [r for ref in refs for r in done[ref]]


__all__ = [
    "TrainResult",
    "checkpoint_dir",
    "model_spec",
    "resolve_jobs",
    "train_model",
    "train_models",
]
