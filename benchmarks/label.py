"""Labelling a simulated 100 Mb genome with 3 TFs: time and peak memory of ``scanner label``.

Setup (timed, reported, not compared): ``scanner.simulate.genome`` writes a 100 Mb genome with ALPHA, BETA and
GAMMA; ``scanner.scan.scan_genome`` (in-process) finds their instances at p < 1e-4.

Contenders, each in its own child process so that its peak RSS (``wait4``'s ``ru_maxrss``) is its own:

* ``scanner label, in-process``: :func:`scanner.labels.label` with ``use_ray=False`` (all four regimes).
* ``scanner label, Ray``: the same with windows fetched by Ray Data actors; local Ray started inside the
  child (start-up reported separately). Peak RSS is the driver's only (Ray workers are other processes).

Reference implementations on the same rows (no bedtools or pyranges in this environment), in one child:

* overlap (bound, in_open, blacklist for every instance): a per-row Python loop with ``bisect`` over
  sorted intervals and a running maximum of ends (the same exact semantics), against the polars
  ``join_asof`` kernels.
* windows + GC of every instance: one pyfaidx fetch per row (``Genome.window``) then GC, against the
  batched :func:`scanner.labels.datasets.window_codes`.

Run: ``python benchmarks/label.py [--size-mb 100] [--reuse-setup]``; writes
``benchmarks/results/label.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "label"
TFS = ("ALPHA", "BETA", "GAMMA")


def _child(args: list[str]) -> tuple[dict, float, float]:
    """Run this script with ``args`` in a child; return its JSON line, wall seconds and peak RSS (MiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"child {args} failed with status {status}")
    proc.returncode = 0
    line = [ln for ln in out.splitlines() if ln.startswith("{")][-1]
    return json.loads(line), wall, usage.ru_maxrss / 1024


def _sim_paths() -> dict:
    return json.loads((WORK / "paths.json").read_text())


def phase_setup(size_mb: float) -> dict:
    from scanner.scan import ScanConfig, scan_genome
    from scanner.simulate.genome import SimulationConfig, simulate

    t0 = time.perf_counter()
    sim = simulate(WORK / "sim", SimulationConfig(size_mb=size_mb, tfs=TFS))
    t1 = time.perf_counter()
    summary = scan_genome(sim.genome, [str(sim.motifs)], WORK / "run", ScanConfig(), use_ray=False, overwrite=True)
    t2 = time.perf_counter()
    paths = {
        "genome": str(sim.genome),
        "peaks": {k: str(v) for k, v in sim.peaks.items()},
        "open": str(sim.open_bed),
        "blacklist": str(sim.blacklist),
    }
    (WORK / "paths.json").write_text(json.dumps(paths))
    return {"simulate_s": t1 - t0, "scan_s": t2 - t1, "instances": summary.hits, "bases": sim.counts["bases"]}


def phase_label(use_ray: bool) -> dict:
    from scanner.labels.run import LabelConfig, label

    p = _sim_paths()
    out = WORK / ("out_ray" if use_ray else "out_local")
    startup = 0.0
    t0 = time.perf_counter()
    if use_ray:
        from scanner.runtime import ray_session

        with ray_session(None, num_cpus=os.cpu_count()):
            startup = time.perf_counter() - t0
            t1 = time.perf_counter()
            res = label(
                WORK / "run" / "instances",
                p["peaks"],
                out,
                LabelConfig(),
                open_chromatin=p["open"],
                blacklist=p["blacklist"],
                use_ray=True,
            )
            work = time.perf_counter() - t1
    else:
        res = label(
            WORK / "run" / "instances",
            p["peaks"],
            out,
            LabelConfig(),
            open_chromatin=p["open"],
            blacklist=p["blacklist"],
        )
        work = time.perf_counter() - t0
    return {
        "seconds": work,
        "ray_startup_s": startup,
        "labelled": int(res.counts["labelled"].sum()),
        "bound": int(res.counts["bound"].sum()),
        "dataset_rows": int(res.sizes["n"].sum()),
    }


def _bisect_reference(inst, peaks_by_tf, open_iv, black_iv):
    """Per-row Python: sorted interval starts + running max of ends; same semantics as the kernels."""
    import bisect

    def index(ivs):
        out = {}
        for chrom, part in ivs.sort("chrom", "start").partition_by("chrom", as_dict=True).items():
            starts = part["start"].to_list()
            run, m = [], -1
            for e in part["end"].to_list():
                m = max(m, e)
                run.append(m)
            out[chrom[0]] = (starts, run)
        return out

    def contained(idx, c, s, e):
        if c not in idx:
            return False
        starts, run = idx[c]
        i = bisect.bisect_right(starts, s) - 1
        return i >= 0 and run[i] >= e

    def overlaps(idx, c, s, e):
        if c not in idx:
            return False
        starts, run = idx[c]
        i = bisect.bisect_left(starts, e) - 1
        return i >= 0 and run[i] > s

    o_idx, b_idx = index(open_iv), index(black_iv)
    p_idx = {tf: index(p) for tf, p in peaks_by_tf.items()}
    bound, in_open, black = [], [], []
    for tf, c, s, e in inst.select("tf", "chrom", "start", "end").iter_rows():
        bound.append(contained(p_idx[tf], c, s, e))
        in_open.append(contained(o_idx, c, s, e))
        black.append(overlaps(b_idx, c, s, e))
    return bound, in_open, black


def phase_reference() -> dict:
    import numpy as np
    import polars as pl

    from scanner.genome import open_genome
    from scanner.io import read_dataset
    from scanner.labels.datasets import window_codes
    from scanner.labels.intervals import contained_in, overlaps_any, read_intervals
    from scanner.schemas import INSTANCES

    p = _sim_paths()
    g = open_genome(p["genome"])
    inst = pl.from_arrow(read_dataset(WORK / "run" / "instances", INSTANCES))
    peaks = {tf: read_intervals(path, chrom_lengths=g.lengths) for tf, path in p["peaks"].items()}
    open_iv = read_intervals(p["open"], chrom_lengths=g.lengths)
    black_iv = read_intervals(p["blacklist"], chrom_lengths=g.lengths)

    t0 = time.perf_counter()
    ref = _bisect_reference(inst, peaks, open_iv, black_iv)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    bound = pl.concat([contained_in(part, peaks[tf[0]]) for tf, part in inst.group_by("tf", maintain_order=True)])
    ordered = pl.concat([part for _, part in inst.group_by("tf", maintain_order=True)])
    ours = (
        bound.to_list(),
        contained_in(ordered, open_iv).to_list(),
        overlaps_any(ordered, black_iv).to_list(),
    )
    t_ours = time.perf_counter() - t0
    ref_ordered = _bisect_reference(ordered, peaks, open_iv, black_iv)
    agree = all(a == b for a, b in zip(ours, ref_ordered, strict=True))
    del ref

    chroms = ordered["chrom"].to_numpy()
    ws = ((ordered["start"] + ordered["end"]) // 2 - 500).to_numpy()
    t0 = time.perf_counter()
    gc_ref = []
    for c, w in zip(chroms, ws, strict=True):
        codes = g.window(c, int(w) + 500, 1000).codes
        acgt = codes[codes < 4]
        gc_ref.append(np.isin(acgt, (1, 2)).mean())
    t_wref = time.perf_counter() - t0
    t0 = time.perf_counter()
    gc_ours = []
    for i in range(0, len(ws), 2048):
        codes = window_codes(g, chroms[i : i + 2048], ws[i : i + 2048], 1000)
        gc_ours.append(np.count_nonzero((codes == 1) | (codes == 2), 1) / np.count_nonzero(codes < 4, 1))
    t_wours = time.perf_counter() - t0
    gc_agree = bool(np.allclose(np.concatenate(gc_ours), np.array(gc_ref)))
    return {
        "rows": ordered.height,
        "overlap_reference_s": t_ref,
        "overlap_ours_s": t_ours,
        "overlap_agree": agree,
        "windows_reference_s": t_wref,
        "windows_ours_s": t_wours,
        "windows_agree": gc_agree,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=float, default=100.0)
    ap.add_argument("--reuse-setup", action="store_true", help="reuse the simulated genome and scan of the last run")
    ap.add_argument("--phase", choices=["setup", "local", "ray", "reference"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.phase:
        fn = {
            "setup": lambda: phase_setup(args.size_mb),
            "local": lambda: phase_label(False),
            "ray": lambda: phase_label(True),
            "reference": phase_reference,
        }[args.phase]
        print(json.dumps(fn()), flush=True)
        return

    WORK.mkdir(parents=True, exist_ok=True)
    previous = HERE / "results" / "label.json"
    if args.reuse_setup and (WORK / "paths.json").is_file() and previous.is_file():
        old = json.loads(previous.read_text())
        setup, setup_rss = old["setup"], old["setup"].get("peak_rss_mib", 0.0)
    else:
        setup, _, setup_rss = _child(["--phase", "setup", "--size-mb", str(args.size_mb)])
        setup["peak_rss_mib"] = setup_rss
    local, local_wall, local_rss = _child(["--phase", "local"])
    ray_, ray_wall, ray_rss = _child(["--phase", "ray"])
    ref, _, _ = _child(["--phase", "reference"])
    n_inst = sum(setup["instances"].values())
    rows = [
        ("simulate (setup)", setup["simulate_s"], None, ""),
        ("scan, in-process (setup)", setup["scan_s"], setup_rss, f"{n_inst:,} instances"),
        ("scanner label, in-process", local["seconds"], local_rss, f"{local['dataset_rows']:,} dataset rows"),
        (
            "scanner label, Ray (excl. start-up)",
            ray_["seconds"],
            ray_rss,
            f"Ray start-up {ray_['ray_startup_s']:.1f} s",
        ),
        ("overlap: polars join_asof", ref["overlap_ours_s"], None, f"agree={ref['overlap_agree']}"),
        ("overlap: Python bisect per row", ref["overlap_reference_s"], None, ""),
        ("windows+GC: batched window_codes", ref["windows_ours_s"], None, f"agree={ref['windows_agree']}"),
        ("windows+GC: pyfaidx per row", ref["windows_reference_s"], None, ""),
    ]
    print(f"\nLabelling a simulated {args.size_mb:g} Mb genome, 3 TFs ({n_inst:,} instances), {os.cpu_count()} CPUs")
    print(f"{'step':40s} {'seconds':>9s} {'peak RSS MiB':>13s}  note")
    for name, sec, rss, note in rows:
        print(f"{name:40s} {sec:9.2f} {'' if rss is None else f'{rss:13.0f}':>13s}  {note}")
    speed = {
        "overlap_speedup_vs_python_bisect": ref["overlap_reference_s"] / ref["overlap_ours_s"],
        "windows_speedup_vs_pyfaidx_per_row": ref["windows_reference_s"] / ref["windows_ours_s"],
        "label_instances_per_s_in_process": local["labelled"] / local["seconds"],
    }
    for k, v in speed.items():
        print(f"{k}: {v:.1f}")
    result = {
        "benchmark": "label",
        "size_mb": args.size_mb,
        "tfs": list(TFS),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "setup": setup,
        "label_in_process": {**local, "wall_s_with_imports": local_wall, "peak_rss_mib": local_rss},
        "label_ray": {**ray_, "wall_s_with_imports": ray_wall, "driver_peak_rss_mib": ray_rss},
        "reference": ref,
        "ratios": speed,
    }
    out = HERE / "results" / "label.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
