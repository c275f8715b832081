"""Training one bound/unbound classifier per (TF, regime), each run a Ray task (or in-process).

:func:`train_model` is the pure stage: DATASETS partitions in, a checkpoint directory out
(``OUT/models/tf=<tf>/regime=<regime>/{model.pt, model.json, roc.png, pr.png}``). It streams batches
from the Parquet files (:mod:`scanner.data_loading`), optimises binary cross-entropy with Adam, keeps
the weights of the best validation-loss epoch, and evaluates on the validation and test splits.
:func:`train_models` runs one :func:`train_model` per (TF, regime) as a Ray task (``num_gpus`` =
``gpus_per_model`` when the cluster has GPUs, else ``cpus_per_model`` CPUs) or in this process, and
merges the evaluation rows into ``OUT/metrics.parquet``.

Schedules
---------
``"early-stop"`` (default): stop after ``patience`` epochs without a lower validation loss.
``"reference"`` (Zheng et al. 2021): after ``patience`` epochs without improvement divide the learning
rate by 10; stop when it falls below ``min_lr``. Both stop at ``epochs`` at the latest and keep the best
epoch's weights (the EMA weights when ``ema`` is set).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from scanner.data_loading import (
    available_partitions,
    count_rows,
    dataset_hash,
    iter_batches,
    label_values,
    partition_files,
    prefetch,
    window_width,
)
from scanner.errors import InputError
from scanner.io import partition_dir

SCHEDULES = ("early-stop", "reference")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; each field is a ``scanner train`` flag (``--batch-size`` etc.).

    Parameters
    ----------
    arch : {"small", "deepsea"}
        Network (see :class:`scanner.models.ModelSpec`). Default ``"small"``.
    epochs : int
        Maximum epochs. Default 20.
    batch_size : int
        Training batch size. Default 128 (the reference's).
    lr : float
        Adam learning rate. Default 1e-3 (the reference used 0.01 with pre-trained convolutions).
    weight_decay : float
        L2 penalty (Adam ``weight_decay``). Default 5e-7 (the reference's).
    patience : int
        Epochs without a lower validation loss before stopping (or dividing the rate). Default 3.
    schedule : {"early-stop", "reference"}
        See the module docstring. Default ``"early-stop"``.
    min_lr : float
        ``"reference"`` schedule: stop once the rate is below this. Default 1e-4.
    ema : float, optional
        Decay of a weight EMA (e.g. 0.999); the EMA weights are validated and saved. Default None (off).
    seed : int
        Seeds weights, shuffling and augmentation. Default 0.
    rc_augment : bool
        Replace each training row by its reverse complement with probability 1/2. Default False.
    gpus_per_model : float
        GPUs per training task when the cluster has GPUs (a fraction packs several per GPU). Default 1.0.
    cpus_per_model : float
        CPUs per training task (also its torch threads, at least 1). Default 1.0.
    shuffle_buffer : int
        Rows in the shuffle buffer. Default 65536.
    eval_batch_size : int
        Batch size for validation and evaluation. Default 256.
    """

    arch: str = "small"
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 5e-7
    patience: int = 3
    schedule: str = "early-stop"
    min_lr: float = 1e-4
    ema: float | None = None
    seed: int = 0
    rc_augment: bool = False
    gpus_per_model: float = 1.0
    cpus_per_model: float = 1.0
    shuffle_buffer: int = 65536
    eval_batch_size: int = 256

    @classmethod
    def reference(cls, **overrides: Any) -> TrainConfig:
        """The reference's settings: DeepSEA net, Adam 0.01, batch 128, EMA 0.999, lr/10 after 10 flat
        epochs, stop below 1e-4, reverse complements."""
        base = dict(
            arch="deepsea",
            epochs=200,
            batch_size=128,
            lr=0.01,
            weight_decay=5e-7,
            patience=10,
            schedule="reference",
            min_lr=1e-4,
            ema=0.999,
            rc_augment=True,
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
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"must be one of {', '.join(SCHEDULES)}")
        for name in ("epochs", "batch_size", "patience", "shuffle_buffer", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise bad(name, "must be >= 1")
        for name in ("lr", "min_lr", "cpus_per_model", "gpus_per_model"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be > 0")
        if self.weight_decay < 0:
            raise bad("weight_decay", "must be >= 0")
        if self.ema is not None and not 0 < self.ema < 1:
            raise bad("ema", "must be in (0, 1)")
        if self.batch_size < 2:
            raise bad("batch_size", "must be >= 2 (batch normalisation)")
        return self


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced.

    Attributes
    ----------
    tf, regime : str
    checkpoint : str
        Directory holding ``model.pt`` and ``model.json``.
    epochs_run, best_epoch : int
        Epochs trained; 1-based epoch whose weights were kept.
    best_val_loss : float
    history : dict
        Per-epoch ``train_loss``, ``val_loss``, ``lr``.
    n_train, n_val : int
    seconds : float
        Wall time of the training loop (evaluation excluded).
    samples_per_s : float
        Training rows per second over the epochs run (validation excluded).
    data_hash : str
    metrics : list of dict
        METRICS rows (empty when evaluation was skipped).
    epoch_seconds : list of float
        Wall time of each epoch's training loop (validation excluded); the first epoch of a fresh
        process includes the device's start (CUDA, cuDNN's algorithm choice).
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


class Schedule:
    """Learning-rate and stopping decisions from the validation loss of each epoch (pure logic).

    Parameters
    ----------
    config : TrainConfig
        Uses ``lr``, ``patience``, ``schedule`` and ``min_lr``.

    Attributes
    ----------
    lr : float
        The rate for the next epoch.
    best : float
        Lowest validation loss seen.
    stop : bool
        True once training should end.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.lr = config.lr
        self.best = float("inf")
        self.flat = 0
        self.stop = False

    def step(self, val_loss: float) -> bool:
        """Record one epoch's validation loss; return True when it is a new best (keep these weights)."""
        if val_loss < self.best:
            self.best, self.flat = val_loss, 0
            return True
        self.flat += 1
        if self.flat >= self.config.patience:
            if self.config.schedule == "early-stop":
                self.stop = True
            else:
                self.lr, self.flat = self.lr / 10.0, 0
                self.stop = self.lr < self.config.min_lr * (1 - 1e-9)
        return False


def checkpoint_dir(models_root: str | Path, tf: str, regime: str) -> Path:
    """``models_root/tf=<tf>/regime=<regime>`` (values percent-encoded)."""
    return partition_dir(models_root, [("tf", tf), ("regime", regime)])


def _seed_everything(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _state_copy(model: Any) -> dict[str, Any]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


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
        Evaluate the kept weights on ``val`` and ``test`` (needs a ``test`` split) and draw curves.
        Default True.
    log : callable, optional
        Receives one line per epoch.

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError
        Missing partitions, windows of differing lengths, a training split with one class only,
        bad labels or windows, or a bad setting.
    """
    import torch

    from scanner.evaluate import bce_with_logits, evaluate_model, predict_files
    from scanner.models import ModelSpec, WeightEMA, build_model, save_checkpoint
    from scanner.runtime import keep_freed_memory, torch_device

    config.validate()
    keep_freed_memory()  # batches of the same size every step: keep their pages
    device = device or torch_device()
    files = {
        s: partition_files(data_root, regime, tf, s)
        for s in (("train", "val", "test") if evaluate else ("train", "val"))
    }
    width = window_width(files["train"])
    for split, fs in files.items():
        w = window_width(fs)
        if w != width:
            raise InputError(f"windows are {w} bp in split '{split}' but {width} bp in 'train'", source=fs[0])
    n_train, n_val = count_rows(files["train"]), count_rows(files["val"])
    if n_train < 2:
        raise InputError(f"the training split has {n_train} row(s); at least 2 are needed", source=files["train"][0])
    classes = label_values(files["train"])
    if len(classes) < 2:
        raise InputError(
            f"the training split of {tf}/{regime} has one class only (labels {sorted(classes)}); "
            "both bound (1) and unbound (0) rows are needed",
            source=files["train"][0],
            field="label",
        )
    try:
        spec = ModelSpec(arch=config.arch, seq_len=width).resolved()
    except ValueError as exc:
        raise InputError(str(exc), field="--arch") from exc

    _seed_everything(config.seed)
    model = build_model(spec).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    ema = WeightEMA(model, config.ema) if config.ema else None

    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "lr": []}
    epoch_seconds: list[float] = []
    best_epoch, best_state = 0, None
    schedule = Schedule(config)
    seen = 0
    pin = torch.device(device).type == "cuda"
    t0 = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        t_epoch = time.perf_counter()
        total, count = torch.zeros((), device=device), 0  # summed on the device: no wait per step
        batches = iter_batches(
            files["train"],
            config.batch_size,
            width=width,
            shuffle=True,
            seed=config.seed * 1_000_003 + epoch,
            rc_augment=config.rc_augment,
            buffer_rows=config.shuffle_buffer,
        )
        for b in prefetch(batches):  # the next batches are decoded during this step
            if len(b.y) < 2:  # batch normalisation needs two rows
                continue
            x, y = torch.from_numpy(b.x), torch.from_numpy(b.y)
            if pin:  # a copy from pageable memory would wait for the device's queue to drain
                x, y = x.pin_memory(), y.pin_memory()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x).reshape(-1), y)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update(model)
            total += loss.detach() * len(b.y)
            count += len(b.y)
        train_loss = float(total) / max(count, 1)  # waits for the device: the epoch's time is complete
        epoch_seconds.append(time.perf_counter() - t_epoch)
        seen += count
        scored = ema.module if ema is not None else model
        y_val, z_val, _ = predict_files(
            scored, files["val"], width=width, batch_size=config.eval_batch_size, device=device
        )
        val_loss = bce_with_logits(y_val, z_val)
        val_loss = float("inf") if val_loss is None else val_loss
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        history["lr"].append(schedule.lr)
        if log is not None:
            log(f"{tf}/{regime} epoch {epoch}: train {train_loss:.4f} val {val_loss:.4f} lr {schedule.lr:g}")
        if schedule.step(val_loss):
            best_epoch, best_state = epoch, _state_copy(scored)
        if schedule.stop:
            break
        for group in opt.param_groups:
            group["lr"] = schedule.lr
    seconds = time.perf_counter() - t0

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    out_dir = Path(out_dir)
    metrics: list[dict[str, Any]] = []
    if evaluate:
        metrics = evaluate_model(
            model,
            data_root,
            model_tf=tf,
            regime=regime,
            data_tfs=[tf],
            splits=("val", "test"),
            batch_size=config.eval_batch_size,
            device=device,
            seq_len=width,
            plot_dir=out_dir,
        )
    all_files = [f for fs in files.values() for f in fs]
    data_hash = dataset_hash(all_files, root=data_root)
    train_s = sum(epoch_seconds)
    result = TrainResult(
        tf=tf,
        regime=regime,
        checkpoint=str(out_dir),
        epochs_run=len(history["val_loss"]),
        best_epoch=best_epoch,
        best_val_loss=schedule.best,
        history=history,
        n_train=n_train,
        n_val=n_val,
        seconds=seconds,
        samples_per_s=seen / train_s if train_s > 0 else 0.0,
        data_hash=data_hash,
        metrics=metrics,
        epoch_seconds=epoch_seconds,
    )
    meta = {
        "tf": tf,
        "regime": regime,
        "data": str(Path(data_root).resolve()),
        "data_hash": data_hash,
        "files": [str(Path(f).relative_to(data_root)) for f in all_files],
        "train_config": asdict(config),
        "history": history,
        "best_epoch": best_epoch,
        "best_val_loss": schedule.best,
        "epochs_run": result.epochs_run,
        "n_train": n_train,
        "n_val": n_val,
        "seconds": seconds,
        "samples_per_s": result.samples_per_s,
        "metrics": metrics,
        "device": device,
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    save_checkpoint(model, spec, out_dir, meta)
    return result


def resolve_jobs(
    data_root: str | Path, tfs: Sequence[str] | None, regimes: Sequence[str] | None, *, need_test: bool = True
) -> list[tuple[str, str]]:
    """The (TF, regime) pairs to train, checked against the datasets directory.

    Parameters
    ----------
    tfs, regimes : sequence of str, optional
        Requested TFs and regimes; None means every one present.
    need_test : bool, optional
        Also require a ``test`` split. Default True.

    Raises
    ------
    InputError
        If the directory holds no data, or a requested TF or regime lacks a needed split; the
        message lists what is there.
    """
    have = available_partitions(data_root)
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


def _train_job(
    data_root: str, tf: str, regime: str, out_dir: str, config: TrainConfig, evaluate: bool, threads: float
) -> TrainResult:
    """Body of one Ray training task: set threads, pick the device, train."""
    from scanner.runtime import set_torch_threads, torch_device

    set_torch_threads(threads)
    return train_model(data_root, tf, regime, out_dir, config, device=torch_device(), evaluate=evaluate)


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
    args = [
        (str(data_root), tf, regime, str(checkpoint_dir(out_root, tf, regime)), config, evaluate) for tf, regime in jobs
    ]
    say = log or (lambda _m: None)
    if use_ray:
        results = _run_on_ray(args, config, address, say)
    else:
        results = []
        for a in args:
            say(f"training {a[1]}/{a[2]} in-process")
            results.append(train_model(*a[:5], evaluate=evaluate, log=log))
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
        say(f"training {len(args)} model(s) as Ray tasks ({opts})")
        task = ray.remote(max_retries=1, retry_exceptions=False, **opts)(_train_job)
        refs = {task.remote(*a, config.cpus_per_model): a for a in args}
        done: dict[Any, TrainResult] = {}
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
            say(
                f"trained {result.tf}/{result.regime}: {result.epochs_run} epochs, best {result.best_epoch} "
                f"(val loss {result.best_val_loss:.4f}), {result.samples_per_s:.0f} samples/s"
            )
        return [done[r] for r in refs]


def config_from_flags(**flags: Any) -> TrainConfig:
    """Build a validated :class:`TrainConfig` from flag values (None means the default)."""
    names = {f.name for f in fields(TrainConfig)}
    unknown = set(flags) - names
    if unknown:
        raise ValueError(f"unknown training settings: {sorted(unknown)}")
    return TrainConfig(**{k: v for k, v in flags.items() if v is not None}).validate()
