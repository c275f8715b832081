"""What the models learn, against their baselines on the same rows: the simulated default and yeast Pho4.

For each (TF, regime) of the simulated default (``scanner demo``'s simulation: 20 Mb, 400 core loci per
TF per Mb, regimes pvalue / open / random, test chromosome chr9) this script trains the default recipe
once per seed as single networks (``ensemble=1``), averages their logits (the seed ensemble), and reports
on the test rows: n, the mean and spread of the single networks' auROC, the ensemble's auROC and auPRC,
the three baselines fitted on the same training rows (motif score, k-mer regression, site regression)
and the noise ceiling (:func:`scanner.demo.noise_ceiling`: the auROC of the Bayes-optimal score, the
simulator flipping 2% of the planted sites' labels).

Yeast Pho4 (real data, ``../shared/data``; skipped when absent): JASPAR MA0357.1 scanned at p < 1e-4,
He et al. 2017's ScPho4-bound regions as peaks, the p-value-matched regime, test chromosomes chrIV and
chrXVI (chrIX, the default, holds no bound region), validation chrVIII. The default recipe (its seed
ensemble of 5 networks on a set this small) is trained with 5 seeds; the mean and spread of its test
auROC is set against the baselines. Because 40 test rows say little, the same is done in a 4-fold
chromosome cross-validation (four groups of four chromosomes as test sets) for the ScPho4 and the
CgPho4-in-Sc bound regions.

Writes ``benchmarks/results/science.json``, prints the tables, and rewrites the marked tables in
README.md, docs/models.md and benchmarks/RESULTS.md (between ``<!-- science:NAME -->`` and
``<!-- /science:NAME -->``) from this run. Run: ``python benchmarks/science.py [--seeds 3] [--skip-yeast]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from _marked import rewrite_marked

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
PHO4_FOLDS = (
    ("chrI,chrV,chrIX,chrXIII", "chrII"),
    ("chrII,chrVI,chrX,chrXIV", "chrIII"),
    ("chrIII,chrVII,chrXI,chrXV", "chrIV"),
    ("chrIV,chrVIII,chrXII,chrXVI", "chrV"),
)


def _f(v: float | None, d: int = 3) -> str:
    return "-" if v is None or v != v else f"{v:.{d}f}"


def _test_logits(model_dir: Path, data: Path, tf: str, regime: str) -> tuple[np.ndarray, np.ndarray]:
    from scanner.data_loading import partition_files
    from scanner.evaluate import predict_files
    from scanner.models import load_checkpoint

    model, meta = load_checkpoint(model_dir)
    y, z, _ = predict_files(model, partition_files(data, regime, tf, "test"), width=meta["spec"].seq_len)
    return y, z


def simulated(work: Path, seeds: int, log) -> dict:
    """Train each (TF, regime) of the demo's simulation once per seed; seed ensemble and baselines."""
    from scanner.demo import DemoConfig, noise_ceiling
    from scanner.labels.run import LabelConfig, label
    from scanner.metrics import average_precision, roc_auc
    from scanner.runtime import ray_session
    from scanner.scan import ScanConfig, scan_genome
    from scanner.simulate.genome import SimulationConfig, simulate
    from scanner.train import TrainConfig, checkpoint_dir, train_models

    demo = DemoConfig()
    out = work / "sim"
    t0 = time.perf_counter()
    sim = simulate(out / "sim", SimulationConfig(size_mb=demo.size_mb, sites_per_mb=demo.sites_per_mb, tfs=demo.tfs))
    scan_genome(sim.genome, [str(sim.motifs)], out, ScanConfig(), use_ray=False, overwrite=True)
    lab = label(
        out / "instances",
        dict(sim.peaks),
        out,
        LabelConfig(regimes=demo.regimes),
        open_chromatin=sim.open_bed,
        blacklist=sim.blacklist,
    )
    log(f"simulated data ready in {time.perf_counter() - t0:.0f} s")
    runs = {}
    with ray_session(None):
        for seed in range(seeds):
            t = time.perf_counter()
            cfg = TrainConfig(epochs=demo.epochs, ensemble=1, seed=seed)
            res = train_models(
                lab.datasets, out / f"models_seed{seed}", cfg, metrics_path=out / f"metrics_{seed}.parquet"
            )
            log(f"seed {seed}: {len(res)} models in {time.perf_counter() - t:.0f} s")
            for r in res:
                runs.setdefault((r.tf, r.regime), []).append(r)
    rows = []
    for (tf, regime), results in sorted(runs.items()):
        tests = [next(m for m in r.metrics if m["split"] == "test") for r in results]
        logits = []
        for seed in range(seeds):
            y, z = _test_logits(checkpoint_dir(out / f"models_seed{seed}", tf, regime), lab.datasets, tf, regime)
            logits.append(z)
        ens = np.mean(logits, 0)
        aucs = [t["auroc"] for t in tests]
        rows.append(
            {
                "tf": tf,
                "regime": regime,
                "n_train": results[0].n_train,
                "n_test": tests[0]["n"],
                "n_pos": tests[0]["n_pos"],
                "seeds": seeds,
                "auroc_mean": float(np.mean(aucs)),
                "auroc_sd": float(np.std(aucs)),
                "ensemble_auroc": roc_auc(y, ens),
                "ensemble_auprc": average_precision(y, ens),
                "score_auroc": tests[0]["score_auroc"],
                "kmer_auroc": tests[0].get("kmer_auroc"),
                "site_auroc": tests[0].get("site_auroc"),
                "ceiling": noise_ceiling(lab.datasets, sim.truth, tf, regime),
                "epochs": [r.epochs_run for r in results],
                "train_seconds": [round(r.seconds, 1) for r in results],
            }
        )
    return {"rows": rows, "config": {"size_mb": demo.size_mb, "sites_per_mb": demo.sites_per_mb, "epochs": demo.epochs}}


def _pho4_label(work: Path, tag: str, peaks: Path, test: str, val: str) -> Path:
    from scanner.labels.run import LabelConfig, label

    out = work / tag
    label(
        work / "pho4" / "instances",
        {"PHO4": peaks},
        out,
        LabelConfig(regimes=("pvalue",), test_chroms=tuple(test.split(",")), val_chroms=(val,)),
    )
    return out / "datasets"


def yeast(work: Path, seeds: int, log) -> dict | None:
    """Pho4 on the documented split (5 seeds) and in a 4-fold chromosome cross-validation."""
    from scanner.motifs import read_motif_file, write_meme
    from scanner.scan import ScanConfig, scan_genome
    from scanner.train import TrainConfig, train_model

    genome = SHARED / "yeast_sacCer3" / "genome" / "sacCer3.fa"
    regions = SHARED / "yeast_sacCer3" / "tf_binding" / "pho4_He2017_bound_regions.sacCer3.bed"
    jaspar = SHARED / "motifs" / "JASPAR2024_CORE_fungi_nonredundant.meme"
    if not (genome.is_file() and regions.is_file() and jaspar.is_file()):
        log(f"yeast data not found under {SHARED}: skipped")
        return None
    work.mkdir(parents=True, exist_ok=True)
    peaks = {}
    for col, tag in ((7, "sc"), (8, "cg")):
        lines = [ln.split("\t") for ln in regions.read_text().splitlines() if not ln.startswith("#")]
        bed = work / f"pho4_{tag}.bed"
        bed.write_text("".join(f"{f[0]}\t{f[1]}\t{f[2]}\t{f[3]}\n" for f in lines if f[col] == "TRUE"))
        peaks[tag] = bed
    motif = work / "pho4.meme"
    write_meme([m for m in read_motif_file(jaspar) if m.motif_id == "MA0357.1"], motif)
    scan_genome(genome, [str(motif)], work / "pho4", ScanConfig(), use_ray=False, overwrite=True)

    def run(data: Path, seed: int, tag: str) -> dict:
        r = train_model(data, "PHO4", "pvalue", work / "models" / f"{tag}_{seed}", TrainConfig(seed=seed))
        t = next(m for m in r.metrics if m["split"] == "test")
        return {
            k: t.get(k)
            for k in ("n", "n_pos", "auroc", "member_auroc_mean", "score_auroc", "kmer_auroc", "site_auroc", "members")
        }

    data = _pho4_label(work, "split_sc", peaks["sc"], "chrIV,chrXVI", "chrVIII")
    documented = [run(data, s, "doc") for s in range(seeds)]
    log(f"Pho4 documented split: {[round(d['auroc'], 3) for d in documented]}")
    cv = {}
    for tag in ("sc", "cg"):
        folds = []
        for i, (test, val) in enumerate(PHO4_FOLDS):
            d = _pho4_label(work, f"cv_{tag}{i}", peaks[tag], test, val)
            folds.append(run(d, 0, f"cv_{tag}{i}"))
        cv[tag] = folds
        log(f"Pho4 CV {tag}: {[round(f['auroc'], 3) for f in folds]}")
    return {"documented": documented, "cv": cv}


def _sim_table(rows: list[dict]) -> str:
    head = (
        "| TF | regime | train rows | test n (pos) | model auROC (seeds) | seed ensemble | motif score | k-mer LR "
        "| site LR | ceiling |"
    )
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['tf']} | {r['regime']} | {r['n_train']:,} | {r['n_test']} ({r['n_pos']}) | "
            f"{_f(r['auroc_mean'])} +- {_f(r['auroc_sd'])} ({r['seeds']}) | {_f(r['ensemble_auroc'])} | "
            f"{_f(r['score_auroc'])} | {_f(r['kmer_auroc'])} | {_f(r['site_auroc'])} | {_f(r['ceiling'])} |"
        )
    return "\n".join(lines)


def _yeast_table(y: dict) -> str:
    doc = y["documented"]
    a = [d["auroc"] for d in doc]
    lines = [
        "| Pho4 set | test rows (pos) | model auROC | motif score | k-mer LR | site LR |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| ScPho4, test chrIV+chrXVI, {len(doc)} seeds | {doc[0]['n']} ({doc[0]['n_pos']}) | "
        f"{_f(np.mean(a))} +- {_f(np.std(a))} | {_f(doc[0]['score_auroc'])} | {_f(doc[0]['kmer_auroc'])} | "
        f"{_f(doc[0]['site_auroc'])} |",
    ]
    for tag, name in (("sc", "ScPho4"), ("cg", "CgPho4 in Sc")):
        folds = y["cv"][tag]
        n = sum(f["n"] for f in folds)
        pos = sum(f["n_pos"] for f in folds)
        mean = {k: _f(np.mean([f[k] for f in folds])) for k in ("auroc", "score_auroc", "kmer_auroc", "site_auroc")}
        lines.append(
            f"| {name}, 4-fold chromosome CV (mean of folds) | {n} ({pos}) | {mean['auroc']} | "
            f"{mean['score_auroc']} | {mean['kmer_auroc']} | {mean['site_auroc']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per simulated model")
    parser.add_argument("--yeast-seeds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=HERE / "_work" / "science")
    parser.add_argument("--skip-sim", action="store_true")
    parser.add_argument("--skip-yeast", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "science.json")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import torch

    torch.set_num_threads(1)
    log = lambda m: print(m, flush=True)  # noqa: E731
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "date": time.strftime("%Y-%m-%d"),
        "simulated": old.get("simulated"),
        "yeast": old.get("yeast"),
    }
    if not args.skip_sim:
        t = time.perf_counter()
        result["simulated"] = simulated(args.work, args.seeds, log) | {"seconds": round(time.perf_counter() - t)}
    if not args.skip_yeast:
        result["yeast"] = yeast(args.work / "yeast", args.yeast_seeds, log)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    if result["simulated"]:
        table = _sim_table(result["simulated"]["rows"])
        print(table)
        for p in (ROOT / "README.md", ROOT / "docs" / "models.md", HERE / "RESULTS.md"):
            rewrite_marked(p, "science:sim", table)
    if result["yeast"]:
        table = _yeast_table(result["yeast"])
        print(table)
        for p in (ROOT / "README.md", ROOT / "docs" / "models.md", HERE / "RESULTS.md"):
            rewrite_marked(p, "science:yeast", table)


if __name__ == "__main__":
    main()
