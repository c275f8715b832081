"""Throughput of ``scanner variants`` (in-process and through Ray) against a bare torch loop over the
same windows and model.

Everything is synthetic and seeded: a simulated genome (``scanner.simulate.genome``, ``--size-mb``), scanned
for its ALPHA motif (``scanner.scan``, exact p-values), one small model with random weights and a 1 kb
input, and a VCF of ``--n`` alleles drawn within 400 bp of random instances (so almost all sit in a
window): 85% SNVs, 5% MNVs, 5% deletions, 5% insertions, REF from the genome.

* ``bare torch loop``: a plain script: a minimal VCF split, the chromosome as one numpy array, window
  pairs by ``searchsorted``, REF windows (once per instance) and ALT windows (numpy concatenation),
  one-hot, the model with batch norm folded (as the stage runs it) in batches, ``pq.write_table``.
  No validation, no motif p-values, no created-hit scan, no regime comparison.
* ``scanner variants, in-process``: :func:`scanner.variants.score_vcf` with ``use_ray=False``:
  VCF checks (REF against the genome for every record), pairing, created-hit scan, site p-values,
  the same forward passes, Parquet output, the regime comparison.
* ``scanner variants, Ray``: the same through Ray Data actors (local Ray started first; its start-up
  is reported separately, as a cluster would already be up).

Every contender gets the same CPUs: ``--threads`` torch threads (default 1; Ray: a local Ray with that
many CPUs, so one actor with that many threads). Reported: wall time (best of ``--repeats``, rotating
order) and, for the in-process contenders, the CPU time of this process. This 2-core machine is shared
with other jobs (the load average is recorded), so wall times drift by tens of percent from run to run;
CPU time is the steadier measure of the stage's own work. Overhead = stage time / bare time - 1. The
fixed cost of one stage run (a 12-allele VCF in a warm process; under Ray: actor start-up, model and
motif loading, scheduling) is reported too, and the Ray overhead net of it.
Run: ``python benchmarks/variants.py [--n 20000] [--threads 1]``. Writes ``benchmarks/results/variants.json``.
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


def make_inputs(work: Path, n: int, size_mb: float, seed: int, seq_len: int) -> dict[str, Path]:
    """Simulated genome, its scan, one model and a VCF under ``work`` (reused when present)."""
    import polars as pl
    import torch

    from scanner.io import parquet_files
    from scanner.models import ModelSpec, build_model, save_checkpoint
    from scanner.scan import ScanConfig, scan_genome
    from scanner.simulate.genome import SimulationConfig, simulate

    paths = {"genome": work / "sim" / "genome.fa", "models": work / "models", "vcf": work / f"v{n}.vcf"}
    if not (work / "instances" / "_scan.json").exists():
        shutil.rmtree(work, ignore_errors=True)
        res = simulate(work / "sim", SimulationConfig(size_mb=size_mb, n_chroms=4, tfs=("ALPHA",), seed=seed))
        scan_genome(res.genome, [str(res.motifs)], work, ScanConfig(), use_ray=False)
        torch.manual_seed(seed)
        spec = ModelSpec(arch="small", seq_len=seq_len)
        save_checkpoint(build_model(spec).eval(), spec, paths["models"] / "tf=ALPHA" / "regime=pvalue", {})
    if not paths["vcf"].exists():
        import pyfaidx

        inst = pl.read_parquet(parquet_files(work / "instances")).sort("chrom", "start")
        fa = pyfaidx.Fasta(str(paths["genome"]), as_raw=True)
        seqs = {c: str(fa[c][:]).upper() for c in fa.keys()}
        rng = np.random.default_rng(seed)
        rows = inst.sample(n, with_replacement=True, seed=seed).iter_rows(named=True)
        lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
        seen = set()
        for i, r in enumerate(rows):
            seq = seqs[r["chrom"]]
            p = int(np.clip(r["start"] + rng.integers(-400, 400), 1, len(seq) - 10))
            u = rng.random()
            if u < 0.85:
                ref, alt = seq[p], "ACGT"[("ACGT".find(seq[p]) + int(rng.integers(1, 4))) % 4]
            elif u < 0.90:
                ref = seq[p : p + 2]
                alt = "".join("ACGT"[("ACGT".find(b) + 1) % 4] for b in ref)
            elif u < 0.95:
                ref, alt = seq[p : p + 1 + int(rng.integers(1, 10))], seq[p]
            else:
                ref, alt = seq[p], seq[p] + "".join(rng.choice(list("ACGT"), int(rng.integers(1, 10))))
            if "N" in ref or (r["chrom"], p, ref, alt) in seen:
                continue
            seen.add((r["chrom"], p, ref, alt))
            lines.append(f"{r['chrom']}\t{p + 1}\tv{i}\t{ref}\t{alt}\t.\tPASS\t.")
        paths["vcf"].write_text("\n".join(lines) + "\n")
    return paths


def bare_loop(work: Path, paths: dict[str, Path], out: Path, threads: int, batch: int) -> int:
    """The reference: the same windows through the same (BN-folded) model, nothing else. Returns rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyfaidx
    import torch

    from scanner.models import ModelSpec, build_model, fuse_for_inference

    torch.set_num_threads(threads)
    shutil.rmtree(out, ignore_errors=True)
    mdir = paths["models"] / "tf=ALPHA" / "regime=pvalue"
    meta = json.loads((mdir / "model.json").read_text())
    model = build_model(ModelSpec.from_dict(meta["spec"]))
    model.load_state_dict(torch.load(mdir / "model.pt", weights_only=True))
    model = fuse_for_inference(model.eval())
    w = int(meta["spec"]["seq_len"])
    lut = np.full(256, 4, np.uint8)
    for i, b in enumerate(b"ACGT"):
        lut[b] = i
        lut[b + 32] = i
    onehot = np.zeros((5, 4), np.float32)
    onehot[np.arange(4), np.arange(4)] = 1
    onehot[4] = 0.25
    variants: dict[str, list[tuple[int, str, str]]] = {}
    with open(paths["vcf"]) as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            c, p, _i, ref, alt = line.split("\t")[:5]
            variants.setdefault(c, []).append((int(p) - 1, ref, alt))
    fa = pyfaidx.Fasta(str(paths["genome"]), as_raw=True)
    rows = 0
    pad = w + 64
    for chrom, vs in variants.items():
        seq = lut[np.frombuffer(str(fa[chrom][:]).encode(), np.uint8)]
        padded = np.concatenate([np.full(pad, 4, np.uint8), seq, np.full(pad, 4, np.uint8)])
        files = sorted((work / "instances" / "tf=ALPHA" / f"chrom={chrom}").glob("*.parquet"))
        t = pa.concat_tables([pq.read_table(f, columns=["start", "end"]) for f in files])
        s, e = t.column("start").to_numpy(), t.column("end").to_numpy()
        c = (s + e) // 2
        ws_all = np.sort(c - w // 2)
        ref_windows = {}
        alts, keys = [], []
        for pos, ref, alt in vs:
            k = 0  # trim the shared prefix (the VCF padding base)
            while k < min(len(ref), len(alt)) and ref[k] == alt[k]:
                k += 1
            v0, v1, ins = pos + k, pos + len(ref), lut[np.frombuffer(alt[k:].encode(), np.uint8)]
            lo = np.searchsorted(ws_all, v0 - w + 1)
            hi = np.searchsorted(ws_all, v1 - 1, side="right")
            for ws in ws_all[lo:hi]:
                if ws not in ref_windows:
                    ref_windows[ws] = padded[ws + pad : ws + pad + w]
                centre = ws + w // 2
                d = len(ins) - (v1 - v0)
                region = np.concatenate([padded[ws + pad - 64 : v0 + pad], ins, padded[v1 + pad : ws + pad + w + 64]])
                first = 64 + d if v1 <= centre else 64
                alts.append(region[first : first + w])
                keys.append((pos, ref, alt, int(ws)))
        inputs = np.stack(list(ref_windows.values()) + alts)
        logits = np.empty(len(inputs), np.float32)
        with torch.inference_mode():
            for lo in range(0, len(inputs), batch):
                x = torch.from_numpy(np.ascontiguousarray(onehot[inputs[lo : lo + batch]].transpose(0, 2, 1)))
                logits[lo : lo + len(x)] = model(x).reshape(-1).numpy()
        index = {ws: i for i, ws in enumerate(ref_windows)}
        z_ref = logits[[index[k[3]] for k in keys]]
        z_alt = logits[len(ref_windows) :]
        table = pa.table(
            {
                "pos": [k[0] for k in keys],
                "ref": [k[1] for k in keys],
                "alt": [k[2] for k in keys],
                "window_start": [k[3] for k in keys],
                "logit_ref": z_ref,
                "logit_alt": z_alt,
                "delta_logit": z_alt - z_ref,
            }
        )
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out / f"{chrom}.parquet")
        rows += table.num_rows
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="alleles in the VCF (default 2e4)")
    ap.add_argument("--size-mb", type=float, default=2.0, help="simulated genome size (default 2 Mb)")
    ap.add_argument("--seq-len", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each contender (Ray: one actor)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "variants")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray contender")
    args = ap.parse_args()

    import polars as pl
    import torch

    from scanner.io import parquet_files
    from scanner.variants import VariantConfig, score_vcf

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    threads = args.threads
    torch.set_num_threads(threads)
    paths = make_inputs(args.work, args.n, args.size_mb, args.seed, args.seq_len)
    alleles = sum(1 for line in open(paths["vcf"]) if not line.startswith("#"))
    cfg = VariantConfig(batch_size=args.batch_size)
    load_before = os.getloadavg()

    def stage(use_ray: bool, vcf: Path = paths["vcf"]) -> int:
        torch.set_num_threads(threads)
        out = args.work / ("out_ray" if use_ray else "out_local")
        return score_vcf(vcf, paths["models"], out, cfg, use_ray=use_ray).rows

    contenders = {
        "bare torch loop": lambda: bare_loop(args.work, paths, args.work / "out_bare", threads, args.batch_size),
        "scanner variants, in-process": lambda: stage(False),
    }
    ray_start = None
    if not args.no_ray:
        from scanner.runtime import ray_session

        t = time.perf_counter()
        session = ray_session(num_cpus=threads)  # one actor with `threads` torch threads: same CPUs as the others
        session.__enter__()
        ray_start = time.perf_counter() - t
        contenders["scanner variants, Ray"] = lambda: stage(True)
    # fixed cost of one stage run (VCF and scan metadata, motif tables, output, comparison), warm process
    tiny = args.work / "tiny.vcf"
    tiny.write_text("".join(open(paths["vcf"]).readlines()[:12]))
    fixed: dict[str, float] = {}
    for use_ray in (False, True) if ray_start is not None else (False,):
        stage(use_ray, tiny)
        t = time.perf_counter()
        stage(use_ray, tiny)
        fixed["ray" if use_ray else "in_process"] = round(time.perf_counter() - t, 2)
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    rows: dict[str, int] = {}
    names = list(contenders)
    for rep in range(args.repeats):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            rows[name] = contenders[name]()
            dt, dc = time.perf_counter() - t, time.process_time() - c
            wall[name] = min(wall.get(name, float("inf")), dt)
            cpu[name] = min(cpu.get(name, float("inf")), dc)
            print(f"  repeat {rep}: {name}: {dt:.1f} s wall, {dc:.1f} s CPU in this process", flush=True)
    if ray_start is not None:
        session.__exit__(None, None, None)
    load_after = os.getloadavg()

    stage_rows = pl.read_parquet(parquet_files(args.work / "out_local" / "scores"))
    in_window = stage_rows.filter(pl.col("in_window"))
    windows = {
        "alleles": alleles,
        "pairs": in_window.height,
        "created_pairs": in_window.filter(pl.col("inst_source") == "created").height,
        "unique_ref_windows": in_window.select("chrom", "window_start").unique().height,
    }
    bare_w, bare_c = wall["bare torch loop"], cpu["bare torch loop"]
    table = []
    print(
        f"\n{alleles} alleles, {windows['pairs']} (allele, instance) pairs, model small W={args.seq_len}, "
        f"{threads} torch thread(s), CPU: {platform.processor() or platform.machine()}, "
        f"load average {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'contender':32s} {'wall s':>8s} {'alleles/s':>10s} {'vs bare':>8s} {'CPU s':>8s} {'vs bare':>8s}")
    for name in names:
        in_proc = name != "scanner variants, Ray"
        row = {
            "contender": name,
            "wall_s": round(wall[name], 2),
            "alleles_per_s": round(alleles / wall[name], 1),
            "wall_vs_bare": round(wall[name] / bare_w, 3),
            "cpu_s": round(cpu[name], 2) if in_proc else None,
            "cpu_vs_bare": round(cpu[name] / bare_c, 3) if in_proc else None,
            "rows": rows[name],
        }
        table.append(row)
        cpu_text = f"{row['cpu_s']:8.2f} {row['cpu_vs_bare']:8.3f}" if in_proc else f"{'-':>8s} {'-':>8s}"
        print(f"{name:32s} {wall[name]:8.2f} {row['alleles_per_s']:10.1f} {row['wall_vs_bare']:8.3f} {cpu_text}")
    print(f"fixed cost of a stage run (12 alleles, warm process): {fixed}")
    if ray_start is not None:
        print(f"(local Ray start-up, not counted: {ray_start:.1f} s)")
    stage_name = "scanner variants, in-process"
    result = {
        "benchmark": "variants",
        "args": {k: str(v) for k, v in vars(args).items()},
        "threads": threads,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "note": (
            "2-core machine shared with other jobs (see load_average): wall times drift by tens of percent; "
            "CPU time of this process (in-process contenders) is the steadier measure. Best of --repeats, "
            "rotating order."
        ),
        "windows": windows,
        "ray_startup_s": ray_start,
        "fixed_stage_s": fixed,
        "results": table,
        "overhead_in_process_cpu": round(cpu[stage_name] / bare_c - 1, 3),
        "overhead_in_process_wall": round(wall[stage_name] / bare_w - 1, 3),
        "overhead_ray_wall": None if ray_start is None else round(wall["scanner variants, Ray"] / bare_w - 1, 3),
        "overhead_ray_wall_net_of_fixed": None
        if ray_start is None
        else round((wall["scanner variants, Ray"] - fixed["ray"]) / bare_w - 1, 3),
    }
    out = HERE / "results" / "variants.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"overhead in-process {result['overhead_in_process_cpu']:+.1%} CPU, "
        f"{result['overhead_in_process_wall']:+.1%} wall"
        + (
            ""
            if ray_start is None
            else f"; Ray {result['overhead_ray_wall']:+.1%} wall "
            f"({result['overhead_ray_wall_net_of_fixed']:+.1%} net of its fixed cost)"
        )
        + f"; wrote {out}"
    )


if __name__ == "__main__":
    main()
