"""Attribution speed on the DeepSEA-style model, 1 kb inputs, CPU: our fast ISM against naive ISM.

One seeded model (``ModelSpec(arch="deepsea", seq_len=1000)``, 52 M parameters, random weights drawn
with variance 1/fan-in so that ISM values stand well above float32 rounding, spread-out batch-norm
statistics, eval mode) and seeded random one-hot sequences. Contenders, all in
this process with the same torch thread count:

* ``naive ISM, tangermeme 1.6 saturation_mutagenesis(fast=False)`` and ``naive ISM, scanner
  (ism-naive)``: 3,000 forward passes per sequence. They run on the first ``--naive-positions``
  positions of one sequence and are scaled to a whole sequence (their cost is linear in positions).
* ``tangermeme 1.6 saturation_mutagenesis(fast=True)`` (its torch.export fastISM): one whole
  sequence, capture and its own verification included (as a user pays them).
* ``fast ISM, scanner (ism)``: ``--fast-seqs`` whole sequences through one :class:`FastISM` plan (the
  plan build, ~0.3 s of weight re-layout, is timed separately and included once).
* DeepLIFT: captum ``DeepLift`` (zero reference) and ours (zero reference; our rules keep
  completeness), ``--dl-seqs`` sequences; DeepSHAP-style with 10 dinucleotide shuffles: ours and
  tangermeme ``deep_lift_shap``, ``--shap-seqs`` sequences.

Equality: fast ISM against both naive paths on the naive positions, as the largest absolute difference
relative to the range of the ISM values (float32). Speed is in sequences per second, with ratios
against our naive path. Other processes share this machine: the load average is recorded, and the
ratios (same process, same threads, interleaved) are the figures to quote.
Run: ``python benchmarks/interpret.py [--threads 2]``; writes ``benchmarks/results/interpret.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from scanner.interpret import FastISM, deeplift, ism
from scanner.models import ModelSpec, build_model, count_parameters

L = 1000


def _model(seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    model = build_model(ModelSpec(arch="deepsea", seq_len=L))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv1d | torch.nn.Linear):  # unit-variance activations, so that
                m.weight.normal_(0.0, 1.0 / m.weight[0].numel() ** 0.5)  # ISM values are far above rounding
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "1")))
    ap.add_argument("--fast-seqs", type=int, default=4)
    ap.add_argument("--naive-positions", type=int, default=60)
    ap.add_argument("--dl-seqs", type=int, default=16)
    ap.add_argument("--shap-seqs", type=int, default=2)
    ap.add_argument("--skip-tangermeme-fast", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "interpret.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    model = _model(0)
    g = torch.Generator().manual_seed(1)
    n = max(args.fast_seqs, args.dl_seqs, args.shap_seqs, 1)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (n, L), generator=g), 4).permute(0, 2, 1).float()
    load0 = os.getloadavg()[0]
    rows: list[dict] = []

    def add(name: str, seqs: float, seconds: float, note: str = "") -> None:
        rows.append({"method": name, "sequences": seqs, "seconds": seconds, "seq_per_s": seqs / seconds, "note": note})
        print(f"{name:<60} {seqs / seconds:10.4f} seq/s  ({seqs:g} seq in {seconds:.1f} s) {note}", flush=True)

    with torch.inference_mode():
        model(x[:8])
        _, t = _timed(lambda: model(x[: min(n, 32)]))
    add("forward pass (batch of up to 32)", min(n, 32), t)

    # naive ISM: a sub-range, scaled to a whole sequence
    p = args.naive_positions
    ours_naive, t = _timed(lambda: ism(model, x[:1], start=0, end=p, fast=False))
    add("naive ISM, scanner (ism-naive)", p / L, t, f"{p} positions, scaled")
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    tm, t = _timed(
        lambda: saturation_mutagenesis(model, x[:1], start=0, end=p, fast=False, batch_size=128, raw_outputs=True)
    )
    add("naive ISM, tangermeme saturation_mutagenesis(fast=False)", p / L, t, f"{p} positions, scaled")
    tm_diff = (tm.y_hat[..., 0] - tm.y0[:, None, None, 0]).float()  # (1, 4, p)

    # our fast path: plan once, whole sequences
    with torch.inference_mode():
        plan, t_plan = _timed(lambda: FastISM(model, L))
        fast, t = _timed(lambda: plan(x[: args.fast_seqs]))
    add("fast ISM, scanner (ism)", args.fast_seqs, t + t_plan, f"plan build {t_plan:.2f} s included")
    span = float(ours_naive.max() - ours_naive.min())
    diff_ours = float((fast[:1, :, :p] - ours_naive).abs().max())
    diff_tm = float((fast[:1, :, :p] - tm_diff).abs().max())
    print(f"fast vs naive (ours): max |diff| {diff_ours:.2e}, vs tangermeme naive {diff_tm:.2e}, ISM range {span:.3f}")

    if not args.skip_tangermeme_fast:
        _, t = _timed(lambda: saturation_mutagenesis(model, x[:1], fast=True, batch_size=128, raw_outputs=True))
        add("tangermeme saturation_mutagenesis(fast=True)", 1, t, "one sequence, capture + check included")

    # DeepLIFT (each contender warmed up first: numba/JIT compilation is not what is measured)
    from captum.attr import DeepLift
    from tangermeme.deep_lift_shap import deep_lift_shap

    deeplift(model, x[:1], reference="shuffle", n_shuffles=1)
    deep_lift_shap(model, x[:1], n_shuffles=1, random_state=0, warning_threshold=1e9)
    DeepLift(model).attribute(x[:1].clone(), baselines=torch.zeros_like(x[:1]), target=0)
    xd = x[: args.dl_seqs]
    _, captum_delta = DeepLift(model).attribute(
        xd[:2].clone(), baselines=torch.zeros_like(xd[:2]), target=0, return_convergence_delta=True
    )

    def captum_zero():
        out = []
        for i in range(0, len(xd), 16):
            xi = xd[i : i + 16].clone()
            out.append(DeepLift(model).attribute(xi, baselines=torch.zeros_like(xi), target=0).detach())
        return torch.cat(out)

    theirs, t = _timed(captum_zero)
    add("captum DeepLift, zero reference", len(xd), t)
    ours_dl, t = _timed(lambda: deeplift(model, xd, reference="zero", batch_size=16))
    add("scanner deeplift, zero reference", len(xd), t, f"max |delta| {float(ours_dl.delta.abs().max()):.1e}")
    xs = x[: args.shap_seqs]
    ours_shap, t = _timed(lambda: deeplift(model, xs, reference="shuffle", n_shuffles=10, batch_size=20))
    add(
        "scanner deeplift, 10 dinucleotide shuffles",
        len(xs),
        t,
        f"max |delta| {float(ours_shap.delta.abs().max()):.1e}",
    )
    _, t = _timed(
        lambda: deep_lift_shap(model, xs, n_shuffles=10, batch_size=20, random_state=0, warning_threshold=1e9)
    )
    add("tangermeme deep_lift_shap, 10 shuffles", len(xs), t)

    by = {r["method"]: r["seq_per_s"] for r in rows}
    naive = by["naive ISM, scanner (ism-naive)"]
    fast_rate = by["fast ISM, scanner (ism)"]
    ratios = {
        "fast ISM / naive ISM (scanner)": fast_rate / naive,
        "fast ISM / tangermeme naive": fast_rate / by["naive ISM, tangermeme saturation_mutagenesis(fast=False)"],
        "scanner deeplift zero / captum DeepLift zero": by["scanner deeplift, zero reference"]
        / by["captum DeepLift, zero reference"],
        "scanner deeplift 10 shuffles / tangermeme deep_lift_shap": by["scanner deeplift, 10 dinucleotide shuffles"]
        / by["tangermeme deep_lift_shap, 10 shuffles"],
    }
    if "tangermeme saturation_mutagenesis(fast=True)" in by:
        ratios["fast ISM / tangermeme fast=True"] = fast_rate / by["tangermeme saturation_mutagenesis(fast=True)"]
    print("\n| method | sequences / s | x naive ISM (scanner) |\n| --- | --- | --- |")
    for r in rows:
        print(f"| {r['method']} | {r['seq_per_s']:.4g} | {r['seq_per_s'] / naive:.3g} |")
    for k, v in ratios.items():
        print(f"{k}: {v:.1f}x")
    result = {
        "model": {"arch": "deepsea", "seq_len": L, "parameters": count_parameters(model)},
        "threads": args.threads,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_start": load0,
            "load_avg_end": os.getloadavg()[0],
        },
        "torch": torch.__version__,
        "rows": rows,
        "ratios": ratios,
        "equality": {
            "ism_range": span,
            "max_abs_diff_vs_scanner_naive": diff_ours,
            "max_abs_diff_vs_tangermeme_naive": diff_tm,
            "relative": max(diff_ours, diff_tm) / span,
        },
        "deeplift_max_abs_diff_vs_captum": float((ours_dl.attributions - theirs).abs().max()),
        "deeplift_max_abs_delta": {
            "scanner_zero": float(ours_dl.delta.abs().max()),
            "scanner_shuffles": float(ours_shap.delta.abs().max()),
            "captum_zero": float(captum_delta.abs().max()),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    np.testing.assert_array_less(max(diff_ours, diff_tm), 1e-4 * span)


if __name__ == "__main__":
    main()
