"""Benchmark: ``scanner features`` (attribution + TF-MoDISco + TomTom) per 1,000 windows, in-process and on
Ray, against modisco-lite's own command line on the same attributions.

Input: a seeded simulation of ALPHA (open AND partner) whose open cores' 400-bp windows (2-3 PIONEER
sites each) are explained by a one-filter model set to the PIONEER log-odds (the fast tests' planted
model, "pvalue") and one set to ALPHA_P (the partner, "open"), ``--windows`` windows per model.
Contenders, each holding the same kinds of work:

* ``scanner features --no-ray``: DeepLIFT (10 dinucleotide shuffles) + TF-MoDISco (Python API) +
  TomTom (memelite) + MEME files, logos, Parquet;
* ``scanner features`` on a local Ray (2 actors; Ray start-up excluded, reported apart);
* reference: the same attributions (saved as modisco's ``.npz`` input) + ``modisco motifs`` (its CLI,
  same settings) + ``modisco report -l -m DB`` (tomtom-lite matching, logos, HTML), one model after the
  other: the attribution time is ours (timed apart in this process), added to the CLI's wall time.

JIT: modisco-lite and memelite compile numba kernels into a disk cache once per environment (about 20 s
and 40 s); every figure here is with that cache filled ("cold process": a new process loading it),
plus our in-process run repeated in the same process ("warm"). Each contender runs ``--repeats`` times,
best kept. Writes ``benchmarks/results/features.json``; figures go in ``benchmarks/RESULTS.md``.

    python benchmarks/features.py --windows 1000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT.parent / "tests"))


#: Planted models: regime -> motif its one filter detects.
MODELS = {"pvalue": "PIONEER", "open": "ALPHA_P"}


def build_run(root: Path, n_windows: int, n_models: int = 2, seed: int = 0) -> tuple[Path, list[Path]]:
    """A run directory: datasets (the same bound test windows per regime), planted models (PIONEER
    under pvalue, ALPHA_P under open); the motif files."""
    import polars as pl
    from test_features import W, planted_model

    from scanner.genome import decode, open_genome
    from scanner.io import partition_dir, write_parquet_atomic
    from scanner.models import save_checkpoint
    from scanner.predict.apply import fetch_windows
    from scanner.simulate.genome import SimulationConfig, read_truth, simulate

    size = max(2.0, n_windows / (250 * 0.35) * 1.1)
    sim = simulate(
        root / "sim", SimulationConfig(size_mb=size, n_chroms=4, tfs=("ALPHA",), sites_per_mb=250, seed=seed)
    )
    cores = read_truth(root / "sim").filter(pl.col("tf") == "ALPHA", pl.col("design") == "open+partner")
    cores = cores.head(n_windows)
    with open_genome(sim.genome) as g:
        codes = fetch_windows(
            g, np.asarray(cores["chrom"].to_list(), dtype=object), cores["start"].to_numpy(), cores["end"].to_numpy(), W
        )
    rows = cores.select("chrom", "start", "end", "strand").with_columns(
        pl.lit("SIM0001").alias("motif_id"),
        pl.lit(1, pl.Int8).alias("label"),
        pl.Series("window", [decode(c) for c in codes]),
    )
    for regime, motif in list(MODELS.items())[:n_models]:
        d = partition_dir(root / "datasets", [("regime", regime), ("tf", "ALPHA"), ("split", "test")])
        write_parquet_atomic(rows.to_arrow(), d / "part-00000.parquet")
        model, spec = planted_model(motif)
        save_checkpoint(model, spec, partition_dir(root / "models", [("tf", "ALPHA"), ("regime", regime)]), {})
    return root, [sim.motifs, sim.context_motifs]


def _ours(root: Path, dbs: list[Path], use_ray: bool, out: str) -> dict:
    from scanner.features import FeaturesConfig, features

    cfg = FeaturesConfig(max_windows=None)
    t = time.perf_counter()
    res = features(root / "datasets", root / "models", root / out, cfg, databases=dbs, use_ray=use_ray, overwrite=True)
    return {"seconds": time.perf_counter() - t, "patterns": res.patterns.num_rows, "result": res}


def in_process(root: Path, dbs: list[Path], repeats: int) -> dict:
    """Our in-process run, phases timed apart, in this (fresh) process then repeated warm."""
    import polars as pl

    from scanner.data_loading import windows_to_codes
    from scanner.features.attribute import hypothetical_contributions
    from scanner.genome import one_hot
    from scanner.interpret import Attributor, MethodOptions
    from scanner.models import load_checkpoint

    runs = [_ours(root, dbs, False, "features_local") for _ in range(repeats)]
    # attribution alone, as the workers do it (same batches and seeds), then discovery alone through the
    # Python API on the same arrays (warm: kernels loaded), to compare with `modisco motifs`
    from scanner.features import FeaturesConfig
    from scanner.features.discover import discover_patterns

    attr_s = discover_s = 0.0
    hyps, found = {}, 0
    for regime in sorted(p.name.split("=")[1] for p in (root / "models" / "tf=ALPHA").iterdir()):
        files = root / "datasets" / f"regime={regime}" / "**" / "*.parquet"
        df = pl.read_parquet(files).sort("chrom", "start", "end", "strand")
        codes = windows_to_codes(df["window"].to_arrow())
        model, _ = load_checkpoint(root / "models" / "tf=ALPHA" / f"regime={regime}")
        att = Attributor(model, MethodOptions(batch_size=64))
        t = time.perf_counter()
        hyp = np.concatenate(
            [
                hypothetical_contributions(att, one_hot(codes[i : i + 64]), "deeplift", seed=i // 64)
                for i in range(0, len(codes), 64)
            ]
        )
        attr_s += time.perf_counter() - t
        t = time.perf_counter()
        found += len(discover_patterns(one_hot(codes), hyp, FeaturesConfig().modisco))
        discover_s += time.perf_counter() - t
        hyps[regime] = (hyp, codes)
    pats = pl.from_arrow(runs[-1]["result"].patterns)
    return {
        "cold_process_s": runs[0]["seconds"],
        "warm_s": min(r["seconds"] for r in runs[1:]) if len(runs) > 1 else None,
        "attribution_s": attr_s,
        "discover_s": discover_s,
        "discover_patterns": found,
        "patterns": runs[-1]["patterns"],
        "top_match": pats.sort("rank")["best_match"][0] if pats.height else None,
        "_hyps": hyps,
    }


def on_ray(root: Path, dbs: list[Path], repeats: int) -> dict:
    from scanner.runtime import ray_session

    t = time.perf_counter()
    with ray_session(None, num_cpus=os.cpu_count()):
        start_s = time.perf_counter() - t
        runs = [_ours(root, dbs, True, "features_ray") for _ in range(repeats)]
    return {"ray_start_s": start_s, "best_s": min(r["seconds"] for r in runs), "patterns": runs[0]["patterns"]}


def modisco_cli(root: Path, hyps: dict, db: Path, repeats: int) -> dict:
    """``modisco motifs`` + ``modisco report -l`` on our attributions, same settings as ours, one model
    after the other (one CLI process each); best of ``repeats`` per model, summed."""
    total = {"motifs_s": 0.0, "report_s": 0.0, "report_ok": True, "patterns": 0}
    for regime, (hyp, codes) in hyps.items():
        one = _modisco_cli_one(root / f"modisco_cli_{regime}", hyp, codes, db, repeats)
        total["motifs_s"] += one["motifs_s"]
        total["report_s"] += one["report_s"]
        total["report_ok"] &= one["report_ok"]
        total["patterns"] += one["patterns"]
    return total


def _modisco_cli_one(work: Path, hyp: np.ndarray, codes: np.ndarray, db: Path, repeats: int) -> dict:
    from scanner.features import FeaturesConfig
    from scanner.genome import one_hot

    s = FeaturesConfig().modisco
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    np.savez(work / "ohe.npz", one_hot(codes).astype(np.float32))
    np.savez(work / "shap.npz", hyp.astype(np.float32))
    exe = str(Path(sys.executable).parent / "modisco")
    motifs = [exe, "motifs", "-s", str(work / "ohe.npz"), "-a", str(work / "shap.npz"), "-n", str(s.max_seqlets)]
    motifs += ["-l", str(s.n_leiden), "-w", str(codes.shape[1]), "-z", str(s.size), "-t", str(s.trim_size)]
    motifs += [
        "-f",
        str(s.seqlet_flank),
        "-g",
        str(s.initial_flank),
        "-j",
        str(s.final_flank),
        "-o",
        str(work / "m.h5"),
    ]
    report = [exe, "report", "-i", str(work / "m.h5"), "-o", str(work / "report"), "-l", "-m", str(db), "-n", "3"]
    best_m = best_r = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(motifs, check=True, capture_output=True)
        best_m = min(best_m, time.perf_counter() - t)
        t = time.perf_counter()
        r = subprocess.run(report, capture_output=True, text=True)
        best_r = min(best_r, time.perf_counter() - t)
    import h5py

    with h5py.File(work / "m.h5") as f:
        n = sum(len(f[g]) for g in ("pos_patterns", "neg_patterns") if g in f)
    return {"motifs_s": best_m, "report_s": best_r, "report_ok": r.returncode == 0, "patterns": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=int, default=1000, help="windows per model")
    ap.add_argument("--models", type=int, default=2, choices=(1, 2), help="planted models (regimes)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "_work" / "features")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "features.json")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    root, dbs = build_run(args.work, args.windows, args.models)
    import polars as pl

    n = pl.read_parquet(root / "datasets" / "**" / "*.parquet").height
    from scanner.motifs import read_motif_file, write_meme

    db = write_meme([m for d in dbs for m in read_motif_file(d)], args.work / "db.meme")
    local = in_process(root, dbs, args.repeats + 1)
    ray = on_ray(root, dbs, args.repeats)
    cli = modisco_cli(root, local.pop("_hyps"), db, args.repeats)
    per_k = 1000.0 / n
    ref_total = local["attribution_s"] + cli["motifs_s"] + cli["report_s"]
    rows = [
        ("scanner features --no-ray (cold process)", local["cold_process_s"]),
        ("scanner features --no-ray (warm)", local["warm_s"]),
        ("scanner features on Ray (Ray start excluded)", ray["best_s"]),
        ("our attribution + modisco motifs + modisco report -l", ref_total),
    ]
    print(
        f"{n} windows of 400 bp in all, {args.models} planted model(s), DeepLIFT 10 shuffles, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'contender':55s} {'s':>8s} {'s / 1k windows':>15s} {'vs reference':>13s}")
    for name, s in rows:
        print(f"{name:55s} {s:8.2f} {s * per_k:15.2f} {ref_total / s:12.2f}x")
    print(
        f"discovery alone: Python API (warm) {local['discover_s']:.2f} s vs modisco motifs CLI {cli['motifs_s']:.2f} s "
        f"({cli['motifs_s'] / local['discover_s']:.2f}x)"
    )
    print(
        f"parts: attribution {local['attribution_s']:.2f} s, modisco motifs {cli['motifs_s']:.2f} s, "
        f"modisco report {cli['report_s']:.2f} s (ok={cli['report_ok']}), Ray start {ray['ray_start_s']:.2f} s"
    )
    print(
        f"patterns: ours {local['patterns']} (top: {local['top_match']}), Ray {ray['patterns']}, CLI {cli['patterns']}"
    )
    record = {
        "windows": n,
        "models": args.models,
        "window_bp": 400,
        "cores": os.cpu_count(),
        "in_process": local,
        "ray": ray,
        "modisco_cli": cli,
        "reference_total_s": ref_total,
        "per_1000_windows_s": {name: s * per_k for name, s in rows},
        "load_average": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
