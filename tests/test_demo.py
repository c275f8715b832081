"""The demo chain on a tiny simulation, in-process: every stage runs and its outputs line up."""

from __future__ import annotations

import polars as pl
import pytest

from scanner.errors import InputError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_demo_chain_in_process(tmp_path):
    from scanner.demo import DemoConfig, format_demo, run_demo

    cfg = DemoConfig(out=tmp_path / "demo", size_mb=1.0, epochs=1, use_ray=False, features=False)
    default = DemoConfig()
    assert default.regimes == ("pvalue", "open", "random") and default.size_mb * default.sites_per_mb >= 8000
    result = run_demo(cfg)
    test = [r for r in result.metrics.to_pylist() if r["split"] == "test"]
    assert {(r["tf"], r["regime"]) for r in test} == {(t, g) for t in cfg.tfs for g in cfg.regimes}
    assert all(r["n"] > 0 for r in test)
    out = tmp_path / "demo"
    metrics = pl.read_parquet(out / "metrics.parquet")
    assert metrics.height == 2 * len(test)
    pred = pl.scan_parquet(str(out / "predictions" / "**" / "*.parquet"), hive_partitioning=True).collect()
    inst = pl.scan_parquet(str(out / "instances" / "**" / "*.parquet"), hive_partitioning=True).collect()
    assert pred.height == len(cfg.regimes) * inst.height
    text = format_demo(result)
    assert "k-mer LR" in text and "ceiling" in text and "pl.scan_parquet" in text
    assert "note (BETA/open)" in text  # why BETA under open says little
    assert all(0.5 <= v <= 1.0 for v in result.ceilings.values()) and result.ceilings
    assert set(result.seconds) == {"simulate", "scan", "label", "train + evaluate", "predict"}


def test_demo_rejects_unknown_tf(tmp_path):
    from scanner.demo import DemoConfig, run_demo

    with pytest.raises(InputError, match="unknown simulated TF"):
        run_demo(DemoConfig(out=tmp_path, tfs=("OMEGA",), use_ray=False))
