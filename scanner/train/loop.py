"""The training loop: streamed batches, AdamW, validation each epoch, the best epoch kept.

One loop serves a single network and a multi-task set of networks that share modules (one trunk, a
head per TF): each :class:`Task` is a network with its own training rows and validation rows; an
epoch interleaves the tasks' batches in a seeded order (every batch trains one task's network, and so
the modules it shares), and the monitored validation score is the mean of the tasks' scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scanner.data_loading import Batch, RowFilter, iter_batches, prefetch
from scanner.train.config import TrainConfig
from scanner.train.schedule import Schedule

#: A set of rows scored each epoch for early stopping: files and the filter applied to them.
MonitorSet = tuple[Sequence[Path], RowFilter | None]


@dataclass
class Task:
    """One network to train: its training files (and filter), its monitored validation rows, fixed rows.

    ``fixed`` lists ``(parameter, rows)`` to keep as they are (restored after every step, so that
    neither gradients nor weight decay move them): motif detectors to freeze, a fitted site filter.
    """

    model: Any
    train_files: Sequence[Path]
    monitor: Sequence[MonitorSet]
    train_filter: RowFilter | None = None
    fixed: Sequence[tuple[Any, np.ndarray]] = ()
    name: str = ""


@dataclass
class FitResult:
    """What :func:`fit_networks` returns.

    Attributes
    ----------
    states : list of dict
        ``state_dict`` of each task's network at the kept epoch (CPU tensors; EMA weights when ``ema``).
    history : dict
        Per epoch: ``train_loss``, ``val_loss``, ``val_auroc`` (means over tasks; NaN when undefined), ``lr``.
    best_epoch : int
        1-based epoch kept (0: the weights before training, with ``start_candidate``).
    best_val_loss, best_val_auroc : float
        The kept epoch's validation loss and auROC (NaN when undefined).
    epoch_seconds : list of float
        Wall time of each epoch's training loop (validation excluded).
    samples : int
        Training rows seen over all epochs.
    """

    states: list[dict[str, Any]]
    history: dict[str, list[float]]
    best_epoch: int
    best_val_loss: float
    best_val_auroc: float
    epoch_seconds: list[float] = field(default_factory=list)
    samples: int = 0

    @property
    def state(self) -> dict[str, Any]:
        """The single task's state."""
        return self.states[0]


def _state_copy(model: Any) -> dict[str, Any]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def validation_metrics(
    model: Any, monitor: Sequence[MonitorSet], *, width: int, batch_size: int, device: str
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Loss and auROC of ``model`` on the monitored rows: ``(loss, auroc, labels, logits)`` (NaN: undefined)."""
    from scanner.evaluate import bce_with_logits, predict_files, roc_auc

    ys, zs = [], []
    for files, row_filter in monitor:
        y, z, _ = predict_files(model, files, width=width, batch_size=batch_size, device=device, row_filter=row_filter)
        ys.append(y)
        zs.append(z)
    y, z = np.concatenate(ys), np.concatenate(zs)
    loss = bce_with_logits(y, z)
    auc = roc_auc(y, z) if len(y) else None
    return (float("inf") if loss is None else loss), (float("nan") if auc is None else auc), y, z


def _mean_metrics(
    models: Sequence[Any], tasks: Sequence[Task], config: TrainConfig, width: int, device: str
) -> tuple[float, float]:
    out = [
        validation_metrics(m, t.monitor, width=width, batch_size=config.eval_batch_size, device=device)[:2]
        for m, t in zip(models, tasks, strict=True)
    ]
    losses, aucs = [o[0] for o in out], [o[1] for o in out]
    auc = float(np.mean(aucs)) if all(np.isfinite(aucs)) else float("nan")
    return float(np.mean(losses)), auc


def _interleaved(tasks: Sequence[Task], config: TrainConfig, width: int, seed: int) -> Iterator[tuple[int, Batch]]:
    """Every task's shuffled batches of one epoch, tasks interleaved in a seeded random order."""
    streams = [
        iter_batches(
            t.train_files,
            config.batch_size,
            width=width,
            shuffle=True,
            seed=seed * 1_000_003 + i,
            rc_augment=config.rc_augment,
            max_shift=config.max_shift,
            buffer_rows=config.shuffle_buffer,
            row_filter=t.train_filter,
        )
        for i, t in enumerate(tasks)
    ]
    if len(streams) == 1:
        yield from ((0, b) for b in streams[0])
        return
    rng = np.random.default_rng(seed)
    live = list(range(len(streams)))
    while live:
        i = live[int(rng.integers(len(live)))]
        b = next(streams[i], None)
        if b is None:
            live.remove(i)
        else:
            yield i, b


def fit_networks(
    tasks: Sequence[Task],
    config: TrainConfig,
    *,
    width: int,
    seed: int,
    device: str,
    start_candidate: bool = False,
    log: Callable[[str], None] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    name: str = "",
) -> FitResult:
    """Train the tasks' networks in place (networks this call owns) and return the kept epoch's weights.

    Parameters
    ----------
    tasks : sequence of Task
        One per network; networks may share modules (multi-task). Their models are on ``device``.
    config : TrainConfig
        Uses the optimiser, schedule, augmentation, batch and EMA settings.
    width : int
        Window width W.
    seed : int
        Seeds the shuffling, augmentation and interleaving (the weights are set by the caller).
    device : str
        Torch device.
    start_candidate : bool, optional
        Validate the weights before training too; epoch 0 may be the one kept (a prefitted start).
    log : callable, optional
        Receives one line per epoch.
    on_epoch : callable, optional
        ``on_epoch(epoch, {"train_loss", "val_loss", "val_auroc", "lr"})`` after each epoch (Ray Tune's
        report).
    name : str, optional
        Prefix of the log lines.

    Returns
    -------
    FitResult
    """
    import torch

    from scanner.models import WeightEMA

    models = [t.model for t in tasks]
    params, seen_ids = [], set()
    for m in models:
        for p in m.parameters():
            if p.requires_grad and id(p) not in seen_ids:
                seen_ids.add(id(p))
                params.append(p)
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    emas = [WeightEMA(m, config.ema) for m in models] if config.ema else None
    keep = [(p, torch.from_numpy(r).to(device)) for t in tasks for p, r in t.fixed if len(r)]
    keep = [(p, r, p.detach()[r].clone()) for p, r in keep]
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_auroc": [], "lr": []}
    epoch_seconds: list[float] = []
    schedule = Schedule(config)
    best_epoch, best_states, best_auc, start_loss, seen = 0, None, float("nan"), float("inf"), 0
    pin = torch.device(device).type == "cuda"
    if start_candidate:
        start_loss, best_auc = _mean_metrics(models, tasks, config, width, device)
        schedule.start(start_loss, best_auc)
        best_states = [_state_copy(m) for m in models]
        if log is not None:
            log(f"{name} epoch 0 (fitted start): val loss {start_loss:.4f}, val auROC {best_auc:.4f}")
    for epoch in range(1, config.epochs + 1):
        for m in models:
            m.train()
        t_epoch = time.perf_counter()
        total, count = torch.zeros((), device=device), 0  # summed on the device: no wait per step
        for i, b in prefetch(_interleaved(tasks, config, width, seed * 1009 + epoch)):  # decoded during the step
            if len(b.y) < 2:  # batch normalisation needs two rows
                continue
            x, y = torch.from_numpy(b.x), torch.from_numpy(b.y)
            if pin:  # a copy from pageable memory would wait for the device's queue to drain
                x, y = x.pin_memory(), y.pin_memory()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(models[i](x).reshape(-1), y)
            loss.backward()
            opt.step()
            if keep:
                with torch.no_grad():
                    for p, r, v in keep:
                        p[r] = v
            if emas is not None:
                emas[i].update(models[i])
            total += loss.detach() * len(b.y)
            count += len(b.y)
        train_loss = float(total) / max(count, 1)  # waits for the device: the epoch's time is complete
        epoch_seconds.append(time.perf_counter() - t_epoch)
        seen += count
        scored = [e.module for e in emas] if emas is not None else models
        val_loss, val_auc = _mean_metrics(scored, tasks, config, width, device)
        for k, v in (("train_loss", train_loss), ("val_loss", val_loss), ("val_auroc", val_auc), ("lr", schedule.lr)):
            history[k].append(v)
        if log is not None:
            log(
                f"{name} epoch {epoch}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                f"val auROC {val_auc:.4f}, lr {schedule.lr:g}"
            )
        if on_epoch is not None:
            on_epoch(epoch, {"train_loss": train_loss, "val_loss": val_loss, "val_auroc": val_auc, "lr": schedule.lr})
        if schedule.step(val_loss, val_auc):
            best_epoch, best_states, best_auc = epoch, [_state_copy(m) for m in scored], val_auc
        if schedule.stop:
            break
        for group in opt.param_groups:
            group["lr"] = schedule.lr
    best_loss = history["val_loss"][best_epoch - 1] if best_epoch else start_loss
    states = best_states or [_state_copy(m) for m in models]
    return FitResult(states, history, best_epoch, best_loss, best_auc, epoch_seconds, seen)


def fit_network(
    model: Any,
    train_files: Sequence[Path],
    monitor: Sequence[MonitorSet],
    config: TrainConfig,
    *,
    width: int,
    seed: int,
    device: str,
    train_filter: RowFilter | None = None,
    fixed: Sequence[tuple[Any, np.ndarray]] = (),
    start_candidate: bool = False,
    log: Callable[[str], None] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    name: str = "",
) -> FitResult:
    """:func:`fit_networks` for one network (see :class:`Task` for the arguments)."""
    task = Task(model, train_files, monitor, train_filter, fixed, name)
    return fit_networks(
        [task],
        config,
        width=width,
        seed=seed,
        device=device,
        start_candidate=start_candidate,
        log=log,
        on_epoch=on_epoch,
        name=name,
    )
