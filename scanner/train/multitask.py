"""Multi-task training: one set of detectors learned from every TF's rows of a regime, a head per TF.

With ``--multitask`` the models of one regime are trained together: each TF keeps its own network
(site branch, fitted start, dense head), but all share one first layer (:class:`torch.nn.Conv1d`
detectors), which every TF's batches train. Context that several TFs share, such as the open-chromatin
signal of the simulated pioneer motif, is then learned from all their rows. Each TF's network is saved
as an ordinary checkpoint (its copy of the shared detectors included), so prediction, interpretation
and variant scoring use it as any other; ``model.json`` names the TFs it was trained with. Ensemble
member ``i`` trains the whole set once from seed ``seed + i``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from scanner.errors import InputError
from scanner.train.config import TrainConfig, batch_size_for, ensemble_size
from scanner.train.data import plan_training_data
from scanner.train.stage import (
    MotifPlan,
    TrainResult,
    _deterministic_cudnn,
    combine,
    finish_model,
    finish_network,
    model_spec,
    plan_motifs,
    prepare_network,
)


@_deterministic_cudnn()
def train_multitask(
    data_root: str | Path,
    tfs: Sequence[str],
    regime: str,
    out_dirs: Sequence[str | Path],
    config: TrainConfig = TrainConfig(),
    *,
    device: str | None = None,
    evaluate: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[TrainResult]:
    """Train the models of ``tfs`` under one regime with shared detectors; evaluate and save each.

    Parameters
    ----------
    data_root : path
        ``OUT/datasets``.
    tfs : sequence of str
        At least two TFs with data under ``regime``.
    regime : str
    out_dirs : sequence of path
        One checkpoint directory per TF, in ``tfs`` order.
    config : TrainConfig, optional
        ``arch`` must be ``"sitectx"``.
    device, evaluate, log
        As :func:`scanner.train.train_model`.

    Returns
    -------
    list of TrainResult
        One per TF, in ``tfs`` order.

    Raises
    ------
    InputError
        Fewer than two TFs, another architecture, windows of different widths, or any error of
        :func:`scanner.train.train_model`'s data checks.
    """
    from scanner.runtime import keep_freed_memory, torch_device
    from scanner.train.baselines import read_rows
    from scanner.train.loop import fit_networks

    config.validate()
    if len(tfs) < 2:
        raise InputError(
            f"multi-task training needs at least two TFs under '{regime}', got {list(tfs)}", field="--multitask"
        )
    if config.arch != "sitectx":
        raise InputError(
            "multi-task training shares the sitectx network's detectors; use --arch sitectx", field="--arch"
        )
    keep_freed_memory()
    device = device or torch_device()
    say = log or (lambda _m: None)
    datas = [plan_training_data(data_root, tf, regime, config, evaluate=evaluate) for tf in tfs]
    widths = {d.width for d in datas}
    if len(widths) > 1:
        raise InputError(f"windows of the TFs under '{regime}' differ in width: {sorted(widths)}", source=data_root)
    config = replace(config, batch_size=batch_size_for(config, sum(d.n_train for d in datas)))
    specs = [model_spec(config, d) for d in datas]
    plans = [plan_motifs(config, d, s, say) for d, s in zip(datas, specs, strict=True)]
    shared_plan = _shared_motifs(plans, specs[0].conv_channels[0])
    n_members = ensemble_size(config, sum(d.n_train for d in datas))
    val_rows = [read_rows(d.val_files) for d in datas] if config.prefit else [None] * len(datas)
    t0 = time.perf_counter()
    nets: list[list[Any]] = [[] for _ in tfs]
    fits, starts = [], [[] for _ in tfs]
    for i in range(n_members):
        built = []
        shared = None
        for k, (d, s, p) in enumerate(zip(datas, specs, plans, strict=True)):
            plan = MotifPlan(shared_plan.filters, p.own, shared_plan.names) if k == 0 else p
            net, task, start = prepare_network(
                config, d, s, plan, i, device=device, val_rows=val_rows[k], shared=shared
            )
            shared = net.conv
            built.append((net, task))
            starts[k].append(start)
        fit = fit_networks(
            [t for _, t in built],
            config,
            width=datas[0].width,
            seed=config.seed + i,
            device=device,
            start_candidate=all(starts[k][-1] for k in range(len(tfs))),
            log=log,
            name=f"{'+'.join(tfs)}/{regime}" + (f" member {i + 1}/{n_members}" if n_members > 1 else ""),
        )
        for k, (net, _) in enumerate(built):
            nets[k].append(finish_network(net, fit.states[k]))
        fits.append(fit)
    seconds = time.perf_counter() - t0
    results = []
    for k, d in enumerate(datas):
        results.append(
            finish_model(
                combine(nets[k]),
                fits,
                starts[k],
                config=config,
                data=d,
                spec=specs[k],
                motifs=plans[k],
                device=device,
                out_dir=out_dirs[k],
                evaluate=evaluate,
                seconds=seconds,
                extra_meta={"multitask": {"tfs": list(tfs), "shared": "detectors"}},
            )
        )
    return results


def _shared_motifs(plans: list[MotifPlan], channels: int) -> MotifPlan:
    """The union of the TFs' motif filters (own motifs first, then the rest), at most half the detectors."""
    from scanner.models.motif_init import MotifFilter

    seen: set[tuple[str, str]] = set()
    filters: list[MotifFilter] = []
    ordered = [f for p in plans for f in p.filters if p.own is not None and f.motif_id == p.own.motif_id]
    ordered += [f for p in plans for f in p.filters]
    for f in ordered:
        if (f.motif_id, f.strand) not in seen and len(filters) < channels // 2:
            seen.add((f.motif_id, f.strand))
            filters.append(f)
    names = list(dict.fromkeys(f.name for f in filters))
    return MotifPlan(filters, None, names)
