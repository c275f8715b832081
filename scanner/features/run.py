"""The ``scanner features`` stage: attributions -> TF-MoDISco -> TomTom -> comparison across regimes.

Input: ``OUT/datasets`` (or ``OUT/predictions`` + genome) and ``OUT/models``. Output, ``OUT/features``::

    patterns/tf=/regime=/method=/patterns.parquet   one row per pattern (scanner.schemas.FEATURES)
    seqlets/tf=/regime=/method=/seqlets.parquet     one row per seqlet (FEATURE_SEQLETS)
    motifs/tf=/regime=/method=/<pattern>.{meme,png} each pattern's PPM (MEME) and CWM/PPM logo
    comparison.parquet, comparison.png              patterns x regimes per TF (FEATURE_COMPARISON)
    _features.json                                  settings, databases, models, counts, seconds

Two phases, each on Ray Data actors (``use_ray``) or in this process with the same classes
(:mod:`scanner.features.workers`): attribution work items of ``chunk_rows`` windows on one actor pool
(GPU actors when the cluster has GPUs; models loaded once per actor), then one discovery item per
(model, method) on CPU actors sharing the cluster's CPUs as numba threads. Files are written to a
staging area that replaces ``OUT/features`` only when every item succeeded (:mod:`scanner.store`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scanner.errors import InputError
from scanner.features.config import FeaturesConfig
from scanner.features.workers import PATTERNS_DIR, SEQLETS_DIR, PatternFinder, WindowAttributor, model_key, raise_errors
from scanner.io import partition_dir, read_dataset, write_bytes_atomic, write_parquet_atomic
from scanner.models.checkpoint import weights_path
from scanner.progress import counter
from scanner.runtime import bind_constructor
from scanner.schemas import FEATURE_COMPARISON, FEATURE_SEQLETS, FEATURES
from scanner.store import RunDir, file_fingerprint, hash_json, part_name, tree_signature

if TYPE_CHECKING:
    from scanner.progress import ProgressFn

COMPARISON_FILE = part_name("features", "comparison")


@dataclass
class FeaturesResult:
    """What :func:`features` wrote, with the tables in memory.

    Attributes
    ----------
    out : str
        The features directory.
    patterns, seqlets, comparison : pyarrow.Table
        Schemas FEATURES, FEATURE_SEQLETS and FEATURE_COMPARISON.
    models : list of dict
        Per explained (tf, regime, method): ``windows``, ``patterns``, ``seqlets``.
    lines : list of str
        :func:`scanner.features.compare.format_comparison` of the comparison.
    warnings : list of str
    seconds : float
    """

    out: str
    patterns: pa.Table
    seqlets: pa.Table
    comparison: pa.Table
    models: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _write_ipc(table: pa.Table, path: Path) -> Path:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return write_bytes_atomic(sink.getvalue().to_pybytes(), path)


def _model_ranges(selected: pa.Table) -> dict[str, tuple[str, str, int, int]]:
    """``model_key -> (tf, regime, lo, hi)``: each model's contiguous rows of the sorted selection."""
    tf = selected.column("tf").to_pylist()
    regime = selected.column("regime").to_pylist()
    out: dict[str, tuple[str, str, int, int]] = {}
    i, n = 0, len(tf)
    while i < n:
        j = i
        while j < n and tf[j] == tf[i] and regime[j] == regime[i]:
            j += 1
        out[model_key(tf[i], regime[i])] = (tf[i], regime[i], i, j)
        i = j
    return out


def features(
    source_root: str | Path,
    models_root: str | Path,
    out_root: str | Path,
    config: FeaturesConfig = FeaturesConfig(),
    *,
    databases: Sequence[str | Path] = (),
    genome: str | Path | None = None,
    use_ray: bool = True,
    address: str | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    progress: ProgressFn | None = None,
) -> FeaturesResult:
    """Discover, match and compare what each (TF, regime) model relies on.

    Parameters
    ----------
    source_root : path
        ``OUT/datasets`` (``config.source == "datasets"``) or ``OUT/predictions``.
    models_root : path
        ``OUT/models`` (``tf=/regime=`` checkpoints).
    out_root : path
        ``OUT/features``; must not overlap the inputs.
    config : FeaturesConfig, optional
    databases : sequence of path, optional
        Motif files (MEME, JASPAR, ...) every pattern is matched against (one TomTom target set).
        Default none: patterns are reported without matches.
    genome : path, optional
        FASTA for ``source="predictions"``. Default: the one recorded beside the predictions.
    use_ray : bool, optional
        Run both phases on Ray Data actors (connecting to ``address``, or starting local Ray if not
        initialised). False runs the same classes in this process. Default True.
    address : str, optional
    overwrite : bool, optional
        Replace an existing non-empty ``out_root`` (once the new output is complete). Default False.
    log : callable, optional
        Receives progress lines.
    progress : callable, optional
        ``progress(done, total)`` in work items: attribution chunks, then one pattern discovery per
        model and method.

    Returns
    -------
    FeaturesResult

    Raises
    ------
    InputError
        Bad settings, missing or malformed inputs or databases, no window selected, an output that
        exists (without ``overwrite``). Checked before any work starts.
    """
    import polars as pl

    from scanner.features.compare import compare_features, format_comparison, plot_comparison
    from scanner.features.match import MIN_TARGETS, load_databases
    from scanner.features.select import select_windows

    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    config.validate()
    source_root, models_root, out_root = Path(source_root), Path(models_root), Path(out_root)
    ds = RunDir.of("features", out_root)
    ds.run.check_no_overlap(out_root, {"input directory": source_root, "models directory": models_root})
    if out_root.exists() and any(out_root.iterdir()) and not overwrite:
        raise InputError("output directory exists and is not empty; pass --overwrite to replace it", source=out_root)
    ds.check_writable()
    dbs = [str(Path(d)) for d in databases]
    db = load_databases(dbs) if dbs else None
    warnings = []
    if db is None:
        warnings.append("no motif database given: patterns are not matched (pass --motifs FILE)")
    elif len(db) < MIN_TARGETS:
        warnings.append(
            f"{len(db)} target motif(s): TomTom p-values depend strongly on so few targets; "
            "add a database such as JASPAR for reliable q-values"
        )
    selected = select_windows(source_root, models_root, config, genome=genome)
    if selected.num_rows == 0:
        raise InputError("no window selected (check --split, --label, --where, --tf, --regime)", source=source_root)
    ranges = _model_ranges(selected)
    dirs = {k: str(partition_dir(models_root, [("tf", tf), ("regime", r)])) for k, (tf, r, _, _) in ranges.items()}
    _check_models(dirs, config)
    for w in warnings:
        say(f"warning: {w}")
    say(f"{selected.num_rows} window(s), {len(ranges)} model(s), methods {', '.join(config.methods)}")

    fingerprint = hash_json(
        {
            "source": tree_signature(source_root),
            "models": {k: file_fingerprint(weights_path(d)) for k, d in dirs.items()},
            "databases": [file_fingerprint(d) for d in dbs],
            "config": asdict(config),
        }
    )
    with ds.run.lock(out_root.name):
        ds.run.recover()
        stage = ds.staging(fingerprint)
        staging, work = stage.root, stage.root / "_work"  # "_": never published
        shutil.rmtree(work, ignore_errors=True)
        selected_path = str(_write_ipc(selected, work / "_selected.arrow"))
        # items hold whole batches (chunk_rows rounded up to batch_size): see WindowAttributor's seeding
        chunk = -(-config.chunk_rows // config.batch_size) * config.batch_size
        items = [
            {"model": k, "lo": lo, "hi": min(lo + chunk, hi), "index": i, "offset": lo - start}
            for k, (_, _, start, hi) in ranges.items()
            for i, lo in enumerate(range(start, hi, chunk))
        ]
        finds = [
            {"model": k, "method": m, "lo": lo, "hi": hi}
            for k, (_, _, lo, hi) in ranges.items()
            for m in config.methods
        ]
        cfg = asdict(config)
        add = counter(progress, len(items) + len(finds))
        add(0)
        if use_ray:
            done = _run_on_ray(
                items, finds, dirs, dbs, selected_path, str(work), str(staging), cfg, config, address, say, add
            )
        else:
            attributor = WindowAttributor(dirs, selected_path, str(work), cfg)
            for it in items:
                raise_errors(attributor({k: np.array([v]) for k, v in it.items()})["error"])
                add(1)
            say(f"attributions: {len(items)} item(s) done")
            finder = PatternFinder(dbs, selected_path, str(work), str(staging), cfg, threads=_cpus())
            done = []
            for it in finds:
                res = finder({k: np.array([v]) for k, v in it.items()})
                raise_errors(res["error"])
                done.append(_done_row(res, 0))
                add(1)
                say(f"{it['model']}/{it['method']}: {done[-1]['patterns']} pattern(s)")
        models = []
        for d in done:
            tf, regime, _, _ = ranges[d["model"]]
            models.append({"tf": tf, "regime": regime, **{k: v for k, v in d.items() if k != "model"}})
        models.sort(key=lambda m: (m["tf"], m["regime"], m["method"]))
        patterns = read_dataset(staging / PATTERNS_DIR, FEATURES)
        seqlets = read_dataset(staging / SEQLETS_DIR, FEATURE_SEQLETS)
        mdf = pl.DataFrame(models).rename({"windows": "n_windows"})
        comparison = compare_features(
            pl.from_arrow(patterns), pl.from_arrow(seqlets), mdf, contrast=config.contrast, similarity=config.similarity
        )
        write_parquet_atomic(comparison, staging / COMPARISON_FILE)
        plot_comparison(comparison, staging / part_name("features", "comparison_plot"))
        record = {
            "source": str(source_root.resolve()),
            "models_root": str(models_root.resolve()),
            "databases": [str(Path(d).resolve()) for d in dbs],
            "config": cfg,
            "models": models,
            "windows": selected.num_rows,
            "patterns": patterns.num_rows,
            "warnings": warnings,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        shutil.rmtree(work, ignore_errors=True)
        stage.write_record(record)
        stage.publish()
    return FeaturesResult(
        out=str(out_root),
        patterns=patterns,
        seqlets=seqlets,
        comparison=comparison,
        models=models,
        lines=format_comparison(comparison),
        warnings=warnings,
        seconds=time.perf_counter() - t0,
    )


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _done_row(res: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    return {
        "model": str(res["model"][i]),
        "method": str(res["method"][i]),
        "windows": int(res["windows"][i]),
        "patterns": int(res["patterns"][i]),
        "seqlets": int(res["seqlets"][i]),
    }


def _check_models(dirs: dict[str, str], config: FeaturesConfig) -> None:
    """Fail before any work: checkpoints load, and the fast ISM path fits them."""
    from scanner.models import load_checkpoint

    for d in dirs.values():
        model, meta = load_checkpoint(d)
        if "ism" in config.methods:
            from scanner.interpret.ism import fast_plan

            try:
                fast_plan(model, int(meta["spec"].seq_len))
            except (TypeError, ValueError) as exc:
                raise InputError(f"{exc}", source=d, field="--method") from exc


def _run_on_ray(
    items: list[dict[str, Any]],
    finds: list[dict[str, Any]],
    dirs: dict[str, str],
    dbs: list[str],
    selected_path: str,
    work: str,
    staging: str,
    cfg: dict[str, Any],
    config: FeaturesConfig,
    address: str | None,
    say: Callable[[str], None],
    on_item: Callable[[int], None] = lambda _n: None,
) -> list[dict[str, Any]]:
    import ray
    import ray.data

    from scanner.runtime import ActorPlan, cluster_resources, describe_resources, ray_data_without_bars, ray_session

    ctx = nullcontext() if ray.is_initialized() else ray_session(address)
    done = []
    with ctx:
        res = cluster_resources()
        ray_data_without_bars()
        plan = ActorPlan.for_items(res, len(items), config.actors, config.cpus_per_actor)
        say(f"attributions: {len(items)} item(s) on {plan.actors} actor(s), {describe_resources(plan.resources)}")
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            bind_constructor(
                WindowAttributor,
                model_dirs=dirs,
                selected_path=selected_path,
                work_dir=work,
                config=cfg,
                threads=plan.threads,
            ),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=plan.actors, max_tasks_in_flight_per_actor=1),
            **plan.resources,
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            raise_errors(batch["error"])
            on_item(len(batch["error"]))
        n = max(1, min(len(finds), int(res.cpus) or 1))
        threads = max(1, int(res.cpus) // n)
        say(f"discovery: {len(finds)} model(s) x method(s) on {n} actor(s), {threads} thread(s) each")
        ds = ray.data.from_items(finds, override_num_blocks=len(finds)).map_batches(
            bind_constructor(
                PatternFinder,
                databases=dbs,
                selected_path=selected_path,
                work_dir=work,
                out_dir=staging,
                config=cfg,
                threads=threads,
            ),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=n, max_tasks_in_flight_per_actor=1),
            num_cpus=min(float(threads), max(res.cpus, 1.0)),
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            raise_errors(batch["error"])
            for i in range(len(batch["model"])):
                done.append(_done_row(batch, i))
                on_item(1)
                say(f"{done[-1]['model']}/{done[-1]['method']}: {done[-1]['patterns']} pattern(s)")
    return done


def default_databases(run_dir: str | Path) -> list[Path]:
    """The run's own motif files: those of its simulation (``scanner simulate``), when it has one."""
    from scanner.simulate.genome import motif_files

    return motif_files(RunDir(run_dir).path("sim"))


def run_features(
    run_dir: str | Path,
    databases: Sequence[str | Path] = (),
    config: FeaturesConfig = FeaturesConfig(),
    *,
    own_motifs: bool = True,
    use_ray: bool = True,
    address: str | None = None,
    overwrite: bool = True,
    log: Callable[[str], None] | None = None,
    progress: ProgressFn | None = None,
) -> FeaturesResult:
    """:func:`features` on one run directory: ``RUN/datasets`` (or ``RUN/predictions``) and ``RUN/models``
    to ``RUN/features``, matching against ``databases`` plus the run's own motif files.

    Parameters
    ----------
    run_dir : path
        The run (e.g. ``scanner demo --out``).
    databases : sequence of path, optional
        Extra motif files (e.g. JASPAR). Default none.
    config : FeaturesConfig, optional
    own_motifs : bool, optional
        Add :func:`default_databases` (the simulation's motifs). Default True.
    use_ray, address, overwrite, log, progress
        As for :func:`features` (``overwrite`` defaults to True here).

    Returns
    -------
    FeaturesResult
        ``result.comparison`` is the patterns x regimes table; print ``result.lines``.
    """
    run = RunDir(run_dir)
    dbs = [*(default_databases(run_dir) if own_motifs else []), *map(Path, databases)]
    source = run.path("datasets" if config.source == "datasets" else "predictions")
    return features(
        source,
        run.path("models"),
        run.path("features"),
        config,
        databases=dbs,
        use_ray=use_ray,
        address=address,
        overwrite=overwrite,
        log=log,
        progress=progress,
    )


def read_features(features_root: str | Path) -> tuple[pa.Table, pa.Table, pa.Table]:
    """``(patterns, seqlets, comparison)`` of a features directory.

    Raises
    ------
    InputError
        If it holds no patterns dataset.
    """
    root = Path(features_root)
    if not (root / PATTERNS_DIR).is_dir():
        raise InputError("no features (expected patterns/tf=/regime=/method=/patterns.parquet)", source=root)
    patterns = read_dataset(root / PATTERNS_DIR, FEATURES)
    seqlets = (
        read_dataset(root / SEQLETS_DIR, FEATURE_SEQLETS)
        if (root / SEQLETS_DIR).is_dir()
        else FEATURE_SEQLETS.empty_table()
    )
    comp = root / COMPARISON_FILE
    comparison = pq.read_table(comp).cast(FEATURE_COMPARISON) if comp.is_file() else FEATURE_COMPARISON.empty_table()
    return patterns, seqlets, comparison
