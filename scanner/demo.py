"""The whole chain on the simulated default: simulate, scan, label, train, evaluate, predict.

:func:`run_demo` is what ``scanner demo`` runs. Everything goes under one directory::

    OUT/sim/              genome.fa, motifs.meme, peaks/, open.bed, truth.parquet (scanner simulate)
    OUT/instances/        every motif instance (scanner scan)
    OUT/labelled/  OUT/datasets/                                 (scanner label)
    OUT/models/tf=/regime=/{model.pt, model.json, roc.png, pr.png}    (scanner train)
    OUT/metrics.parquet                                              (evaluation, with the baselines)
    OUT/predictions/tf=/chrom=/                                      (scanner predict)

The default simulation (20 Mb, 400 core loci per TF per Mb) gives every regime thousands of training
rows, so that the network can learn each simulated rule (docs/models.md gives the figures and the
script that produced them). All stages share one Ray session (started locally unless ``address`` is
given), or run in this process with ``use_ray=False``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

#: Why a (TF, regime) pair's test auROC says little, printed under the demo's table.
CAVEATS = {
    ("BETA", "open"): (
        "BETA is bound wherever its site is in open chromatin, so under `open` nearly every BETA site is "
        "bound: its few negatives are flipped labels (label noise) and chance motif matches, and its auROC "
        "measures that noise, not what the network learned"
    ),
}


@dataclass(frozen=True)
class DemoConfig:
    """Settings of ``scanner demo`` (each a flag).

    Parameters
    ----------
    out : Path
        Run directory. Default ``scanner-demo``.
    size_mb : float
        Simulated genome size. Default 20 (with ``sites_per_mb`` 400: 3,000-6,000 training rows per TF
        and regime).
    sites_per_mb : float
        Core loci planted per TF per Mb. Default 400.
    tfs : tuple of str
        Simulated TFs. Default ``("ALPHA", "BETA")``.
    regimes : tuple of str
        Training regimes. Default ``("pvalue", "open", "random")``.
    epochs : int
        Maximum training epochs (early stopping on validation auROC). Default 15.
    ensemble : int
        Networks per model (0: the training default, by set size). Default 1, to stay within minutes
        on a laptop.
    seed : int
        Seed of the simulation and the training. Default 0.
    features : bool
        Also discover what each model relies on (``scanner features``: DeepLIFT, TF-MoDISco, TomTom
        against the simulation's motifs) and print the patterns x regimes table with the checks of the
        simulated rules. Default True.
    use_ray : bool
        Run the stages on Ray. Default True.
    address : str, optional
        Ray address. Default: a private local Ray.
    """

    out: Path = Path("scanner-demo")
    size_mb: float = 20.0
    sites_per_mb: float = 400.0
    tfs: tuple[str, ...] = ("ALPHA", "BETA")
    regimes: tuple[str, ...] = ("pvalue", "open", "random")
    epochs: int = 15
    ensemble: int = 1
    seed: int = 0
    features: bool = True
    use_ray: bool = True
    address: str | None = None


@dataclass(frozen=True)
class DemoResult:
    """Where the outputs are, the test metrics (with each test set's noise ceiling), and stage times."""

    out: Path
    metrics: pa.Table
    seconds: dict[str, float] = field(default_factory=dict)
    ceilings: dict[tuple[str, str], float] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)


def noise_ceiling(
    datasets: Path, truth: Path, tf: str, regime: str, split: str = "test", flip_rate: float = 0.02
) -> float | None:
    """The best auROC any model can expect on a split's rows: the auROC of the Bayes-optimal score.

    A planted core's label is its rule's verdict flipped with probability ``flip_rate``, so its best
    score is ``1 - flip_rate`` (rule says bound) or ``flip_rate``; any other row (a chance motif match)
    is bound exactly when it lies in a bound core's peak, which its context shows, so its best score is
    its label (1 or 0). Ties within those groups cannot be broken by any model. None when the split
    has one class.
    """
    import numpy as np
    import polars as pl

    from scanner.data_loading import partition_files
    from scanner.metrics import roc_auc

    rows = pl.read_parquet(partition_files(datasets, regime, tf, split), columns=["chrom", "start", "end", "label"])
    cores = pl.read_parquet(truth, columns=["chrom", "start", "end", "tf", "kind", "rule_bound"]).filter(
        (pl.col("tf") == tf) & (pl.col("kind") != "partner") & (pl.col("kind") != "pioneer")
    )
    joined = rows.join(cores.select("chrom", "start", "end", "rule_bound"), on=["chrom", "start", "end"], how="left")
    rule = joined["rule_bound"].to_numpy()
    label = joined["label"].to_numpy()
    core = joined["rule_bound"].is_not_null().to_numpy()
    best = np.where(core, np.where(rule == True, 1 - flip_rate, flip_rate), label.astype(float))  # noqa: E712
    return roc_auc(label, best)


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
    from scanner.labels.run import LabelConfig, label
    from scanner.predict.run import PredictConfig, predict
    from scanner.runtime import ray_session
    from scanner.scan import ScanConfig, scan_genome
    from scanner.simulate.genome import SimulationConfig, simulate
    from scanner.store import RunDir
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

    sim_cfg = SimulationConfig(
        size_mb=config.size_mb, sites_per_mb=config.sites_per_mb, tfs=config.tfs, seed=config.seed
    )
    run = RunDir(out)
    sim = simulate(run.path("sim"), sim_cfg)
    done("simulate")
    with ray_session(config.address) if config.use_ray else nullcontext():
        scan = scan_genome(sim.genome, [str(sim.motifs)], out, ScanConfig(), use_ray=config.use_ray, overwrite=True)
        say("  instances: " + ", ".join(f"{n:,} {tf}" for tf, n in scan.hits.items()))
        done("scan")
        lab = label(
            run.path("instances"),
            dict(sim.peaks),
            out,
            LabelConfig(regimes=tuple(config.regimes), seed=config.seed),
            open_chromatin=sim.open_bed,
            blacklist=sim.blacklist,
            use_ray=config.use_ray,
        )
        say(f"  datasets: {lab.datasets}")
        done("label")
        train_cfg = TrainConfig(epochs=config.epochs, ensemble=config.ensemble, seed=config.seed)
        results = train_models(
            lab.datasets,
            run.path("models"),
            train_cfg,
            regimes=list(config.regimes),
            use_ray=config.use_ray,
            metrics_path=run.metrics_path,
            log=say,
        )
        done("train + evaluate")
        summary = predict(
            run.path("instances"), run.path("models"), run.path("predictions"), PredictConfig(), use_ray=config.use_ray
        )
        say(f"  predictions: {summary.rows} rows")
        done("predict")
        feature_lines: list[str] = []
        if config.features:
            from scanner.features import FeaturesConfig, check_simulated_rules, run_features

            res = run_features(out, config=FeaturesConfig(seed=config.seed), use_ray=config.use_ray, log=say)
            checks = check_simulated_rules(res.patterns, res.comparison)
            feature_lines = [*res.lines, "", "the simulated rules, recovered from the models' attributions:"]
            feature_lines += [c.line() for c in checks]
            done("features")
    metrics = metrics_table([m for r in results for m in r.metrics])
    ceilings = {}
    for r in results:
        c = noise_ceiling(lab.datasets, sim.truth, r.tf, r.regime, flip_rate=sim_cfg.flip_rate)
        if c is not None:
            ceilings[(r.tf, r.regime)] = c
    return DemoResult(out=out, metrics=metrics, seconds=seconds, ceilings=ceilings, features=feature_lines)


def format_demo(result: DemoResult) -> str:
    """The test chromosome's table: each model beside its baselines and the noise ceiling; where outputs are."""
    rows = [r for r in result.metrics.to_pylist() if r["split"] == "test"]

    def f(v: float | None) -> str:
        return "-" if v is None or v != v else f"{v:.3f}"  # v != v: NaN

    head = ["tf", "regime", "n (pos/neg)", "model", "motif score", "k-mer LR", "site LR", "ceiling", "verdict"]
    cells = [head]
    notes = []
    for r in rows:
        key = (r["tf"], r["regime"])
        if r.get("beats_baselines") is None:
            verdict = "-"
        elif r["beats_baselines"]:
            verdict = "beats every baseline"
        else:
            verdict = f"LOSES to {r['best_baseline']}"
        if key in CAVEATS:
            verdict += " (see note)"
            notes.append(f"note ({r['tf']}/{r['regime']}): {CAVEATS[key]}.")
        cells.append(
            [
                r["tf"],
                r["regime"],
                f"{r['n']} ({r['n_pos']}/{r['n_neg']})",
                f(r["auroc"]),
                f(r["score_auroc"]),
                f(r.get("kmer_auroc")),
                f(r.get("site_auroc")),
                f(result.ceilings.get(key)),
                verdict,
            ]
        )
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    table = [
        "  ".join(
            c.ljust(w) if i in (0, 1, 8) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    o = result.out
    if result.features:
        notes += ["", "What each regime taught (scanner features; OUT/features):", *result.features]
    lines = [
        "Test auROC on the held-out chromosome (chr9), each model beside its baselines fitted on the same",
        "training rows; ceiling = the best auROC any model can expect on these rows (the simulator flips 2%",
        "of the planted sites' labels at random).",
        "",
        *table,
        *(["", *notes] if notes else []),
        "",
        f"outputs under {o}/: sim/ instances/ labelled/ datasets/ models/ metrics.parquet predictions/"
        + (" features/" if result.features else ""),
        f"curves: {o}/models/tf=*/regime=*/roc.png, pr.png",
        "query:",
        "  import polars as pl",
        f"  pl.scan_parquet('{o}/predictions/**/*.parquet', hive_partitioning=True)"
        ".filter(pl.col('prob_bound') > 0.9).group_by('tf', 'regime').len().collect()",
    ]
    return "\n".join(lines)
