"""scanner features: discovery on a tiny seeded simulation with hand-set models, its tables, CLI and pieces.

The run is built by hand: a 2 Mb simulation of ALPHA (open AND an ALPHA_P partner 40-150 bp away), its
open+partner cores as bound test windows under two regimes, and two one-filter models whose convolution
is the log-odds of one planted motif (``pvalue``: PIONEER, the pioneer of open chromatin; ``open``:
ALPHA_P, the partner). Discovery must name each model's motif (TomTom q < 0.05), place the partner's
seqlets at the simulated distances, and the comparison must see PIONEER vanish under ``open``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from scanner.cli import app
from scanner.errors import InputError
from scanner.features import FeaturesConfig, compare_features, features, ppm_similarity, read_features
from scanner.features.match import benjamini_hochberg
from scanner.features.positions import seqlet_places
from scanner.io import partition_dir, write_parquet_atomic
from scanner.schemas import FEATURE_COMPARISON, FEATURE_SEQLETS, FEATURES

W = 400


def planted_model(name: str, width: int = W) -> tuple[torch.nn.Sequential, object]:
    """A checkpointable model whose logit is relu(best log-odds score of motif ``name`` - half its max)."""
    from scanner.models import ModelSpec, build_model
    from scanner.motifs import Background, log_odds
    from scanner.simulate.rules import simulated_motif

    lo = log_odds(simulated_motif(name), Background.uniform())
    w = lo.shape[0]
    spec = ModelSpec(
        arch="small",
        seq_len=width,
        conv_channels=(1,),
        conv_widths=(w,),
        pool_sizes=(width - w + 1,),
        dropouts=(0.0,),
        dense_units=1,
    )
    model = build_model(spec)
    with torch.no_grad():
        model[0].weight[0] = torch.tensor(lo.T, dtype=torch.float32)
        model[0].bias.fill_(-0.5 * float(lo.max(axis=1).sum()))
        for mod in model:
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.zero_()
                mod.running_var.fill_(1 - mod.eps)
                mod.weight.fill_(1)
                mod.bias.zero_()
            elif isinstance(mod, torch.nn.Linear):
                mod.weight.fill_(1)
                mod.bias.zero_()
    return model.eval(), spec


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from scanner.genome import decode, open_genome
    from scanner.models import save_checkpoint
    from scanner.predict.apply import fetch_windows
    from scanner.simulate.genome import SimulationConfig, read_truth, simulate

    root = tmp_path_factory.mktemp("features_run")
    sim = simulate(root / "sim", SimulationConfig(size_mb=2, n_chroms=2, tfs=("ALPHA",), sites_per_mb=250, seed=0))
    cores = read_truth(root / "sim").filter(pl.col("tf") == "ALPHA", pl.col("design") == "open+partner")
    with open_genome(sim.genome) as g:
        codes = fetch_windows(
            g, np.asarray(cores["chrom"].to_list(), dtype=object), cores["start"].to_numpy(), cores["end"].to_numpy(), W
        )
    rows = cores.select("chrom", "start", "end", "strand").with_columns(
        pl.lit("SIM0001").alias("motif_id"),
        pl.lit(1, pl.Int8).alias("label"),
        pl.Series("window", [decode(c) for c in codes]),
    )
    unbound = rows.head(20).with_columns(pl.lit(0, pl.Int8).alias("label"))
    for regime, motif in (("pvalue", "PIONEER"), ("open", "ALPHA_P")):
        d = partition_dir(root / "datasets", [("regime", regime), ("tf", "ALPHA"), ("split", "test")])
        write_parquet_atomic(pl.concat([rows, unbound]).to_arrow(), d / "part-00000.parquet")
        model, spec = planted_model(motif)
        save_checkpoint(model, spec, partition_dir(root / "models", [("tf", "ALPHA"), ("regime", regime)]), {})
    return root


@pytest.fixture(scope="module")
def result(run_dir):
    dbs = [run_dir / "sim" / "motifs.meme", run_dir / "sim" / "context_motifs.meme"]
    return features(
        run_dir / "datasets", run_dir / "models", run_dir / "features", FeaturesConfig(), databases=dbs, use_ray=False
    )


def test_discovery_recovers_the_planted_motifs(run_dir, result):
    from scanner.simulate.genome import read_truth

    pats = pl.from_arrow(result.patterns)
    n = len(pl.read_parquet(run_dir / "datasets" / "**" / "*.parquet").filter(pl.col("label") == 1)) // 2
    for regime, motif in (("pvalue", "PIONEER"), ("open", "ALPHA_P")):
        top = pats.filter(pl.col("regime") == regime, pl.col("sign") == 1).sort("rank").row(0, named=True)
        assert top["best_match"] == motif and top["best_qvalue"] < 0.05, top
        assert top["matches"][0]["name"] == motif
        assert top["n_windows"] == n and top["share"] > 0.3
    # the partner's seqlets are planted partner sites (truth shares no code with discovery) at 40-150 bp
    seq = pl.from_arrow(result.seqlets).filter(pl.col("regime") == "open")
    truth = read_truth(run_dir / "sim").filter(pl.col("tf") == "ALPHA_P")
    hits = seq.join(truth.select("chrom", pl.col("start").alias("t0"), pl.col("end").alias("t1")), on="chrom").filter(
        (pl.col("start") < pl.col("t1")) & (pl.col("end") > pl.col("t0"))
    )
    assert hits.select("start", "chrom").unique().height >= 0.9 * seq.height
    d = seq["distance"].abs()
    assert ((d >= 35) & (d <= 155)).mean() > 0.9
    top = pats.filter(pl.col("regime") == "open").row(0, named=True)
    assert 40 <= top["abs_distance_median"] <= 150 and top["share_in_site"] == 0
    # files: MEME readable by the project's reader, logo written
    from scanner.motifs import read_motif_file

    for r in pats.iter_rows(named=True):
        (m,) = read_motif_file(Path(result.out) / r["meme"])
        np.testing.assert_allclose(m.probs, np.asarray(r["ppm"]), atol=1e-5)
        assert (Path(result.out) / r["logo"]).stat().st_size > 1000


def test_comparison_sees_the_pioneer_vanish_under_open(result):
    cmp = pl.from_arrow(result.comparison)
    status = dict(cmp.select("feature", "status").unique().iter_rows())
    assert status["PIONEER"] == "vanishes under open" and status["ALPHA_P"] == "only under open"
    pio = cmp.filter(pl.col("feature") == "PIONEER")
    assert (
        pio.filter(pl.col("regime") == "open")["share"][0] == 0 < pio.filter(pl.col("regime") == "pvalue")["share"][0]
    )
    text = "\n".join(result.lines)
    assert "PIONEER" in text and "vanishes under open" in text


def test_parquet_round_trips_with_polars(result):
    out = Path(result.out)
    got = pl.read_parquet(out / "patterns" / "**" / "*.parquet", hive_partitioning=False)
    assert pq.read_schema(next((out / "patterns").rglob("*.parquet"))).remove_metadata() == FEATURES.remove_metadata()
    key = ["tf", "regime", "method", "pattern"]
    assert_frame_equal(got.sort(key), pl.from_arrow(result.patterns).sort(key))
    seq = pl.read_parquet(out / "seqlets" / "**" / "*.parquet", hive_partitioning=False)
    assert_frame_equal(seq, pl.from_arrow(result.seqlets), check_row_order=False)
    assert_frame_equal(pl.read_parquet(out / "comparison.parquet"), pl.from_arrow(result.comparison))
    p, s, c = read_features(out)
    assert p.schema == FEATURES and s.schema == FEATURE_SEQLETS and c.schema == FEATURE_COMPARISON
    record = json.loads((out / "_features.json").read_text())
    assert record["patterns"] == result.patterns.num_rows and len(record["models"]) == 2


@pytest.mark.ray
def test_ray_equals_in_process(ray_cluster, run_dir, result, tmp_path):
    dbs = [run_dir / "sim" / "motifs.meme", run_dir / "sim" / "context_motifs.meme"]
    cfg = FeaturesConfig(regimes=("open",), chunk_rows=100)
    got = features(run_dir / "datasets", run_dir / "models", tmp_path / "f", cfg, databases=dbs, use_ray=True)
    key = ["tf", "regime", "method", "pattern"]
    want = pl.from_arrow(result.patterns).filter(pl.col("regime") == "open").sort(key)
    assert_frame_equal(pl.from_arrow(got.patterns).sort(key), want)


def test_errors_and_cli(run_dir, result, tmp_path):
    with pytest.raises(InputError, match="--overwrite"):
        features(run_dir / "datasets", run_dir / "models", run_dir / "features", FeaturesConfig(), use_ray=False)
    with pytest.raises(InputError, match="no window selected"):
        features(
            run_dir / "datasets", run_dir / "models", tmp_path / "x", FeaturesConfig(splits=("train",)), use_ray=False
        )
    with pytest.raises(InputError, match="--where"):
        features(
            run_dir / "datasets", run_dir / "models", tmp_path / "x", FeaturesConfig(where="nope >>> 1"), use_ray=False
        )
    with pytest.raises(InputError, match="--method"):
        FeaturesConfig(methods=("saliency",)).validate()
    assert not (tmp_path / "x").exists()
    runner = CliRunner()
    bad = runner.invoke(
        app,
        [
            "features",
            "--out",
            str(tmp_path / "y"),
            "--datasets",
            str(run_dir),
            "--models",
            str(run_dir),
            "--no-ray",
            "--motifs",
            str(tmp_path / "missing.meme"),
        ],
    )
    assert bad.exit_code == 2 and "missing.meme" in bad.output
    # ISM on one model, the run's own motif files found by default
    res = runner.invoke(
        app,
        [
            "features",
            "--out",
            str(tmp_path / "cli"),  # another run directory, reading this run's datasets and models
            "--datasets",
            str(run_dir),
            "--models",
            str(run_dir),
            "--no-ray",
            "--method",
            "ism",
            "--regime",
            "pvalue",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "PIONEER" in res.output
    p = pl.read_parquet(tmp_path / "cli" / "features" / "patterns" / "**" / "*.parquet", hive_partitioning=False)
    assert p["method"].unique().to_list() == ["ism"] and p.sort("rank")["best_match"][0] == "PIONEER"


# ---- pieces, against references that share no code with them --------------------------------------
def test_hypothetical_contributions_against_references():
    from scanner.features.attribute import hypothetical_contributions
    from scanner.interpret import Attributor, MethodOptions

    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    x = torch.zeros(3, 4, 30, dtype=torch.float64)
    x[torch.arange(3)[:, None], torch.from_numpy(rng.integers(0, 4, (3, 30))), torch.arange(30)[None, :]] = 1
    # a linear model: DeepLIFT multipliers are its gradient, so hypothetical[b, p] = g[b, p] - ref_p . g_p
    lin = torch.nn.Sequential(torch.nn.Conv1d(4, 2, 5), torch.nn.Flatten(), torch.nn.Linear(52, 1)).double()
    att = Attributor(lin, MethodOptions(reference="gc"))
    got = hypothetical_contributions(att, x, "deeplift", 3, 20)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(lin(xg).sum(), xg)
    gc = (x[:, 1] + x[:, 2]).mean(1)
    ref = torch.stack([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2], 1)[:, :, None]
    want = g - (ref * g).sum(1, keepdim=True)
    np.testing.assert_allclose(got, want[:, :, 3:20].numpy(), rtol=1e-5, atol=1e-6)
    # ISM: naive mutants through the model, centred per position
    net = torch.nn.Sequential(torch.nn.Conv1d(4, 3, 5), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(78, 1))
    net = net.double().eval()
    got = hypothetical_contributions(Attributor(net), x, "ism", 5, 9)
    with torch.no_grad():
        base = net(x)[:, 0]
        for p in range(5, 9):
            vals = []
            for b in range(4):
                y = x.clone()
                y[:, :, p] = 0
                y[:, b, p] = 1
                vals.append(net(y)[:, 0] - base)
            v = torch.stack(vals, 1)
            np.testing.assert_allclose(got[:, :, p - 5], (v - v.mean(1, keepdim=True)).numpy(), atol=1e-5)


def test_positions_by_hand():
    # forward seqlet [10, 20) of a window starting at 1000, track offset 5, pattern trimmed to [2, 8)
    pl_ = seqlet_places(
        np.array([10, 10]), np.array([20, 20]), np.array([False, True]), 2, 8,
        np.array([1000, 1000]), 5, np.array([1100, 1100]), np.array([1110, 1110]), np.array([False, True]),
    )  # fmt: skip
    # + seqlet: genome [1017, 1023); - seqlet: track [12, 18) -> genome [1017, 1023) too
    assert pl_.start.tolist() == [1017, 1017] and pl_.end.tolist() == [1023, 1023]
    # centres 1020 and 1105: -85 on a + site (upstream), +85 on a - site (downstream)
    assert pl_.distance.tolist() == [-85, 85] and pl_.side.tolist() == [-1, 1]


def test_benjamini_hochberg_against_loop():
    p = np.random.default_rng(0).random(50) ** 3
    n = p.size
    want = np.array([min(1.0, min(p[j] * n / (np.sum(p <= p[j])) for j in range(n) if p[j] >= p[i])) for i in range(n)])
    np.testing.assert_allclose(benjamini_hochberg(p), want)


def test_ppm_similarity_and_grouping():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.full(4, 0.3), size=10)
    assert ppm_similarity(a, a) == pytest.approx(1)
    assert ppm_similarity(a, a[::-1, ::-1]) == pytest.approx(1)
    assert ppm_similarity(a, np.vstack([np.full((3, 4), 0.25), a])) == pytest.approx(1)
    b = rng.dirichlet(np.full(4, 0.3), size=10)
    assert ppm_similarity(a, b) < 0.75
    row = {c: None for c in FEATURES.names}
    base = {**row, "tf": "T", "method": "deeplift", "sign": 1, "rank": 0, "n_seqlets": 10, "windows_with": 5}
    pats = [
        {**base, "regime": "pvalue", "pattern": "pos_0", "best_match": "M1", "best_match_id": "1", "ppm": a.tolist()},
        {**base, "regime": "open", "pattern": "pos_0", "consensus": "X", "ppm": b.tolist()},
        {**base, "regime": "random", "pattern": "pos_0", "consensus": "Y", "ppm": b[::-1, ::-1].tolist()},
    ]
    df = pl.DataFrame(pats, schema=pl.from_arrow(FEATURES.empty_table()).schema)
    seq = pl.DataFrame(
        [
            {"tf": "T", "regime": r, "method": "deeplift", "pattern": "pos_0", "chrom": "c", "start": 0, "end": 5,
             "strand": "+", "site_start": 10 * i, "site_end": 10 * i + 5, "site_strand": "+", "motif_id": "m",
             "distance": 20, "contribution": 1.0}
            for r in ("pvalue", "open", "random") for i in range(2)
        ],
        schema=pl.from_arrow(FEATURE_SEQLETS.empty_table()).schema,
    )  # fmt: skip
    models = pl.DataFrame({"tf": ["T"] * 3, "regime": ["open", "pvalue", "random"], "method": ["deeplift"] * 3})
    cmp = pl.from_arrow(compare_features(df, seq, models.with_columns(pl.lit(4).alias("n_windows"))))
    status = dict(cmp.select("feature", "status").unique().iter_rows())
    assert status == {"M1": "vanishes under open", "novel:X": "some regimes"}
    novel = cmp.filter(pl.col("feature") == "novel:X").sort("regime")
    assert novel["present"].to_list() == [True, False, True] and novel["share"].to_list() == [0.5, 0.0, 0.5]


def test_selection_from_predictions_and_subsets(run_dir):
    from scanner.features.select import SELECTED, select_windows
    from scanner.schemas import PREDICTIONS

    ds = pl.read_parquet(run_dir / "datasets" / "regime=pvalue" / "**" / "*.parquet").filter(pl.col("label") == 1)
    preds = ds.select("chrom", "start", "end", "strand", "motif_id").with_columns(
        pl.lit("ALPHA").alias("tf"),
        pl.lit(9.0, pl.Float32).alias("score"),
        pl.lit(1e-6).alias("pvalue"),
        pl.lit("A").alias("sequence"),
        pl.lit("pvalue").alias("regime"),
        pl.lit("ALPHA").alias("model_tf"),
        pl.lit(0.0, pl.Float32).alias("logit"),
        pl.Series("prob_bound", np.linspace(0, 1, ds.height), pl.Float32),
    )
    d = partition_dir(run_dir / "predictions", [("tf", "ALPHA"), ("chrom", "chr1")])
    write_parquet_atomic(preds.select(PREDICTIONS.names).to_arrow().cast(PREDICTIONS), d / "part-0.parquet")
    cfg = FeaturesConfig(source="predictions", top=50, regimes=("pvalue",))
    got = pl.from_arrow(
        select_windows(run_dir / "predictions", run_dir / "models", cfg, genome=run_dir / "sim" / "genome.fa")
    )
    assert got.height == 50 and set(got["regime"]) == {"pvalue"}
    # the windows read from the genome are the datasets' windows of the same sites
    want = ds.join(
        got.select("chrom", "start", "strand", pl.col("window").alias("w2")), on=["chrom", "start", "strand"]
    )
    assert want.height == 50 and (want["window"] == want["w2"]).all()
    assert (got["window_start"] == (got["start"] + got["end"]) // 2 - W // 2).all()
    # a seeded subset: a sorted subset of the whole, the same for the same seed
    full = pl.from_arrow(select_windows(run_dir / "datasets", run_dir / "models", FeaturesConfig(max_windows=None)))
    sub = pl.from_arrow(select_windows(run_dir / "datasets", run_dir / "models", FeaturesConfig(max_windows=30)))
    again = pl.from_arrow(select_windows(run_dir / "datasets", run_dir / "models", FeaturesConfig(max_windows=30)))
    assert sub.height == 60 and sub.join(full, on=sub.columns).height == 60
    assert_frame_equal(sub, again) and sub.schema == pl.from_arrow(SELECTED.empty_table()).schema


def test_simulated_rule_checks(result):
    from scanner.features import check_simulated_rules

    # the hand-set models: ALPHA's open model is an ALPHA_P detector, its pvalue model a PIONEER one; no BETA
    checks = check_simulated_rules(result.patterns, result.comparison)
    assert [c.passed for c in checks] == [None, None, True, True], [c.line() for c in checks]
    pats = pl.from_arrow(result.patterns).with_columns(
        pl.when(pl.col("regime") == "pvalue").then(pl.lit("BETA")).otherwise(pl.col("tf")).alias("tf")
    )
    c = check_simulated_rules(pats, result.comparison)
    assert c[0].passed is True and "PIONEER" in c[0].line() and c[1].passed is None
    assert check_simulated_rules(pats, result.comparison, partner_distance=(200, 300))[2].passed is False
