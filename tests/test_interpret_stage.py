"""The interpret stage (in-process and on Ray), its CLI, the site plot and the simulated benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch
from typer.testing import CliRunner

from scanner.cli import app
from scanner.errors import InputError
from scanner.genome import one_hot, open_genome
from scanner.interpret import ism
from scanner.interpret.run import InterpretConfig, interpret, select_instances
from scanner.io import partition_dir, write_parquet_atomic
from scanner.models import ModelSpec, build_model, load_checkpoint, save_checkpoint
from scanner.predict.apply import fetch_windows
from scanner.schemas import ATTRIBUTIONS, PREDICTIONS

W = 300


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A genome (2 chromosomes), two small models, and predictions of 10 instances of two TFs."""
    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    chroms = {"chrI": 1500, "chrII": 900}
    with open(root / "g.fa", "w") as fh:
        for name, n in chroms.items():
            seq = "".join(rng.choice(list("ACGT"), n))
            seq = seq[:400] + "NNNNN" + seq[405:]
            fh.write(f">{name}\n" + "\n".join(seq[i : i + 60] for i in range(0, n, 60)) + "\n")
    spec = ModelSpec(arch="small", seq_len=W)
    for k, tf in enumerate(("TFA", "TFB")):
        torch.manual_seed(k)
        save_checkpoint(build_model(spec), spec, partition_dir(root / "models", [("tf", tf), ("regime", "pvalue")]), {})
    rows = []
    sites = [("chrI", 3), ("chrI", 390), ("chrI", 800), ("chrI", 1488), ("chrII", 450)]
    for tf in ("TFA", "TFB"):
        for chrom, s in sites:
            rows.append(
                dict(
                    chrom=chrom,
                    start=s,
                    end=s + 10,
                    strand="+",
                    motif_id=f"M_{tf}",
                    tf=tf,
                    score=8.0,
                    pvalue=1e-5,
                    sequence="ACGTACGTAC",
                    regime="pvalue",
                    model_tf=tf,
                    logit=0.0,
                    prob_bound=float(rng.random()),
                )
            )
    rows.append({**rows[0], "model_tf": "TFB"})  # a cross-TF row
    df = pl.from_arrow(pa.Table.from_pylist(rows).cast(PREDICTIONS))
    for (tf, chrom), part in df.group_by(["tf", "chrom"]):
        write_parquet_atomic(
            part.to_arrow().cast(PREDICTIONS),
            partition_dir(root / "predictions", [("tf", tf), ("chrom", chrom)]) / "part-00000-c0000.parquet",
        )
    (root / "predictions" / "_predict.json").write_text(json.dumps({"genome": str(root / "g.fa")}))
    return root


def _read(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "**" / "*.parquet", hive_partitioning=True).sort(
        ["method", "model_tf", "chrom", "start", "pos"]
    )


def test_selection(run_dir):
    preds = run_dir / "predictions"
    assert select_instances(preds, InterpretConfig()).num_rows == 10  # own-model rows only
    assert select_instances(preds, InterpretConfig(all_models=True)).num_rows == 11
    sel = select_instances(preds, InterpretConfig(top=2))
    assert sel.num_rows == 4
    df = pl.from_arrow(select_instances(preds, InterpretConfig()))
    for tf in ("TFA", "TFB"):
        best = df.filter(pl.col("tf") == tf).sort("prob_bound", descending=True)["start"].head(2).sort().to_list()
        assert sorted(pl.from_arrow(sel).filter(pl.col("tf") == tf)["start"].to_list()) == best
    sel = select_instances(preds, InterpretConfig(where="chrom = 'chrII' AND prob_bound >= 0", tfs=("TFA",)))
    assert sel.column("chrom").to_pylist() == ["chrII"] and sel.column("tf").to_pylist() == ["TFA"]
    with pytest.raises(InputError, match="--where"):
        select_instances(preds, InterpretConfig(where="no_such_column > 1"))
    with pytest.raises(InputError, match="--where"):
        select_instances(preds, InterpretConfig(where="prob_bound >>> 1"))


def test_in_process_output(run_dir, tmp_path):
    out = tmp_path / "attributions"
    config = InterpretConfig(methods=("ism", "grad-x-input", "gradcam"), flank=15, batch_size=3, chunk_rows=2)
    s = interpret(run_dir / "predictions", run_dir / "models", out, config, use_ray=False, bedgraph=True)
    assert s.instances == 10 and s.files > 0
    df = _read(out)
    assert set(df.columns) == set(ATTRIBUTIONS.names)
    assert df["method"].unique().sort().to_list() == ["grad-x-input", "gradcam", "ism"]
    # site +- 15, clipped to the chromosome (positions off it are not written)
    for (chrom, start), part in df.filter(pl.col("method") == "ism").group_by(["chrom", "start"]):
        length = {"chrI": 1500, "chrII": 900}[chrom]
        want = list(range(max(0, start - 15), min(length, start + 10 + 15)))
        assert part.filter(pl.col("model_tf") == "TFA")["pos"].to_list() == want
    assert df.filter(pl.col("method") == "gradcam")["a"].null_count() == df.filter(pl.col("method") == "gradcam").height
    assert df["delta"].null_count() == df.height
    # the N run of chrI (400..404) is reported as N
    assert set(df.filter(pl.col("chrom") == "chrI", pl.col("pos").is_between(400, 404))["base"].to_list()) == {"N"}
    # ISM values equal a direct call on the same windows
    model, _ = load_checkpoint(run_dir / "models" / "tf=TFA" / "regime=pvalue")
    g = open_genome(run_dir / "g.fa")
    codes = fetch_windows(g, np.array(["chrI"], dtype=object), np.array([390]), np.array([400]), W)
    ws = (390 + 400) // 2 - W // 2
    direct = ism(model, torch.from_numpy(one_hot(codes)), start=390 - 15 - ws, end=400 + 15 - ws)[0]
    got = df.filter(pl.col("method") == "ism", pl.col("model_tf") == "TFA", pl.col("start") == 390)
    assert np.allclose(got.select("a", "c", "g", "t").to_numpy().T, direct.numpy(), atol=1e-6)
    # the documented one-liner
    top = (
        pl.scan_parquet(str(out / "**" / "*.parquet"))
        .filter(pl.col("method") == "ism", pl.col("chrom") == "chrI", pl.col("start") == 390)
        .sort(pl.col("score").abs(), descending=True)
        .head(5)
        .collect()
    )
    assert top.height == 5 and abs(top["score"][0]) == got["score"].abs().max()
    record = json.loads((out / "_interpret.json").read_text())
    assert record["instances"] == 10 and record["config"]["flank"] == 15
    bg = (out / "bedgraph" / "ism-TFA-pvalue.bedGraph").read_text().splitlines()
    first = bg[0].split("\t")
    assert first[0] == "chrI" and int(first[2]) == int(first[1]) + 1


def test_bigwig_equals_bedgraph(run_dir, tmp_path):
    import pyBigWig

    out = tmp_path / "attributions"
    config = InterpretConfig(methods=("grad-x-input", "gradcam"), flank=15, chunk_rows=3)
    interpret(run_dir / "predictions", run_dir / "models", out, config, use_ray=False, bigwig=True)
    bedgraphs = sorted((out / "bedgraph").glob("*.bedGraph"))
    assert len(bedgraphs) == 4 and len(list((out / "bigwig").glob("*.bw"))) == 4
    for bg in bedgraphs:
        lines = [x.split("\t") for x in bg.read_text().splitlines()]
        bw = pyBigWig.open(str(out / "bigwig" / (bg.stem + ".bw")))
        try:
            assert bw.isBigWig() and bw.chroms() == {
                c: n for c, n in {"chrI": 1500, "chrII": 900}.items() if c in bw.chroms()
            }
            got = [(c, s, e, v) for c in bw.chroms() for s, e, v in bw.intervals(c)]
            want = [(c, int(s), int(e), float(np.float32(v))) for c, s, e, v in lines]
            assert got == want
            # the per-base read-back equals the bedGraph values too
            c, s, e, v = lines[len(lines) // 2]
            assert bw.values(c, int(s), int(e)) == [float(np.float32(v))]
        finally:
            bw.close()


def test_overwrite_and_failures_keep_old_output(run_dir, tmp_path):
    out = tmp_path / "attr"
    preds, models = run_dir / "predictions", run_dir / "models"
    cfg = InterpretConfig(methods=("saliency",), flank=2, tfs=("TFA",))
    interpret(preds, models, out, cfg, use_ray=False)
    before = sorted(p.name for p in out.rglob("*.parquet"))
    with pytest.raises(InputError, match="--overwrite"):
        interpret(preds, models, out, cfg, use_ray=False)
    with pytest.raises(InputError, match="no model for tf 'TFB'"):
        interpret(preds, tmp_path / "nomodels", out, InterpretConfig(tfs=("TFB",)), use_ray=False, overwrite=True)
    assert sorted(p.name for p in out.rglob("*.parquet")) == before
    interpret(preds, models, out, InterpretConfig(methods=("gradcam",), flank=2), use_ray=False, overwrite=True)
    assert _read(out)["method"].unique().to_list() == ["gradcam"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind
    with pytest.raises(InputError, match="overlaps"):
        interpret(preds, models, preds / "attr", cfg, use_ray=False)
    with pytest.raises(InputError, match="unknown method"):
        interpret(preds, models, tmp_path / "x", InterpretConfig(methods=("lime",)), use_ray=False)


def test_genome_resolution(run_dir, tmp_path):
    preds = tmp_path / "preds"
    for f in (run_dir / "predictions").rglob("*.parquet"):
        dest = preds / f.relative_to(run_dir / "predictions")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(f.read_bytes())
    cfg = InterpretConfig(methods=("saliency",), flank=1, tfs=("TFA",))
    with pytest.raises(InputError, match=r"_predict\.json"):
        interpret(preds, run_dir / "models", tmp_path / "a", cfg, use_ray=False)
    interpret(preds, run_dir / "models", tmp_path / "a", cfg, genome=run_dir / "g.fa", use_ray=False)


@pytest.mark.ray
def test_ray_path_equals_in_process(run_dir, tmp_path, ray_cluster):
    cfg = InterpretConfig(
        methods=("ism", "deeplift"), flank=5, chunk_rows=2, reference="gc", batch_size=2, tfs=("TFA",)
    )
    a = interpret(run_dir / "predictions", run_dir / "models", tmp_path / "ray", cfg, use_ray=True)
    b = interpret(run_dir / "predictions", run_dir / "models", tmp_path / "local", cfg, use_ray=False)
    assert a.rows == b.rows and a.files == b.files
    ra, rb = _read(tmp_path / "ray"), _read(tmp_path / "local")
    assert ra.height == rb.height > 0
    assert ra.select(pl.exclude("score", "a", "c", "g", "t", "delta")).equals(
        rb.select(pl.exclude("score", "a", "c", "g", "t", "delta"))
    )
    assert np.allclose(
        ra.select("score", "a", "c", "g", "t").to_numpy(),
        rb.select("score", "a", "c", "g", "t").to_numpy(),
        atol=1e-6,
    )
    names = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*.parquet"))  # noqa: E731
    assert names(tmp_path / "ray") == names(tmp_path / "local")


def test_cli_interpret_and_plot(run_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path  # a new run directory reading another run's predictions and models
    res = runner.invoke(
        app,
        [
            "interpret",
            "--predictions",
            str(run_dir),
            "--models",
            str(run_dir / "models"),
            "--out",
            str(out),
            "--method",
            "ism,grad-x-input",
            "--where",
            "chrom = 'chrI'",
            "--top",
            "3",
            "--flank",
            "40",
            "--no-ray",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "attribution rows" in res.output and "pl.scan_parquet" in res.output
    png = tmp_path / "site.png"
    res = runner.invoke(
        app,
        [
            "plot-site",
            "--attributions",
            str(out),
            "--chrom",
            "chrI",
            "--start",
            "800",
            "--tf",
            "TFA",
            "-o",
            str(png),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "attributions").is_dir() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(
        app, ["plot-site", "--attributions", str(out), "--chrom", "chrI", "--start", "800", "--out", str(png)]
    )  # the old spelling of --output still works for a release; two models explained the site
    assert res.exit_code == 2 and "--out is now --output" in res.output and "--tf" in res.output
    res = runner.invoke(
        app,
        [
            "interpret",
            "--predictions",
            str(run_dir / "predictions"),
            "--models",
            str(run_dir / "models"),
            "--out",
            str(tmp_path / "y"),  # a run directory
            "--where",
            "prob_bound >>",
            "--no-ray",
        ],
    )
    assert res.exit_code == 2 and "--where" in res.output


def test_benchmark_tiny(tmp_path):
    from scanner.interpret.benchmark import BenchmarkConfig, run_benchmark

    cfg = BenchmarkConfig(
        size_mb=0.5,
        sites_per_mb=250,
        n_sequences=3,
        naive_sequences=1,
        epochs=1,
        methods=("ism", "ism-naive", "saliency"),
        seq_len=300,
    )
    table = run_benchmark(tmp_path, cfg)
    assert table["method"].to_list() == ["ism", "ism-naive", "saliency"]
    assert table.filter(pl.col("method") == "ism-naive")["n_sequences"][0] == 1
    assert table["max_abs_diff_vs_naive"][0] < 1e-5
    assert table["auroc"].is_between(0, 1).all() and (table["seconds_per_100"] > 0).all()
    for name in ("benchmark.md", "benchmark.parquet", "benchmark.png", "benchmark.json"):
        assert (tmp_path / name).is_file()
    assert "0.893 / 0.986" in (tmp_path / "benchmark.md").read_text()
    with pytest.raises(InputError, match="ALPHA or GAMMA"):
        run_benchmark(tmp_path, BenchmarkConfig(tf="BETA"))
