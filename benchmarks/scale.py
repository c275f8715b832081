"""Scaling of the scan and predict stages with Ray workers, and a paper estimate for a human genome.

Input (seeded, built once under ``benchmarks/_work/scale``): a simulated genome (``scanner simulate``,
``--size-mb`` Mb) scanned for ``--motifs`` JASPAR vertebrate motifs (the shared JASPAR 2024 file; the
simulated motifs when it is absent), and random-weight ``small`` models for three of the TFs.

For each worker count k in ``--workers`` (default 1 2), a fresh local Ray with k CPUs runs
:func:`scanner.scan.scan_genome` (shards of ``--shard-mb`` Mb, one actor with k threads) and
:func:`scanner.predict.predict` (k actors), each into an empty directory; speedup = time at 1 worker
/ time at k. The in-process executors (no Ray) are timed too, as the overhead reference. Each
contender runs ``--repeats`` times and keeps its best (the machine is shared; its load average is
recorded before and after).

Per-shard costs measured here (CPU core-seconds per Mb per motif for the scan from the shards' own
timings; per instance per model for predict, small and DeepSEA networks) then give the estimate for
a human genome (3.1 Gb) x 800 motifs x 38 TFs: core-hours per stage and wall time on N GPU nodes.
GPU speeds were not measured (no GPU here); the estimate states the assumption it uses for them.
Run: ``python benchmarks/scale.py``. Writes ``benchmarks/results/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
JASPAR = HERE.parents[1] / "shared" / "data" / "motifs" / "JASPAR2024_CORE_vertebrates_nonredundant.meme"

#: Human genome size used by the estimate (GRCh38 primary assembly, bp).
HUMAN_BP = 3.1e9
#: Assumed GPU throughput of the DeepSEA-style forward pass, sequences/s per GPU (A10G/V100 class).
#: Not measured here: the fastISM anchors (Tesla P100, Basset, 1 kb: gradient x input 0.04 s per 100
#: sequences, i.e. ~2,500/s forward+backward) put a forward pass at several thousand per second; the
#: DeepSEA-style network here has ~2x Basset's convolution FLOPs, so 2,000/s is taken as a cautious value.
ASSUMED_GPU_DEEPSEA_PER_S = 2000.0


def make_inputs(work: Path, size_mb: float, n_motifs: int, seed: int) -> tuple[Path, list, Path]:
    """Simulated genome, motif list and a models directory (reused when present)."""
    import torch

    from scanner.models import ModelSpec, build_model, save_checkpoint
    from scanner.motifs import load_motifs
    from scanner.simulate.genome import SimulationConfig, simulate

    sim = work / "sim"
    config = SimulationConfig(size_mb=size_mb, n_chroms=4, tfs=("ALPHA", "BETA", "GAMMA"), seed=seed)
    made = json.loads((sim / "simulation.json").read_text())["config"] if (sim / "simulation.json").exists() else None
    if made is None or made["size_mb"] != size_mb or made["seed"] != seed:
        shutil.rmtree(work, ignore_errors=True)
        simulate(sim, config)
    motifs = load_motifs([str(sim / "motifs.meme")])
    if JASPAR.is_file():
        extra = load_motifs([str(JASPAR)])
        motifs = motifs + extra[: max(0, n_motifs - len(motifs))]
    models = work / "models"
    if not (models / "tf=ALPHA" / "regime=pvalue" / "model.json").exists():
        torch.manual_seed(seed)
        spec = ModelSpec(arch="small", seq_len=1000)
        for tf in ("ALPHA", "BETA", "GAMMA"):
            save_checkpoint(build_model(spec).eval(), spec, models / f"tf={tf}" / "regime=pvalue", {"tf": tf})
    return sim / "genome.fa", motifs, models


def shard_costs(instances: Path) -> tuple[float, int]:
    """Sum of the shards' own seconds and bases (from the scan's shard markers)."""
    secs, bases = 0.0, 0
    for f in (instances / "_shards").glob("*.json"):
        d = json.loads(f.read_text())
        secs += d["seconds"]
        bases += d["bases"]
    return secs, bases


def time_scan(genome: Path, motifs: list, out: Path, shard_bp: int, executor: str) -> dict:
    from scanner.scan import ScanConfig, scan_genome

    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    summary = scan_genome(
        genome, motifs, out, ScanConfig(shard_size=shard_bp, kernel="numba"), use_ray=executor == "ray"
    )
    wall = time.perf_counter() - t
    secs, bases = shard_costs(out / "instances")
    return {
        "wall_s": wall,
        "shards": summary.shards,
        "hits": sum(summary.hits.values()),
        "shard_cpu_s": secs,
        "bases": bases,
    }


def time_predict(instances: Path, models: Path, out: Path, use_ray: bool, actors: int | None) -> dict:
    from scanner.predict.run import PredictConfig, predict

    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    # the three simulated TFs' instances, each scored by all three models with reverse-complement
    # averaging: enough forward passes that compute, not start-up, dominates
    config = PredictConfig(chunk_rows=2048, actors=actors, cross_tf=True, rc_average=True)
    s = predict(instances, models, out, config, tfs=["ALPHA", "BETA", "GAMMA"], use_ray=use_ray)
    return {"wall_s": time.perf_counter() - t, "rows": s.rows, "items": s.files}


def deepsea_forward_rate(n: int = 64, threads: int = 1) -> float:
    """Sequences per second of the DeepSEA-style forward pass on ``threads`` CPU threads (random weights)."""
    import torch

    from scanner.models import ModelSpec, build_model, fuse_for_inference

    torch.set_num_threads(threads)
    model = fuse_for_inference(build_model(ModelSpec(arch="deepsea", seq_len=1000)).eval())
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (n, 1000)), 4).float().transpose(1, 2).contiguous()
    with torch.inference_mode():
        model(x[:8])
        t = time.perf_counter()
        for lo in range(0, n, 32):
            model(x[lo : lo + 32])
        return n / (time.perf_counter() - t)


def estimate(
    scan_core_s_per_mb_motif: float,
    hits_per_mb_motif: float,
    predict_core_s_per_row_small: float,
    deepsea_core_per_s: float,
    gpus: list[int],
    cores_per_gpu_node: int = 4,
) -> dict:
    """Human genome x 800 motifs x 38 TFs (3 regimes, own-TF models and the 38 x 38 cross-TF matrix)."""
    mb = HUMAN_BP / 1e6
    scan_core_h = scan_core_s_per_mb_motif * mb * 800 / 3600
    instances_38 = hits_per_mb_motif * mb * 38  # one motif per TF (the reference's setting)
    rows_own = instances_38 * 3
    rows_cross = instances_38 * 38 * 3
    predict_small_core_h = predict_core_s_per_row_small * rows_own / 3600
    deepsea_cpu_core_h_own = rows_own / deepsea_core_per_s / 3600
    deepsea_gpu_h_own = rows_own / ASSUMED_GPU_DEEPSEA_PER_S / 3600
    deepsea_gpu_h_cross = rows_cross / ASSUMED_GPU_DEEPSEA_PER_S / 3600
    per_n = []
    for n in gpus:
        cores = n * cores_per_gpu_node
        per_n.append(
            {
                "gpu_nodes": n,
                "cpu_cores": cores,
                "scan_wall_h": scan_core_h / cores,
                "predict_deepsea_own_wall_h": deepsea_gpu_h_own / n,
                "predict_deepsea_cross_tf_wall_h": deepsea_gpu_h_cross / n,
            }
        )
    return {
        "genome_bp": HUMAN_BP,
        "motifs": 800,
        "tfs": 38,
        "regimes": 3,
        "scan_core_hours": scan_core_h,
        "instances_of_the_38_tfs": instances_38,
        "prediction_rows_own_tf": rows_own,
        "prediction_rows_cross_tf": rows_cross,
        "predict_small_core_hours_own_tf": predict_small_core_h,
        "predict_deepsea_cpu_core_hours_own_tf": deepsea_cpu_core_h_own,
        "predict_deepsea_gpu_hours_own_tf": deepsea_gpu_h_own,
        "predict_deepsea_gpu_hours_cross_tf": deepsea_gpu_h_cross,
        "assumed_gpu_deepsea_seq_per_s": ASSUMED_GPU_DEEPSEA_PER_S,
        "scan_on": f"CPU cores of the GPU nodes ({cores_per_gpu_node} per node, numba kernel)",
        "per_cluster_size": per_n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=16.0)
    ap.add_argument("--motifs", type=int, default=160)
    ap.add_argument("--shard-mb", type=float, default=0.5)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--gpus", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import torch

    from scanner.runtime import ray_session

    torch.set_num_threads(1)
    work = HERE / "_work" / "scale"
    genome, motifs, models = make_inputs(work, args.size_mb, args.motifs, args.seed)
    shard_bp = int(args.shard_mb * 1e6)
    load_before = os.getloadavg()
    t_all = time.perf_counter()

    # in-process references (no Ray): the same kernels one shard / item after another
    local_scan = min(
        (time_scan(genome, motifs, work / "scan_local", shard_bp, "local") for _ in range(args.repeats)),
        key=lambda r: r["wall_s"],
    )
    instances = work / "scan_local" / "instances"
    local_pred = min(
        (time_predict(instances, models, work / "pred_local", False, None) for _ in range(args.repeats)),
        key=lambda r: r["wall_s"],
    )

    runs = []
    for k in args.workers:
        t = time.perf_counter()
        with ray_session(num_cpus=k, object_store_memory=256 << 20):
            startup = time.perf_counter() - t
            scans = [time_scan(genome, motifs, work / f"scan_ray{k}", shard_bp, "ray") for _ in range(args.repeats)]
            preds = [time_predict(instances, models, work / f"pred_ray{k}", True, k) for _ in range(args.repeats)]
        scan, pred = min(scans, key=lambda r: r["wall_s"]), min(preds, key=lambda r: r["wall_s"])
        assert scan["hits"] == local_scan["hits"] and pred["rows"] == local_pred["rows"]
        runs.append(
            {
                "workers": k,
                "ray_startup_s": startup,
                "scan": scan,
                "predict": pred,
                "scan_all_s": [r["wall_s"] for r in scans],
                "predict_all_s": [r["wall_s"] for r in preds],
            }
        )
    base = runs[0]
    for r in runs:
        r["scan_speedup"] = base["scan"]["wall_s"] / r["scan"]["wall_s"]
        r["predict_speedup"] = base["predict"]["wall_s"] / r["predict"]["wall_s"]
        # shards busy at once on average (sum of the shards' own seconds / stage wall time): k when Ray
        # keeps k workers busy, whatever the machine's load does to each shard's own time
        r["scan_concurrency"] = r["scan"]["shard_cpu_s"] / r["scan"]["wall_s"]
        r["scan_ray_overhead"] = r["scan"]["wall_s"] * r["workers"] / local_scan["wall_s"] - 1
        r["predict_ray_overhead"] = r["predict"]["wall_s"] * r["workers"] / local_pred["wall_s"] - 1

    mb = local_scan["bases"] / 1e6
    scan_cost = local_scan["shard_cpu_s"] / mb / len(motifs)  # core-seconds per Mb per motif
    hits_rate = local_scan["hits"] / mb / len(motifs)
    # core-seconds per prediction row (1 thread, I/O included; rows here are reverse-complement averaged,
    # i.e. two forward passes each, so one pass costs half)
    predict_cost = local_pred["wall_s"] / local_pred["rows"] / 2
    deepsea_rate = deepsea_forward_rate()
    est = estimate(scan_cost, hits_rate, predict_cost, deepsea_rate, args.gpus)
    load_after = os.getloadavg()

    result = {
        "genome_mb": mb,
        "motifs": len(motifs),
        "shard_mb": args.shard_mb,
        "instances": local_scan["hits"],
        "prediction_rows": local_pred["rows"],
        "repeats": args.repeats,
        "cpus_on_machine": os.cpu_count(),
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "python": platform.python_version(),
        "in_process": {"scan": local_scan, "predict": local_pred},
        "ray": runs,
        "per_shard_costs": {
            "scan_core_s_per_mb_per_motif": scan_cost,
            "hits_per_mb_per_motif": hits_rate,
            "predict_small_core_s_per_row": predict_cost,
            "deepsea_forward_seq_per_s_one_core": deepsea_rate,
        },
        "human_estimate": est,
        "seconds_total": time.perf_counter() - t_all,
    }
    out = HERE / "results" / "scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"{mb:.1f} Mb x {len(motifs)} motifs, {local_scan['hits']:,} instances, "
        f"{local_pred['rows']:,} prediction rows; load average {load_before[0]:.1f} -> {load_after[0]:.1f} "
        f"on {os.cpu_count()} CPUs (shared machine: noisy)"
    )
    print(f"{'contender':28s} {'scan s':>8s} {'speedup':>8s} {'busy':>6s} {'predict s':>10s} {'speedup':>8s}")
    print(f"{'in-process (no Ray)':28s} {local_scan['wall_s']:8.2f} {'':>8s} {'':>6s} {local_pred['wall_s']:10.2f}")
    for r in runs:
        print(
            f"{'Ray, ' + str(r['workers']) + ' worker(s)':28s} {r['scan']['wall_s']:8.2f} {r['scan_speedup']:8.2f} "
            f"{r['scan_concurrency']:6.2f} {r['predict']['wall_s']:10.2f} {r['predict_speedup']:8.2f}"
        )
    print("busy: shards running at once on average (sum of shard seconds / scan wall time)")
    print(
        f"per-shard costs: scan {scan_cost * 1e3:.2f} ms per Mb per motif (1 core), {hits_rate:.0f} hits per Mb per "
        f"motif; predict {predict_cost * 1e6:.0f} us per row (small net, 1 core); "
        f"DeepSEA forward {deepsea_rate:.1f} seq/s (1 core)"
    )
    print(
        f"human genome x 800 motifs x 38 TFs: scan {est['scan_core_hours']:,.0f} core-h; "
        f"{est['instances_of_the_38_tfs']:,.0f} instances of the 38 TFs; "
        f"DeepSEA predict {est['predict_deepsea_gpu_hours_own_tf']:.1f} GPU-h "
        f"(own-TF, 3 regimes), {est['predict_deepsea_gpu_hours_cross_tf']:.0f} GPU-h (38x38 cross-TF) at an assumed "
        f"{ASSUMED_GPU_DEEPSEA_PER_S:.0f} seq/s per GPU"
    )
    for p in est["per_cluster_size"]:
        print(
            f"  {p['gpu_nodes']:4d} GPU nodes ({p['cpu_cores']} cores): scan {p['scan_wall_h']:.1f} h, predict own-TF "
            f"{p['predict_deepsea_own_wall_h']:.2f} h, cross-TF {p['predict_deepsea_cross_tf_wall_h']:.1f} h"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
