"""Genome-wide prediction: every motif instance gets ``prob_bound`` from each applicable model.

Input: ``OUT/instances/tf=<tf>/chrom=<chrom>/*.parquet`` (INSTANCES) and ``OUT/models/tf=/regime=/``
checkpoints. Output: ``OUT/predictions/tf=<tf>/chrom=<chrom>/<stem>-r<lo>-<hi>.parquet`` (PREDICTIONS),
one row per (instance, model), the partitioning of the instances kept, plus ``OUT/predictions/_predict.json``
recording the instances directory, the genome and the models used. The dataset is written and published
through :mod:`scanner.store`: staged, resumable by work unit whatever the number of actors, made visible
in one step, one writer at a time.

Work is cut into *items*: a row range ``[lo, hi)`` of one instance file (at most ``chunk_rows`` rows).
:func:`predict_item` is the pure kernel: it reads the rows, fetches each instance's W-bp window
centred on the site (``window_start = (start + end) // 2 - W // 2``, N-padded off the chromosome ends,
W = the model's ``seq_len``) from the FASTA, runs every applicable model in ``batch_size`` batches and
returns the PREDICTIONS rows: for each model in order, the item's instances in file order. Its output
file name depends only on the input file and the item's row range (cut by ``chunk_rows`` alone, never
by the number of actors), and is written atomically, so a retried item replaces its file and a resumed
run finds it. :func:`predict` runs the items through Ray Data ``map_batches`` with a
callable class (:class:`Predictor`) that loads each model once per actor (GPU actors when the cluster
has GPUs), or in this process (``use_ray=False``) with the same kernel.

Without ``cross_tf`` an instance of TF X is scored by the models of X (one row per regime); with it,
by every model (the cross-TF matrix of the reference).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from scanner.errors import InputError
from scanner.genome import Genome, open_genome
from scanner.io import hive_children, open_parquet, parquet_files, partition_dir, write_parquet_atomic
from scanner.models.checkpoint import weights_path
from scanner.predict.apply import (
    ModelCache,
    ModelRef,
    discover_models,
    fetch_windows,
    predict_codes,
    resolve_genome,
    sigmoid,
)
from scanner.runtime import bind_constructor
from scanner.schemas import INSTANCES, PREDICTIONS
from scanner.store import file_fingerprint, hash_json


@dataclass(frozen=True)
class PredictConfig:
    """Settings of ``scanner predict``; each field is a flag.

    Parameters
    ----------
    batch_size : int
        Windows per forward pass. Default 256.
    rc_average : bool
        Average each window's logit with its reverse complement's. Default False.
    cross_tf : bool
        Score every TF's instances with every TF's model. Default False.
    chunk_rows : int
        Most rows per work item (the unit Ray schedules and retries); a file is cut into equal pieces.
        Default 16384.
    actors : int, optional
        Actor-pool size. Default: GPUs in the cluster when it has any, else its CPUs.
    cpus_per_actor : float
        CPUs reserved per CPU actor (fractional keeps Ray Data's own tasks schedulable); the actor
        runs ``max(1, round(cpus / actors))`` torch threads. Default 0.5.
    """

    batch_size: int = 256
    rc_average: bool = False
    cross_tf: bool = False
    chunk_rows: int = 16384
    actors: int | None = None
    cpus_per_actor: float = 0.5

    def validate(self) -> PredictConfig:
        """Return self, or raise :class:`InputError` naming the bad flag."""
        for name in ("batch_size", "chunk_rows"):
            if getattr(self, name) < 1:
                raise InputError(f"must be >= 1, got {getattr(self, name)}", field="--" + name.replace("_", "-"))
        if self.actors is not None and self.actors < 1:
            raise InputError(f"must be >= 1, got {self.actors}", field="--actors")
        if not self.cpus_per_actor > 0:
            raise InputError(f"must be > 0, got {self.cpus_per_actor}", field="--cpus-per-actor")
        return self


@dataclass(frozen=True)
class WorkItem:
    """Rows ``[lo, hi)`` of one instance file and the models to apply to them."""

    file: str
    out_file: str
    tf: str
    chrom: str
    lo: int
    hi: int
    models: tuple[ModelRef, ...]


@dataclass(frozen=True)
class PredictSummary:
    """What :func:`predict` wrote.

    ``timings``: ``first_item_s``, seconds from the call to the first work item's start (Ray's start-up
    as the run saw it: actors starting, importing torch, loading models; plus the driver's planning),
    and ``items_s``, from the first item's start to the last one's end (the steady part; ``rows /
    items_s`` is the throughput once running). ``notes``: why nothing was scored, when so.
    """

    out: str
    genome: str
    files: int
    rows: int
    instances: int
    models: tuple[ModelRef, ...]
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


# ---- discovery -------------------------------------------------------------------------------------


def plan_items(
    instances_root: str | Path,
    models: Sequence[ModelRef],
    out_root: str | Path,
    config: PredictConfig,
    *,
    tfs: Sequence[str] | None = None,
) -> list[WorkItem]:
    """Cut the instance files into work items and attach the models each one needs.

    An item is rows ``[lo, hi)`` of one file, the file cut into equal pieces of at most ``chunk_rows``
    rows; its output is ``out_root/tf=<tf>/chrom=<chrom>/<stem>-r<lo>-<hi>.parquet``.

    Instance TFs with no applicable model are skipped (only without ``cross_tf``). A finished scan
    with no hit is a valid empty input: no item.

    Raises
    ------
    InputError
        If there are no instance files (and the directory is not a finished, empty scan), or a
        requested TF has none.
    """
    root = Path(instances_root)
    if not root.is_dir():
        raise InputError("instances directory not found (expected tf=<tf>/chrom=<chrom>/*.parquet)", source=root)
    items: list[WorkItem] = []
    present = hive_children(root, "tf")
    if not present:
        from scanner.scan.export import empty_reason

        if empty_reason(root):  # raises for a directory that is no scan, or a scan not finished
            return []
        raise InputError("no instance partitions found (expected tf=<tf>/chrom=<chrom>/*.parquet)", source=root)
    for want in tfs or ():
        if want not in {t for t, _ in present}:
            raise InputError(
                f"no instances of TF '{want}'; TFs present: {', '.join(t for t, _ in present)}", source=root
            )
    for tf, tdir in present:
        if tfs and tf not in tfs:
            continue
        applicable = tuple(models) if config.cross_tf else tuple(m for m in models if m.tf == tf)
        if not applicable:
            continue
        for chrom, cdir in hive_children(tdir, "chrom"):
            out_dir = partition_dir(out_root, [("tf", tf), ("chrom", chrom)])
            for f in parquet_files(cdir):
                pf = open_parquet(f)
                _check_instance_columns(pf.schema_arrow.names, f)
                n = pf.metadata.num_rows
                # equal pieces of at most chunk_rows rows (no small remainder item to wait for at the end)
                pieces = max(1, -(-n // config.chunk_rows))
                for k in range(pieces):
                    lo, hi = k * n // pieces, (k + 1) * n // pieces
                    out_file = out_dir / f"{f.stem}-r{lo}-{hi}.parquet"
                    items.append(WorkItem(str(f), str(out_file), tf, chrom, lo, hi, applicable))
    if not items:
        raise InputError(
            "no instances to score: no instance TF has a model (use --cross-tf to apply other TFs' models)",
            source=root,
        )
    return items


# ---- kernel ----------------------------------------------------------------------------------------


def _check_instance_columns(names: Sequence[str], path: str | Path) -> None:
    for c in INSTANCES.names:
        if c not in names:
            raise InputError(f"column '{c}' is missing (expected the INSTANCES schema)", source=path, field=c)


def read_rows(path: str | Path, lo: int, hi: int) -> pa.Table:
    """Rows ``[lo, hi)`` of an instance file, as the INSTANCES schema.

    Raises
    ------
    InputError
        If a column is missing or cannot be cast.
    """
    pf = open_parquet(path)
    _check_instance_columns(pf.schema_arrow.names, path)
    groups, offset, first = [], 0, None
    for rg in range(pf.num_row_groups):
        n = pf.metadata.row_group(rg).num_rows
        if offset + n > lo and offset < hi:
            groups.append(rg)
            first = offset if first is None else first
        offset += n
    if not groups:
        return INSTANCES.empty_table()
    table = pf.read_row_groups(groups, columns=list(INSTANCES.names)).slice(lo - first, hi - lo)
    try:
        return table.cast(INSTANCES)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise InputError(f"columns do not fit the INSTANCES schema: {exc}", source=path) from exc


def predict_item(
    item: WorkItem,
    genome: Genome,
    load: Callable[[ModelRef], Any],
    config: PredictConfig,
    device: str = "cpu",
) -> pa.Table:
    """PREDICTIONS rows of one work item: for each model in ``item.models``, the rows in file order.

    Parameters
    ----------
    item : WorkItem
    genome : Genome
    load : callable
        ``ModelRef -> torch model`` (eval mode, on ``device``); callers cache.
    config : PredictConfig
    device : str, optional

    Raises
    ------
    InputError
        For a malformed instance file or a chromosome not in the genome.
    """
    rows = read_rows(item.file, item.lo, item.hi)
    chroms = rows.column("chrom").to_numpy(zero_copy_only=False)
    starts = rows.column("start").to_numpy()
    ends = rows.column("end").to_numpy()
    if rows.num_rows and (ends < starts).any():
        bad = int(np.flatnonzero(ends < starts)[0])
        raise InputError(f"row {item.lo + bad}: end {ends[bad]} < start {starts[bad]}", source=item.file, field="end")
    windows: dict[int, np.ndarray] = {}
    parts = []
    for ref in item.models:
        if ref.seq_len not in windows:
            windows[ref.seq_len] = fetch_windows(genome, chroms, starts, ends, ref.seq_len)
        z = predict_codes(
            load(ref),
            windows[ref.seq_len],
            batch_size=config.batch_size,
            rc_average=config.rc_average,
            device=device,
        )
        n = rows.num_rows
        extra = {
            "regime": pa.array([ref.regime] * n, pa.string()),
            "model_tf": pa.array([ref.tf] * n, pa.string()),
            "logit": pa.array(z, pa.float32()),
            "prob_bound": pa.array(sigmoid(z), pa.float32()),
        }
        parts.append(pa.table([*rows.columns, *extra.values()], schema=PREDICTIONS))
    return pa.concat_tables(parts) if parts else PREDICTIONS.empty_table()


def _item_to_row(item: WorkItem) -> dict[str, Any]:
    d = asdict(item)
    d["models"] = json.dumps([asdict(m) for m in item.models])
    return d


def _row_to_item(row: dict[str, Any]) -> WorkItem:
    models = tuple(ModelRef(**m) for m in json.loads(str(row["models"])))
    return WorkItem(
        str(row["file"]),
        str(row["out_file"]),
        str(row["tf"]),
        str(row["chrom"]),
        int(row["lo"]),
        int(row["hi"]),
        models,
    )


class Predictor:
    """Callable class for Ray Data ``map_batches``: each input row is a :class:`WorkItem`.

    Loads models lazily, once per actor, and opens the genome once; writes each item's output file
    atomically and returns ``{"out_file", "rows", "error"}`` per item. ``error`` is ``""`` or the JSON
    of an :class:`InputError` (Ray Data keeps only the text of exceptions, so input errors travel as
    data and the driver re-raises them).

    Parameters
    ----------
    genome_path : str
    config : dict
        :class:`PredictConfig` as a dict.
    threads : float
        Torch threads for this actor.
    """

    def __init__(self, genome_path: str, config: dict[str, Any], threads: float = 1) -> None:
        from scanner.runtime import set_torch_threads, torch_device

        set_torch_threads(threads)
        self.device = torch_device()
        self.genome = open_genome(genome_path)
        self.config = PredictConfig(**config)
        self.load = ModelCache(self.device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs, counts, errors, started, ended = [], [], [], [], []
        keys = list(batch)
        for i in range(len(batch[keys[0]])):
            item = _row_to_item({k: batch[k][i] for k in keys})
            started.append(time.time())
            outs.append(item.out_file)
            try:
                table = predict_item(item, self.genome, self.load, self.config, self.device)
            except InputError as exc:
                counts.append(0)
                errors.append(json.dumps([exc.message, exc.source, exc.line, exc.field]))
            else:
                write_parquet_atomic(table, item.out_file)
                counts.append(table.num_rows)
                errors.append("")
            ended.append(time.time())
        return {
            "out_file": np.array(outs, dtype=object),
            "rows": np.array(counts, dtype=np.int64),
            "error": np.array(errors, dtype=object),
            "started": np.array(started, dtype=np.float64),
            "ended": np.array(ended, dtype=np.float64),
        }


# ---- driver ----------------------------------------------------------------------------------------


def predict(
    instances_root: str | Path,
    models_root: str | Path,
    out_root: str | Path,
    config: PredictConfig = PredictConfig(),
    *,
    genome: str | Path | None = None,
    tfs: Sequence[str] | None = None,
    regimes: Sequence[str] | None = None,
    use_ray: bool = True,
    address: str | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    adopt_moved: bool = False,
) -> PredictSummary:
    """Score every motif instance with the applicable models and write the predictions dataset.

    Parameters
    ----------
    instances_root : path
        ``OUT/instances`` (INSTANCES, ``tf=/chrom=`` partitions).
    models_root : path
        ``OUT/models``.
    out_root : path
        ``OUT/predictions``; must not overlap the inputs.
    config : PredictConfig, optional
    genome : path, optional
        FASTA. Default: ``genome`` of ``instances_root/_scan.json``.
    tfs, regimes : sequence of str, optional
        Restrict to these instance TFs / model regimes (with ``cross_tf``, ``tfs`` restricts the
        instances; every TF's model is applied).
    use_ray : bool, optional
        Run through Ray Data (connecting to ``address`` or starting local Ray if not initialised).
        False runs the same kernel in this process. Default True.
    log : callable, optional
        Receives progress lines.
    progress : callable, optional
        ``progress(done, total)`` as work items finish (items an earlier attempt finished count as done).
    adopt_moved : bool, optional
        Accept published predictions whose record names other absolute paths for these same inputs (a
        run directory moved or copied; the pipeline, which owns its run, sets this) and replace them.
        Default False: such an output is refused.

    Returns
    -------
    PredictSummary

    Raises
    ------
    InputError
        Missing or malformed instances, models, genome, a chromosome the genome lacks, an output that
        cannot be written or overlaps the inputs, or another writer of the same output. Checked before
        any work starts where the directory layout allows. The published predictions change only when
        every item has succeeded.
    """
    from scanner.models import load_checkpoint
    from scanner.store import RunDir, tree_signature

    t0, t0_wall = time.perf_counter(), time.time()
    say = log or (lambda _m: None)
    config.validate()
    instances_root, models_root, out_root = Path(instances_root), Path(models_root), Path(out_root)
    ds = RunDir.of("predictions", out_root)
    ds.run.check_no_overlap(out_root, {"instances directory": instances_root, "models directory": models_root})
    ds.check_writable()
    empty_scan = instances_root.is_dir() and not hive_children(instances_root, "tf")
    models = [] if empty_scan else discover_models(models_root, None if config.cross_tf else tfs, regimes)
    genome_path = resolve_genome(instances_root, genome)
    items = plan_items(instances_root, models, out_root, config, tfs=tfs)
    with open_genome(genome_path) as g:
        for chrom in sorted({it.chrom for it in items}):
            g.check_chrom(chrom, source=str(instances_root))
    used = tuple(dict.fromkeys(m for it in items for m in it.models))
    for ref in used:  # fail early on a checkpoint that does not load (wrong shape, missing file)
        load_checkpoint(ref.path)
    run_tfs = sorted({it.tf for it in items})
    notes: tuple[str, ...] = ()
    if not items:
        from scanner.scan.export import empty_reason

        notes = (f"nothing to score: {empty_reason(instances_root)}; the predictions are empty",)
        say(notes[0])
    with ds.run.lock(out_root.name):
        ds.run.recover()
        previous = _previous_record(ds, instances_root, Path(genome_path), adopt_moved=adopt_moved)
        fingerprint = hash_json(
            {
                "instances": tree_signature(instances_root),
                "genome": str(Path(genome_path).resolve()),
                "models": [[m.tf, m.regime, file_fingerprint(weights_path(m.path))] for m in used],
                "settings": {"rc_average": config.rc_average, "cross_tf": config.cross_tf},
                "tfs": run_tfs,
            }
        )
        kept = [tf for tf in (previous or {}).get("models_by_tf", {}) if tf not in run_tfs]
        staging = ds.staging(fingerprint, carry=[(tf,) for tf in kept])
        items = [replace(it, out_file=str(staging.root / Path(it.out_file).relative_to(out_root))) for it in items]
        todo = [it for it in items if not staging.done(it.out_file)]
        say(
            f"{len(items)} work item(s), {len(used)} model(s), genome {genome_path}"
            + (f"; {len(items) - len(todo)} item(s) done by an earlier attempt" if len(todo) < len(items) else "")
        )
        spans: list[tuple[float, float]] = []  # (start, end) of every item, time.time() on its worker
        pending = {it.out_file for it in todo}
        written = {
            it.out_file: open_parquet(it.out_file).metadata.num_rows for it in items if it.out_file not in pending
        }
        finished = [len(items) - len(todo)]

        def one_done(n: int) -> None:
            finished[0] += n
            if progress is not None:
                progress(finished[0], len(items))

        one_done(0)
        if todo and use_ray:
            written |= _run_on_ray(todo, str(genome_path), config, address, say, spans, one_done)
        elif todo:
            written |= _run_in_process(todo, str(genome_path), config, spans, one_done)
        missing = [it.out_file for it in items if it.out_file not in written]
        if missing:
            raise RuntimeError(f"{len(missing)} work item(s) produced no output, e.g. {missing[0]}")
        carried = {f for tf in kept for f in staging.path(tf).rglob("*.parquet")}
        staging.discard({Path(it.out_file) for it in items} | carried)
        n_inst = sum(it.hi - it.lo for it in items)
        summary = PredictSummary(
            out=str(out_root),
            genome=str(genome_path),
            files=len(items),
            rows=sum(written.values()),
            instances=n_inst,
            models=used,
            seconds=time.perf_counter() - t0,
            timings=_span_timings(spans, t0_wall),
            notes=notes,
        )
        by_tf = {tf: v for tf, v in (previous or {}).get("models_by_tf", {}).items() if tf in kept}
        for tf in run_tfs:
            refs = dict.fromkeys(m for it in items if it.tf == tf for m in it.models)
            by_tf[tf] = [asdict(m) for m in refs]
        models_all = list({m["path"]: m for ms in by_tf.values() for m in ms}.values())
        staging.write_record(
            {
                "instances": str(instances_root.resolve()),
                "genome": str(Path(genome_path).resolve()),
                "models": models_all,
                "models_by_tf": by_tf,
                "tfs": sorted(by_tf),
                "last_run": {
                    "tfs": run_tfs,
                    "models_root": str(models_root.resolve()),
                    "config": asdict(config),
                    "files": len(items),
                    "rows": summary.rows,
                    "instances_scored": n_inst,
                },
            }
        )
        staging.publish()
    return summary


def _span_timings(spans: list[tuple[float, float]], t0_wall: float) -> dict[str, float]:
    if not spans:
        return {}
    first = min(s for s, _ in spans)
    return {"first_item_s": max(0.0, first - t0_wall), "items_s": max(e for _, e in spans) - first}


def _previous_record(ds: Any, instances_root: Path, genome_path: Path, *, adopt_moved: bool = False) -> dict | None:
    """The record of the published predictions; they must share instances and genome with this run
    (or, with ``adopt_moved``, they are treated as absent and replaced)."""
    old = ds.record()
    if old is None:
        return None
    try:
        same = old["instances"] == str(instances_root.resolve()) and old["genome"] == str(genome_path.resolve())
    except (KeyError, TypeError) as exc:
        raise InputError(
            f"unreadable record of an earlier run: {exc}; remove it or use another --out", source=ds.record_path
        ) from exc
    if not same and adopt_moved:
        return None
    if not same:
        raise InputError(
            f"{ds.root} holds predictions for other instances or another genome ({old['instances']}, "
            f"{old['genome']}); use another --out or remove it",
            source=ds.record_path,
        )
    return old


def _run_in_process(
    items: list[WorkItem],
    genome_path: str,
    config: PredictConfig,
    spans: list[tuple[float, float]],
    one_done: Callable[[int], None],
) -> dict[str, int]:
    """Run the items in this process; ``{out_file: rows}``."""
    from scanner.runtime import keep_freed_memory, torch_device

    keep_freed_memory()
    load = ModelCache(torch_device())
    written = {}
    with open_genome(genome_path) as g:
        for item in items:
            started = time.time()
            table = predict_item(item, g, load, config, load.device)
            write_parquet_atomic(table, item.out_file)
            written[item.out_file] = table.num_rows
            spans.append((started, time.time()))
            one_done(1)
    return written


def _run_on_ray(
    items: list[WorkItem],
    genome_path: str,
    config: PredictConfig,
    address: str | None,
    say: Callable[[str], None],
    spans: list[tuple[float, float]] | None = None,
    one_done: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Run the items on a Ray Data actor pool; return ``{out_file: rows}``; each item's (start, end)
    wall-clock times go to ``spans``."""
    import ray
    import ray.data

    from scanner.runtime import (
        ActorPlan,
        cluster_resources,
        describe_resources,
        ray_data_without_bars,
        ray_session,
        relay_item_errors,
    )

    ctx = nullcontext() if ray.is_initialized() else ray_session(address)
    with ctx:
        plan = ActorPlan.for_items(cluster_resources(), len(items), config.actors, config.cpus_per_actor)
        n, opts, threads = plan.actors, plan.resources, plan.threads
        items = sorted(items, key=lambda it: (it.hi - it.lo) * len(it.models), reverse=True)
        say(f"Ray: {n} actor(s), {describe_resources(opts)}, {threads:g} torch thread(s) each")
        ray_data_without_bars()
        # largest items first: the last ones to finish are the smallest
        ds = ray.data.from_items([_item_to_row(it) for it in items], override_num_blocks=len(items))
        out = ds.map_batches(
            bind_constructor(Predictor, **{"genome_path": genome_path, "config": asdict(config), "threads": threads}),
            batch_size=1,
            # two items in flight per actor: the next one is already there when one ends (dispatching
            # it only then left each actor idle ~0.15 s per item on a busy machine); with equal-size
            # items sent largest first, the queue costs little balance at the end
            compute=ray.data.ActorPoolStrategy(size=n, max_tasks_in_flight_per_actor=2),
            **opts,
        )
        return relay_item_errors(out.iter_batches(batch_size=None, batch_format="numpy"), spans, one_done)
