"""``scanner run``: every stage of a run in order, each skipped when its output is complete and its
inputs unchanged.

Stages (those that apply to the config, in this order)::

    simulate             OUT/sim/                         only with [simulate]
    scan                 OUT/instances/                   resumes by shard (OUT/instances/_shards/)
    label                OUT/labelled/ + OUT/datasets/
    train                OUT/models/tf=/regime=/          resumes by model (model.json says how it was made)
    evaluate             OUT/metrics.parquet (+ ROC/PR curves beside each model)
    predict              OUT/predictions/
    interpret            OUT/attributions/                only with [interpret]
    features             OUT/features/                    only with [features]
    variants             OUT/variants/                    only with [variants] (a VCF)
    interpret_benchmark  OUT/interpret_benchmark/         only with [interpret_benchmark]

Every stage is the same public function its command calls (:func:`scanner.scan.scan_genome`,
:func:`scanner.labels.label`, ...); this module only decides which to call, records what happened in
the manifest (:mod:`scanner.run.manifest`) and shares one Ray session between them. The inputs hash of a
stage covers its settings, the content (or size and mtime, for files over 256 MiB) of the external
files it reads, and the output signature of the stages it reads, so a change anywhere upstream
re-runs exactly the stages downstream of it. A driver killed mid-run and started again skips the
finished stages, and the interrupted one redoes only its missing shards or models; every file is
written atomically under a deterministic name, so the result equals an uninterrupted run.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from scanner.errors import InputError
from scanner.progress import tee
from scanner.run.config import RunConfig, to_dict
from scanner.run.manifest import Manifest, parquet_rows
from scanner.store import METRICS_FILE, RunDir, file_fingerprint, hash_json, visible_files

if TYPE_CHECKING:
    from scanner.progress import Progress

#: Prefix of the manifest lines a submitted job prints to its log (read by ``scanner status``).
MANIFEST_LOG_PREFIX = "SCANNER_MANIFEST "


def stage_names(config: RunConfig) -> list[str]:
    """The stages ``config`` runs, in order."""
    return [st.name for st in STAGES if st.active(config)]


def stage_outputs(out: str | Path, name: str) -> list[Path]:
    """The data files of stage ``name``'s outputs under run directory ``out`` (what its signature covers:
    JSON sidecars are left out, since they hold absolute paths and timings, so a run directory that is
    moved, or a stage re-run with the same result, keeps its signature)."""
    run = RunDir(out)
    files: list[Path] = []
    for dataset in REGISTRY[name].outputs:
        if dataset == "metrics":
            files += [run.metrics_path] if run.metrics_path.is_file() else []
        else:
            spec = REGISTRY[name]
            files += [
                f
                for f in visible_files(run.dataset(dataset).root)
                if (not f.name.endswith(".json") or spec.names) and fnmatch.fnmatch(f.name, spec.names or "*")
            ]
    return sorted(files)


def stage_signature(out: str | Path, name: str) -> str:
    """SHA-256 over (relative name, size) of :func:`stage_outputs`."""
    root = Path(out)
    return hash_json([(str(p.relative_to(root)), p.stat().st_size) for p in stage_outputs(root, name)])


@dataclass(frozen=True)
class PipelineResult:
    """What :func:`run_pipeline` did: stages run and skipped, seconds, and the final manifest."""

    out: Path
    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    seconds: float
    manifest: dict[str, Any]


@dataclass(frozen=True)
class _Inputs:
    """Where the stage inputs are (simulated or given)."""

    genome: Path
    motifs: tuple[str, ...]
    peaks: dict[str, Path]
    open: Path | None
    blacklist: Path | None


def run_pipeline(
    config: RunConfig,
    *,
    until: str | None = None,
    force: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
    on_manifest: Callable[[dict[str, Any]], None] | None = None,
) -> PipelineResult:
    """Run the stages of ``config`` in order under ``config.out``, skipping those already complete.

    Parameters
    ----------
    config : RunConfig
    until : str, optional
        Stop after this stage. Default: run every stage.
    force : sequence of str, optional
        Stages to run even when complete (``"all"`` for every stage). Default none.
    log : callable, optional
        Receives progress lines.
    on_manifest : callable, optional
        Called with the manifest document after every save (a submitted job prints it to its log).

    Returns
    -------
    PipelineResult

    Raises
    ------
    InputError
        Bad settings or inputs (raised by the stage that meets them; the manifest marks it failed), an
        unknown stage name, or another driver already running in ``config.out``.
    """
    planned = stage_names(config)
    for n in [*force, *([until] if until else [])]:
        if n != "all" and n not in planned:
            raise InputError(f"unknown or inactive stage {n!r}; this run has: {', '.join(planned)}", field="stage")
    names = planned[: planned.index(until) + 1] if until else planned
    forced = set(names) if "all" in force else set(force)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with RunDir(out).lock("run"), ExitStack() as stack:
        runner = _Runner(config, out, stack, log or (lambda _m: None))
        runner.manifest.on_save = on_manifest
        runner.manifest.plan(planned, hash_json(to_dict(config)))
        ran, skipped = [], []
        for name in names:
            if runner.run_stage(name, force=name in forced):
                ran.append(name)
            else:
                skipped.append(name)
        doc = runner.manifest.to_dict()
    return PipelineResult(out, tuple(ran), tuple(skipped), time.perf_counter() - t0, doc)


class _Runner:
    """Runs the stages of one pipeline invocation (holds the manifest, the Ray session, the fingerprints)."""

    def __init__(self, config: RunConfig, out: Path, stack: ExitStack, log: Callable[[str], None]) -> None:
        self.config = config
        self.out = out
        self.run = RunDir(out)
        self.stack = stack
        self.log = log
        self.manifest = Manifest.open(out)
        self.fingerprints: dict[str, str] = {}
        self._ray_started = False
        self.bar: Progress | None = None  # the running stage's progress display

    # ---- shared helpers ---------------------------------------------------------------------------
    @property
    def inputs(self) -> _Inputs:
        c = self.config
        if c.simulate is not None:
            sim = self.run.path("sim")
            return _Inputs(
                genome=sim / "genome.fa",
                motifs=(str(sim / "motifs.meme"),),
                peaks={tf: sim / "peaks" / f"{tf}.narrowPeak" for tf in c.simulate.tfs},
                open=sim / "open.bed",
                blacklist=sim / "blacklist.bed",
            )
        assert c.inputs is not None  # validated: exactly one of simulate/inputs
        return _Inputs(c.inputs.genome, c.inputs.motifs, dict(c.inputs.peaks), c.inputs.open, c.inputs.blacklist)

    def fp(self, path: Path | str | None) -> str | None:
        return None if path is None else file_fingerprint(path, self.fingerprints)

    def motif_fps(self) -> list[str]:
        return [m if not Path(m).exists() else f"{Path(m).name}:{self.fp(m)}" for m in self.inputs.motifs]

    def signature(self, stage: str) -> str:
        return stage_signature(self.out, stage)

    def ensure_ray(self) -> None:
        """Enter one Ray session for the remaining stages (first stage that needs it)."""
        if not self.config.use_ray or self._ray_started:
            return
        from scanner.runtime import ray_session

        res = self.stack.enter_context(ray_session(self.config.address))
        self._ray_started = True
        self.log(f"Ray: {res.cpus:g} CPU(s), {res.gpus:g} GPU(s)")

    @contextmanager
    def probing(self, name: str, probe: Callable[[], int], total: int) -> Iterator[None]:
        """Poll ``probe()`` (units done) every 2 s into the manifest while the body runs."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(2.0):
                try:
                    self.manifest.progress(name, min(probe(), total), total)
                except Exception:  # progress is best effort; the stage itself reports errors
                    pass

        thread = threading.Thread(target=loop, name=f"progress-{name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # ---- one stage ---------------------------------------------------------------------------------
    def empty_scan(self) -> str | None:
        """Why the run has no instance (a finished scan with no hit), or None."""
        from scanner.scan.export import empty_reason

        inst = self.run.path("instances")
        if not inst.is_dir():
            return None
        try:
            return empty_reason(inst)
        except InputError:
            return None

    def run_stage(self, name: str, *, force: bool = False) -> bool:
        """Run ``name`` unless it is complete; True when it ran."""
        stage = REGISTRY[name]
        try:
            inputs_hash = hash_json(stage.inputs(self))
        except BaseException as exc:  # e.g. an input file that does not exist
            self.manifest.fail(name, f"{type(exc).__name__}: {exc}")
            raise
        if not force and self.manifest.is_complete(name, inputs_hash, self.signature(name)):
            self.log(f"[{name}] complete with unchanged inputs: skipped")
            return False
        rec = self.manifest.stages.get(name)
        # the stage ran in this directory before (under this manifest): its outputs are the pipeline's own
        owned = rec is not None and rec.attempts > 0
        resume = owned and rec.inputs_hash == inputs_hash and not force
        self.manifest.start(name, inputs_hash, unit=stage.unit)
        self.log(f"[{name}] running" + (" (resuming)" if resume else ""))
        t = time.perf_counter()
        log = self.log
        if name in _CONSOLE_UNITS:  # the stage's progress display; its lines print above it
            from scanner.progress import Progress

            self.bar = Progress(name, _CONSOLE_UNITS[name])
            self.log = self.bar.write
        try:
            why = self.empty_scan() if stage.needs_rows else None
            note = f"nothing to do: {why}" if why else stage.run(self, owned)
            if why:
                self.log(f"[{name}] {note}")
        except BaseException as exc:
            self.manifest.fail(name, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
            self.bar, self.log = None, log
        rows = None
        if stage.rows is not None:
            rows = parquet_rows(
                f for f in stage_outputs(self.out, name) if stage.rows in f.relative_to(self.out).parts[:2]
            )
        self.manifest.finish(name, outputs=self.signature(name), rows=rows, note=note)
        self.log(f"[{name}] done in {time.perf_counter() - t:.1f} s" + (f", {rows:,} rows" if rows is not None else ""))
        return True

    # ---- simulate ------------------------------------------------------------------------------------
    def _inputs_simulate(self) -> dict[str, Any]:
        return {"config": asdict(self.config.simulate)}

    def _run_simulate(self, owned: bool) -> str:
        from scanner.simulate.genome import simulate

        res = simulate(self.run.path("sim"), self.config.simulate)
        self.manifest.progress("simulate", 1, 1)
        return f"{res.counts['bases']:,} bp, {res.counts['loci']} loci"

    # ---- scan ----------------------------------------------------------------------------------------
    def _inputs_scan(self) -> dict[str, Any]:
        cfg = asdict(self.config.scan)
        cfg.pop("kernel")  # does not change the output
        return {"config": cfg, "genome": self.fp(self.inputs.genome), "motifs": self.motif_fps()}

    def _run_scan(self, owned: bool) -> str:
        from scanner.scan import scan_genome

        if self.config.use_ray:
            self.ensure_ray()

        def progress(done: int, total: int, reused: int) -> None:
            self.manifest.progress("scan", done, total, note=f"{reused} shard(s) reused" if reused else None)

        summary = scan_genome(
            self.inputs.genome,
            list(self.inputs.motifs),
            self.out,
            self.config.scan,
            use_ray=self.config.use_ray,
            address=self.config.address,
            # the pipeline owns OUT/instances once the manifest knows the stage: a changed setting
            # replaces the old scan; an unknown existing scan with other settings is an error
            overwrite=owned,
            progress=progress,
        )
        return f"{summary.shards} shards ({summary.reused} reused), {len(summary.hits)} TF(s)"

    # ---- label ---------------------------------------------------------------------------------------
    def _inputs_label(self) -> dict[str, Any]:
        i = self.inputs
        return {
            "config": asdict(self.config.label),
            "instances": self.signature("scan"),
            "genome": self.fp(i.genome),
            "peaks": {tf: self.fp(p) for tf, p in sorted(i.peaks.items())},
            "open": self.fp(i.open),
            "blacklist": self.fp(i.blacklist),
        }

    def _run_label(self, owned: bool) -> str:
        from scanner.labels.run import label

        if self.config.use_ray:
            self.ensure_ray()
        i = self.inputs
        res = label(
            self.run.path("instances"),
            i.peaks,
            self.out,
            self.config.label,
            open_chromatin=i.open,
            blacklist=i.blacklist,
            genome=i.genome,
            use_ray=self.config.use_ray,
            progress=self.bar,
        )
        self.manifest.progress("label", 1, 1)
        total = int(res.sizes["n"].sum()) if "n" in res.sizes.columns else 0
        skipped = f"; TFs without peaks or instances: {', '.join(res.skipped)}" if res.skipped else ""
        return f"{total:,} dataset rows" + skipped

    # ---- train ---------------------------------------------------------------------------------------
    def _inputs_train(self) -> dict[str, Any]:
        t = self.config.train
        return {
            "config": asdict(t.settings),
            "tfs": list(t.tfs),
            "regimes": list(t.regimes),
            "datasets": self.signature("label"),
        }

    def _run_train(self, owned: bool) -> str:
        from scanner.train import train_models

        t = self.config.train
        if self.config.use_ray:
            self.ensure_ray()
        state = {"total": 0, "first": None}

        def on_model(done: int, total: int) -> None:
            if state["first"] is None:
                state["first"] = done  # kept from an earlier run
            state["total"] = total
            self.manifest.progress("train", done, total)
            if self.bar is not None:
                self.bar(done, total)

        train_models(
            self.run.path("datasets"),
            self.run.path("models"),
            t.settings,
            tfs=list(t.tfs) or None,
            regimes=list(t.regimes) or None,
            use_ray=self.config.use_ray,
            address=self.config.address,
            evaluate=False,
            log=self.log,
            reuse=True,
            on_model=on_model,
            on_epoch_line=None if self.bar is None else self.bar.set_detail,
        )
        return f"{state['total']} model(s), {state['first'] or 0} reused"

    # ---- evaluate ------------------------------------------------------------------------------------
    def _inputs_evaluate(self) -> dict[str, Any]:
        t = self.config.train
        return {
            "config": asdict(self.config.evaluate),
            "tfs": list(t.tfs),
            "regimes": list(t.regimes),
            "models": self.signature("train"),
            "datasets": self.signature("label"),
        }

    def _run_evaluate(self, owned: bool) -> str:
        from scanner.evaluate import evaluate_models

        if self.config.use_ray:
            self.ensure_ray()
        e, t = self.config.evaluate, self.config.train
        final = self.run.metrics_path
        tmp = self.out / f".metrics.{uuid.uuid4().hex[:8]}.parquet"
        try:
            table = evaluate_models(
                self.run.path("datasets"),
                self.run.path("models"),
                tmp,
                tfs=list(t.tfs) or None,
                regimes=list(t.regimes) or None,
                cross_tf=e.cross_tf,
                splits=e.splits,
                batch_size=e.batch_size,
                rc_average=e.rc_average,
                use_ray=self.config.use_ray,
                address=self.config.address,
                log=self.log,
            )
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self.manifest.progress("evaluate", 1, 1)
        return f"{table.num_rows} metric row(s)"

    # ---- predict -------------------------------------------------------------------------------------
    def _predict_filters(self) -> tuple[list[str] | None, list[str] | None]:
        p, t = self.config.predict, self.config.train
        return (list(p.tfs) or None, list(p.regimes) or list(t.regimes) or None)

    def _inputs_predict(self) -> dict[str, Any]:
        tfs, regimes = self._predict_filters()
        return {
            "config": asdict(self.config.predict.settings),
            "tfs": tfs,
            "regimes": regimes,
            "instances": self.signature("scan"),
            "models": self.signature("train"),
            "genome": self.fp(self.inputs.genome),
        }

    def _run_predict(self, owned: bool) -> str:
        from scanner.predict.run import predict

        cfg = self.config.predict.settings
        tfs, regimes = self._predict_filters()
        if self.config.use_ray:
            self.ensure_ray()
        summary = predict(
            self.run.path("instances"),
            self.run.path("models"),
            self.run.path("predictions"),
            cfg,
            genome=self.inputs.genome,
            tfs=tfs,
            regimes=regimes,
            use_ray=self.config.use_ray,
            address=self.config.address,
            log=self.log,
            progress=tee(lambda done, total: self.manifest.progress("predict", done, total), self.bar),
            # the pipeline owns OUT/predictions: a record naming other paths is a moved run directory
            adopt_moved=owned,
        )
        return f"{summary.instances:,} instances x {len(summary.models)} model(s) in {summary.files} file(s)"

    # ---- interpret -----------------------------------------------------------------------------------
    def _inputs_interpret(self) -> dict[str, Any]:
        s = self.config.interpret
        return {
            "config": asdict(s.settings),
            "bedgraph": s.bedgraph,
            "predictions": self.signature("predict"),
            "models": self.signature("train"),
            "genome": self.fp(self.inputs.genome),
        }

    def _run_interpret(self, owned: bool) -> str:
        from scanner.interpret.run import interpret

        if self.config.use_ray:
            self.ensure_ray()
        s = self.config.interpret
        summary = interpret(
            self.run.path("predictions"),
            self.run.path("models"),
            self.run.path("attributions"),
            s.settings,
            genome=self.inputs.genome,
            use_ray=self.config.use_ray,
            address=self.config.address,
            overwrite=True,
            bedgraph=s.bedgraph,
            log=self.log,
            progress=self.bar,
        )
        self.manifest.progress("interpret", 1, 1)
        return f"{summary.instances} instance(s) explained"

    # ---- features ---------------------------------------------------------------------------------
    def _feature_databases(self) -> list[Path]:
        from scanner.features import default_databases

        f = self.config.features
        return [*(default_databases(self.out) if f.own_motifs else []), *map(Path, f.motifs)]

    def _inputs_features(self) -> dict[str, Any]:
        f = self.config.features
        return {
            "config": asdict(f.settings),
            "databases": [self.fp(p) for p in self._feature_databases()],
            "datasets": self.signature("label"),
            "predictions": self.signature("predict") if f.settings.source == "predictions" else None,
            "models": self.signature("train"),
        }

    def _run_features(self, owned: bool) -> str:
        from scanner.features import features

        if self.config.use_ray:
            self.ensure_ray()
        f = self.config.features
        res = features(
            self.run.path("datasets" if f.settings.source == "datasets" else "predictions"),
            self.run.path("models"),
            self.run.path("features"),
            f.settings,
            databases=self._feature_databases(),
            genome=self.inputs.genome,
            use_ray=self.config.use_ray,
            address=self.config.address,
            overwrite=True,
            log=self.log,
            progress=self.bar,
        )
        for line in res.lines:
            self.log(line)
        self.manifest.progress("features", 1, 1)
        return f"{res.patterns.num_rows} pattern(s) of {len(res.models)} model(s) x method(s)"

    # ---- variants ---------------------------------------------------------------------------------
    def _inputs_variants(self) -> dict[str, Any]:
        v = self.config.variants
        return {
            "features": self.signature("features") if self.config.features is not None else None,
            "config": asdict(v.settings),
            "tfs": list(v.tfs),
            "regimes": list(v.regimes),
            "vcf": self.fp(v.vcf),
            "instances": self.signature("scan"),
            "models": self.signature("train"),
            "genome": self.fp(self.inputs.genome),
        }

    def _run_variants(self, owned: bool) -> str:
        from scanner.variants import score_vcf

        if self.config.use_ray:
            self.ensure_ray()
        v = self.config.variants
        settings = v.settings
        if self.config.features is not None and settings.features is None:
            settings = replace(settings, features=str(self.run.path("features")))
        summary = score_vcf(
            v.vcf,
            self.run.path("models"),
            self.run.path("variants"),
            settings,
            instances=self.run.path("instances"),
            genome=self.inputs.genome,
            tfs=list(v.tfs) or None,
            regimes=list(v.regimes) or None,
            use_ray=self.config.use_ray,
            address=self.config.address,
            log=self.log,
            progress=self.bar,
        )
        self.manifest.progress("variants", 1, 1)
        return f"{summary.alleles} allele(s), {len(summary.tfs)} TF(s)" + (
            f"; {len(summary.warnings)} warning(s)" if summary.warnings else ""
        )

    # ---- interpretation benchmark -----------------------------------------------------------------
    def _benchmark_sim(self) -> Path | None:
        sim, bm = self.config.simulate, self.config.interpret_benchmark
        return self.run.path("sim") if sim is not None and bm is not None and bm.tf in sim.tfs else None

    def _inputs_interpret_benchmark(self) -> dict[str, Any]:
        sim = self._benchmark_sim()
        return {
            "config": asdict(self.config.interpret_benchmark),
            "simulation": self.signature("simulate") if sim is not None else None,
        }

    def _run_interpret_benchmark(self, owned: bool) -> str:
        from scanner.interpret.benchmark import run_benchmark

        table = run_benchmark(
            self.run.path("interpret_benchmark"),
            self.config.interpret_benchmark,
            sim_dir=self._benchmark_sim(),
            log=self.log,
        )
        self.manifest.progress("interpret_benchmark", 1, 1)
        return f"{table.height} method(s)"


#: What each stage's console progress display counts (the scan draws its own; the others are short).
_CONSOLE_UNITS = {
    "label": "windows",
    "train": "models",
    "predict": "items",
    "interpret": "instances",
    "features": "work items",
    "variants": "alleles",
}


@dataclass(frozen=True)
class StageSpec:
    """One stage of a run: what it writes, what it counts, when it applies, and its two handlers.

    ``inputs(runner)`` returns the JSON of everything the stage reads (its settings, input file
    fingerprints, the signatures of the stages upstream); ``run(runner, owned)`` runs it (``owned``: the
    stage ran in this run directory before, so its outputs are the pipeline's own) and returns a note.
    """

    name: str
    outputs: tuple[str, ...]
    rows: str | None
    unit: str
    active: Callable[[RunConfig], bool]
    inputs: Callable[[_Runner], dict[str, Any]]
    run: Callable[[_Runner, bool], str]
    names: str | None = None  # only output files of these names (train: its checkpoints, not the curves)
    needs_rows: bool = False  # nothing to do after a scan with no hit (a valid, empty result)


def _always(_c: RunConfig) -> bool:
    return True


#: Every stage, in run order (the one table the pipeline reads).
STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "simulate",
        ("sim",),
        None,
        "step",
        lambda c: c.simulate is not None,
        _Runner._inputs_simulate,
        _Runner._run_simulate,
    ),
    StageSpec("scan", ("instances",), "instances", "shards", _always, _Runner._inputs_scan, _Runner._run_scan),
    StageSpec(
        "label", ("labelled", "datasets"), "labelled", "step", _always, _Runner._inputs_label, _Runner._run_label
    ),
    StageSpec(
        "train", ("models",), None, "models", _always, _Runner._inputs_train, _Runner._run_train, names="model.*"
    ),
    StageSpec(
        "evaluate",
        ("metrics",),
        METRICS_FILE,
        "step",
        _always,
        _Runner._inputs_evaluate,
        _Runner._run_evaluate,
        needs_rows=True,
    ),
    StageSpec(
        "predict", ("predictions",), "predictions", "items", _always, _Runner._inputs_predict, _Runner._run_predict
    ),
    StageSpec(
        "interpret",
        ("attributions",),
        "attributions",
        "step",
        lambda c: c.interpret is not None,
        _Runner._inputs_interpret,
        _Runner._run_interpret,
        needs_rows=True,
    ),
    StageSpec(
        "features",
        ("features",),
        "patterns",
        "step",
        lambda c: c.features is not None,
        _Runner._inputs_features,
        _Runner._run_features,
        needs_rows=True,
    ),
    StageSpec(
        "variants",
        ("variants",),
        "scores",
        "step",
        lambda c: c.variants is not None,
        _Runner._inputs_variants,
        _Runner._run_variants,
        needs_rows=True,
    ),
    StageSpec(
        "interpret_benchmark",
        ("interpret_benchmark",),
        None,
        "step",
        lambda c: c.interpret_benchmark is not None,
        _Runner._inputs_interpret_benchmark,
        _Runner._run_interpret_benchmark,
    ),
)
REGISTRY: dict[str, StageSpec] = {st.name: st for st in STAGES}
ALL_STAGES = tuple(REGISTRY)


def manifest_printer(stream: TextIO | None = None, *, min_interval: float = 5.0) -> Callable[[dict[str, Any]], None]:
    """An ``on_manifest`` callback printing the document as one ``SCANNER_MANIFEST {json}`` log line.

    Lines are printed when a stage changes status, and otherwise at most every ``min_interval`` s, so a
    long job's log stays small. ``scanner status`` reads the last such line when it cannot read
    ``OUT/manifest.json`` itself.
    """
    state: dict[str, Any] = {"t": 0.0, "statuses": None}

    def emit(doc: dict[str, Any]) -> None:
        statuses = [(n, s.get("status")) for n, s in doc.get("stages", {}).items()]
        now = time.time()
        if statuses == state["statuses"] and now - state["t"] < min_interval:
            return
        state["t"], state["statuses"] = now, statuses
        out = stream or sys.stdout
        out.write(MANIFEST_LOG_PREFIX + json.dumps(doc, separators=(",", ":")) + "\n")
        out.flush()

    return emit


def last_manifest_in_log(text: str) -> dict[str, Any] | None:
    """The last manifest document a job printed to its log (see :func:`manifest_printer`), or None."""
    for line in reversed(text.splitlines()):
        if line.startswith(MANIFEST_LOG_PREFIX):
            try:
                return json.loads(line[len(MANIFEST_LOG_PREFIX) :])
            except json.JSONDecodeError:
                continue
    return None
