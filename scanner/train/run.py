"""``scanner train`` for many models: one Ray task (or in-process call) per (TF, regime), or per regime
with ``--multitask``, writing the models dataset through :mod:`scanner.store` and the metrics file.

:func:`train_models` plans the units, reuses the checkpoints an interrupted attempt with the same
settings finished (:func:`models_output`), runs the rest as Ray tasks (``num_gpus`` =
``gpus_per_model`` when the cluster has GPUs, else ``cpus_per_model`` CPUs) or in this process, and
merges the evaluation rows into ``OUT/metrics.parquet``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from scanner.errors import InputError
from scanner.io import hive_children
from scanner.models.checkpoint import record_path
from scanner.store import RunDir, hash_json
from scanner.train.config import TrainConfig
from scanner.train.stage import TrainResult, checkpoint_dir, empty_datasets, resolve_jobs, train_model


@contextmanager
def models_output(
    out_root: Path,
    data_root: Path,
    settings: dict[str, Any],
    jobs: Sequence[tuple[str, str]],
    *,
    current: Callable[[str, str, dict[str, Any]], bool] | None = None,
) -> Iterator[tuple[Any, dict[tuple[str, str], TrainResult]]]:
    """The models dataset being written (:mod:`scanner.store`): locked, staged by the settings and the
    training data, published in one step when the block succeeds.

    Yields the staging area (checkpoints go to ``staging.path(tf, regime)``) and the results of the
    models already made: those an interrupted attempt with the same settings finished, and, when
    ``current(tf, regime, meta)`` says a published checkpoint's ``model.json`` still describes what
    would be trained now, that checkpoint (carried over). Models of the published dataset that ``jobs``
    does not retrain are carried over too.
    """
    from scanner.store import RunDir, tree_signature

    ds = RunDir.of("models", out_root)
    ds.run.check_no_overlap(out_root, {"datasets directory": data_root})
    ds.check_writable()
    with ds.run.lock(out_root.name):
        ds.run.recover()
        fingerprint = hash_json({"data": tree_signature(data_root), "settings": settings, "jobs": sorted(jobs)})
        existing = [(tf, r) for tf, tdir in hive_children(out_root, "tf") for r, _ in hive_children(tdir, "regime")]
        keep = [k for k in existing if k not in set(jobs)]
        if current is not None:
            for tf, regime in jobs:
                meta_path = record_path(ds.partition(tf, regime))
                if (tf, regime) in existing and meta_path.is_file():
                    with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError, KeyError, OSError):
                        if current(tf, regime, json.loads(meta_path.read_text())):
                            keep.append((tf, regime))
        staging = ds.staging(fingerprint, carry=keep)
        done = {}
        for tf, regime in jobs:
            meta_path = record_path(staging.path(tf, regime))  # written last: its presence means complete
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
    lines: Any = None,
) -> list[TrainResult]:
    """Body of one Ray training task: set threads, pick the device, train one unit; the networks' epoch
    lines go to the ``lines`` queue (a ``ray.util.queue.Queue``) when given."""
    from scanner.runtime import set_torch_threads, torch_device

    set_torch_threads(threads)
    log = None if lines is None else lines.put_nowait
    return _train_group(data_root, tfs, regime, out_dirs, config, evaluate, device=torch_device(), log=log)


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
    reuse: bool = False,
    on_model: Callable[[int, int], None] | None = None,
    on_epoch_line: Callable[[str], None] | None = None,
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
    reuse : bool, optional
        Keep a published model whose ``model.json`` records these settings and whose training,
        validation and test files are unchanged (``scanner run`` resumes this way). Default False:
        every requested model is trained.
    on_model : callable, optional
        ``on_model(done, total)`` as models finish (reused ones count as done from the start).
    on_epoch_line : callable, optional
        Receives every network's epoch lines as they come, relayed from the Ray tasks through a queue
        (a progress display's detail). Default: in this process they go to ``log``; on Ray they are
        not collected.

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
    if empty_datasets(data_root):
        (log or print)(f"nothing to train: the training sets in {data_root} are empty (the scan found no instance)")
        return []
    jobs = resolve_jobs(data_root, tfs, regimes, need_test=evaluate)
    data_root, out_root = Path(data_root), Path(out_root)
    say = log or (lambda _m: None)

    def current(tf: str, regime: str, meta: dict[str, Any]) -> bool:
        from scanner.data_loading import dataset_hash
        from scanner.train.config import batch_size_for
        from scanner.train.data import plan_training_data

        if evaluate and not meta.get("metrics"):
            return False
        plan = plan_training_data(data_root, tf, regime, config, evaluate=evaluate)  # the files it hashed
        resolved = replace(config, batch_size=batch_size_for(config, plan.n_train))  # as train_model records it
        if meta.get("train_config") != json.loads(json.dumps(asdict(resolved), default=str)):
            return False
        files = [*plan.train_files, *plan.val_files, *plan.test_files]
        return meta.get("data_hash") == dataset_hash(files, root=data_root)

    settings = {"config": asdict(config), "evaluate": evaluate}
    with models_output(out_root, data_root, settings, jobs, current=current if reuse else None) as (staging, done):
        groups = [g for g in _groups(jobs, config.multitask) if any((tf, g[1]) not in done for tf in g[0])]
        args = [
            (str(data_root), tfs_, regime, [str(staging.path(tf, regime)) for tf in tfs_], config, evaluate)
            for tfs_, regime in groups
        ]
        if done:
            say(f"{len(done)} model(s) already trained with these settings and data: kept")
        finished = [len(done)]

        def one_done(n: int) -> None:
            finished[0] += n
            if on_model is not None:
                on_model(min(finished[0], len(jobs)), len(jobs))

        one_done(0)
        if use_ray and args:
            results = _run_on_ray(args, config, address, say, one_done, on_epoch_line)
        else:
            results = []
            for a in args:
                say(f"training {'+'.join(a[1])}/{a[2]} in-process")
                results += _train_group(*a, log=on_epoch_line or log)
                one_done(len(a[1]))
        results += [r for key, r in done.items() if key not in {(x.tf, x.regime) for x in results}]
    results = [replace(r, checkpoint=str(checkpoint_dir(out_root, r.tf, r.regime))) for r in results]
    order = {job: i for i, job in enumerate(jobs)}
    results.sort(key=lambda r: order[(r.tf, r.regime)])
    if evaluate:
        rows = [r for res in results for r in res.metrics]
        write_metrics(rows, Path(metrics_path) if metrics_path else RunDir.of("models", out_root).run.metrics_path)
    return results


def _run_on_ray(
    args: list[tuple],
    config: TrainConfig,
    address: str | None,
    say: Callable[[str], None],
    one_done: Callable[[int], None] = lambda _n: None,
    on_epoch_line: Callable[[str], None] | None = None,
) -> list:
    import ray

    from scanner.runtime import cluster_resources, describe_resources, ray_session

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
        say(f"training {sum(len(a[1]) for a in args)} model(s) in {len(args)} Ray task(s), {describe_resources(opts)}")
        lines = None if on_epoch_line is None else _LineRelay()
        task = ray.remote(max_retries=1, retry_exceptions=False, **opts)(_train_job)
        refs = {task.remote(*a, config.cpus_per_model, lines and lines.queue): a for a in args}
        done: dict[Any, list[TrainResult]] = {}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=None if lines is None else 0.5)
            if lines is not None:
                lines.drain(on_epoch_line)
            if not ready:
                continue
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
            one_done(len(result))
        if lines is not None:
            lines.drain(on_epoch_line)
        return [r for ref in refs for r in done[ref]]


class _LineRelay:
    """A Ray queue the training tasks put their log lines in, drained on the driver."""

    def __init__(self) -> None:
        from ray.util.queue import Queue

        self.queue = Queue(actor_options={"num_cpus": 0})

    def drain(self, log: Callable[[str], None]) -> None:
        from ray.util.queue import Empty

        while True:
            try:
                line = self.queue.get_nowait()
            except Empty:
                return
            log(line)
