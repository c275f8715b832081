"""Models that learn: on a small seeded simulation the default recipe beats every baseline, and multi-task
training shares its detectors across TFs."""

from __future__ import annotations

import json

import pytest

from scanner.train import TrainConfig, checkpoint_dir, train_model, train_models


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """3 Mb, two TFs, open regime: ~600 ALPHA training rows, bound iff the partner is 40-150 bp away."""
    from scanner.labels.run import LabelConfig, label
    from scanner.scan import ScanConfig, scan_genome
    from scanner.simulate.genome import SimulationConfig, simulate

    out = tmp_path_factory.mktemp("learning")
    sim = simulate(out / "sim", SimulationConfig(size_mb=3, n_chroms=5, sites_per_mb=450, seed=1))
    scan_genome(sim.genome, [str(sim.motifs)], out, ScanConfig(), use_ray=False, overwrite=True)
    cfg = LabelConfig(regimes=("open",), val_chroms=("chr4",), test_chroms=("chr5",))
    label(out / "instances", dict(sim.peaks), out, cfg, open_chromatin=sim.open_bed, blacklist=sim.blacklist)
    return out


def test_default_recipe_beats_every_baseline_on_a_few_hundred_rows(small_run, tmp_path):
    """ALPHA under `open`: the partner's distance decides, which neither the motif score, the k-mer
    spectrum nor the site sees; the scan knows no partner motif (the detectors find it from k-mer seeds)."""
    result = train_model(small_run / "datasets", "ALPHA", "open", tmp_path / "m", TrainConfig(ensemble=1))
    test = next(m for m in result.metrics if m["split"] == "test")
    assert result.n_train < 1000 and test["n"] >= 100
    assert test["beats_baselines"] is True, test
    assert (
        test["auroc"] > 0.7 and test["auroc"] - max(test["kmer_auroc"], test["site_auroc"], test["score_auroc"]) > 0.1
    )
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["motif_init"][:2] == ["ALPHA", "BETA"] and any(n.startswith("kmer:") for n in meta["motif_init"])
    assert meta["train_config"]["batch_size"] == 32  # chosen by size


def test_multitask_shares_the_detectors(small_run, tmp_path):
    import torch

    cfg = TrainConfig(ensemble=1, multitask=True, epochs=3, min_epochs=1)
    results = train_models(small_run / "datasets", tmp_path / "models", cfg, regimes=["open"], use_ray=False)
    assert [(r.tf, r.regime) for r in results] == [("ALPHA", "open"), ("BETA", "open")]
    states = [
        torch.load(checkpoint_dir(tmp_path / "models", tf, "open") / "model.pt", weights_only=True)
        for tf in ("ALPHA", "BETA")
    ]
    assert torch.equal(states[0]["conv.weight"], states[1]["conv.weight"])
    assert not torch.equal(states[0]["fc1.weight"], states[1]["fc1.weight"])
    meta = json.loads((checkpoint_dir(tmp_path / "models", "BETA", "open") / "model.json").read_text())
    assert meta["multitask"]["tfs"] == ["ALPHA", "BETA"]
    assert results[0].epochs_run == results[1].epochs_run  # one loop trained both
    assert all(r.metrics for r in results)
