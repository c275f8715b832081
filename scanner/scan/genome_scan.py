"""The genome-wide scan stage: shards over Ray (or in-process), Parquet out, resumable.

Output: ``OUT/instances/tf=<tf>/chrom=<chrom>/part-<chrom_index>-<shard>.parquet`` in the
:data:`~scanner.schemas.INSTANCES` schema, ``OUT/instances/_scan.json`` (settings, genome, motifs,
background, completion) and one ``OUT/instances/_shards/<key>.json`` marker per finished shard; a
restarted scan with the same settings skips the shards that have a marker. When every shard is done
and the scan left very many parts, each partition's parts are merged into one
``part-<chrom_index>-all.parquet`` (:mod:`scanner.scan.compact`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scanner.errors import InputError
from scanner.genome import Genome, chrom_mismatch_message, open_genome
from scanner.io import partition_dir, write_parquet_atomic, write_text_atomic
from scanner.motifs import Background, Motif, load_motifs, read_background
from scanner.motifs.background import background_from_counts
from scanner.scan.chunk import scan_chunk
from scanner.scan.compact import compact_partition, partitions_to_merge
from scanner.scan.executor import choose_executor
from scanner.scan.prepare import LookupPlan, PreparedMotif, build_lookup_plan, prepare_motifs
from scanner.scan.shards import Shard, plan_shards
from scanner.scan.table_cache import resolve_cache_dir
from scanner.store import DATASETS, PUBLISHED, hash_json

if TYPE_CHECKING:
    from scanner.store import Staging

SCAN_META = DATASETS["instances"].record  # the scan's record (layout owned by scanner.store)
SHARD_DIR = DATASETS["instances"].markers


@dataclass(frozen=True)
class ScanConfig:
    """Settings of a scan; each field is a ``scanner scan`` flag.

    Parameters
    ----------
    pvalue : float
        Report windows with p-value strictly below this. Default 1e-4 (FIMO's default).
    background : str
        ``"genome"`` (strand-symmetric base composition of the scanned chromosomes; default),
        ``"uniform"``, or a MEME background file path.
    pvalue_mode : {"exact", "fimo"}
        Exact p-values (default) or FIMO's integer-rounded ones.
    pseudocount : float
        FIMO's motif pseudocount. Default 0.1.
    max_strand : bool
        Keep only the better strand where both strands of a position are hits. Default False.
    skip_masked : bool
        Skip windows touching soft-masked (lower-case) bases. Default False (scanned as upper case).
    shard_size : int
        Site starts per shard. Default 4,000,000.
    kernel : {"auto", "numba", "torch"}
        Candidate filter: ``auto`` (default) and ``numba`` = the numba kernel on every node's CPUs;
        ``torch`` = ``conv1d`` on one actor per GPU where the cluster has GPUs, numba on the other
        cores (torch on the CPU where there are no GPUs). See :func:`node_actor_specs` for why.
    chroms : tuple of str, optional
        Chromosomes to scan (default all, in FASTA order).
    jaspar_release : str, optional
        Release used to resolve JASPAR IDs (default pyjaspar's latest).
    table_cache : str, optional
        Directory of cached motif p-value tables (:mod:`scanner.scan.table_cache`): None (default) =
        ``$SCANNER_CACHE_DIR`` or ``~/.cache/scanner/motif-tables``; ``"off"`` = no cache. Does not
        change the output.
    """

    pvalue: float = 1e-4
    background: str = "genome"
    pvalue_mode: str = "exact"
    pseudocount: float = 0.1
    max_strand: bool = False
    skip_masked: bool = False
    shard_size: int = 4_000_000
    kernel: str = "auto"
    chroms: tuple[str, ...] | None = None
    jaspar_release: str | None = None
    table_cache: str | None = None


@dataclass
class ScanSummary:
    """What a scan did.

    ``inexact_motifs``: motifs whose p-values are estimates within a bound (hit calls still proven);
    ``undecided``: per motif, windows whose p-value could not be separated from the threshold (not
    reported); ``unreachable``: motifs whose best word's p-value (the value) is not below the
    threshold, so they cannot have a hit; ``executor``: ``"local"`` or ``"ray"`` and ``reason`` why;
    ``warnings``: problems with the inputs that did not stop the scan (e.g. an empty FASTA record).
    """

    out_dir: Path
    shards: int
    reused: int
    hits: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    background: list[float] = field(default_factory=list)
    inexact_motifs: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    undecided: dict[str, int] = field(default_factory=dict)
    unreachable: dict[str, float] = field(default_factory=dict)
    executor: str = "local"
    reason: str = ""
    warnings: list[str] = field(default_factory=list)


# ---- one shard: a pure function used by the Ray worker and the in-process loop ------------------


def run_shard(
    genome: Genome,
    shard: Shard,
    prepared: list[PreparedMotif],
    plan,
    out_dir: Path,
    config: ScanConfig,
    kernel: str = "numba",
    device: str = "cpu",
) -> dict:
    """Scan one shard, write its Parquet parts and its done-marker; return its summary (``seconds``:
    wall time; ``cpu_seconds``: this thread's CPU time, which a busy machine does not inflate)."""
    t0 = time.perf_counter()
    c0 = time.thread_time()
    codes, lower = genome.read_codes(shard.chrom, shard.start, shard.read_end, lower=config.skip_masked)
    undecided: dict[str, int] = {}
    table = scan_chunk(
        codes,
        lower,
        prepared,
        plan,
        chrom=shard.chrom,
        offset=shard.start,
        core_end=shard.end - shard.start,
        skip_masked=config.skip_masked,
        max_strand=config.max_strand,
        kernel=kernel,
        device=device,
        undecided=undecided,
    )
    hits: dict[str, int] = {}
    if table.num_rows:
        # scan_chunk groups rows by TF: one slice (zero-copy) and one Parquet part per TF.
        tf_index = table.column("tf").dictionary_encode().combine_chunks()
        idx = tf_index.indices  # read from its buffer: to_numpy() would import pandas (~0.3 s)
        tf_codes = np.frombuffer(idx.buffers()[1], dtype=np.int32)[idx.offset : idx.offset + len(idx)]
        cuts = np.concatenate([[0], np.flatnonzero(np.diff(tf_codes)) + 1, [tf_codes.size]])
        for lo, hi in itertools.pairwise(cuts):
            tf = tf_index.dictionary[int(tf_codes[lo])].as_py()
            path = partition_dir(out_dir, [("tf", tf), ("chrom", shard.chrom)]) / f"part-{shard.key}.parquet"
            # snappy: half zstd's time per small part (~0.6 vs ~1.1 ms; a 4 Mb shard writes one per TF)
            write_parquet_atomic(table.slice(int(lo), int(hi - lo)), path, compression="snappy")
            hits[tf] = int(hi - lo)
    summary = {
        "key": shard.key,
        "hits": hits,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.thread_time() - c0,
        "bases": shard.end - shard.start,
        "pvalues": _pvalue_info(prepared),
        "undecided": undecided,
    }
    write_text_atomic(json.dumps(summary), out_dir / SHARD_DIR / f"{shard.key}.json")
    return summary


def _pvalue_info(prepared: list[PreparedMotif]) -> dict[str, list]:
    """Per motif: [every p-value exact, worst relative width of the p-value bounds, every hit call proven
    without an undecided bracket, p-value of the best word (the smallest of both strands)]."""
    return {
        p.motif_id: [
            all(t.exact for t in p.tables.values()),
            max(t.max_rel_error for t in p.tables.values()),
            all(getattr(t, "calls_exact", True) for t in p.tables.values()),
            min(getattr(t, "best_pvalue", 0.0) for t in p.tables.values()),
        ]
        for p in prepared
    }


#: Threads (shards in flight) of a GPU scan actor: one shard's host work overlaps another's kernel.
GPU_ACTOR_THREADS = 2


def _warm_device() -> bool:
    """Create the CUDA context and load cuDNN's convolution now rather than in the first shard;
    False where CUDA is absent (a logical GPU)."""
    import torch

    if not torch.cuda.is_available():
        return False
    x = torch.zeros((1, 4, 64), device="cuda")
    torch.nn.functional.conv1d(x, torch.zeros((1, 4, 8), device="cuda")).sum().item()
    return True


#: Most threads of one CPU scan actor. Measured on a 16-core node (500 Mb, 50 motifs;
#: benchmarks/RESULTS.md): each shard's thread ran at 12.5 Mbp/s in actors of 2 or 4 threads and at
#: 4-5 Mbp/s in one actor of 16 (the shard's Python and Arrow work holds the GIL), so a node's cores
#: are split into actors of at most this many threads (4.2 s for the genome against 8.3 s).
CPU_ACTOR_THREADS = 4


def node_actor_specs(
    resources: dict, use_gpu: bool, kernel: str = "auto", max_threads: int = CPU_ACTOR_THREADS
) -> list[tuple[dict, int, bool]]:
    """The scan actors of one node: ``(Ray resources, threads, on_gpu)`` for each.

    With ``kernel="torch"`` on a cluster with GPUs (``use_gpu``): one actor per GPU with
    :data:`GPU_ACTOR_THREADS` threads, whose host side (reading, rescoring candidates) takes that many
    cores. The node's remaining cores go to CPU actors of at most ``max_threads`` threads each
    (default :data:`CPU_ACTOR_THREADS`), as evenly as possible (one process's GIL limits more
    threads). With ``"auto"`` (the default) or ``"numba"`` GPUs are not used: measured on an H200 node
    with 16 cores (benchmarks/RESULTS.md), the CPUs alone scanned 500 Mb with 50 motifs faster than
    with a GPU actor beside them (the GPU kernel is ~6x one core per call, but its host-side rescoring
    and CUDA's start take that back).
    """
    gpus = int(resources.get("GPU", 0)) if use_gpu and kernel == "torch" else 0
    specs = [({"num_gpus": 1, "num_cpus": 0}, GPU_ACTOR_THREADS, True)] * gpus
    cpus = int(resources.get("CPU", 0)) - GPU_ACTOR_THREADS * gpus
    if cpus >= 1:
        actors = -(-cpus // max_threads)
        for i in range(actors):
            threads = cpus // actors + (1 if i < cpus % actors else 0)
            specs.append(({"num_cpus": threads}, threads, False))
    return specs


class ScanNodeWorker:
    """Ray actor: one per :data:`CPU_ACTOR_THREADS` cores of a node, plus one per GPU; threaded.

    The numba kernels release the GIL, so one process running ``threads`` shards at a time uses
    several cores with one copy of the motif tables. The driver builds the tables (while Ray starts) and
    hands them over once through the object store (:meth:`load`); an actor restarted after a crash
    rebuilds them itself on its first shard.
    """

    def __init__(
        self, genome_path: str, motifs: list[dict], out_dir: str, config: dict, use_gpu: bool, threads: int
    ) -> None:
        import threading

        from scanner.scan._kernels import warm_up

        warm_up()  # while the driver builds the tables
        import pyarrow as pa

        pa.array(np.zeros(1))  # pyarrow's first numpy conversion imports pandas (~0.2 s): not in a shard
        # A GPU actor starts CUDA (4-5 s on an H200) in the background and scans with numba until then,
        # so that it never holds shards back from the CPU actor beside it.
        self._device_ready = threading.Event()
        if use_gpu:
            threading.Thread(target=self._start_device, daemon=True).start()

        self.genome = Genome(genome_path)
        self.motifs = [_motif_from_dict(d) for d in motifs]
        self.out_dir = Path(out_dir)
        self.config = ScanConfig(**config)
        self.threads = threads
        self.use_gpu = use_gpu
        self._lock = threading.Lock()
        self._tables: tuple | None = None

    def _start_device(self) -> None:
        try:
            ready = _warm_device()
        except Exception:  # no usable CUDA: this actor keeps scanning with numba
            return
        if ready:
            self._device_ready.set()

    def load(self, tables: tuple[list[PreparedMotif], LookupPlan], background: list[float]) -> int:
        """Take the driver's tables (built for ``background``); return the number of threads."""
        with self._lock:
            self._tables = (background, *tables)
        return self.threads

    def _kernel(self) -> tuple[str, str]:
        """``(kernel, device)`` for the next shard: a GPU actor runs torch on CUDA once CUDA has
        started (numba before that, and where CUDA is absent, as with a logical GPU); a CPU actor runs
        numba, or torch on the CPU when asked for explicitly."""
        if self.use_gpu:
            return ("torch", "cuda") if self._device_ready.is_set() else ("numba", "cpu")
        return ("torch" if self.config.kernel == "torch" else "numba"), "cpu"

    def _prepared(self, background: list[float]) -> tuple:
        with self._lock:
            if self._tables is None or self._tables[0] != background:
                c = self.config
                prepared = prepare_motifs(
                    self.motifs,
                    Background(np.array(background)),
                    c.pvalue,
                    c.pvalue_mode,
                    c.pseudocount,
                    threads=self.threads,
                    cache_dir=resolve_cache_dir(c.table_cache),
                )
                self._tables = (background, prepared, build_lookup_plan(prepared))
            return self._tables

    def scan(self, shard: dict, background: list[float]) -> dict:
        """Scan one shard (see :func:`run_shard`); return its summary."""
        _, prepared, plan = self._prepared(background)
        kernel, device = self._kernel()
        return run_shard(self.genome, Shard(**shard), prepared, plan, self.out_dir, self.config, kernel, device)

    def compact(self, directory: str) -> int:
        """Merge one finished partition's parts (:func:`compact_partition`); return the parts removed."""
        return compact_partition(directory)


def _motif_to_dict(m: Motif) -> dict:
    return {"motif_id": m.motif_id, "tf": m.name, "length": m.length, "nsites": m.nsites, "probs": m.probs.tolist()}


def _motif_from_dict(d: dict, source: str = "") -> Motif:
    return Motif(d["motif_id"], d["tf"], np.array(d["probs"], dtype=np.float64), int(d["nsites"]), source)


# ---- the stage -------------------------------------------------------------------------------------


def _fingerprint(genome_path: Path, motifs: list[Motif], config: ScanConfig, chroms: list[str]) -> dict:
    st = genome_path.stat()
    h = hashlib.sha256()
    for m in motifs:
        h.update(m.motif_id.encode() + b"\0" + m.name.encode() + b"\0" + str(m.nsites).encode())
        h.update(np.round(m.probs, 10).tobytes())
    cfg = asdict(config)
    cfg.pop("kernel")  # neither the kernel nor the table cache changes the output
    cfg.pop("table_cache")
    return {
        "genome": str(genome_path.resolve()),
        "genome_size": st.st_size,
        "genome_mtime": int(st.st_mtime),
        "motifs_sha256": h.hexdigest(),
        "config": cfg,
        "chroms": chroms,
    }


def fasta_warnings(genome: Genome, chroms: list[str]) -> list[str]:
    """Problems of a FASTA that do not stop a scan: empty records (a bare header), and a plain file
    that does not end with a newline (cut mid-line: its last record may be incomplete)."""
    out = [
        f"{genome.path}: record '{c}' is empty (0 bp; a header with no sequence)"
        for c in chroms
        if genome.lengths.get(c, 0) == 0
    ]
    if genome._fd is not None and genome.chroms:
        size = os.fstat(genome._fd).st_size
        if size and os.pread(genome._fd, 1, size - 1) != b"\n":
            out.append(
                f"{genome.path}: the file ends mid-line, so its last record '{genome.chroms[-1]}' may be cut short "
                "(a truncated file?); it was scanned as it is"
            )
    return out


def _count_bases(genome: Genome, shard: Shard) -> list[int]:
    codes, _ = genome.read_codes(shard.chrom, shard.start, shard.end)
    return np.bincount(codes, minlength=5)[:4].tolist()


def _resolve_background(config: ScanConfig, genome_path: Path, cached: dict | None, count) -> Background:
    """The scan's background; ``count()`` returns per-shard A/C/G/T counts when it must be computed."""
    spec = config.background
    if spec == "uniform":
        return Background.uniform()
    if spec != "genome":
        return read_background(spec)
    if cached is not None:
        return Background(np.array(cached["freqs"]), "genome")
    counts = np.array(count()).sum(axis=0)
    return background_from_counts(counts, f"genome {genome_path.name}")


def scan_genome(
    genome_path: str | Path,
    motif_specs: list[str] | list[Motif],
    out_dir: str | Path,
    config: ScanConfig = ScanConfig(),
    *,
    use_ray: bool | None = None,
    address: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
) -> ScanSummary:
    """Scan a genome for every motif; write ``out_dir/instances``.

    Parameters
    ----------
    genome_path : str or Path
        FASTA (its ``.fai`` is built or rebuilt when missing or stale).
    motif_specs : list of str or list of Motif
        Motif files and/or JASPAR IDs (see :func:`scanner.motifs.load_motifs`), or Motif records.
    out_dir : str or Path
        Run directory; the dataset goes to ``out_dir/instances``.
    config : ScanConfig
        Scan settings.
    use_ray : bool, optional
        None (default) applies :func:`scanner.scan.executor.choose_executor`: Ray when there is an
        address, ``RAY_ADDRESS``, a Ray in this process or a running local cluster, else threads of this
        process unless the work is large enough that starting a local Ray costs under 10% of it.
        False forces threads of this process, True forces Ray actors (connecting to ``address`` or a
        running cluster, or starting local Ray in-process). Same output either way.
    address : str, optional
        Ray address (``ray://host:10001``, ``auto``).
    overwrite : bool
        Replace an existing ``instances`` dataset written with other settings. Default False.
    progress : callable, optional
        Called as ``progress(done, total, reused)`` after every finished shard.

    Returns
    -------
    ScanSummary

    Raises
    ------
    InputError
        For a bad genome, motif, chromosome name or setting, or an existing dataset written with other
        settings (without ``overwrite``).
    """
    t0 = time.perf_counter()
    executor = "auto" if use_ray is None else "ray" if use_ray else "local"
    if executor != "ray":  # load the compiled scan kernels while the inputs are read and tables built
        loader = threading.Thread(target=_load_kernels, daemon=True)
        loader.start()
    genome_path = Path(genome_path)
    genome = open_genome(genome_path)
    motifs = (
        load_motifs(list(motif_specs), config.jaspar_release)
        if motif_specs and isinstance(motif_specs[0], str)
        else list(motif_specs)
    )
    if not motifs:
        raise InputError("no motifs given", field="motifs")
    if config.kernel not in ("auto", "numba", "torch"):
        raise InputError(f"kernel must be auto, numba or torch, got {config.kernel!r}", field="kernel")
    if config.pvalue_mode not in ("exact", "fimo"):
        raise InputError(f"pvalue mode must be exact or fimo, got {config.pvalue_mode!r}", field="pvalue_mode")
    if not (0 < config.pvalue <= 1):
        raise InputError(f"p-value threshold must be in (0, 1], got {config.pvalue}", field="pvalue")
    if config.shard_size < 1000:
        raise InputError(f"shard size must be at least 1000 bp, got {config.shard_size}", field="shard_size")
    if config.pseudocount <= 0 and any(np.any(m.probs == 0) for m in motifs):
        raise InputError("a zero pseudocount needs motifs without zero probabilities", field="pseudocount")
    chroms = list(config.chroms) if config.chroms else genome.chroms
    for c in chroms:
        if c not in genome.lengths:
            raise InputError(chrom_mismatch_message(c, genome.lengths), field="chroms")
    lengths = {c: genome.lengths[c] for c in chroms}
    overlap = max(m.length for m in motifs) - 1
    shards = plan_shards(lengths, config.shard_size, overlap)

    from scanner.store import RunDir

    dataset = RunDir(out_dir).dataset("instances")
    dataset.check_writable()
    fp = _fingerprint(genome_path, motifs, config, chroms)
    with dataset.run.lock(dataset.root.name):
        dataset.run.recover()
        published = dataset.record()
        same = published is not None and published.get("fingerprint") == fp
        if published is not None and not same and not overwrite:
            raise InputError(
                f"{dataset.root} holds a scan with other settings (genome, motifs, chromosomes or options "
                "differ); use another --out or pass --overwrite",
                source=dataset.record_path,
            )
        if published is None and dataset.root.exists() and any(dataset.root.iterdir()) and not overwrite:
            raise InputError(
                f"{dataset.root} exists and is not a scanner scan; use another --out or --overwrite",
                source=dataset.root,
            )
        # shards of other settings live in another staging area: never mixed
        staging = dataset.staging(hash_json(fp))
        meta_path = staging.root / SCAN_META
        if same and published.get("complete"):
            _adopt(dataset.root, staging.root)  # a finished scan with these settings: every shard is reused
        cached_bg = published.get("background") if same else None
        if meta_path.is_file():
            cached_bg = json.loads(meta_path.read_text()).get("background") or cached_bg
        return _scan_into(
            staging,
            meta_path,
            fp,
            genome,
            genome_path,
            motifs,
            config,
            chroms,
            lengths,
            shards,
            cached_bg,
            executor,
            address,
            progress,
            t0,
        )


def _adopt(published: Path, staging: Path) -> None:
    """Hard-link a finished scan's files (parts and shard markers) into a staging area of the same settings."""
    for f in published.rglob("*"):
        if f.is_file() and f.name != PUBLISHED:
            dst = staging / f.relative_to(published)
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(f, dst)
                except OSError:
                    shutil.copy2(f, dst)


def _scan_into(
    staging: Staging,
    meta_path: Path,
    fp: dict,
    genome: Genome,
    genome_path: Path,
    motifs: list[Motif],
    config: ScanConfig,
    chroms: list[str],
    lengths: dict[str, int],
    shards: list[Shard],
    cached_bg: dict | None,
    executor: str,
    address: str | None,
    progress: Callable[[int, int, int], None] | None,
    t0: float,
) -> ScanSummary:
    """Scan the shards not yet in the staging area, write the record, publish (see :func:`scan_genome`)."""
    out = staging.root
    warnings = fasta_warnings(genome, chroms)
    if executor not in ("auto", "ray", "local"):
        raise InputError(f"executor must be 'auto', 'ray' or 'local', got {executor!r}", field="executor")
    choice = choose_executor(
        None if executor == "auto" else executor,
        address,
        sum(lengths.values()),
        len(motifs),
        _cores(),
    )
    cache_dir = resolve_cache_dir(config.table_cache)

    def tables() -> tuple[Background, list[PreparedMotif], LookupPlan, float]:
        t = time.perf_counter()
        background = _resolve_background(
            config, genome_path, cached_bg, lambda: [_count_bases(genome, s) for s in shards]
        )
        prepared = prepare_motifs(
            motifs, background, config.pvalue, config.pvalue_mode, config.pseudocount, cache_dir=cache_dir
        )
        return background, prepared, build_lookup_plan(prepared), time.perf_counter() - t

    def _run(tables_future: Future, backend: _LocalBackend | _RayBackend) -> ScanSummary:
        timings = {"setup_s": time.perf_counter() - t0}
        t = time.perf_counter()
        background, prepared, plan, timings["tables_s"] = tables_future.result()
        timings["tables_wait_s"] = time.perf_counter() - t
        meta = {
            "fingerprint": fp,
            "genome": str(genome_path.resolve()),
            "motifs": [_motif_to_dict(m) for m in motifs],
            "pvalue": config.pvalue,
            "pvalue_mode": config.pvalue_mode,
            "pseudocount": config.pseudocount,
            "background": {"freqs": background.to_list(), "source": background.source},
            "shards_total": len(shards),
            "complete": False,
            "warnings": warnings,
        }
        write_text_atomic(json.dumps(meta, indent=2), meta_path)
        done_keys = {p.stem for p in (out / SHARD_DIR).glob("*.json")} if (out / SHARD_DIR).exists() else set()
        todo = [s for s in shards if s.key not in done_keys]
        reused = len(shards) - len(todo)
        if progress:
            progress(reused, len(shards), reused)
        t = time.perf_counter()
        if todo:
            done = [reused]

            def one_done() -> None:
                done[0] += 1
                if progress:
                    progress(done[0], len(shards), reused)

            timings.update(backend.run(todo, background, prepared, plan, one_done))
        timings["shards_s"] = time.perf_counter() - t
        t = time.perf_counter()  # every shard is done: merge the parts of a scan that left very many
        merge = partitions_to_merge(out)
        timings["merged_partitions"] = len(merge)
        if merge:
            timings["merged_parts"] = backend.compact(merge)
        timings["merge_s"] = time.perf_counter() - t
        hits: dict[str, int] = {}
        undecided: dict[str, int] = {}
        for f in (out / SHARD_DIR).glob("*.json"):
            done_shard = json.loads(f.read_text())
            for tf, n in done_shard["hits"].items():
                hits[tf] = hits.get(tf, 0) + n
            for mid, n in done_shard.get("undecided", {}).items():
                undecided[mid] = undecided.get(mid, 0) + n
        pinfo = _pvalue_info(prepared)
        meta["complete"] = True
        meta["hits"] = dict(sorted(hits.items()))
        meta["total_hits"] = sum(hits.values())  # 0 is a valid, complete, empty result
        meta["exact_pvalues"] = {k: bool(v[0]) for k, v in pinfo.items()}
        meta["max_rel_pvalue_error"] = {k: float(v[1]) for k, v in pinfo.items()}
        meta["exact_hit_calls"] = {k: bool(v[2]) and not undecided.get(k) for k, v in pinfo.items()}
        meta["undecided_windows"] = {k: int(undecided.get(k, 0)) for k in pinfo}
        meta["unreachable"] = {k: float(v[3]) for k, v in pinfo.items() if v[3] >= config.pvalue}
        meta["executor"] = {"executor": choice.executor, "reason": choice.reason}
        write_text_atomic(json.dumps(meta, indent=2), meta_path)
        final = staging.publish()
        return ScanSummary(
            out_dir=final,
            shards=len(shards),
            reused=reused,
            hits=meta["hits"],
            seconds=time.perf_counter() - t0,
            background=background.to_list(),
            inexact_motifs=[k for k, v in meta["exact_pvalues"].items() if not v and k not in meta["unreachable"]],
            timings=timings,
            undecided={k: n for k, n in meta["undecided_windows"].items() if n},
            unreachable=meta["unreachable"],
            executor=choice.executor,
            reason=choice.reason,
            warnings=warnings,
        )

    # The background and the motif tables are built in a thread: for Ray, while Ray starts.
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(tables)
        try:
            if choice.executor == "local":
                return _run(future, _LocalBackend(genome, out, config))
            from scanner.runtime import ray_session

            with ray_session(choice.address, uses_data=False):
                return _run(future, _RayBackend(genome_path, motifs, out, config))
        finally:
            future.cancel()


class _LocalBackend:
    """Shards in this process, on one thread per available core (the numba kernels release the GIL,
    and :meth:`Genome.read_codes` is thread-safe), as one Ray node actor runs them."""

    def __init__(self, genome: Genome, out: Path, config: ScanConfig) -> None:
        self.genome, self.out, self.config = genome, out, config

    def run(self, todo, background, prepared, plan, one_done: Callable[[], None]) -> dict[str, float]:
        kernel = "numba" if self.config.kernel == "auto" else self.config.kernel
        threads = max(1, min(len(todo), _cores()))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [
                pool.submit(run_shard, self.genome, s, prepared, plan, self.out, self.config, kernel) for s in todo
            ]
            try:
                for f in as_completed(futures):
                    f.result()
                    one_done()
            except BaseException:
                for f in futures:  # a bad shard stops the others not yet started
                    f.cancel()
                raise
        return {"threads": threads}

    def compact(self, directories: list[Path]) -> int:
        """Merge the partitions' parts (:func:`compact_partition`) on one thread per core."""
        with ThreadPoolExecutor(max_workers=max(1, min(len(directories), _cores()))) as pool:
            return sum(pool.map(compact_partition, directories))


def _load_kernels() -> None:
    from scanner.scan._kernels import warm_up

    try:
        warm_up()
    except Exception:  # the first shard loads (or compiles) them instead
        pass


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _RayBackend:
    """Threaded :class:`ScanNodeWorker` actors fed by :class:`ray.util.ActorPool`, with as many calls in
    flight per actor as it has threads: on each node CPU actors of at most :data:`CPU_ACTOR_THREADS`
    threads (numba) and, with ``kernel="torch"`` on a GPU cluster, one per GPU beside them (see
    :func:`node_actor_specs`).
    Measured on one H200 node with 16 cores, 50 motifs, a 10 Mb call: numba 0.40 s on one core, the
    GPU kernel 0.10 s (its exact rescoring on the host being the bound) after ~4 s of CUDA start.

    The actors are created at once, so that their start-up overlaps the driver's own work.
    """

    def __init__(self, genome_path: Path, motifs: list[Motif], out: Path, config: ScanConfig) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from scanner.runtime import cluster_resources

        use_gpu = cluster_resources().use_gpu
        args = {
            "genome_path": str(genome_path),
            "motifs": [_motif_to_dict(m) for m in motifs],
            "out_dir": str(out),
            "config": asdict(config),
        }

        def actor_config(on_gpu: bool) -> dict:
            # beside GPU actors the CPU actor runs numba: torch on CPU cores is the slower kernel
            gpu_run = use_gpu and config.kernel == "torch"
            return {**args["config"], "kernel": "numba"} if gpu_run and not on_gpu else args["config"]

        # A restarted actor (its process killed) rebuilds its tables; calls in flight are retried on it.
        actor_cls = ray.remote(max_restarts=3, max_task_retries=3)(ScanNodeWorker)
        self.actors: list = []
        self.slots: list = []
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            for resources, threads, on_gpu in node_actor_specs(node.get("Resources", {}), use_gpu, config.kernel):
                actor = actor_cls.options(
                    **resources,
                    max_concurrency=threads,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=True),
                ).remote(**{**args, "config": actor_config(on_gpu)}, use_gpu=on_gpu, threads=threads)
                self.actors.append(actor)
                self.slots.extend([actor] * threads)
        if not self.actors:
            raise InputError("the Ray cluster has no node with a CPU (or GPU) to scan on", field="address")

    def run(self, todo, background, prepared, plan, one_done: Callable[[], None]) -> dict[str, float]:
        import ray
        from ray.util import ActorPool

        bg = background.to_list()
        t = time.perf_counter()
        ref = ray.put((prepared, plan))
        ray.get([a.load.remote(ref, bg) for a in self.actors])
        actors_ready_s = time.perf_counter() - t
        del ref
        for _ in ActorPool(self.slots).map_unordered(lambda a, s: a.scan.remote(s.to_dict(), bg), todo):
            one_done()
        return {"actors": len(self.actors), "threads": len(self.slots), "actors_ready_s": actors_ready_s}

    def compact(self, directories: list[Path]) -> int:
        """Merge the partitions' parts (:func:`compact_partition`) on the actors' threads."""
        from ray.util import ActorPool

        pool = ActorPool(self.slots)
        return sum(pool.map_unordered(lambda a, d: a.compact.remote(str(d)), directories))


@dataclass
class ScanMeta:
    """What a finished scan recorded in ``instances/_scan.json``: enough to score new sequences alike."""

    genome: Path
    motifs: list[Motif]
    background: Background
    pvalue: float
    pvalue_mode: str
    pseudocount: float
    complete: bool

    def prepared(self) -> list[PreparedMotif]:
        """The scan's motifs prepared as the scan prepared them (same p-values, same threshold)."""
        return prepare_motifs(self.motifs, self.background, self.pvalue, self.pvalue_mode, self.pseudocount)


def load_scan_meta(instances_dir: str | Path) -> ScanMeta:
    """Read ``instances_dir/_scan.json``.

    Raises
    ------
    InputError
        If the file is missing or malformed (the directory is not a scanner scan).
    """
    path = Path(instances_dir) / SCAN_META
    if not path.is_file():
        raise InputError(f"{Path(instances_dir)} is not a scanner scan output (no {SCAN_META})", source=path)
    try:
        meta = json.loads(path.read_text())
        motifs = [_motif_from_dict(d, str(path)) for d in meta["motifs"]]
        bg = Background(np.array(meta["background"]["freqs"]), meta["background"].get("source", "genome"))
        return ScanMeta(
            genome=Path(meta["genome"]),
            motifs=motifs,
            background=bg,
            pvalue=float(meta["pvalue"]),
            pvalue_mode=meta["pvalue_mode"],
            pseudocount=float(meta["pseudocount"]),
            complete=bool(meta.get("complete")),
        )
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise InputError(f"malformed scan metadata: {exc}", source=path) from exc


def progress_printer(label: str = "scan") -> Callable[[int, int, int], None]:
    """A shards done/total progress bar on stderr (a redrawn bar on a terminal, lines otherwise)."""
    tty = sys.stderr.isatty()
    state = {"last": -1, "t0": time.perf_counter()}

    def show(done: int, total: int, reused: int) -> None:
        frac = done / total if total else 1.0
        elapsed = time.perf_counter() - state["t0"]
        extra = f" ({reused} reused)" if reused else ""
        if tty:
            bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
            end = "\n" if done >= total else ""
            sys.stderr.write(f"\r{label} [{bar}] {done}/{total} shards{extra} {elapsed:5.1f}s{end}")
            sys.stderr.flush()
        else:
            step = int(10 * frac)
            if step != state["last"] or done >= total:
                state["last"] = step
                print(f"{label}: {done}/{total} shards{extra} {elapsed:.1f}s", file=sys.stderr, flush=True)

    return show
