"""``scanner query``: each answer equals a direct polars computation over the same files.

The run directory is written here by hand in the project's schemas (seeded random values, ties in
``prob_bound`` on purpose, a percent-encoded TF name, cross-TF rows and variant scores), so the
reference computations below read the files one by one and never go through scanner.query.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from scanner.errors import InputError
from scanner.io import parquet_files, partition_dir, write_parquet_atomic
from scanner.results import query as q
from scanner.schemas import INSTANCES, LABELLED, METRICS, PREDICTIONS, VARIANTS

TFS = ["ALPHA", "BETA", "FOS::JUN"]
CHROMS = ["chr1", "chr2", "chr10"]
REGIMES = ["pvalue", "gc"]


def _instances(rng: np.random.Generator, tf: str, chrom: str, n: int) -> dict:
    start = np.sort(rng.choice(100_000, n, replace=False)).astype(np.int64)
    return {
        "chrom": [chrom] * n,
        "start": start,
        "end": start + 12,
        "strand": rng.choice(["+", "-"], n).tolist(),
        "motif_id": [f"M_{tf}"] * n,
        "tf": [tf] * n,
        "score": rng.uniform(8, 20, n).astype(np.float32),
        "pvalue": rng.uniform(1e-8, 1e-4, n),
        "sequence": ["ACGTACGTACGT"] * n,
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("query") / "run"
    for tf in TFS:
        for chrom in CHROMS:
            cols = _instances(rng, tf, chrom, int(rng.integers(5, 30)))
            n = len(cols["start"])
            inst = pa.table(cols, schema=INSTANCES)
            write_parquet_atomic(
                inst, partition_dir(root / "instances", [("tf", tf), ("chrom", chrom)]) / "part-0.parquet"
            )
            lab = dict(cols)
            lab.update(
                bound=rng.random(n) < 0.3,
                in_open=rng.random(n) < 0.5,
                gc=rng.uniform(0.3, 0.6, n).astype(np.float32),
                split=["train"] * n,
                window_start=cols["start"] - 494,
                window_padded=[False] * n,
            )
            write_parquet_atomic(
                pa.table(lab, schema=LABELLED),
                partition_dir(root / "labelled", [("tf", tf), ("chrom", chrom)]) / "part-0.parquet",
            )
            parts = []
            for regime in REGIMES:
                for model_tf in [tf, "BETA"] if tf == "ALPHA" else [tf]:
                    prob = np.round(rng.random(n), 1).astype(np.float32)  # many ties
                    extra = {
                        "regime": [regime] * n,
                        "model_tf": [model_tf] * n,
                        "logit": np.log(prob / (1 - prob + 1e-6) + 1e-6).astype(np.float32),
                        "prob_bound": prob,
                    }
                    parts.append(pa.table({**cols, **extra}, schema=PREDICTIONS))
            write_parquet_atomic(
                pa.concat_tables(parts),
                partition_dir(root / "predictions", [("tf", tf), ("chrom", chrom)]) / "part-0-c0000.parquet",
            )
    metrics = [
        {
            "tf": tf,
            "model_tf": tf,
            "regime": r,
            "split": "test",
            "n": 100,
            "n_pos": 50,
            "n_neg": 50,
            "auroc": 0.9,
            "auprc": 0.8,
            "score_auroc": 0.6,
            "loss": 0.4,
        }
        for tf in TFS
        for r in REGIMES
    ]
    write_parquet_atomic(pa.Table.from_pylist(metrics, schema=METRICS), root / "metrics.parquet")
    rows = []
    for vid, vcf_id, tf in (("chr1:101:A:G", "rs1", "ALPHA"), ("chr2:5:C:T", None, "BETA")):
        for inst_start in (90, 120):
            for regime in REGIMES:
                d = float(rng.normal())
                rows.append(
                    {
                        "chrom": vid.split(":")[0],
                        "pos": 100,
                        "ref": "A",
                        "alt": "G",
                        "variant_id": vid,
                        "vcf_id": vcf_id,
                        "vcf_line": 3,
                        "kind": "snv",
                        "var_start": 100,
                        "var_end": 101,
                        "tf": tf,
                        "seq_len": 1000,
                        "in_window": True,
                        "distance": 0,
                        "inst_start": inst_start,
                        "inst_end": inst_start + 12,
                        "inst_strand": "+",
                        "motif_id": f"M_{tf}",
                        "inst_source": "scan",
                        "window_start": inst_start - 494,
                        "var_in_site": False,
                        "site_bases_deleted": 0,
                        "site_pvalue_ref": 1e-5,
                        "site_pvalue_alt": 1e-5,
                        "hit_ref": True,
                        "hit_alt": True,
                        "regime": regime,
                        "logit_ref": 0.1,
                        "logit_alt": 0.1 + d,
                        "prob_ref": 0.5,
                        "prob_alt": 0.6,
                        "delta_logit": d,
                        "abs_delta": abs(d),
                    }
                )
    rows.append(
        {**rows[0], "in_window": False, "inst_start": None, "inst_end": None, "regime": None, "delta_logit": None}
    )
    table = pa.Table.from_pylist(rows, schema=VARIANTS)
    for tf in ("ALPHA", "BETA"):
        part = table.filter(pa.compute.equal(table["tf"], tf))
        write_parquet_atomic(
            part, partition_dir(root / "variants" / "scores", [("tf", tf), ("chrom", "chr1")]) / "part-0.parquet"
        )
    return root


def _read_all(root: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(f) for f in parquet_files(root)], how="vertical")


def test_tables_and_percent_encoded_partitions(run):
    assert q.available(run) == ["instances", "labelled", "predictions", "variants", "metrics"]
    assert (run / "instances" / "tf=FOS%3A%3AJUN").is_dir()
    tfs = q.dataset(run, "instances").select("tf").unique().collect()["tf"].sort().to_list()
    assert tfs == sorted(TFS)
    with pytest.raises(InputError, match="has no attributions"):
        q.dataset(run, "attributions")
    with pytest.raises(InputError, match="unknown table"):
        q.dataset(run, "nope")


@pytest.mark.parametrize("n", [1, 3])
def test_top_bound_equals_direct_polars(run, n):
    pred = _read_all(run / "predictions")
    own = pred.filter(pl.col("model_tf") == pl.col("tf"))
    parts = []
    for tf in sorted(TFS):
        for regime in sorted(REGIMES):
            g = own.filter((pl.col("tf") == tf) & (pl.col("regime") == regime))
            g = g.sort(["prob_bound", "chrom", "start", "strand"], descending=[True, False, False, False]).head(n)
            parts.append(g)
    expected = pl.concat(parts)
    got = q.top_bound(run, n)
    assert_frame_equal(got.select(expected.columns), expected)
    assert got.height == n * len(TFS) * len(REGIMES)


def test_top_bound_filters_and_cross_tf(run):
    got = q.top_bound(run, 1000, tfs=["ALPHA"], regimes=["gc"], own_model=False)
    pred = _read_all(run / "predictions").filter((pl.col("tf") == "ALPHA") & (pl.col("regime") == "gc"))
    assert got.height == pred.height and set(got["model_tf"]) == {"ALPHA", "BETA"}
    with pytest.raises(InputError, match=">= 1"):
        q.top_bound(run, 0)


def test_chrom_counts_equal_direct_counts(run):
    inst = _read_all(run / "instances")
    expected = Counter(zip(inst["tf"], inst["chrom"], strict=True))
    got = q.chrom_counts(run)
    assert {(r["tf"], r["chrom"]): r["n"] for r in got.iter_rows(named=True)} == expected
    assert got.select("tf", "chrom").rows() == sorted(expected)

    lab = _read_all(run / "labelled")
    got = q.chrom_counts(run, table="labelled", tfs=["BETA"])
    for r in got.iter_rows(named=True):
        sel = lab.filter((pl.col("tf") == "BETA") & (pl.col("chrom") == r["chrom"]))
        assert (r["n"], r["n_bound"]) == (sel.height, int(sel["bound"].sum()))

    pred = _read_all(run / "predictions").filter(pl.col("model_tf") == pl.col("tf"))
    got = q.chrom_counts(run, table="predictions", min_prob=0.7)
    assert got.height == len(TFS) * len(CHROMS) * len(REGIMES)
    for r in got.iter_rows(named=True):
        sel = pred.filter(
            (pl.col("tf") == r["tf"]) & (pl.col("regime") == r["regime"]) & (pl.col("chrom") == r["chrom"])
        )
        assert (r["n"], r["n_predicted_bound"]) == (sel.height, int((sel["prob_bound"] >= 0.7).sum()))
    with pytest.raises(InputError, match="predictions"):
        q.chrom_counts(run, min_prob=0.5)


@pytest.mark.parametrize(("locus", "window"), [("chr2:50000", 5000), ("chr10:1,000-60,000", 0), ("chr1:0-100000", 10)])
def test_near_equals_direct_filter(run, locus, window):
    chrom, start, end = q.parse_locus(locus)
    inst = _read_all(run / "instances")
    keep = []
    for r in inst.iter_rows(named=True):
        if r["chrom"] == chrom and r["start"] < end + window and r["end"] > start - window:
            dist = max(0, start - r["end"], r["start"] - end)
            keep.append((r["tf"], r["start"], r["strand"], dist))
    got = q.near(run, locus, window=window)
    assert sorted(zip(got["tf"], got["start"], got["strand"], got["distance"], strict=True)) == sorted(keep)
    assert got["start"].is_sorted()


def test_near_is_half_open(run):
    site = _read_all(run / "instances").filter(pl.col("chrom") == "chr2").sort("start").row(0, named=True)
    chrom, s, e = site["chrom"], site["start"], site["end"]

    def hit(locus: str, window: int = 0) -> list[int]:
        got = q.near(run, locus, window=window)
        return got.filter(pl.col("start") == s)["distance"].to_list()

    assert hit(f"{chrom}:{e}-{e + 5}") == []  # touching the end: no overlap
    assert hit(f"{chrom}:{e - 1}-{e + 5}") == [0]
    assert hit(f"{chrom}:{e + 3}", window=4) == [3]  # 3 bases between the site and the locus
    assert hit(f"{chrom}:{e + 3}", window=3) == []
    assert hit(f"{chrom}:{s - 4}-{s}", window=0) == []


def test_parse_locus():
    assert q.parse_locus("chrX:12") == ("chrX", 12, 13)
    assert q.parse_locus("chr1:1_000-2_000") == ("chr1", 1000, 2000)
    for bad in ("chr1", "chr1:5-5", "chr1:a-b", "chr1:10-2"):
        with pytest.raises(InputError):
            q.parse_locus(bad)


def test_variant_scores_across_regimes(run):
    got = q.variant_scores(run, "rs1")
    rows = _read_all(run / "variants" / "scores").filter((pl.col("vcf_id") == "rs1") & pl.col("regime").is_not_null())
    assert got.height == 2  # two instances
    for r in got.iter_rows(named=True):
        for regime in REGIMES:
            sel = rows.filter((pl.col("inst_start") == r["inst_start"]) & (pl.col("regime") == regime))
            assert r[f"delta_{regime}"] == pytest.approx(sel["delta_logit"][0])
            assert r[f"prob_alt_{regime}"] == pytest.approx(sel["prob_alt"][0])
    assert q.variant_scores(run, "chr2:5:C:T").height == 2
    with pytest.raises(InputError, match="no scored variant"):
        q.variant_scores(run, "rs404")


def test_sql_equals_direct_polars(run):
    got = q.sql(
        run,
        "SELECT tf, regime, COUNT(*) AS n FROM predictions WHERE prob_bound > 0.5 "
        "GROUP BY tf, regime ORDER BY tf, regime",
    )
    pred = _read_all(run / "predictions").filter(pl.col("prob_bound") > 0.5)
    expected = pred.group_by("tf", "regime").agg(pl.len().alias("n")).sort("tf", "regime")
    assert_frame_equal(got, expected, check_dtypes=False)
    joined = q.sql(
        run,
        "SELECT i.tf, COUNT(*) AS n FROM instances i JOIN labelled l ON i.chrom = l.chrom AND i.start = l.start "
        "AND i.strand = l.strand AND i.tf = l.tf WHERE l.bound GROUP BY i.tf ORDER BY i.tf",
    )
    lab = _read_all(run / "labelled").filter(pl.col("bound"))
    assert dict(joined.rows()) == dict(Counter(lab["tf"]))
    with pytest.raises(InputError, match="query failed"):
        q.sql(run, "SELECT * FROM attributions")


def test_output_formats(run, tmp_path):
    df = q.top_bound(run, 2)
    text = q.write_result(df, fmt="csv")
    assert_frame_equal(pl.read_csv(io.StringIO(text), schema=df.schema), df)
    assert q.write_result(df, fmt="parquet", output=tmp_path / "t.parquet") is None
    assert_frame_equal(pl.read_parquet(tmp_path / "t.parquet"), df)
    assert "prob_bound" in q.write_result(df, fmt="table")
    with pytest.raises(InputError, match="--output"):
        q.write_result(df, fmt="parquet")
    with pytest.raises(InputError, match="format"):
        q.write_result(df, fmt="xlsx")


def test_cli(run, tmp_path):
    from scanner.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["query", str(run), "--top-bound", "2", "--format", "csv"])
    assert res.exit_code == 0, res.output
    expected = q.top_bound(run, 2)
    assert_frame_equal(pl.read_csv(io.StringIO(res.stdout), schema=expected.schema), expected)
    out = tmp_path / "counts.parquet"
    res = runner.invoke(
        app, ["query", str(run), "--counts", "--table", "predictions", "--format", "parquet", "--output", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert_frame_equal(pl.read_parquet(out), q.chrom_counts(run, table="predictions"))
    res = runner.invoke(app, ["query", str(run), "--sql", "SELECT COUNT(*) AS n FROM instances", "--format", "csv"])
    assert res.exit_code == 0 and res.stdout.split() == ["n", str(_read_all(run / "instances").height)]
    res = runner.invoke(app, ["query", str(run), "--near", "chr1:0-500", "--window", "100"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["query", str(run), "--tables"])
    assert res.stdout.split() == q.available(run)
    res = runner.invoke(app, ["query", str(run), "--counts", "--top-bound", "3"])
    assert res.exit_code == 2 and "exactly one" in res.output
    res = runner.invoke(app, ["query", str(tmp_path / "none"), "--counts"])
    assert res.exit_code == 2 and "not found" in res.output
