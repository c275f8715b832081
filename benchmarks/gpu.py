"""The GPU paths on one machine: scan, train, predict and ISM/DeepLIFT on the GPU against the same
work on the machine's CPUs or a bare torch loop on the same GPU, in one script.

Stages (``--stages``, each recorded even if a later one fails):

* ``scan``: a seeded genome (:func:`scan.make_genome`, N gaps and soft-masked runs) and a MEME file
  of motifs (default: 50 seeded JASPAR 2024 vertebrate motifs, as ``benchmarks/scan.py``).
  *Kernel*: :func:`scanner.scan.scan_chunk` on the first chromosome, numba on one CPU thread against
  ``kernel="torch"`` on the GPU (candidates by ``conv1d``, exact rescoring on the host); hit tables
  must be identical. *Genome*: :func:`scanner.scan.scan_genome` on local Ray as it runs by default
  (threaded numba actors of at most 4 threads on the CPUs), with the CPUs dealt into actors of
  ``--scan-actor-cores`` threads instead (default: one actor with all of them; one process's GIL
  limits many threads), with ``kernel="torch"`` (an actor per GPU and
  a numba actor on the remaining cores) and in-process (``use_ray=False``); Ray start-up is
  reported apart; hit counts must agree. Each shard's own wall time (from its marker) gives Mbp/s per
  thread and the threads' occupancy.
* ``predict``: ``--predict-n`` instances (:mod:`scanner.toydata`), the DeepSEA model (random
  weights), 1 kb: a bare torch loop on the GPU (pyarrow read, one pyfaidx fetch per chromosome, numpy
  windows, BN folded, model in batches, Parquet written) against ``scanner predict`` in-process on
  the GPU and through Ray Data on 1 and on ``--predict-actors`` actors sharing the GPU. Overhead =
  Ray / bare - 1.
* ``train``: one epoch of ``--train-n`` rows, DeepSEA model, batch 128, Adam: a bare loop with the
  whole split decoded onto the GPU first (the ideal) against :func:`scanner.train.train_model` on the
  GPU and ``scanner train`` as a Ray task with ``num_gpus=1`` (``--train-epochs`` each, default 2:
  the first epoch of a fresh process includes CUDA's and cuDNN's start). Samples/s overall and per
  epoch; the ratio to the bare loop uses the last epoch.
* ``ism``: the DeepSEA model of ``benchmarks/interpret.py`` on the GPU: fast ISM against naive ISM
  (one forward pass per mutant) on whole 1 kb sequences, with their largest difference; our DeepLIFT
  against captum's ``DeepLift`` (zero reference; both in full float32, as every attribution method
  here runs) and DeepSHAP-style shuffles.

Each timed contender runs ``--repeats`` times; the best is kept. With no GPU it runs on the CPU (for a
smoke check; the figures are then not GPU figures). Run on a GPU machine:
``python benchmarks/gpu.py [--motifs M.meme]``; writes ``benchmarks/results/gpu.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def best_of(fn: Callable[[], object], repeats: int) -> tuple[object, float]:
    """``fn``'s result and its best wall time over ``repeats`` runs (device work included)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        _sync()
        t = time.perf_counter()
        out = fn()
        _sync()
        best = min(best, time.perf_counter() - t)
    return out, best


def env_info() -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "machine": platform.platform(),
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count)
    try:
        import ray

        info["ray"] = ray.__version__
    except ImportError:
        info["ray"] = None
    return info


# ---- scan ------------------------------------------------------------------------------------------


@contextmanager
def _cpu_actor_cores(cores: int | None) -> Iterator[None]:
    """CPU scan actors of at most ``cores`` threads each (None: as the scanner does,
    :data:`~scanner.scan.genome_scan.CPU_ACTOR_THREADS`)."""
    from scanner.scan import genome_scan

    original = genome_scan.node_actor_specs
    if cores is not None:
        genome_scan.node_actor_specs = partial(original, max_threads=cores)
    try:
        yield
    finally:
        genome_scan.node_actor_specs = original


def stage_scan(args: argparse.Namespace, device: str) -> dict:
    import pyarrow as pa
    import ray
    from scan import make_genome, pick_motifs

    from scanner.genome import open_genome
    from scanner.motifs import Background, load_motifs, write_meme
    from scanner.runtime import ray_session
    from scanner.scan import ScanConfig, build_lookup_plan, genome_scan, prepare_motifs, scan_chunk, scan_genome

    work = args.work / "scan"
    work.mkdir(parents=True, exist_ok=True)
    genome_path = work / f"genome_{args.scan_mb}mb.fa"
    if not genome_path.exists():
        make_genome(genome_path, args.scan_mb)
    meme = Path(args.motifs) if args.motifs else write_meme(pick_motifs(50), work / "motifs_50.meme")
    motifs = load_motifs([str(meme)])
    rec: dict = {"genome_mb": args.scan_mb, "motifs": len(motifs), "pvalue": 1e-4}

    # kernel: one chromosome in one call, numba on one thread against the torch kernel on the device
    g = open_genome(genome_path)
    chrom = g.chroms[0]
    codes, lower = g.read_codes(chrom, 0, g.lengths[chrom])
    bg = Background.uniform()
    prepared = prepare_motifs(motifs, bg, 1e-4)
    plan = build_lookup_plan(prepared)

    def run(kernel: str, dev: str) -> pa.Table:
        return scan_chunk(codes, lower, prepared, plan, chrom=chrom, kernel=kernel, device=dev)

    run("numba", "cpu")  # compile
    run("torch", device)  # CUDA context, cuDNN
    ref, t_numba = best_of(lambda: run("numba", "cpu"), args.repeats)
    got, t_torch = best_of(lambda: run("torch", device), args.repeats)
    same = ref.num_rows == got.num_rows and ref.equals(got)
    mbp = len(codes) / 1e6
    rec["kernel"] = {
        "chrom_mbp": round(mbp, 2),
        "hits": ref.num_rows,
        "numba_1_thread_s": round(t_numba, 3),
        f"torch_{device}_s": round(t_torch, 3),
        "numba_mbp_per_s": round(mbp / t_numba, 1),
        f"torch_{device}_mbp_per_s": round(mbp / t_torch, 1),
        "identical_hits": bool(same),
    }
    print(
        f"  scan kernel, {mbp:.1f} Mbp x {len(motifs)} motifs: numba 1 thread {t_numba:.2f} s, "
        f"torch {device} {t_torch:.2f} s, identical: {same}",
        flush=True,
    )

    # genome: scan_genome on local Ray, as it runs by default (numba on the CPUs) and with --kernel torch
    cores = os.cpu_count() or 1
    other = max(1, min(args.scan_actor_cores or cores, cores))
    # name: (kernel, executor, threads per CPU actor or None for the scanner's choice)
    runs: dict[str, tuple[str, str, int | None]] = {"auto: numba actors on the CPUs": ("auto", "ray", None)}
    if other != genome_scan.CPU_ACTOR_THREADS:
        runs[f"auto, CPU actors of {other} threads"] = ("auto", "ray", other)
    if device == "cuda":
        runs["torch: GPU actor + numba actor on the other CPUs"] = ("torch", "ray", None)
    runs["in-process threads (--no-ray)"] = ("auto", "local", None)
    rec["genome"] = {}
    t0 = time.perf_counter()
    with ray_session(num_cpus=cores, uses_data=False):
        rec["ray_start_s"] = round(time.perf_counter() - t0, 2)
        res = ray.cluster_resources()
        rec["ray_cpus"], rec["ray_gpus"] = res.get("CPU", 0), res.get("GPU", 0)
        for name, (kernel, executor, actor_cores) in runs.items():
            best, shard_s = None, 0.0
            for _ in range(args.repeats):
                with _cpu_actor_cores(actor_cores):
                    s = scan_genome(
                        genome_path,
                        motifs,
                        work / "run",
                        ScanConfig(background="uniform", kernel=kernel),
                        use_ray=executor == "ray",
                    )
                if best is None or s.timings["shards_s"] < best.timings["shards_s"]:
                    best = s
                    # each shard's own wall time (its thread's, contention included), from its marker
                    shard_s = sum(json.loads(f.read_text())["seconds"] for f in (work / "run").rglob("_shards/*.json"))
                shutil.rmtree(work / "run")  # the next run scans afresh
            assert best is not None
            busy_s = best.timings["shards_s"] - best.timings.get("actors_ready_s", 0.0)
            threads = int(best.timings.get("threads") or 1)
            rec["genome"][name] = {
                "shards_s": round(best.timings["shards_s"], 2),
                "total_s": round(best.seconds, 2),
                "mbp_per_s": round(args.scan_mb / best.timings["shards_s"], 1),
                "hits": int(sum(best.hits.values())),
                "actors_ready_s": round(best.timings.get("actors_ready_s", 0.0), 2),
                "actors": best.timings.get("actors"),
                "threads": threads,
                "shard_thread_s": round(shard_s, 2),
                "mbp_per_thread_s": round(args.scan_mb / shard_s, 1) if shard_s else None,
                "thread_occupancy": round(shard_s / (threads * busy_s), 3) if busy_s > 0 else None,
            }
            print(f"  scan_genome {name}: {rec['genome'][name]}", flush=True)
    hits = {v["hits"] for v in rec["genome"].values()}
    rec["genome_hits_agree"] = len(hits) == 1
    return rec


# ---- predict ---------------------------------------------------------------------------------------


def _predict_inputs(work: Path, n: int, arch: str) -> tuple[Path, Path, Path]:
    import torch

    from scanner.models import ModelSpec, build_model, save_checkpoint
    from scanner.toydata import write_toy_genome, write_toy_instances

    genome, instances, models = work / "genome.fa", work / "instances", work / "models"
    stamp = work / f"_made_{n}_{arch}"
    if not stamp.exists():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        sizes = {f"chr{i}": 4_000_000 for i in range(1, 6)}
        write_toy_genome(genome, sizes, seed=0)
        write_toy_instances(instances, genome, tfs=("TOY",), files_per_chrom=2, n_per_chrom=n // len(sizes), seed=0)
        torch.manual_seed(0)
        spec = ModelSpec(arch=arch, seq_len=1000)
        save_checkpoint(build_model(spec).eval(), spec, models / "tf=TOY" / "regime=pvalue", {"tf": "TOY"})
        stamp.write_text("")
    return genome, instances, models


def stage_predict(args: argparse.Namespace, device: str) -> dict:
    from predict import bare_loop

    from scanner.predict.run import PredictConfig, predict
    from scanner.runtime import ray_session

    work = args.work / "predict"
    genome, instances, models = _predict_inputs(work, args.predict_n, args.arch)
    b = args.predict_batch
    rec: dict = {"n": args.predict_n, "arch": args.arch, "batch_size": b, "results": {}}

    def scanner_predict(use_ray: bool, actors: int | None = None) -> Callable[[], int]:
        cfg = PredictConfig(batch_size=b, chunk_rows=args.chunk_rows, actors=actors)
        return lambda: predict(instances, models, work / "out", cfg, use_ray=use_ray).rows

    contenders = {
        f"bare torch loop ({device})": lambda: bare_loop(
            genome, instances, models, work / "bare", os.cpu_count() or 1, b, fused=True, device=device
        ),
        f"scanner predict, in-process ({device})": scanner_predict(False),
        "scanner predict, Ray, 1 actor": scanner_predict(True, 1),
        f"scanner predict, Ray, {args.predict_actors} actors": scanner_predict(True, args.predict_actors),
    }
    contenders[f"bare torch loop ({device})"]()  # warm-up: CUDA context, cuDNN, page cache
    t0 = time.perf_counter()
    with ray_session(num_cpus=os.cpu_count()):
        rec["ray_start_s"] = round(time.perf_counter() - t0, 2)
        for name, fn in contenders.items():
            rows, sec = best_of(fn, args.repeats)
            rec["results"][name] = {"seconds": round(sec, 2), "instances_per_s": round(rows / sec, 1), "rows": rows}
            print(f"  {name}: {sec:.2f} s, {rows / sec:.0f} inst/s", flush=True)
    if device != "cpu":  # the same windows on the CPU and on the device
        import torch

        from scanner.models import load_checkpoint
        from scanner.predict.apply import predict_codes

        codes = np.random.default_rng(0).integers(0, 4, (1024, 1000)).astype(np.uint8)
        model, _ = load_checkpoint(models / "tf=TOY" / "regime=pvalue")
        on_cpu = predict_codes(model.eval(), codes, batch_size=b)
        on_dev = predict_codes(model.to(device), codes, batch_size=b, device=device)
        rec["logit_max_abs_diff_vs_cpu"] = float(np.abs(on_cpu - on_dev).max())
        rec["logit_sd"] = float(on_cpu.std())
        rec["tf32_convolutions"] = bool(torch.backends.cudnn.allow_tf32)
    bare = rec["results"][f"bare torch loop ({device})"]["seconds"]
    for v in rec["results"].values():
        v["vs_bare"] = round(v["seconds"] / bare, 3)
    return rec


# ---- train -----------------------------------------------------------------------------------------


def bare_train_epoch(data: Path, batch: int, device: str, arch: str) -> tuple[int, float]:
    """The ideal: the whole split decoded onto the device first, then Adam steps (loop time only)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from scanner.models import ModelSpec, build_model

    files = sorted((data / "regime=pvalue" / "tf=T1" / "split=train").glob("*.parquet"))
    t = pa.concat_tables([pq.read_table(f, columns=["window", "label"]) for f in files])
    lut = np.full(256, 4, np.uint8)
    for i, ch in enumerate(b"ACGT"):
        lut[ch] = i
    w = len(t.column("window")[0].as_py())
    codes = lut[np.frombuffer("".join(t.column("window").to_pylist()).encode(), np.uint8)].reshape(-1, w)
    table = torch.zeros(5, 4, device=device)
    table[torch.arange(4), torch.arange(4)] = 1
    table[4] = 0.25
    x = table[torch.from_numpy(codes).to(device).long()].transpose(1, 2).contiguous()
    y = torch.from_numpy(t.column("label").to_numpy().astype(np.float32)).to(device)
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch=arch, seq_len=w)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    _sync()
    t0 = time.perf_counter()
    perm = torch.randperm(len(y), device=device)
    for lo in range(0, len(y) - 1, batch):
        idx = perm[lo : lo + batch]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]).reshape(-1), y[idx]).backward()
        opt.step()
    _sync()
    return len(y), time.perf_counter() - t0


def stage_train(args: argparse.Namespace, device: str) -> dict:
    from scanner.runtime import ray_session
    from scanner.toydata import write_toy_datasets
    from scanner.train import TrainConfig, train_model, train_models

    work = args.work / "train"
    data = work / "datasets"
    stamp = work / f"_made_{args.train_n}"
    if not stamp.exists():
        shutil.rmtree(work, ignore_errors=True)
        write_toy_datasets(
            data,
            tfs=("T1",),
            sizes={"train": args.train_n, "val": 500, "test": 10},
            width=1000,
            seed=0,
            row_group_size=4096,
        )
        stamp.write_text("")
    cpus = min(4, os.cpu_count() or 1)  # threads of the data-decoding side; the model runs on the device
    cfg = TrainConfig(
        arch=args.arch, epochs=args.train_epochs, batch_size=128, lr=1e-3, seed=0, cpus_per_model=cpus, patience=99
    )
    rec: dict = {"n_train": args.train_n, "arch": args.arch, "batch_size": 128, "epochs": cfg.epochs, "results": {}}

    def rates(r) -> tuple[float, list[float]]:  # overall and per-epoch samples/s
        return r.samples_per_s, [r.n_train / s for s in r.epoch_seconds]

    def in_process() -> tuple[float, list[float]]:
        return rates(train_model(data, "T1", "pvalue", work / "local", cfg, device=device, evaluate=False))

    def on_ray() -> tuple[float, list[float]]:
        (r,) = train_models(data, work / "ray", cfg, tfs=["T1"], regimes=["pvalue"], evaluate=False)
        return rates(r)

    def bare() -> tuple[float, list[float]]:
        n, sec = bare_train_epoch(data, 128, device, args.arch)
        return n / sec, [n / sec]

    contenders = {f"bare torch loop, data on {device}": bare, f"scanner train, in-process ({device})": in_process}
    bare()  # warm-up
    t0 = time.perf_counter()
    with ray_session(num_cpus=os.cpu_count()):
        rec["ray_start_s"] = round(time.perf_counter() - t0, 2)
        contenders["scanner train, Ray task"] = on_ray
        for name, fn in contenders.items():
            best_sps, best_wall, best_epochs = 0.0, float("inf"), []
            for _ in range(args.repeats):
                t = time.perf_counter()
                sps, epochs = fn()
                best_wall = min(best_wall, time.perf_counter() - t)
                if sps > best_sps:
                    best_sps, best_epochs = sps, epochs
            rec["results"][name] = {
                "samples_per_s": round(best_sps, 1),
                "epoch_samples_per_s": [round(e, 1) for e in best_epochs],
                "last_epoch_samples_per_s": round(best_epochs[-1], 1),
                "wall_s": round(best_wall, 2),
            }
            print(
                f"  {name}: {best_sps:.0f} samples/s, per epoch {rec['results'][name]['epoch_samples_per_s']} "
                f"(wall {best_wall:.1f} s)",
                flush=True,
            )
    bare_sps = rec["results"][f"bare torch loop, data on {device}"]["last_epoch_samples_per_s"]
    for v in rec["results"].values():
        v["bare_over_last_epoch"] = round(bare_sps / v["last_epoch_samples_per_s"], 3)
    return rec


# ---- ISM / DeepLIFT --------------------------------------------------------------------------------


def stage_ism(args: argparse.Namespace, device: str) -> dict:
    import torch
    from captum.attr import DeepLift
    from interpret import L, _model

    from scanner.interpret import FastISM, deeplift, ism
    from scanner.runtime import full_float32

    model = _model(0).to(device)
    g = torch.Generator().manual_seed(1)
    n = max(args.ism_seqs, args.dl_seqs)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (n, L), generator=g), 4).permute(0, 2, 1).float().to(device)
    rec: dict = {"seq_len": L, "results": {}}

    def add(name: str, seqs: int, sec: float) -> None:
        rec["results"][name] = {"sequences": seqs, "seconds": round(sec, 3), "seq_per_s": round(seqs / sec, 2)}
        print(f"  {name}: {seqs / sec:.2f} seq/s ({seqs} in {sec:.2f} s)", flush=True)

    xs = x[: args.ism_seqs]
    ism(model, xs[:1], end=50, fast=False)  # warm-up
    naive, t = best_of(lambda: ism(model, xs, fast=False, batch_size=args.naive_batch), 1)
    add("naive ISM (one forward pass per mutant)", len(xs), t)
    with torch.inference_mode():
        plan, t_plan = best_of(lambda: FastISM(model, L), 1)
        plan(xs[:1])
        fast, t = best_of(lambda: plan(xs).cpu(), args.repeats)
    add("fast ISM (plan built once)", len(xs), t)
    span = float(naive.max() - naive.min())
    rec["fast_vs_naive_max_abs_diff"] = float((fast - naive).abs().max())
    rec["ism_range"] = span
    rec["plan_build_s"] = round(t_plan, 3)
    rec["fast_over_naive"] = round(rec["results"]["naive ISM (one forward pass per mutant)"]["seconds"] / t, 1)
    print(f"  fast vs naive: max |diff| {rec['fast_vs_naive_max_abs_diff']:.2e} (range {span:.2f})", flush=True)

    xd = x[: args.dl_seqs]

    def captum_zero() -> torch.Tensor:
        out = []
        with full_float32():  # as ours runs (every attribution method runs without TF32)
            for i in range(0, len(xd), 64):
                xi = xd[i : i + 64].clone()
                out.append(DeepLift(model).attribute(xi, baselines=torch.zeros_like(xi), target=0).detach())
        return torch.cat(out)

    captum_zero()
    deeplift(model, xd[:2], reference="zero")
    theirs, t = best_of(captum_zero, args.repeats)
    add("captum DeepLift, zero reference", len(xd), t)
    ours, t = best_of(lambda: deeplift(model, xd, reference="zero", batch_size=64), args.repeats)
    add("scanner deeplift, zero reference", len(xd), t)
    _, t = best_of(lambda: deeplift(model, xd, reference="shuffle", n_shuffles=10, batch_size=64), 1)
    add("scanner deeplift, 10 dinucleotide shuffles", len(xd), t)
    a = ours.attributions
    rec["deeplift_vs_captum_max_abs_diff"] = float((a.to(theirs.device) - theirs).abs().max())
    return rec


# ---- main ------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default="scan,predict,train,ism")
    ap.add_argument("--device", default="auto", help="auto (cuda when visible), cuda or cpu")
    ap.add_argument("--arch", default="deepsea", help="model of the predict and train stages")
    ap.add_argument("--motifs", help="MEME file for the scan stage (default: 50 JASPAR motifs via pyjaspar)")
    ap.add_argument("--scan-mb", type=int, default=50)
    ap.add_argument(
        "--scan-actor-cores", type=int, default=0, help="also scan with CPU actors of this many threads (0: all cores)"
    )
    ap.add_argument("--predict-n", type=int, default=200_000)
    ap.add_argument("--predict-batch", type=int, default=512)
    ap.add_argument("--predict-actors", type=int, default=4)
    ap.add_argument("--chunk-rows", type=int, default=16384)
    ap.add_argument("--train-n", type=int, default=20_000)
    ap.add_argument("--train-epochs", type=int, default=2, help="epochs of the scanner contenders")
    ap.add_argument("--ism-seqs", type=int, default=8)
    ap.add_argument("--naive-batch", type=int, default=1024)
    ap.add_argument("--dl-seqs", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "gpu")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "gpu.json")
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    warnings.filterwarnings("ignore")  # captum's notes on hooks and gradients
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    args.work.mkdir(parents=True, exist_ok=True)
    record: dict = {"env": env_info(), "device": device, "args": {k: str(v) for k, v in vars(args).items()}}
    print(json.dumps(record["env"]), flush=True)
    stages = {"scan": stage_scan, "predict": stage_predict, "train": stage_train, "ism": stage_ism}
    for name in args.stages.split(","):
        print(f"== {name}", flush=True)
        t = time.perf_counter()
        try:
            record[name] = stages[name](args, device)
        except Exception as exc:  # one stage failing must not lose the others' figures
            traceback.print_exc()
            record[name] = {"error": f"{type(exc).__name__}: {exc}"}
        record[name]["stage_s"] = round(time.perf_counter() - t, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
