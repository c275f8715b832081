"""The whole chain on the simulated default: simulate, scan, label, train, evaluate, predict.

:func:`run_demo` is what ``scanner demo`` runs. Everything goes under one directory::

    OUT/sim/              genome.fa, motifs.meme, peaks/, open.bed, truth.parquet (scanner simulate)
    OUT/instances/        every motif instance (scanner scan)
    OUT/labelled/  OUT/datasets/                                 (scanner label)
    OUT/models/tf=/regime=/{model.pt, model.json, roc.png, pr.png}    (scanner train)
    OUT/metrics.parquet                                              (evaluation)
    OUT/predictions/tf=/chrom=/                                      (scanner predict)

All stages share one Ray session (started locally unless ``address`` is given), or run in this process
with ``use_ray=False``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa


@dataclass(frozen=True)
class DemoConfig:
    """Settings of ``scanner demo`` (each a flag).

    Parameters
    ----------
    out : Path
        Run directory. Default ``scanner-demo``.
    size_mb : float
        Simulated genome size. Default 10 (about 1,600-1,800 training rows per TF and regime).
    tfs : tuple of str
        Simulated TFs. Default ``("ALPHA", "BETA")``.
    regimes : tuple of str
        Training regimes. Default ``("pvalue", "open")``.
    epochs : int
        Maximum training epochs (early stopping, patience 4). Default 15.
    seed : int
        Seed of the simulation and the training. Default 0.
    use_ray : bool
        Run the stages on Ray. Default True.
    address : str, optional
        Ray address. Default: a private local Ray.
    """

    out: Path = Path("scanner-demo")
    size_mb: float = 10.0
    tfs: tuple[str, ...] = ("ALPHA", "BETA")
    regimes: tuple[str, ...] = ("pvalue", "open")
    epochs: int = 15
    seed: int = 0
    use_ray: bool = True
    address: str | None = None


@dataclass(frozen=True)
class DemoResult:
    """Where the outputs are, the test metrics, and the time each stage took."""

    out: Path
    metrics: pa.Table
    seconds: dict[str, float] = field(default_factory=dict)


def run_demo(config: DemoConfig = DemoConfig(), log: Callable[[str], None] | None = None) -> DemoResult:
    """Run simulate -> scan -> label -> train (+ evaluate) -> predict under ``config.out``.

    Returns
    -------
    DemoResult

    Raises
    ------
    InputError
        For bad settings (e.g. an unknown TF or regime).
    """
    from scanner.evaluate import metrics_table
    from scanner.labels import LabelConfig, label
    from scanner.predict import PredictConfig, predict
    from scanner.runtime import ray_session
    from scanner.scan import ScanConfig, scan_genome
    from scanner.simulate import SimulationConfig, simulate
    from scanner.train import TrainConfig, train_models

    say = log or (lambda _m: None)
    out = Path(config.out)
    seconds: dict[str, float] = {}
    t = time.perf_counter()

    def done(stage: str) -> None:
        nonlocal t
        seconds[stage] = round(time.perf_counter() - t, 1)
        say(f"[{stage}] done in {seconds[stage]:.1f} s")
        t = time.perf_counter()

    sim = simulate(out / "sim", SimulationConfig(size_mb=config.size_mb, tfs=config.tfs, seed=config.seed))
    done("simulate")
    with ray_session(config.address) if config.use_ray else nullcontext():
        executor = "ray" if config.use_ray else "local"
        scan = scan_genome(sim.genome, [str(sim.motifs)], out, ScanConfig(), executor=executor, overwrite=True)
        say(f"  instances: {scan.hits}")
        done("scan")
        lab = label(
            out / "instances",
            dict(sim.peaks),
            out,
            LabelConfig(regimes=tuple(config.regimes), seed=config.seed),
            open_chromatin=sim.open_bed,
            blacklist=sim.blacklist,
            use_ray=config.use_ray,
        )
        say(f"  datasets: {lab.datasets}")
        done("label")
        train_cfg = TrainConfig(epochs=config.epochs, patience=4, batch_size=64, rc_augment=True, seed=config.seed)
        results = train_models(
            lab.datasets,
            out / "models",
            train_cfg,
            regimes=list(config.regimes),
            use_ray=config.use_ray,
            metrics_path=out / "metrics.parquet",
            log=say,
        )
        done("train + evaluate")
        summary = predict(
            out / "instances", out / "models", out / "predictions", PredictConfig(), use_ray=config.use_ray
        )
        say(f"  predictions: {summary.rows} rows")
        done("predict")
    metrics = metrics_table([m for r in results for m in r.metrics])
    return DemoResult(out=out, metrics=metrics, seconds=seconds)


def format_demo(result: DemoResult) -> str:
    """Test-split auROC per TF and regime against the motif-score baseline, and where outputs are."""
    rows = [r for r in result.metrics.to_pylist() if r["split"] == "test"]
    lines = [f"{'tf':8s} {'regime':8s} {'n':>5s} {'model auROC':>12s} {'motif-score auROC':>18s} {'auPRC':>7s}"]

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for r in rows:
        lines.append(
            f"{r['tf']:8s} {r['regime']:8s} {r['n']:5d} {f(r['auroc']):>12s} {f(r['score_auroc']):>18s} "
            f"{f(r['auprc']):>7s}"
        )
    o = result.out
    lines += [
        "",
        f"outputs under {o}/: sim/ instances/ labelled/ datasets/ models/ metrics.parquet predictions/",
        f"curves: {o}/models/tf=*/regime=*/roc.png, pr.png",
        "query:",
        "  import polars as pl",
        f"  pl.scan_parquet('{o}/predictions/**/*.parquet', hive_partitioning=True)"
        ".filter(pl.col('prob_bound') > 0.9).group_by('tf', 'regime').len().collect()",
    ]
    return "\n".join(lines)
