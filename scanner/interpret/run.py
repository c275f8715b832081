"""The ``scanner interpret`` stage: attributions for selected predictions, written as a Parquet dataset.

Input: ``OUT/predictions`` (PREDICTIONS, ``tf=/chrom=`` partitions) and ``OUT/models/tf=/regime=/``
checkpoints. Output: ``OUT/attributions/method=<m>/tf=<tf>/chrom=<chrom>/part-<model>-<regime>-<k>.parquet``
(schema :data:`scanner.schemas.ATTRIBUTIONS`, long format: one row per instance, model, method and
genome position), plus ``_interpret.json`` (settings, genome, counts) and ``_selected.arrow`` (the
explained prediction rows, Arrow IPC so that a ``**/*.parquet`` glob does not pick it up).

Selection (:func:`select_instances`): rows of the TF's own model (``model_tf == tf``) unless
``all_models``; then ``--tf``/``--regime``; then the ``--where`` SQL expression (polars
``sql_expr``, e.g. ``"prob_bound > 0.9 AND chrom = 'chrII'"``); then the ``--top`` rows by
``prob_bound`` per model (model TF and regime).

Each selected instance is explained on the window its model was given: ``W = spec.seq_len`` bases
centred on the site, ``window_start = (start + end) // 2 - W // 2``, on the + strand, N-padded off
the chromosome (padding positions are not written). ``flank`` limits the written (and, for ISM,
mutated) positions to the site +- ``flank`` bases.

Work is cut into items of ``chunk_rows`` instances of one model; :class:`Interpreter` (a callable
class, its model loaded once in ``__init__``) turns an item into files. Ray Data runs one actor pool
per model (GPU actors when the cluster has GPUs, fractional-CPU actors otherwise); ``use_ray=False``
runs the same class in this process. Files go to a staging directory that replaces ``out`` only
after every item succeeded, so a failed run never touches an earlier output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from scanner.errors import InputError
from scanner.io import (
    encode_partition_value,
    parquet_files,
    partition_dir,
    write_bytes_atomic,
    write_parquet_atomic,
    write_text_atomic,
)
from scanner.models.checkpoint import record_path, weights_path
from scanner.progress import counter
from scanner.runtime import bind_constructor
from scanner.schemas import ATTRIBUTIONS, PREDICTIONS
from scanner.store import finish_unit

if TYPE_CHECKING:
    from scanner.progress import ProgressFn

_LETTERS = np.array(list("ACGTN"), dtype=object)


@dataclass(frozen=True)
class InterpretConfig:
    """Settings of ``scanner interpret``; each field is a flag.

    Parameters
    ----------
    methods : tuple of str
        From :data:`scanner.interpret.METHODS`. Default ``("ism",)``.
    where : str, optional
        SQL filter on prediction columns (polars ``sql_expr``). Default None.
    top : int, optional
        Keep the ``top`` rows by ``prob_bound`` per model. Default: all.
    tfs, regimes : tuple of str
        Restrict to these instance TFs / regimes. Default: all.
    all_models : bool
        Also explain rows scored by another TF's model (cross-TF predictions). Default False.
    flank : int, optional
        Positions written (and mutated by ISM): the site +- ``flank`` bp. Default: the whole window.
    batch_size : int
        Sequences per forward/backward pass. Default 64.
    chunk_rows : int
        Instances per work item (the unit Ray schedules and retries). Default 256.
    reference, n_shuffles, seed, gradcam_layer
        See :class:`scanner.interpret.MethodOptions`.
    actors : int, optional
        Actors per model. Default: GPUs in the cluster if any, else its CPUs.
    cpus_per_actor : float
        CPUs reserved per CPU actor. Default 0.5.
    """

    methods: tuple[str, ...] = ("ism",)
    where: str | None = None
    top: int | None = None
    tfs: tuple[str, ...] = ()
    regimes: tuple[str, ...] = ()
    all_models: bool = False
    flank: int | None = None
    batch_size: int = 64
    chunk_rows: int = 256
    reference: str = "shuffle"
    n_shuffles: int = 10
    seed: int = 0
    gradcam_layer: str = "last"
    actors: int | None = None
    cpus_per_actor: float = 0.5

    def validate(self) -> InterpretConfig:
        """Return self, or raise :class:`InputError` naming the bad flag."""
        from scanner.interpret.methods import check_methods

        try:
            check_methods(self.methods)
            self.options()
        except ValueError as exc:
            raise InputError(str(exc), field="--method" if "method" in str(exc) else None) from exc
        for name in ("batch_size", "chunk_rows"):
            if getattr(self, name) < 1:
                raise InputError(f"must be >= 1, got {getattr(self, name)}", field="--" + name.replace("_", "-"))
        if self.top is not None and self.top < 1:
            raise InputError(f"must be >= 1, got {self.top}", field="--top")
        if self.flank is not None and self.flank < 0:
            raise InputError(f"must be >= 0, got {self.flank}", field="--flank")
        if self.actors is not None and self.actors < 1:
            raise InputError(f"must be >= 1, got {self.actors}", field="--actors")
        if not self.cpus_per_actor > 0:
            raise InputError(f"must be > 0, got {self.cpus_per_actor}", field="--cpus-per-actor")
        return self

    def options(self) -> Any:
        """The :class:`scanner.interpret.MethodOptions` of these settings."""
        from scanner.interpret.methods import MethodOptions

        return MethodOptions(
            reference=self.reference,
            n_shuffles=self.n_shuffles,
            seed=self.seed,
            gradcam_layer=self.gradcam_layer,
            batch_size=self.batch_size,
        ).validate()


@dataclass(frozen=True)
class InterpretSummary:
    """What :func:`interpret` wrote."""

    out: str
    genome: str
    instances: int
    rows: int
    files: int
    models: tuple[tuple[str, str], ...]
    seconds: float


# ---- selection --------------------------------------------------------------------------------------


def select_instances(predictions_root: str | Path, config: InterpretConfig) -> pa.Table:
    """The prediction rows to explain, sorted by model (TF, regime) then instance key.

    Raises
    ------
    InputError
        If the directory holds no predictions, lacks PREDICTIONS columns, or ``--where`` does not
        parse or names an unknown column.
    """
    import polars as pl

    root = Path(predictions_root)
    if not root.is_dir():
        raise InputError("predictions directory not found", source=root)
    files = parquet_files(root)
    if not files:
        raise InputError("no prediction files (expected tf=<tf>/chrom=<chrom>/*.parquet)", source=root)
    lf = pl.scan_parquet([str(f) for f in files], hive_partitioning=False)
    have = lf.collect_schema().names()
    missing = [c for c in PREDICTIONS.names if c not in have]
    if missing:
        raise InputError(f"prediction files lack column(s) {', '.join(missing)}", source=root)
    lf = lf.select(PREDICTIONS.names)
    if not config.all_models:
        lf = lf.filter(pl.col("model_tf") == pl.col("tf"))
    if config.tfs:
        lf = lf.filter(pl.col("tf").is_in(list(config.tfs)))
    if config.regimes:
        lf = lf.filter(pl.col("regime").is_in(list(config.regimes)))
    if config.where:
        try:
            lf = lf.filter(pl.sql_expr(config.where))
        except Exception as exc:  # polars raises several types for bad SQL
            raise InputError(f"cannot parse {config.where!r}: {exc}", field="--where") from exc
    key = ["model_tf", "regime", "tf", "chrom", "start", "end", "strand", "motif_id"]
    if config.top is not None:
        lf = lf.sort(["prob_bound", *key], descending=[True] + [False] * len(key)).filter(
            pl.int_range(pl.len()).over(["model_tf", "regime"]) < config.top
        )
    try:
        df = lf.sort(key).collect()
    except Exception as exc:
        if config.where:
            raise InputError(f"cannot apply {config.where!r}: {exc}", field="--where") from exc
        raise
    return df.to_arrow().cast(PREDICTIONS)


# ---- the kernel ------------------------------------------------------------------------------------


def explain_rows(
    attributor: Any,
    rows: pa.Table,
    genome: Any,
    width: int,
    methods: Sequence[str],
    flank: int | None = None,
    batch_size: int = 64,
) -> dict[str, pa.Table]:
    """Attributions of ``rows`` (prediction rows of one model) as ATTRIBUTIONS tables, one per method.

    Parameters
    ----------
    attributor : scanner.interpret.Attributor
        Holds the model (whose ``seq_len`` is ``width``).
    rows : pyarrow.Table
        PREDICTIONS rows.
    genome : scanner.genome.Genome
    width : int
        Window length W.
    methods : sequence of str
    flank : int, optional
        Written positions: the site +- ``flank``. Default: the whole window.
    batch_size : int, optional
        Sequences per call of the attributor. Default 64.

    Returns
    -------
    dict of str to pyarrow.Table
        Per method, rows sorted by instance (as given) then position.
    """
    from scanner.genome import one_hot
    from scanner.predict.apply import fetch_windows

    n = rows.num_rows
    if n == 0:
        return {m: ATTRIBUTIONS.empty_table() for m in methods}
    chroms = np.asarray(rows.column("chrom").to_pylist(), dtype=object)
    starts = rows.column("start").to_numpy().astype(np.int64)
    ends = rows.column("end").to_numpy().astype(np.int64)
    codes = fetch_windows(genome, chroms, starts, ends, width)
    wstart = (starts + ends) // 2 - width // 2
    if flank is None:
        lo_row, hi_row = np.zeros(n, np.int64), np.full(n, width, np.int64)
    else:
        lo_row = np.clip(starts - wstart - flank, 0, width)
        hi_row = np.clip(ends - wstart + flank, 0, width)
    lo, hi = int(lo_row.min()), int(hi_row.max())
    if hi <= lo:
        return {m: ATTRIBUTIONS.empty_table() for m in methods}
    chrom_len = np.array([genome.lengths[c] for c in chroms], dtype=np.int64)
    pos = wstart[:, None] + np.arange(lo, hi)[None, :]  # (n, P)
    rel = np.arange(lo, hi)[None, :]
    keep = (pos >= 0) & (pos < chrom_len[:, None]) & (rel >= lo_row[:, None]) & (rel < hi_row[:, None])
    row_idx = np.nonzero(keep)[0]
    keys = rows.select(["chrom", "start", "end", "strand", "motif_id", "tf", "regime", "model_tf"]).take(
        pa.array(row_idx)
    )
    pos_k = pos[keep]
    offset = (pos_k - starts[row_idx]).astype(np.int32)
    base = _LETTERS[codes[:, lo:hi][keep]]
    out = {}
    for method in methods:
        values, scores, deltas = [], [], []
        for b0 in range(0, n, batch_size):
            x = one_hot(codes[b0 : b0 + batch_size])
            res = attributor(x, method, lo, hi)
            values.append(None if res.values is None else res.values.float().numpy())
            scores.append(res.score.float().numpy())
            deltas.append(None if res.delta is None else res.delta.float().numpy())
        score = np.concatenate(scores)[keep]
        cols: dict[str, Any] = {name: keys.column(name) for name in keys.column_names}
        cols["method"] = pa.array(np.full(len(row_idx), method, dtype=object), pa.string())
        cols["pos"] = pa.array(pos_k, pa.int64())
        cols["offset"] = pa.array(offset, pa.int32())
        cols["base"] = pa.array(base, pa.string())
        cols["score"] = pa.array(score, pa.float32())
        if values[0] is None:
            for b in "acgt":
                cols[b] = pa.nulls(len(row_idx), pa.float32())
        else:
            v = np.concatenate(values)  # (n, 4, P)
            for i, b in enumerate("acgt"):
                cols[b] = pa.array(v[:, i, :][keep], pa.float32())
        if deltas[0] is None:
            cols["delta"] = pa.nulls(len(row_idx), pa.float32())
        else:
            cols["delta"] = pa.array(np.concatenate(deltas)[row_idx], pa.float32())
        out[method] = pa.table(cols).select(ATTRIBUTIONS.names).cast(ATTRIBUTIONS)
    return out


def write_partitioned(tables: dict[str, pa.Table], root: str | Path, name: str) -> list[Path]:
    """Write each method's table under ``root/method=/tf=/chrom=/name`` (atomic, one file per partition)."""
    import polars as pl

    written = []
    for method, table in tables.items():
        if table.num_rows == 0:
            continue
        df = pl.from_arrow(table)
        for (tf, chrom), part in df.group_by(["tf", "chrom"], maintain_order=True):
            d = partition_dir(root, [("method", method), ("tf", tf), ("chrom", chrom)])
            written.append(write_parquet_atomic(part.to_arrow().cast(ATTRIBUTIONS), d / name))
    return written


def item_file_name(model_tf: str, regime: str, index: int) -> str:
    """Deterministic part-file name of work item ``index`` of one model."""
    return f"part-{encode_partition_value(model_tf)}-{encode_partition_value(regime)}-{index:05d}.parquet"


class Interpreter:
    """Callable class for Ray Data ``map_batches``: each input row is a work item ``{lo, hi, index}``.

    Loads its model once (in ``__init__``), opens the genome and reads the selection once; for each
    item explains rows ``[lo, hi)`` of the selection and writes its files atomically. Returns
    ``{"index", "rows", "files", "error"}`` per item; ``error`` is ``""`` or the JSON of an
    :class:`InputError` (Ray Data keeps only the text of exceptions, so input errors travel as data).

    Parameters
    ----------
    model_dir : str
        Checkpoint directory of the model.
    genome_path, selected_path, out_root : str
        FASTA, the selection Parquet file, and the (staging) output directory.
    config : dict
        :class:`InterpretConfig` as a dict.
    threads : float
        Torch threads for this actor.
    """

    def __init__(
        self,
        model_dir: str,
        genome_path: str,
        selected_path: str,
        out_root: str,
        config: dict[str, Any],
        threads: float = 1,
    ) -> None:
        from scanner.genome import open_genome
        from scanner.interpret.methods import Attributor
        from scanner.models import load_checkpoint
        from scanner.runtime import set_torch_threads, torch_device

        set_torch_threads(threads)
        self.config = InterpretConfig(**config)
        self.model, meta = load_checkpoint(model_dir, map_location=torch_device())
        self.width = int(meta["spec"].seq_len)
        self.attributor = Attributor(self.model, self.config.options())
        self.genome = open_genome(genome_path)
        with pa.memory_map(selected_path) as source:
            self.selected = pa.ipc.open_file(source).read_all()
        self.out_root = out_root

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        idx, counts, files, errors = [], [], [], []
        for lo, hi, index in zip(batch["lo"], batch["hi"], batch["index"], strict=True):
            rows = self.selected.slice(int(lo), int(hi) - int(lo))
            idx.append(int(index))
            try:
                tables = explain_rows(
                    self.attributor,
                    rows,
                    self.genome,
                    self.width,
                    self.config.methods,
                    self.config.flank,
                    self.config.batch_size,
                )
            except InputError as exc:
                counts.append(0)
                files.append(0)
                errors.append(json.dumps([exc.message, exc.source, exc.line, exc.field]))
                continue
            model_tf, regime = rows.column("model_tf")[0].as_py(), rows.column("regime")[0].as_py()
            written = write_partitioned(tables, self.out_root, item_file_name(model_tf, regime, int(index)))
            counts.append(sum(t.num_rows for t in tables.values()))
            files.append(len(written))
            errors.append("")
            finish_unit(
                self.out_root,
                unit_key(model_tf, regime, int(index), self.config.chunk_rows),
                {"rows": counts[-1], "files": files[-1]},
            )
        return {
            "index": np.array(idx, dtype=np.int64),
            "rows": np.array(counts, dtype=np.int64),
            "files": np.array(files, dtype=np.int64),
            "error": np.array(errors, dtype=object),
        }


def unit_key(model_tf: str, regime: str, index: int, chunk_rows: int) -> str:
    """The name of a work unit in the staging area (a resumed run with the same chunking skips it)."""
    return f"{model_tf}-{regime}-{index}-{chunk_rows}"


# ---- driver ----------------------------------------------------------------------------------------


def resolve_genome(predictions_root: str | Path, genome: str | Path | None) -> Path:
    """The FASTA: ``genome``, else the predictions' recorded genome, else their instances'.

    Raises
    ------
    InputError
        If none names an existing file.
    """
    from scanner.store import RunDir

    return RunDir.of("predictions", predictions_root).genome(genome)


def _model_dirs(models_root: Path, selected: pa.Table) -> dict[tuple[str, str], Path]:
    pairs = sorted(
        set(zip(selected.column("model_tf").to_pylist(), selected.column("regime").to_pylist(), strict=True))
    )
    out = {}
    for model_tf, regime in pairs:
        d = partition_dir(models_root, [("tf", model_tf), ("regime", regime)])
        if not record_path(d).is_file():
            raise InputError(
                f"no model for tf '{model_tf}', regime '{regime}' (expected {d}/model.json)",
                source=models_root,
            )
        out[(model_tf, regime)] = d
    return out


def interpret(
    predictions_root: str | Path,
    models_root: str | Path,
    out_root: str | Path,
    config: InterpretConfig = InterpretConfig(),
    *,
    genome: str | Path | None = None,
    use_ray: bool = True,
    address: str | None = None,
    overwrite: bool = False,
    bedgraph: bool = False,
    bigwig: bool = False,
    log: Callable[[str], None] | None = None,
    progress: ProgressFn | None = None,
) -> InterpretSummary:
    """Explain the selected predictions and write the attributions dataset.

    Parameters
    ----------
    predictions_root, models_root : path
        ``OUT/predictions`` and ``OUT/models``.
    out_root : path
        ``OUT/attributions``; must not overlap the inputs.
    config : InterpretConfig, optional
    genome : path, optional
        FASTA. Default: from ``predictions_root/_predict.json``.
    use_ray : bool, optional
        Run through Ray Data (connecting to ``address``, or starting local Ray if not initialised).
        False runs the same class in this process. Default True.
    overwrite : bool, optional
        Replace an existing non-empty ``out_root`` (only once the new output is complete). Default
        False: an existing output is an error.
    bedgraph : bool, optional
        Also write ``out_root/bedgraph/<method>-<model>-<regime>.bedGraph``: per genome position the
        mean ``score`` over the explained windows covering it. Default False.
    bigwig : bool, optional
        Also write the same tracks as bigWig, ``out_root/bigwig/<method>-<model>-<regime>.bw``
        (pyBigWig; implies ``bedgraph``). Default False.
    log : callable, optional
        Receives progress lines.
    progress : callable, optional
        ``progress(done, total)`` in instances explained (each under each of its models), as work
        items end (items an earlier attempt finished count as done).

    Returns
    -------
    InterpretSummary

    Raises
    ------
    InputError
        Bad settings, missing or malformed predictions, models or genome, an output that exists
        (without ``overwrite``), or a model the fast ISM path cannot propagate (use ``ism-naive``).
        Checked before any work starts.
    """
    from scanner.store import RunDir, file_fingerprint, hash_json, tree_signature

    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    config.validate()
    predictions_root, models_root, out_root = Path(predictions_root), Path(models_root), Path(out_root)
    ds = RunDir.of("attributions", out_root)
    ds.run.check_no_overlap(out_root, {"input directory": predictions_root, "models directory": models_root})
    if out_root.exists() and any(out_root.iterdir()) and not overwrite:
        raise InputError("output directory exists and is not empty; pass --overwrite to replace it", source=out_root)
    ds.check_writable()
    genome_path = resolve_genome(predictions_root, genome)
    selected = select_instances(predictions_root, config)
    dirs = _model_dirs(models_root, selected)
    _check_models(dirs, config, genome_path, selected)
    say(f"{selected.num_rows} instance(s), {len(dirs)} model(s), methods {', '.join(config.methods)}")

    with ds.run.lock(out_root.name):
        ds.run.recover()
        fingerprint = hash_json(
            {
                "predictions": tree_signature(predictions_root),
                "genome": str(genome_path.resolve()),
                "models": {f"{k[0]}/{k[1]}": file_fingerprint(weights_path(d)) for k, d in dirs.items()},
                # chunk_rows stays in: it names the work units' files, so another chunking is another area
                "config": {k: v for k, v in asdict(config).items() if k not in ("actors", "cpus_per_actor")},
                "outputs": [bedgraph, bigwig],
            }
        )
        stage = ds.staging(fingerprint)
        staging = stage.root
        selected_path = _write_ipc(selected, staging / "_selected.arrow")
        groups = _groups(selected, config.chunk_rows)
        results = {}
        for key, items in groups.items():  # units an interrupted attempt finished
            for _lo, _hi, index in items:
                done = stage.unit(unit_key(key[0], key[1], index, config.chunk_rows))
                if done is not None:
                    results[(key, index)] = (done["rows"], done["files"])
        todo = {k: [it for it in items if (k, it[2]) not in results] for k, items in groups.items()}
        todo = {k: v for k, v in todo.items() if v}
        if results:
            say(f"{len(results)} work item(s) done by an earlier attempt")
        size = {(k, it[2]): it[1] - it[0] for k, items in groups.items() for it in items}
        add = counter(progress, sum(size.values()), sum(size[k] for k in results))
        add(0)
        if use_ray and todo:
            fresh = _run_on_ray(
                todo, dirs, str(genome_path), str(selected_path), str(staging), config, address, say, add
            )
        else:
            fresh = {}
            for key, items in todo.items():
                actor = Interpreter(str(dirs[key]), str(genome_path), str(selected_path), str(staging), asdict(config))
                for lo, hi, index in items:
                    res = actor({"lo": np.array([lo]), "hi": np.array([hi]), "index": np.array([index])})
                    _raise_errors(res)
                    fresh[(key, index)] = (int(res["rows"][0]), int(res["files"][0]))
                    add(hi - lo)
                say(f"{key[0]}/{key[1]}: {len(items)} item(s) done")
        results |= fresh
        expected = {(key, it[2]) for key, items in groups.items() for it in items}
        if set(results) != expected:
            raise RuntimeError(f"{len(expected - set(results))} work item(s) produced no output")
        rows = sum(r for r, _ in results.values())
        files = sum(f for _, f in results.values())
        if bedgraph or bigwig:
            write_bedgraphs(staging, staging / "bedgraph")
        if bigwig:
            from scanner.genome import open_genome
            from scanner.interpret.bigwig import write_bigwigs

            g = open_genome(genome_path)
            try:
                write_bigwigs(staging / "bedgraph", g.lengths, staging / "bigwig")
            finally:
                g.close()
        record = {
            "predictions": str(predictions_root.resolve()),
            "models_root": str(models_root.resolve()),
            "genome": str(genome_path.resolve()),
            "config": asdict(config),
            "models": [list(k) for k in dirs],
            "instances": selected.num_rows,
            "rows": rows,
            "files": files,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        stage.write_record(record)
        stage.publish()
    return InterpretSummary(
        out=str(out_root),
        genome=str(genome_path),
        instances=selected.num_rows,
        rows=rows,
        files=files,
        models=tuple(dirs),
        seconds=time.perf_counter() - t0,
    )


def _check_models(
    dirs: dict[tuple[str, str], Path], config: InterpretConfig, genome_path: Path, selected: pa.Table
) -> None:
    """Fail before any work: checkpoints load, the fast ISM path fits them, chromosomes exist."""
    from scanner.genome import open_genome
    from scanner.models import load_checkpoint

    g = open_genome(genome_path)
    for chrom in sorted(set(selected.column("chrom").to_pylist())):
        g.check_chrom(chrom, source="predictions")
    g.close()
    for d in dirs.values():
        model, meta = load_checkpoint(d)
        if "ism" in config.methods:
            from scanner.interpret.ism import fast_plan

            try:
                fast_plan(model, int(meta["spec"].seq_len))
            except (TypeError, ValueError) as exc:
                raise InputError(f"{exc}", source=d, field="--method") from exc


def _groups(selected: pa.Table, chunk_rows: int) -> dict[tuple[str, str], list[tuple[int, int, int]]]:
    """Work items per model: ``(lo, hi, index)`` row ranges of the (model-sorted) selection."""
    model_tf = selected.column("model_tf").to_pylist()
    regime = selected.column("regime").to_pylist()
    groups: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    i, n = 0, selected.num_rows
    while i < n:
        key = (model_tf[i], regime[i])
        j = i
        while j < n and (model_tf[j], regime[j]) == key:
            j += 1
        groups[key] = [(lo, min(lo + chunk_rows, j), k) for k, lo in enumerate(range(i, j, chunk_rows))]
        i = j
    return groups


def _write_ipc(table: pa.Table, path: Path) -> Path:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return write_bytes_atomic(sink.getvalue().to_pybytes(), path)


def _raise_errors(res: dict[str, np.ndarray]) -> None:
    for e in res["error"]:
        if e:
            message, source, line, fld = json.loads(str(e))
            raise InputError(message, source=source, line=line, field=fld)


def write_bedgraphs(root: Path, out_dir: Path) -> list[Path]:
    """Per method and model, the mean score per genome position as bedGraph (0-based, sorted).

    :func:`scanner.interpret.bigwig.write_bigwigs` converts them to bigWig.
    """
    import polars as pl

    files = parquet_files(root)
    if not files:
        return []
    df = (
        pl.scan_parquet([str(f) for f in files])
        .group_by(["method", "model_tf", "regime", "chrom", "pos"])
        .agg(pl.col("score").mean())
        .sort(["method", "model_tf", "regime", "chrom", "pos"])
        .collect()
    )
    out = []
    for (method, model_tf, regime), part in df.group_by(["method", "model_tf", "regime"], maintain_order=True):
        lines = part.select(
            pl.format("{}\t{}\t{}\t{}", "chrom", "pos", pl.col("pos") + 1, pl.col("score").round_sig_figs(6))
        ).to_series()
        name = f"{method}-{encode_partition_value(model_tf)}-{encode_partition_value(regime)}.bedGraph"
        out.append(write_text_atomic("\n".join(lines.to_list()) + "\n", out_dir / name))
    return out


def _run_on_ray(
    groups: dict[tuple[str, str], list[tuple[int, int, int]]],
    dirs: dict[tuple[str, str], Path],
    genome_path: str,
    selected_path: str,
    out_root: str,
    config: InterpretConfig,
    address: str | None,
    say: Callable[[str], None],
    on_instances: Callable[[int], None] | None = None,
) -> dict[tuple[tuple[str, str], int], tuple[int, int]]:
    import ray
    import ray.data

    from scanner.runtime import ActorPlan, cluster_resources, describe_resources, ray_data_without_bars, ray_session

    ctx = nullcontext() if ray.is_initialized() else ray_session(address)
    results: dict[tuple[tuple[str, str], int], tuple[int, int]] = {}
    with ctx:
        res = cluster_resources()
        ray_data_without_bars()
        for key, items in groups.items():
            plan = ActorPlan.for_items(res, len(items), config.actors, config.cpus_per_actor)
            n, opts, threads = plan.actors, plan.resources, plan.threads
            say(f"{key[0]}/{key[1]}: {len(items)} item(s) on {n} actor(s), {describe_resources(opts)}")
            size = {k: hi - lo for lo, hi, k in items}
            ds = ray.data.from_items(
                [{"lo": lo, "hi": hi, "index": k} for lo, hi, k in items], override_num_blocks=len(items)
            )
            out = ds.map_batches(
                bind_constructor(
                    Interpreter,
                    **{
                        "model_dir": str(dirs[key]),
                        "genome_path": genome_path,
                        "selected_path": selected_path,
                        "out_root": out_root,
                        "config": asdict(config),
                        "threads": threads,
                    },
                ),
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=n, max_tasks_in_flight_per_actor=1),
                **opts,
            )
            for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
                _raise_errors(batch)
                for index, rows, files in zip(batch["index"], batch["rows"], batch["files"], strict=True):
                    results[(key, int(index))] = (int(rows), int(files))
                    if on_instances is not None:
                        on_instances(size[int(index)])
    return results
