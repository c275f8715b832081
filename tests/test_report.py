"""``scanner report`` tells the truth: class counts per split, the 0.5 threshold named, warnings on small or
one-class splits, degenerate models and models at chance or below a baseline, PR curves' prevalence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
from typer.testing import CliRunner

from scanner.cli import app
from scanner.io import partition_dir, write_parquet_atomic
from scanner.results.report import build_report
from scanner.schemas import INSTANCES, METRICS, PREDICTIONS


def _run(root: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 40
    start = np.arange(n, dtype=np.int64) * 100
    inst = {
        "chrom": ["chr1"] * n,
        "start": start,
        "end": start + 10,
        "strand": ["+"] * n,
        "motif_id": ["M1"] * n,
        "tf": ["ALPHA"] * n,
        "score": rng.uniform(8, 12, n).astype(np.float32),
        "pvalue": rng.uniform(1e-6, 1e-4, n),
        "sequence": ["ACGTACGTAC"] * n,
    }
    write_parquet_atomic(
        pa.table(inst, schema=INSTANCES),
        partition_dir(root / "instances", [("tf", "ALPHA"), ("chrom", "chr1")]) / "p.parquet",
    )
    parts = []
    for regime, prob in (("pvalue", rng.uniform(0.6, 0.99, n)), ("gc", rng.uniform(0.01, 0.99, n))):
        extra = {"regime": [regime] * n, "model_tf": ["ALPHA"] * n, "logit": np.zeros(n, np.float32)}
        parts.append(pa.table({**inst, **extra, "prob_bound": prob.astype(np.float32)}, schema=PREDICTIONS))
    write_parquet_atomic(
        pa.concat_tables(parts), partition_dir(root / "predictions", [("tf", "ALPHA"), ("chrom", "chr1")]) / "p.parquet"
    )
    base = {"tf": "ALPHA", "model_tf": "ALPHA", "split": "test", "n": 106, "n_pos": 94, "n_neg": 12, "loss": 0.5}
    rows = [
        {
            **base,
            "regime": "pvalue",
            "auroc": 0.47,
            "auprc": 0.88,
            "score_auroc": 0.51,
            "kmer_auroc": 0.62,
            "site_auroc": 0.55,
            "best_baseline": "kmer",
            "beats_baselines": False,
            "members": 3,
            "member_auroc_mean": 0.46,
            "member_auroc_std": 0.02,
        },
        {
            **base,
            "regime": "gc",
            "auroc": 0.81,
            "auprc": 0.95,
            "score_auroc": 0.51,
            "kmer_auroc": 0.62,
            "site_auroc": 0.55,
            "best_baseline": "kmer",
            "beats_baselines": True,
            "members": 1,
        },
    ]
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=METRICS), root / "metrics.parquet")
    sizes = [
        {
            "regime": "pvalue",
            "tf": "ALPHA",
            "split": s,
            "n": n_,
            "n_pos": p,
            "n_neg": n_ - p,
            "short_bins": 0,
            "unmatched_pos": 0,
        }
        for s, n_, p in (("train", 900, 450), ("val", 120, 60), ("test", 3, 3))
    ]
    (root / "datasets").mkdir(parents=True)
    (root / "datasets" / "_datasets.json").write_text(json.dumps({"sizes": sizes}))
    return root


def test_report_warns_and_shows_counts(tmp_path):
    run = _run(tmp_path / "run")
    res = build_report(run, out=tmp_path / "rep")
    w = "\n".join(res.warnings)
    assert "TF ALPHA, regime pvalue, test split: 3 rows (3 bound, 0 unbound): one class only" in w
    assert "model ALPHA/pvalue predicts all 40 of its instances bound (prob_bound >= 0.5): degenerate" in w
    assert "model ALPHA/pvalue: test auROC 0.470, no better than chance (106 rows: 94 bound, 12 unbound)" in w
    assert "model ALPHA/pvalue: test auROC 0.470 is below the kmer baseline (0.620)" in w
    assert "ALPHA/gc" not in w  # a sound model is not flagged
    page = res.path.read_text()
    assert res.sections[0] == "warnings" and "<h2>Training sets</h2>" in page
    assert "prob_bound &ge; 0.5" in page and "40 of 40 (100.0%)" in page
    for col in ("n_pos", "n_neg", "prevalence", "kmer_auroc", "beats_baselines", "member auROC"):
        assert f'<th class="">{col}</th>' in page or f'<th class="l">{col}</th>' in page, col
    assert "0.460 ± 0.020" in page and "0.887" in page  # member spread; prevalence 94/106
    assert "balanced" not in page.replace("balanced only where", "")


def test_report_cli_prints_the_warnings(tmp_path):
    run = _run(tmp_path / "run")
    res = CliRunner().invoke(app, ["report", str(run), "-o", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "warning: model ALPHA/pvalue predicts all 40 of its instances bound" in res.output
