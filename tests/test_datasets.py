"""Windows (fast batched fetch vs per-row reference) and the balancing regimes."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from scanner.errors import InputError
from scanner.genome import decode, open_genome
from scanner.io import read_dataset
from scanner.labels.datasets import WindowReader, _strings, balance, build_datasets, window_codes
from scanner.labels.run import LabelConfig
from scanner.schemas import DATASETS, LABELLED


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("g")
    seqs = {
        "chrA": "".join(rng.choice(list("ACGTacgtN"), 3000)),
        "chrB": "ACGTNNNNGGCC" * 20,
        "chrC": "N" * 100,
    }
    path = d / "g.fa"
    path.write_text(
        "".join(f">{k}\n" + "\n".join(v[i : i + 50] for i in range(0, len(v), 50)) + "\n" for k, v in seqs.items())
    )
    return open_genome(path)


def test_window_codes_match_per_row_reference(genome):
    rng = np.random.default_rng(1)
    chroms = rng.choice(["chrA", "chrB"], 300)
    starts = np.array([rng.integers(-150, genome.lengths[c] + 50) for c in chroms])
    for kw in ({}, {"max_gap": 5, "max_span": 64}):
        got = window_codes(genome, chroms, starts, 101, **kw)
        for i, (c, s) in enumerate(zip(chroms, starts, strict=True)):
            assert np.array_equal(got[i], genome.codes(c, s, s + 101)), (c, s)
    assert window_codes(genome, [], [], 7).shape == (0, 7)


def _batch(rows):
    return pa.table(
        {
            "_row": pa.array(range(len(rows)), pa.int64()),
            "chrom": [r[0] for r in rows],
            "start": pa.array([r[1] for r in rows], pa.int64()),
            "end": pa.array([r[2] for r in rows], pa.int64()),
            "window_start": pa.array([(r[1] + r[2]) // 2 - 10 for r in rows], pa.int64()),
        }
    )


def test_window_reader_gc_window_and_mask(genome):
    rows = [("chrA", 100, 106), ("chrA", 2, 8), ("chrB", 230, 236), ("chrB", 4, 8), ("chrC", 40, 46)]
    batch = _batch(rows)
    gc = WindowReader(str(genome.path), 20, "gc")(batch)["gc"].to_numpy()
    win = WindowReader(str(genome.path), 20, "window")(batch)["window"].to_pylist()
    masked = WindowReader(str(genome.path), 20, "window", mask_core=True)(batch)["window"].to_pylist()
    for i, (c, s, e) in enumerate(rows):
        ws = (s + e) // 2 - 10
        ref = genome.codes(c, ws, ws + 20)
        assert win[i] == decode(ref)  # upper case, N for padding and non-ACGT
        acgt = ref[ref < 4]
        assert gc[i] == pytest.approx(np.isin(acgt, [1, 2]).mean() if acgt.size else np.nan, nan_ok=True)
        m = list(win[i])
        m[s - ws : e - ws] = "N" * (e - s)
        assert masked[i] == "".join(m)
    assert win[1].startswith("N" * 5)  # window [-5, 15) padded at the chromosome start
    assert win[2].endswith("N" * 3)  # window [223, 243) runs off chrB's end (240)
    assert gc[3] == pytest.approx(2 / 3)  # [-4, 16): ACGT NNNN GGCC ACGT -> 8 of 12 are G/C
    assert np.isnan(gc[4])  # no A/C/G/T at all
    with pytest.raises(ValueError, match="output"):
        WindowReader(str(genome.path), 20, "codes")


def test_strings():
    codes = np.array([[0, 1, 2, 3, 4], [4, 4, 0, 0, 1]], dtype=np.uint8)
    assert _strings(codes).to_pylist() == ["ACGTN", "NNAAC"]
    assert _strings(np.zeros((0, 5), np.uint8)).to_pylist() == []


def _labelled(n=4000, seed=0, tfs=("T1", "T2")):
    rng = np.random.default_rng(seed)
    chrom = rng.choice(["chr1", "chr2", "chr8", "chr9"], n)
    bound = rng.random(n) < 0.3
    # positives have smaller p-values and more GC on average: matching must remove that
    logp = np.where(bound, rng.uniform(4, 8, n), rng.uniform(4, 6.5, n))
    gc = np.clip(np.where(bound, rng.normal(0.5, 0.05, n), rng.normal(0.42, 0.05, n)), 0, 1)
    start = rng.integers(0, 10**6, n)
    return pl.DataFrame(
        {
            "chrom": chrom,
            "start": start,
            "end": start + 10,
            "strand": rng.choice(["+", "-"], n),
            "motif_id": "M1",
            "tf": rng.choice(list(tfs), n),
            "score": pl.Series(logp * 3, dtype=pl.Float32),
            "pvalue": 10**-logp,
            "sequence": "ACGTACGTAC",
            "bound": bound,
            "in_open": rng.random(n) < np.where(bound, 0.7, 0.2),
            "gc": pl.Series(gc, dtype=pl.Float32),
            "split": pl.Series(chrom).replace({"chr8": "val", "chr9": "test", "chr1": "train", "chr2": "train"}),
            "window_start": start - 495,
            "window_padded": False,
        }
    ).unique(["chrom", "start"])


def test_balance_keeps_a_site_found_on_both_strands_once():
    """A palindromic site is one window and one label: kept once, on the strand with the lower p-value."""
    lab = _labelled(n=400, seed=5)
    twin = lab.head(40).with_columns(
        pl.when(pl.col("strand") == "+").then(pl.lit("-")).otherwise(pl.lit("+")).alias("strand"),
        (pl.col("pvalue") * np.where(np.arange(40) % 2 == 0, 0.5, 2.0)).alias("pvalue"),
    )
    for regime in ("pvalue", "random"):
        out = balance(pl.concat([lab, twin]), regime, seed=1)
        assert out.select("tf", "chrom", "start", "end").is_unique().all()
        assert out["label"].sum() == lab["bound"].sum()
        kept = out.join(lab.head(40).select("chrom", "start"), on=["chrom", "start"])
        better = pl.concat([lab.head(40), twin]).sort("pvalue").unique(["chrom", "start"], keep="first")
        got = kept.join(better.select("chrom", "start", "strand", "pvalue"), on=["chrom", "start"])
        assert (got["strand"] == got["strand_right"]).all() and (got["pvalue"] == got["pvalue_right"]).all()


@pytest.mark.parametrize("regime", ["pvalue", "gc", "open", "random"])
def test_balance_is_one_to_one_within_bins(regime):
    lab = _labelled()
    out = balance(lab, regime, seed=3, gc_tolerance=0.02)
    src = lab.filter(pl.col("in_open")) if regime == "open" else lab
    assert set(out["regime"]) == {regime}
    assert (out["label"] == out["bound"].cast(pl.Int8)).all()
    # every positive of the source is kept; no row is duplicated
    assert out["label"].sum() == src["bound"].sum()
    assert out.select("chrom", "start", "strand").is_unique().all()
    bins = {
        "pvalue": (-(src["pvalue"].log10()) / 0.1).floor(),
        "open": (-(src["pvalue"].log10()) / 0.1).floor(),
        "gc": (src["gc"].cast(pl.Float64) / 0.02).floor(),
        "random": pl.Series([-1] * src.height),
    }[regime].cast(pl.Int32)
    avail = (
        src.with_columns(bins.alias("b"))
        .group_by("tf", "split", "b")
        .agg(pl.col("bound").sum().alias("pos"), (~pl.col("bound")).sum().alias("neg"))
    )
    got = out.group_by("tf", "split", "match_bin").agg(
        pl.col("label").sum().alias("p"), (1 - pl.col("label")).sum().alias("q")
    )
    j = avail.join(got, left_on=["tf", "split", "b"], right_on=["tf", "split", "match_bin"], how="left").fill_null(0)
    # negatives = min(positives, negatives available) in every bin of every (tf, split)
    assert j.select((pl.col("q") == pl.min_horizontal("pos", "neg")).all()).item()
    assert (j["p"] == j["pos"]).all()
    if regime == "gc":  # matched negatives lie in their positives' GC bin: |dGC| < tolerance
        spread = out.group_by("tf", "split", "match_bin").agg((pl.col("gc").max() - pl.col("gc").min()).alias("d"))
        assert (spread["d"] < 0.02 + 1e-6).all()
        full = got.filter(pl.col("p") == pl.col("q")).select("tf", "split", "match_bin")
        matched = out.join(full, on=["tf", "split", "match_bin"])  # bins with a negative per positive
        pos_gc = matched.filter(pl.col("label") == 1)["gc"].mean()
        neg_gc = matched.filter(pl.col("label") == 0)["gc"].mean()
        assert matched.height > 0.3 * out.height
        assert abs(pos_gc - neg_gc) < 0.005  # matching removed the GC difference (0.08 in the source)
    if regime == "open":
        assert out["in_open"].all()
    assert set(out["split"]) == {"train", "val", "test"}


def test_balance_is_seeded_and_order_independent():
    lab = _labelled(seed=2)
    a = balance(lab, "pvalue", seed=7)
    b = balance(lab.sample(fraction=1.0, shuffle=True, seed=1), "pvalue", seed=7)
    assert a.equals(b)
    c = balance(lab, "pvalue", seed=8)
    assert not a.equals(c) and a.height == c.height
    with pytest.raises(InputError, match="unknown regime"):
        balance(lab, "dnase")


def test_balance_with_no_negatives_keeps_positives():
    lab = _labelled(n=50).with_columns(pl.lit(True).alias("bound"))
    out = balance(lab, "random")
    assert out.height == lab.height and (out["label"] == 1).all()
    assert balance(lab.clear(), "pvalue").height == 0


def test_build_datasets_writes_partitions_and_removes_stale(genome, tmp_path):
    lab = (
        _labelled(n=300)
        .with_columns(pl.lit("chrA").alias("chrom"), (pl.col("start") % 2500).alias("start"))
        .with_columns((pl.col("start") + 10).alias("end"), (pl.col("start") - 45).alias("window_start"))
    )
    lab = lab.unique(["chrom", "start", "strand"]).sort("start")
    cfg = LabelConfig(window=100)
    sizes = build_datasets(lab, tmp_path, cfg, ["pvalue", "random"], genome.path)
    ds = pl.from_arrow(read_dataset(tmp_path, DATASETS))
    assert set(ds["regime"]) == {"pvalue", "random"}
    assert (ds["window"].str.len_bytes() == 100).all()
    for r in ds.head(20).iter_rows(named=True):
        assert r["window"] == decode(genome.codes("chrA", r["window_start"], r["window_start"] + 100))
    assert sizes["n"].sum() == ds.height
    assert json.loads((tmp_path / "_datasets.json").read_text())["window"] == 100
    assert sizes.columns == ["regime", "tf", "split", "n", "n_pos", "n_neg", "short_bins", "unmatched_pos"]
    assert sizes.height == 2 * 2 * 3  # every (regime, tf, split), empty ones included
    # a second run for T1 only, pvalue only: T1's random files go, T2's stay
    build_datasets(lab.filter(pl.col("tf") == "T1"), tmp_path, cfg, ["pvalue"], genome.path)
    ds2 = pl.from_arrow(read_dataset(tmp_path, DATASETS))
    assert ds2.filter(pl.col("tf") == "T1")["regime"].unique().to_list() == ["pvalue"]
    assert ds2.filter(pl.col("tf") == "T2").height == ds.filter(pl.col("tf") == "T2").height
    assert set(LABELLED.names) <= set(ds2.columns)
