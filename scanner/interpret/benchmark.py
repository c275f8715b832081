"""``scanner benchmark-interpret``: which attribution method finds the causal context? (simulated truth)

The reference (Zheng et al. 2021) simulated 1 kb sequences with a core motif and two context motifs
whose presence decided binding, trained a model, and scored each method by the per-position auROC of
its importance scores against the context-motif positions, pooled over sequences. Its generator is not
public; here the data come from :func:`scanner.simulate.simulate`, whose rules are documented there:
for ``ALPHA`` a core is bound when a partner motif lies 40-150 bp away AND the locus is open (a
cluster of 2-3 pioneer motifs); for ``GAMMA`` when the partner is near. ``truth.parquet`` lists, for
every rule-bound core, the *causal* context sites (partner and, for ALPHA, pioneers).

Steps: simulate (or reuse ``--sim``); cut the ``W``-bp window centred on every core of the TF; train a
model (``small`` by default) on the noisy labels of all chromosomes but the test one (reverse
complements added, a few epochs of Adam, the best epoch by validation loss kept); then, on up to
``n_sequences`` rule-bound cores of the test chromosome, run every method, time it, and compute per
method the auROC and auPRC of ``|score|`` (the per-position score of
:mod:`scanner.interpret.methods`) against the causal mask, all positions of all sequences pooled.
``ism-naive`` runs on the first ``naive_sequences`` of them only (its numbers equal ``ism``'s; the
largest difference is reported). Output: ``benchmark.parquet``, ``benchmark.md``, ``benchmark.png``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scanner.errors import InputError
from scanner.store import RunDir

#: The reference's simulated benchmark (per-position auROC), DeepSEA and DanQ columns.
REFERENCE_AUROC = {
    "guided-gradcam": {"DeepSEA": 0.897, "DanQ": 0.979},
    "saliency": {"DeepSEA": 0.871, "DanQ": 0.962},
    "ism": {"DeepSEA": 0.893, "DanQ": 0.986},
    "deeplift": {"DeepSEA": 0.812, "DanQ": None},
}


@dataclass(frozen=True)
class BenchmarkConfig:
    """Settings of ``scanner benchmark-interpret`` (each a flag).

    Parameters
    ----------
    tf : str
        Simulated TF whose cores are explained: ``GAMMA`` (partner) or ``ALPHA`` (open AND partner).
        Default ``"GAMMA"``.
    size_mb, sites_per_mb : float
        Simulation size when no simulation is given. Defaults 12 Mb, 800 cores per Mb (about 8,000
        training cores: fewer leave the small model short of learning the partner rule).
    seed : int
        Seed of the simulation, training and shuffles. Default 0.
    methods : tuple of str
        Methods compared. Default: all of :data:`scanner.interpret.METHODS`.
    n_sequences : int
        Rule-bound test cores explained. Default 100.
    naive_sequences : int
        Of those, explained by ``ism-naive`` too. Default 10.
    arch : str
        Model architecture. Default ``"small"``.
    seq_len : int
        Window W. Default 1000.
    epochs : int
        Training epochs. Default 6.
    batch_size : int
        Training and attribution batch size. Default 64.
    reference, n_shuffles
        DeepLIFT reference. Defaults ``"shuffle"``, 10.
    test_chrom : str, optional
        Held-out chromosome. Default ``chr9`` when present, else the last chromosome.
    """

    tf: str = "GAMMA"
    size_mb: float = 12.0
    sites_per_mb: float = 800.0
    seed: int = 0
    methods: tuple[str, ...] = ()
    n_sequences: int = 100
    naive_sequences: int = 10
    arch: str = "small"
    seq_len: int = 1000
    epochs: int = 6
    batch_size: int = 64
    reference: str = "shuffle"
    n_shuffles: int = 10
    test_chrom: str | None = None

    def resolved(self) -> BenchmarkConfig:
        """A validated copy with the default method list filled in."""
        from scanner.interpret.methods import METHODS, check_methods

        methods = self.methods or METHODS
        try:
            methods = check_methods(methods)
        except ValueError as exc:
            raise InputError(str(exc), field="--method") from exc
        if self.tf not in ("ALPHA", "GAMMA"):
            raise InputError(f"choose ALPHA or GAMMA (TFs with context rules), got {self.tf!r}", field="--tf")
        for name in ("n_sequences", "epochs", "batch_size", "seq_len"):
            if getattr(self, name) < 1:
                raise InputError(f"must be >= 1, got {getattr(self, name)}", field="--" + name.replace("_", "-"))
        if self.naive_sequences < 0:
            raise InputError(f"must be >= 0, got {self.naive_sequences}", field="--naive-sequences")
        d = asdict(self)
        d["methods"] = methods
        return BenchmarkConfig(**d)


def windows_for_cores(genome: Any, cores: Any, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes (n, W) of the windows centred on ``cores`` (rows with chrom/start/end), and window starts."""
    from scanner.predict.apply import fetch_windows

    chroms = np.asarray(cores["chrom"].to_list(), dtype=object)
    starts = cores["start"].to_numpy().astype(np.int64)
    ends = cores["end"].to_numpy().astype(np.int64)
    return fetch_windows(genome, chroms, starts, ends, width), (starts + ends) // 2 - width // 2


def train_small(
    codes: np.ndarray,
    labels: np.ndarray,
    val_codes: np.ndarray,
    val_labels: np.ndarray,
    spec: Any,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    log: Callable[[str], None],
) -> Any:
    """Train ``build_model(spec)`` with Adam on one-hot windows and their reverse complements.

    Returns the model (eval mode) with the weights of the epoch of lowest validation loss.
    """
    import copy

    import torch

    from scanner.genome import one_hot, reverse_complement_codes
    from scanner.models import build_model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = np.concatenate([codes, reverse_complement_codes(codes)])
    y = np.concatenate([labels, labels]).astype(np.float32)
    xv = torch.from_numpy(one_hot(val_codes))
    yv = torch.from_numpy(val_labels.astype(np.float32))
    model = build_model(spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best, best_state = float("inf"), None
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(x))
        total = 0.0
        for b0 in range(0, len(x), batch_size):
            idx = order[b0 : b0 + batch_size]
            if len(idx) < 2:
                continue
            xb = torch.from_numpy(one_hot(x[idx]))
            loss = loss_fn(model(xb)[:, 0], torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.inference_mode():
            val = float(loss_fn(model(xv)[:, 0], yv))
        log(f"epoch {epoch + 1}/{epochs}: train loss {total / len(x):.4f}, val loss {val:.4f}")
        if val < best:
            best, best_state = val, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


def run_benchmark(
    out_dir: str | Path,
    config: BenchmarkConfig = BenchmarkConfig(),
    *,
    sim_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Any:
    """Run the simulated attribution benchmark; write ``benchmark.{parquet,md,png}`` under ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Output directory (created). A fresh simulation goes to ``out_dir/simulation``.
    config : BenchmarkConfig, optional
    sim_dir : path, optional
        An existing ``scanner simulate`` directory (its config must include ``config.tf``).
    log : callable, optional
        Receives progress lines.

    Returns
    -------
    polars.DataFrame
        One row per method: ``method, n_sequences, auroc, auprc, seconds_per_100, max_abs_diff_vs_naive``.

    Raises
    ------
    InputError
        Bad settings, a simulation without the TF, or too few test cores.
    """
    import polars as pl
    import torch

    from scanner.evaluate import average_precision, roc_auc
    from scanner.genome import one_hot, open_genome
    from scanner.interpret.methods import Attributor, MethodOptions
    from scanner.interpret.plots import plot_benchmark
    from scanner.io import write_parquet_atomic, write_text_atomic
    from scanner.models import ModelSpec
    from scanner.simulate.genome import SimulationConfig, causal_mask, read_truth, simulate

    say = log or (lambda _m: None)
    cfg = config.resolved()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if sim_dir is None:
        say(f"simulating {cfg.size_mb} Mb with {cfg.tf} ...")
        sim = simulate(
            out / "simulation",
            SimulationConfig(size_mb=cfg.size_mb, tfs=(cfg.tf,), sites_per_mb=cfg.sites_per_mb, seed=cfg.seed),
        )
        sim_dir, genome_path = sim.out_dir, sim.genome
    else:
        sim_dir = Path(sim_dir)
        genome_path = sim_dir / "genome.fa"
    truth = read_truth(sim_dir)
    cores = truth.filter(pl.col("tf") == cfg.tf, pl.col("kind").is_in(["bound", "decoy", "background"]))
    if cores.height == 0:
        raise InputError(f"the simulation has no {cfg.tf} cores", source=sim_dir, field="--tf")
    chroms = sorted(cores["chrom"].unique().to_list(), key=lambda c: (len(c), c))
    test = cfg.test_chrom or ("chr9" if "chr9" in chroms else chroms[-1])
    val = "chr8" if "chr8" in chroms and test != "chr8" else chroms[0]
    genome = open_genome(genome_path)
    width = cfg.seq_len
    spec = ModelSpec(arch=cfg.arch, seq_len=width)

    train_rows = cores.filter(~pl.col("chrom").is_in([test, val]))
    val_rows = cores.filter(pl.col("chrom") == val)
    codes, _ = windows_for_cores(genome, train_rows, width)
    vcodes, _ = windows_for_cores(genome, val_rows, width)
    say(
        f"training {cfg.arch} on {train_rows.height} cores ({int(train_rows['bound'].sum())} bound), "
        f"validating on {val}, testing on {test}"
    )
    t0 = time.perf_counter()
    model = train_small(
        codes,
        train_rows["bound"].to_numpy(),
        vcodes,
        val_rows["bound"].to_numpy(),
        spec,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        log=say,
    )
    train_seconds = time.perf_counter() - t0
    test_rows = cores.filter(pl.col("chrom") == test)
    tcodes, _ = windows_for_cores(genome, test_rows, width)
    with torch.inference_mode():
        logits = torch.cat(
            [model(torch.from_numpy(one_hot(tcodes[i : i + 256])))[:, 0] for i in range(0, len(tcodes), 256)]
        )
    model_auroc = roc_auc(test_rows["bound"].to_numpy(), logits.numpy())
    say(f"model test auROC {model_auroc}")

    explained = test_rows.filter(pl.col("rule_bound") & (pl.col("causal").list.len() > 0))
    if explained.height == 0:
        raise InputError(f"no rule-bound {cfg.tf} cores with causal context on {test}", source=sim_dir)
    rng = np.random.default_rng(cfg.seed)
    pick = np.sort(rng.permutation(explained.height)[: cfg.n_sequences])
    explained = explained[pick.tolist()]
    xcodes, wstart = windows_for_cores(genome, explained, width)
    truth_mask = np.stack(
        [causal_mask(explained.row(i, named=True), int(wstart[i]), width) for i in range(explained.height)]
    )
    x = torch.from_numpy(one_hot(xcodes))
    attributor = Attributor(
        model,
        MethodOptions(reference=cfg.reference, n_shuffles=cfg.n_shuffles, seed=cfg.seed, batch_size=cfg.batch_size),
    )
    rows = []
    ism_values = None
    for method in cfg.methods:
        n = min(cfg.naive_sequences, len(x)) if method == "ism-naive" else len(x)
        if n == 0:
            continue
        t = time.perf_counter()
        res = attributor(x[:n], method)
        seconds = time.perf_counter() - t
        score = np.abs(res.score.numpy())
        labels = truth_mask[:n].ravel()
        diff = None
        if method == "ism":
            ism_values = res.values
        if method == "ism-naive" and ism_values is not None:
            diff = float((ism_values[:n] - res.values).abs().max())
        rows.append(
            {
                "method": method,
                "n_sequences": n,
                "auroc": roc_auc(labels, score.ravel()),
                "auprc": average_precision(labels, score.ravel()),
                "seconds_per_100": seconds * 100.0 / n,
                "max_abs_diff_vs_naive": diff,
            }
        )
        say(f"{method}: auROC {rows[-1]['auroc']:.3f}, auPRC {rows[-1]['auprc']:.3f}, {seconds:.1f} s for {n}")
    table = pl.DataFrame(rows, schema_overrides={"max_abs_diff_vs_naive": pl.Float64})
    if "ism-naive" in cfg.methods and "ism" in cfg.methods:
        diff = table.filter(pl.col("method") == "ism-naive")["max_abs_diff_vs_naive"]
        table = table.with_columns(
            pl.when(pl.col("method") == "ism")
            .then(diff[0] if len(diff) else None)
            .otherwise(pl.col("max_abs_diff_vs_naive"))
            .alias("max_abs_diff_vs_naive")
        )
    bench = RunDir.of("interpret_benchmark", out)
    write_parquet_atomic(table.to_arrow(), bench.part("table"))
    meta = {
        "config": asdict(cfg),
        "simulation": str(Path(sim_dir).resolve()),
        "test_chrom": test,
        "val_chrom": val,
        "model_test_auroc": model_auroc,
        "train_seconds": round(train_seconds, 1),
        "threads": torch.get_num_threads(),
        "positives": int(truth_mask.sum()),
        "positions": int(truth_mask.size),
    }
    write_text_atomic(json.dumps(meta, indent=2, default=str), bench.record_path)
    write_text_atomic(markdown_table(table, meta), bench.part("text"))
    plot_benchmark(table, bench.part("plot"))
    genome.close()
    return table


def markdown_table(table: Any, meta: dict[str, Any]) -> str:
    """The benchmark as Markdown, with the reference's DeepSEA/DanQ auROC beside ours."""
    cfg = meta["config"]
    lines = [
        f"# Attribution benchmark: simulated {cfg['tf']} cores, {cfg['arch']} model",
        "",
        f"Test chromosome {meta['test_chrom']}; model test auROC {_fmt(meta['model_test_auroc'])}; "
        f"{meta['positives']} causal positions of {meta['positions']} "
        f"({100 * meta['positives'] / max(meta['positions'], 1):.1f} %); torch threads {meta['threads']}.",
        "",
        "| method | sequences | auROC | auPRC | s / 100 seq | max diff vs naive | reference auROC (DeepSEA / DanQ) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in table.iter_rows(named=True):
        ref = REFERENCE_AUROC.get(r["method"].replace("-naive", ""))
        ref_txt = "-" if ref is None else f"{_fmt(ref['DeepSEA'])} / {_fmt(ref['DanQ'])}"
        lines.append(
            f"| {r['method']} | {r['n_sequences']} | {_fmt(r['auroc'])} | {_fmt(r['auprc'])} | "
            f"{r['seconds_per_100']:.2f} | {_fmt(r['max_abs_diff_vs_naive'], '.1e')} | {ref_txt} |"
        )
    lines.append("")
    return "\n".join(lines)


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)
