"""Samples per second of a training epoch: ``scanner train`` (a Ray task streaming Parquet batches)
against a bare torch loop over the same rows and model.

Synthetic, seeded data (:mod:`scanner.toydata`: 1 kb windows, label = a partner k-mer present), the
small model, batch 128, Adam, one torch thread per model. Contenders:

* ``bare torch loop``: reads the split with pyarrow, decodes it into one in-memory one-hot tensor,
  then Adam steps over a shuffled index; then a validation pass and ``torch.save``.
* ``scanner train, in-process``: :func:`scanner.train.train_model` (streamed, shuffled batches).
* ``scanner train, Ray``: :func:`scanner.train.train_models` with ``use_ray=True``: one Ray task of
  1 CPU (local Ray already up; its start-up is reported, not counted).
* ``2 TFs``: two models at once through Ray against the bare loop run twice in sequence.

Two figures per contender: *epoch samples/s* (training rows / time of the training loop alone: for the
bare loop after its data are decoded; for scanner the in-loop figure its TrainResult reports, decoding
included) and *wall s* (the whole call: process start, imports, data, validation, checkpoint). The Ray
overhead on an epoch is ``bare epoch samples/s / Ray epoch samples/s - 1``; the fixed cost of a Ray
task (a worker process importing torch) is ``Ray wall - in-process wall`` and is paid once per model,
not per epoch. Each contender runs ``--repeats`` times in rotating order; the best run is kept.
Run: ``python benchmarks/train.py [--n 8000]``; writes ``benchmarks/results/train.json``.
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


def bare_epoch(data: Path, tf: str, out: Path, batch: int, lr: float, seed: int) -> tuple[int, float]:
    """One epoch of a plain torch loop over the training split (plus validation and a save)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from scanner.models import ModelSpec, build_model

    def load(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        files = sorted((data / "regime=pvalue" / f"tf={tf}" / f"split={split}").glob("*.parquet"))
        t = pa.concat_tables([pq.ParquetFile(f).read(columns=["window", "label"]) for f in files])
        lut = np.full(256, 4, np.uint8)
        for i, b in enumerate(b"ACGT"):
            lut[b] = i
        w = len(t.column("window")[0].as_py())
        codes = lut[np.frombuffer("".join(t.column("window").to_pylist()).encode(), np.uint8)].reshape(-1, w)
        table = np.zeros((5, 4), np.float32)
        table[np.arange(4), np.arange(4)] = 1
        table[4] = 0.25
        x = torch.from_numpy(np.ascontiguousarray(table[codes].transpose(0, 2, 1)))
        return x, torch.from_numpy(t.column("label").to_numpy().astype(np.float32))

    torch.manual_seed(seed)
    x, y = load("train")
    model = build_model(ModelSpec(arch="small", seq_len=x.shape[2]))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    t0 = time.perf_counter()
    perm = torch.randperm(len(y))
    for lo in range(0, len(y) - 1, batch):
        idx = perm[lo : lo + batch]
        if len(idx) < 2:
            continue
        opt.zero_grad()
        loss_fn(model(x[idx]).reshape(-1), y[idx]).backward()
        opt.step()
    loop = time.perf_counter() - t0
    xv, yv = load("val")
    model.eval()
    with torch.no_grad():
        for lo in range(0, len(yv), 256):
            model(xv[lo : lo + 256])
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "model.pt")
    return len(y), loop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8000, help="training rows per TF (default 8000)")
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "train")
    ap.add_argument("--repeats", type=int, default=2, help="rounds; the best run of each is kept")
    args = ap.parse_args()
    from _allocator import same_allocator_for_all

    same_allocator_for_all()  # every contender allocates the same way (see _allocator.py)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import torch

    from scanner.runtime import ray_session
    from scanner.toydata import write_toy_datasets
    from scanner.train import TrainConfig, train_model, train_models

    torch.set_num_threads(1)
    data = args.work / "datasets"
    stamp = args.work / f"_made_{args.n}_{args.n_val}_{args.width}_{args.seed}"
    if not stamp.exists():
        shutil.rmtree(args.work, ignore_errors=True)
        t = time.perf_counter()
        write_toy_datasets(
            data,
            tfs=("T1", "T2"),
            sizes={"train": args.n, "val": args.n_val, "test": 10},
            width=args.width,
            seed=args.seed,
            row_group_size=4096,
        )
        stamp.write_text("")
        print(f"data written in {time.perf_counter() - t:.1f} s")
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=1e-3, seed=args.seed, cpus_per_model=1)

    def bare(tfs: tuple[str, ...]):
        def run() -> tuple[int, float]:
            out = [bare_epoch(data, tf, args.work / f"bare_{tf}", args.batch_size, 1e-3, args.seed) for tf in tfs]
            return sum(o[0] for o in out), sum(o[0] for o in out) / sum(o[1] for o in out)

        return run

    def in_process() -> tuple[int, float]:
        r = train_model(data, "T1", "pvalue", args.work / "local", cfg, device="cpu", evaluate=False)
        return r.n_train, r.samples_per_s

    def on_ray(tfs: list[str]):
        def run() -> tuple[int, float]:
            rs = train_models(data, args.work / "ray", cfg, tfs=tfs, regimes=["pvalue"], evaluate=False)
            return sum(r.n_train for r in rs), sum(r.n_train for r in rs) / sum(r.n_train / r.samples_per_s for r in rs)

        return run

    contenders = {
        "bare torch loop": bare(("T1",)),
        "scanner train, in-process": in_process,
        "scanner train, Ray": on_ray(["T1"]),
        "bare torch loop, 2 TFs in sequence": bare(("T1", "T2")),
        "scanner train, Ray, 2 TFs in parallel": on_ray(["T1", "T2"]),
    }
    bare(("T1",))()  # warm-up: imports, page cache
    wall: dict[str, list[float]] = {}
    epoch: dict[str, list[float]] = {}
    rows: dict[str, int] = {}
    t0 = time.perf_counter()
    with ray_session(num_cpus=os.cpu_count()):
        ray_start = time.perf_counter() - t0
        print(f"  Ray start-up: {ray_start:.1f} s (not counted)")
        names = list(contenders)
        for rep in range(args.repeats):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                t1 = time.perf_counter()
                rows[name], sps = contenders[name]()
                wall.setdefault(name, []).append(time.perf_counter() - t1)
                epoch.setdefault(name, []).append(sps)
                print(f"  {name}: wall {wall[name][-1]:.1f} s, epoch {sps:.0f} samples/s", flush=True)
    table = [
        {
            "method": n,
            "wall_s": round(min(wall[n]), 2),
            "wall_samples_per_s": round(rows[n] / min(wall[n]), 1),
            "epoch_samples_per_s": round(max(epoch[n]), 1),
        }
        for n in contenders
    ]
    best = {r["method"]: r for r in table}
    epoch_overhead = (
        best["bare torch loop"]["epoch_samples_per_s"] / best["scanner train, Ray"]["epoch_samples_per_s"] - 1
    )
    fixed = best["scanner train, Ray"]["wall_s"] - best["scanner train, in-process"]["wall_s"]
    par = best["bare torch loop, 2 TFs in sequence"]["wall_s"] / best["scanner train, Ray, 2 TFs in parallel"]["wall_s"]
    print(
        f"\n1 epoch, {args.n} rows x {args.width} bp (+{args.n_val} validation), small model, "
        f"batch {args.batch_size}, CPU x{os.cpu_count()}"
    )
    print(f"{'method':40s} {'wall s':>7s} {'rows/wall s':>11s} {'epoch samples/s':>16s}")
    for r in table:
        print(f"{r['method']:40s} {r['wall_s']:7.1f} {r['wall_samples_per_s']:11.0f} {r['epoch_samples_per_s']:16.0f}")
    print(f"Ray overhead on an epoch (samples/s): {100 * epoch_overhead:+.1f}% (target < 10%)")
    print(f"fixed cost of a Ray training task (wall, Ray - in-process): {fixed:.1f} s, once per model")
    print(f"2 TFs: Ray in parallel is {par:.2f}x the bare loop in sequence (wall)")
    out = HERE / "results" / "train.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "n_train": args.n,
        "n_val": args.n_val,
        "width": args.width,
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "ray_startup_s": round(ray_start, 2),
        "results": table,
        "ray_epoch_overhead": round(epoch_overhead, 4),
        "ray_task_fixed_cost_s": round(fixed, 2),
        "parallel_2tf_speedup": round(par, 3),
        "machine": platform.platform(),
    }
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
