"""Throughput of ``scanner predict`` through Ray against a bare torch loop over the same rows and model.

Everything is synthetic and seeded: a random genome, N motif instances spread over its chromosomes
(``tf=/chrom=`` partitions as ``scanner scan`` writes them), one small model (random weights, 1 kb
input). Each contender reads the instances, cuts the 1 kb windows from the FASTA, one-hot encodes,
runs the model and writes Parquet:

* ``bare torch loop (T threads)``: a plain script: pyarrow read, one pyfaidx fetch per chromosome,
  numpy gather of windows, ``model(x)`` in batches, ``pq.write_table``. No scanner code in the loop.
  The ``BN folded`` variant runs the model through :func:`scanner.models.fuse_for_inference` first,
  as ``scanner predict`` does. ``(2 processes)`` deals the instance files to two fresh processes of
  one torch thread each (ideal parallelism without a framework, their start-up included). The fastest
  BN-folded bare variant is the reference for the Ray overhead.
* ``scanner predict, in-process``: :func:`scanner.predict.predict` with ``use_ray=False``.
* ``scanner predict, Ray``: the same through Ray Data actors (local Ray already started; its start-up
  time is reported separately, as a cluster would already be up).

Overhead = Ray wall time / best bare-loop (BN folded) wall time - 1; each contender runs ``--repeats``
times in rotating order and its best time is kept (the shared machine's load drifts). The Ray run is
also split, from the items' own clocks (:attr:`PredictSummary.timings`), into start-up (call to the
first item's start: Ray Data's pipeline, actor processes importing ray.data and torch, models
loaded) and the steady part (first item's start to last item's end); *steady-state overhead* = that
part / best bare loop - 1.
Run: ``python benchmarks/predict.py [--n 100000]``.
Writes ``benchmarks/results/predict.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_inputs(work: Path, n: int, seed: int, seq_len: int) -> tuple[Path, Path, Path]:
    """Genome, instances and one model under ``work`` (reused when already there)."""
    import torch

    from scanner.models import ModelSpec, build_model, save_checkpoint
    from scanner.toydata import write_toy_genome, write_toy_instances

    genome = work / "genome.fa"
    instances = work / "instances"
    models = work / "models"
    if not (instances / "_scan.json").exists():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        sizes = {f"chr{i}": 2_000_000 for i in range(1, 6)}
        write_toy_genome(genome, sizes, seed=seed)
        write_toy_instances(instances, genome, tfs=("TOY",), n_per_chrom=n // len(sizes), seed=seed)
        torch.manual_seed(seed)
        spec = ModelSpec(arch="small", seq_len=seq_len)
        save_checkpoint(build_model(spec).eval(), spec, models / "tf=TOY" / "regime=pvalue", {"tf": "TOY"})
    return genome, instances, models


def bare_loop(
    genome: Path,
    instances: Path,
    models: Path,
    out: Path,
    threads: int,
    batch: int,
    fused: bool = False,
    part: tuple[int, int] = (0, 1),
    device: str = "cpu",
) -> int:
    """The reference: a plain loop over the same rows and model (``fused``: BatchNorm folded, as
    scanner predict does; ``part=(i, k)``: only every k-th instance file from the i-th, for the
    multi-process variant; ``device``: on an accelerator each file's windows travel once as bytes and
    are one-hot encoded there, logits come back once per file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyfaidx
    import torch

    torch.set_num_threads(threads)
    if part[1] == 1:
        shutil.rmtree(out, ignore_errors=True)
    meta = json.loads((models / "tf=TOY" / "regime=pvalue" / "model.json").read_text())
    from scanner.models import ModelSpec, build_model

    model = build_model(ModelSpec.from_dict(meta["spec"]))
    model.load_state_dict(torch.load(models / "tf=TOY" / "regime=pvalue" / "model.pt", weights_only=True))
    model.eval()
    if fused:
        from scanner.models import fuse_for_inference

        model = fuse_for_inference(model)
    model = model.to(device)
    w = int(meta["spec"]["seq_len"])
    lut = np.full(256, 4, np.uint8)
    for i, b in enumerate(b"ACGT"):
        lut[b] = i
        lut[b + 32] = i
    table = np.zeros((5, 4), np.float32)
    table[np.arange(4), np.arange(4)] = 1
    table[4] = 0.25
    table_dev = torch.from_numpy(table).to(device)
    fa = pyfaidx.Fasta(str(genome), as_raw=True)
    rows = 0
    for f in sorted(instances.rglob("*.parquet"))[part[0] :: part[1]]:
        t = pq.read_table(f)
        chrom = t.column("chrom")[0].as_py()
        seq = lut[np.frombuffer(str(fa[chrom][:]).encode(), np.uint8)]
        padded = np.concatenate([np.full(w, 4, np.uint8), seq, np.full(w, 4, np.uint8)])
        s, e = t.column("start").to_numpy(), t.column("end").to_numpy()
        ws = (s + e) // 2 - w // 2 + w
        logits = np.empty(len(s), np.float32)
        with torch.inference_mode():
            if device == "cpu":
                for lo in range(0, len(s), batch):
                    codes = padded[ws[lo : lo + batch, None] + np.arange(w)]
                    x = torch.from_numpy(np.ascontiguousarray(table[codes].transpose(0, 2, 1)))
                    logits[lo : lo + len(codes)] = model(x).reshape(-1).numpy()
            else:
                dev_codes = torch.from_numpy(padded[ws[:, None] + np.arange(w)]).to(device)
                parts = [
                    model(table_dev[dev_codes[lo : lo + batch].long()].transpose(1, 2).contiguous()).reshape(-1)
                    for lo in range(0, len(s), batch)
                ]
                logits[:] = torch.cat(parts).float().cpu().numpy()
        prob = 1 / (1 + np.exp(-logits))
        res = t.append_column("logit", pa.array(logits)).append_column("prob_bound", pa.array(prob))
        o = out / f.parent.parent.name / f.parent.name / f.name
        o.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(res, o)
        rows += t.num_rows
    return rows


def bare_processes(genome: Path, instances: Path, models: Path, out: Path, procs: int, batch: int) -> int:
    """The BN-folded bare loop split over ``procs`` fresh processes of one torch thread each (the
    instance files dealt round-robin): ideal parallelism with no framework, process start included."""
    import multiprocessing as mp

    shutil.rmtree(out, ignore_errors=True)
    args = [(genome, instances, models, out, 1, batch, True, (i, procs)) for i in range(procs)]
    with mp.get_context("spawn").Pool(procs) as pool:
        return sum(pool.starmap(bare_loop, args))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="instances (default 1e5)")
    ap.add_argument("--seq-len", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--chunk-rows", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "predict")
    ap.add_argument("--repeats", type=int, default=2, help="rounds; the best time of each is kept")
    args = ap.parse_args()
    from _allocator import same_allocator_for_all

    same_allocator_for_all()  # every contender allocates the same way (see _allocator.py)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    from scanner.predict.run import PredictConfig, predict
    from scanner.runtime import ray_session

    t = time.perf_counter()
    genome, instances, models = make_inputs(args.work, args.n, args.seed, args.seq_len)
    print(f"inputs ready in {time.perf_counter() - t:.1f} s ({args.work})")
    results: dict[str, list[float]] = {}
    rows = {}

    import torch

    cfg = PredictConfig(batch_size=args.batch_size, chunk_rows=args.chunk_rows)

    def bare(threads: int, fused: bool):
        out = args.work / "out_bare"
        return lambda: bare_loop(genome, instances, models, out, threads, args.batch_size, fused)

    spans: dict[str, list[dict[str, float]]] = {}  # scanner contenders: timings of every run

    def scanner_predict(name: str, use_ray: bool):
        def run() -> int:
            torch.set_num_threads(1)
            out = args.work / ("out_ray" if use_ray else "out_local")
            s = predict(instances, models, out, cfg, use_ray=use_ray)
            spans.setdefault(name, []).append(s.timings)
            return s.rows

        return run

    contenders = {
        "bare torch loop (1 thread)": bare(1, False),
        "bare torch loop, BN folded (1 thread)": bare(1, True),
        "bare torch loop, BN folded (2 threads)": bare(2, True),
        f"bare torch loop, BN folded ({os.cpu_count()} processes)": lambda: bare_processes(
            genome, instances, models, args.work / "out_bare", os.cpu_count() or 1, args.batch_size
        ),
        "scanner predict, in-process (1 thread)": scanner_predict("scanner predict, in-process (1 thread)", False),
        "scanner predict, Ray": scanner_predict("scanner predict, Ray", True),
    }
    t0 = time.perf_counter()
    with ray_session(num_cpus=os.cpu_count()):  # the cluster is up before timing, as on a real one
        ray_start = time.perf_counter() - t0
        print(f"  Ray start-up: {ray_start:.1f} s (not counted)")
        names = list(contenders)
        for r in range(args.repeats):  # rotate the order: the machine's load drifts between runs
            for name in names[r % len(names) :] + names[: r % len(names)]:
                t1 = time.perf_counter()
                rows[name] = contenders[name]()
                results.setdefault(name, []).append(time.perf_counter() - t1)
                print(f"  {name}: {results[name][-1]:.1f} s", flush=True)
    best = {k: min(v) for k, v in results.items()}
    ref_name = min((k for k in best if k.startswith("bare torch loop, BN")), key=best.get)
    ref = best[ref_name]
    table = []
    for name, sec in best.items():
        table.append(
            {
                "method": name,
                "seconds": round(sec, 2),
                "instances_per_s": round(rows[name] / sec, 1),
                "vs_best_bare": round(sec / ref, 3),
            }
        )
    ray_overhead = best["scanner predict, Ray"] / ref - 1
    ray_vs_local = best["scanner predict, Ray"] / best["scanner predict, in-process (1 thread)"] - 1
    # Steady state: Ray from its first item's start to its last item's end (the items' own clocks),
    # against the bare loop's whole time (its start-up is loading one small checkpoint).
    ray_runs = spans["scanner predict, Ray"]
    ray_best = ray_runs[results["scanner predict, Ray"].index(best["scanner predict, Ray"])]
    steady_overhead = ray_best["items_s"] / ref - 1
    print(f"\n{args.n} instances, small model, {args.seq_len} bp, CPU x{os.cpu_count()}")
    print(f"{'method':48s} {'seconds':>8s} {'inst/s':>9s} {'x best bare':>11s}")
    for r in table:
        print(f"{r['method']:48s} {r['seconds']:8.1f} {r['instances_per_s']:9.0f} {r['vs_best_bare']:11.3f}")
    print(f"Ray overhead vs {ref_name}: {100 * ray_overhead:+.1f}% (target < 10%)")
    print(
        f"  of which start-up (call to first item): {ray_best['first_item_s']:.1f} s; items "
        f"{ray_best['items_s']:.1f} s: steady-state overhead {100 * steady_overhead:+.1f}%"
    )
    print(f"Ray vs scanner predict in-process: {100 * ray_vs_local:+.1f}%")
    out = HERE / "results" / "predict.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "n": args.n,
                "seq_len": args.seq_len,
                "batch_size": args.batch_size,
                "chunk_rows": args.chunk_rows,
                "cpus": os.cpu_count(),
                "ray_startup_s": round(ray_start, 2),
                "results": table,
                "reference": ref_name,
                "ray_overhead": round(ray_overhead, 4),
                "ray_first_item_s": round(ray_best["first_item_s"], 2),
                "ray_items_s": round(ray_best["items_s"], 2),
                "ray_steady_overhead": round(steady_overhead, 4),
                "ray_timings_all_runs": ray_runs,
                "ray_vs_in_process": round(ray_vs_local, 4),
                "machine": platform.platform(),
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
