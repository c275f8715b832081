"""Hyper-parameter search on Ray Tune: trials of single networks stopped early by ASHA, chosen on validation.

:func:`tune_model` searches :class:`SearchSpace` for one (TF, regime): each trial is one network
trained by :func:`scanner.train.train_model` (no test evaluation, no ensemble), reporting after every
epoch its score on the validation rows (auROC, or minus the loss when the auROC is undefined) to Tune's
asynchronous successive-halving scheduler, which stops the weaker trials early. The best trial (highest
validation score at any epoch) gives the settings of the final model, trained as ``scanner train``
would (an ensemble by default) and recorded in its ``model.json`` under ``"tuned"``. Trials are Ray
tasks with ``cpus_per_model`` CPUs (and ``gpus_per_model`` GPUs where the cluster has them); the
experiment lives under ``storage`` and a re-run with the same storage resumes it. Nothing here reads
the test split before the final evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from scanner.errors import InputError
from scanner.store import RunDir
from scanner.train.config import TrainConfig
from scanner.train.run import models_output
from scanner.train.stage import TrainResult, checkpoint_dir, resolve_jobs, train_model


@dataclass(frozen=True)
class SearchSpace:
    """What a search varies (each field a tuple of choices; ``lr`` and ``weight_decay`` log-uniform ranges).

    Defaults: detectors 16/32/64 of width 11/15/19, dense 16/32/64, learning rate 1e-3..1e-2, weight
    decay 1e-4..1e-1, dropout 0.1/0.2/0.4, motif-initialised detectors or not, shift 0/5/10 bp.
    """

    channels: tuple[int, ...] = (16, 32, 64)
    filter_width: tuple[int, ...] = (11, 15, 19)
    hidden: tuple[int, ...] = (16, 32, 64)
    lr: tuple[float, float] = (1e-3, 1e-2)
    weight_decay: tuple[float, float] = (1e-4, 1e-1)
    dropout: tuple[float, ...] = (0.1, 0.2, 0.4)
    motif_init: tuple[bool, ...] = (True, False)
    max_shift: tuple[int, ...] = (0, 5, 10)

    def param_space(self) -> dict[str, Any]:
        """The space as Ray Tune sampling objects."""
        from ray import tune

        out: dict[str, Any] = {}
        for name in ("channels", "filter_width", "hidden", "dropout", "motif_init", "max_shift"):
            out[name] = tune.choice(list(getattr(self, name)))
        out["lr"] = tune.loguniform(*self.lr)
        out["weight_decay"] = tune.loguniform(*self.weight_decay)
        return out


@dataclass(frozen=True)
class TuneSettings:
    """How a search runs (each a ``scanner tune`` flag).

    Parameters
    ----------
    samples : int
        Trials per model. Default 12.
    grace_period : int
        Epochs every trial runs before ASHA may stop it. Default 3.
    reduction_factor : int
        ASHA keeps the best 1/reduction_factor of the trials at each rung. Default 3.
    resume : bool
        Continue an experiment found under the storage path (finished trials are kept). Default True.
    space : SearchSpace
        What is searched. Default :class:`SearchSpace`.
    """

    samples: int = 12
    grace_period: int = 3
    reduction_factor: int = 3
    resume: bool = True
    space: SearchSpace = field(default_factory=SearchSpace)

    def validate(self) -> TuneSettings:
        """Return self, or raise :class:`InputError` naming the bad flag."""
        if self.samples < 1:
            raise InputError(f"must be >= 1, got {self.samples}", field="--samples")
        if self.grace_period < 1:
            raise InputError(f"must be >= 1, got {self.grace_period}", field="--grace-period")
        if self.reduction_factor < 2:
            raise InputError(f"must be >= 2, got {self.reduction_factor}", field="--reduction-factor")
        return self


@dataclass(frozen=True)
class TuneResult:
    """One search: the chosen settings, every trial's best validation score, and the final model."""

    tf: str
    regime: str
    best: dict[str, Any]
    best_score: float
    trials: list[dict[str, Any]]
    final: TrainResult
    storage: str


@contextmanager
def _quiet_tune() -> Iterator[None]:
    """Tune's own console output off during a fit (its tables and banners; our progress lines stay)."""
    import os

    before = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # the legacy reporter honours verbose=0
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = before


def _score(metrics: dict[str, float]) -> float:
    auc = metrics["val_auroc"]
    return float(auc) if auc is not None and math.isfinite(auc) else -float(metrics["val_loss"])


def _trial(params: dict[str, Any], *, data_root: str, tf: str, regime: str, base: dict[str, Any]) -> None:
    """One Tune trial: a single network with ``params``, reporting each epoch's validation score."""
    import tempfile

    from ray import tune

    from scanner.runtime import set_torch_threads

    config = replace(TrainConfig(**base), **params, ensemble=1, baselines=False).validate()
    set_torch_threads(config.cpus_per_model)

    def report(epoch: int, metrics: dict[str, float]) -> None:
        tune.report({"score": _score(metrics), "epoch": epoch, **metrics})

    with tempfile.TemporaryDirectory(prefix="scanner-trial-") as scratch:
        train_model(data_root, tf, regime, scratch, config, evaluate=False, on_epoch=report)


def _trial_rows(grid: Any) -> list[dict[str, Any]]:
    rows = []
    for r in grid:
        df = r.metrics_dataframe
        best = float(df["score"].max()) if df is not None and len(df) else float("nan")
        rows.append(
            {
                "config": {k: v for k, v in r.config.items()},
                "best_score": best,
                "epochs": int(df["epoch"].max()) if df is not None and len(df) else 0,
                "error": None if r.error is None else str(r.error).splitlines()[0][:200],
            }
        )
    return rows


def tune_model(
    data_root: str | Path,
    tf: str,
    regime: str,
    out_dir: str | Path,
    base: TrainConfig = TrainConfig(),
    settings: TuneSettings = TuneSettings(),
    *,
    storage: str | Path,
    log: Callable[[str], None] | None = None,
) -> TuneResult:
    """Search, then train and evaluate the final model of one (TF, regime). Ray must be initialised.

    Parameters
    ----------
    data_root : path
        ``OUT/datasets``.
    tf, regime : str
    out_dir : path
        Checkpoint directory of the final model.
    base : TrainConfig, optional
        Settings the search starts from (its ``epochs`` is every trial's maximum).
    settings : TuneSettings, optional
    storage : path
        Directory of Tune's experiments (``OUT/tune``); this model's is ``storage/<tf>__<regime>``.
    log : callable, optional
        Progress lines.

    Returns
    -------
    TuneResult

    Raises
    ------
    InputError
        Bad settings, missing data, or a search whose every trial failed (the first error is named).
    """
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from scanner.runtime import cluster_resources

    base.validate()
    settings.validate()
    say = log or (lambda _m: None)
    resources = cluster_resources()
    per_trial = {"cpu": base.cpus_per_model, "gpu": base.gpus_per_model if resources.use_gpu else 0}
    trainable = tune.with_resources(
        tune.with_parameters(_trial, data_root=str(Path(data_root).resolve()), tf=tf, regime=regime, base=asdict(base)),
        per_trial,
    )
    storage = Path(storage).resolve()
    storage.mkdir(parents=True, exist_ok=True)
    name = f"{tf}__{regime}".replace("/", "_")
    path = storage / name
    if settings.resume and tune.Tuner.can_restore(path):
        say(f"{tf}/{regime}: resuming the search in {path}")
        tuner = tune.Tuner.restore(str(path), trainable, resume_errored=True)
    else:
        scheduler = ASHAScheduler(
            time_attr="epoch",
            max_t=base.epochs,
            grace_period=min(settings.grace_period, base.epochs),
            reduction_factor=settings.reduction_factor,
        )
        tuner = tune.Tuner(
            trainable,
            param_space=settings.space.param_space(),
            tune_config=tune.TuneConfig(
                metric="score",
                mode="max",
                scheduler=scheduler,
                num_samples=settings.samples,
                search_alg=BasicVariantGenerator(random_state=base.seed),  # the same seed samples the same trials
            ),
            run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0),
        )
    say(f"{tf}/{regime}: {settings.samples} trial(s), {per_trial} each, ASHA on validation score")
    with _quiet_tune():
        grid = tuner.fit()
    trials = _trial_rows(grid)
    ok = [t for t in trials if t["error"] is None and math.isfinite(t["best_score"])]
    if not ok:
        first = next((t["error"] for t in trials if t["error"]), "no trial reported a score")
        raise InputError(f"every trial of the search for {tf}/{regime} failed: {first}", source=path)
    best = max(ok, key=lambda t: t["best_score"])
    say(f"{tf}/{regime}: best validation score {best['best_score']:.4f} with {best['config']}")
    final_cfg = replace(base, **best["config"]).validate()
    tuned = {"config": best["config"], "best_val_score": best["best_score"], "trials": trials, "storage": str(path)}
    final = train_model(data_root, tf, regime, out_dir, final_cfg, extra_meta={"tuned": tuned})
    _ = ray  # Ray is initialised by the caller (tune_models or a test fixture)
    return TuneResult(tf, regime, best["config"], best["best_score"], trials, final, str(path))


def tune_models(
    data_root: str | Path,
    out_root: str | Path,
    base: TrainConfig = TrainConfig(),
    settings: TuneSettings = TuneSettings(),
    *,
    tfs: Sequence[str] | None = None,
    regimes: Sequence[str] | None = None,
    storage: str | Path | None = None,
    address: str | None = None,
    metrics_path: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> list[TuneResult]:
    """Search each (TF, regime) in turn (trials in parallel on Ray), train the final models, write metrics.

    Parameters
    ----------
    out_root : path
        ``OUT/models``.
    storage : path, optional
        Default ``out_root/../tune``.
    address : str, optional
        Ray address; default: the running Ray, else a private local one.
    metrics_path : path, optional
        Default ``out_root/../metrics.parquet``.

    Raises
    ------
    InputError
        See :func:`tune_model`.
    """
    import ray

    from scanner.evaluate import write_metrics
    from scanner.runtime import ray_session

    base.validate()
    settings.validate()
    jobs = resolve_jobs(data_root, tfs, regimes)
    out_root = Path(out_root)
    run = RunDir.of("models", out_root).run
    storage = Path(storage) if storage else run.path("tune")
    results = []
    settings_doc = {"base": asdict(base), "search": asdict(settings), "storage": str(storage)}
    with models_output(out_root, Path(data_root), settings_doc, jobs) as (staging, _done):
        with nullcontext() if ray.is_initialized() else ray_session(address):
            for tf, regime in jobs:
                results.append(
                    tune_model(
                        data_root, tf, regime, staging.path(tf, regime), base, settings, storage=storage, log=log
                    )
                )
    results = [
        replace(r, final=replace(r.final, checkpoint=str(checkpoint_dir(out_root, r.tf, r.regime)))) for r in results
    ]
    rows = [m for r in results for m in r.final.metrics]
    write_metrics(rows, Path(metrics_path) if metrics_path else run.metrics_path)
    return results
