"""Prediction: window fetching, the kernel against a per-instance loop, Ray == in-process, bad input."""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

import scanner.predict.apply as apply_mod
from scanner.errors import InputError
from scanner.genome import one_hot, open_genome
from scanner.io import parquet_files
from scanner.predict.apply import discover_models, fetch_windows
from scanner.predict.run import PredictConfig, predict
from scanner.schemas import INSTANCE_KEY, PREDICTIONS
from scanner.toydata import write_toy_genome, write_toy_instances

KEY = [*INSTANCE_KEY, "regime", "model_tf"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _save_model(directory, tf, regime, seq_len, seed):
    import torch

    from scanner.models import ModelSpec, build_model, save_checkpoint

    torch.manual_seed(seed)
    model = build_model(ModelSpec(seq_len=seq_len))
    # non-trivial batch-norm statistics so eval-mode outputs vary across inputs
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    save_checkpoint(model.eval(), ModelSpec(seq_len=seq_len), directory, {"tf": tf, "regime": regime})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    genome = write_toy_genome(root / "g.fa", {"chr1": 6000, "chr2": 1500}, seed=4)
    write_toy_instances(root / "instances", genome, tfs=("A", "B"), files_per_chrom=2, n_per_chrom=25)
    for i, (tf, regime) in enumerate([("A", "pvalue"), ("A", "open"), ("B", "pvalue")]):
        _save_model(root / "models" / f"tf={tf}" / f"regime={regime}", tf, regime, 200, seed=i)
    return root


def _read(path):
    return pl.read_parquet(parquet_files(path), hive_partitioning=False)


def test_fetch_windows_equals_genome_window(tmp_path, monkeypatch):
    genome = open_genome(write_toy_genome(tmp_path / "g.fa", {"c1": 900, "c2": 150}, seed=1))
    rng = np.random.default_rng(0)
    chroms = np.array(["c1"] * 30 + ["c2"] * 10 + ["c1"] * 5, dtype=object)
    starts = np.r_[rng.integers(0, 890, 30), rng.integers(0, 140, 10), [0, 1, 880, 884, 400]]
    ends = starts + rng.integers(1, 11, len(starts))
    monkeypatch.setattr(apply_mod, "MAX_SPAN", 300)  # force several spans per chromosome
    for width in (101, 200):
        got = fetch_windows(genome, chroms, starts, ends, width)
        for i in range(len(starts)):
            w = genome.window(chroms[i], (starts[i] + ends[i]) // 2, width)
            np.testing.assert_array_equal(got[i], w.codes, err_msg=f"row {i}")
    with pytest.raises(InputError, match="'chrX' is not in the genome"):
        fetch_windows(genome, np.array(["chrX"], dtype=object), np.array([0]), np.array([5]), 50)


def test_items_are_equal_pieces_of_at_most_chunk_rows(run, tmp_path):
    import pyarrow.parquet as pq

    from scanner.predict.run import plan_items

    items = plan_items(run / "instances", discover_models(run / "models"), tmp_path / "p", PredictConfig(chunk_rows=7))
    by_file: dict[str, list] = {}
    for it in items:
        by_file.setdefault(it.file, []).append(it)
    for f, its in by_file.items():
        sizes = [it.hi - it.lo for it in its]
        assert max(sizes) <= 7 and max(sizes) - min(sizes) <= 1
        assert its[0].lo == 0 and its[-1].hi == pq.ParquetFile(f).metadata.num_rows
        assert all(a.hi == b.lo for a, b in itertools.pairwise(its))


def test_in_process_equals_per_instance_loop(run, tmp_path):
    import torch

    from scanner.models import load_checkpoint

    out = tmp_path / "pred"
    s = predict(run / "instances", run / "models", out, PredictConfig(batch_size=16, chunk_rows=20), use_ray=False)
    got = _read(out)
    inst = _read(run / "instances")
    # every instance exactly once per model of its TF (A: 2 regimes, B: 1)
    n_a, n_b = (inst["tf"] == "A").sum(), (inst["tf"] == "B").sum()
    assert got.height == s.rows == 2 * n_a + n_b
    assert got.select(KEY).is_unique().all()
    assert set(got.columns) == set(PREDICTIONS.names)
    # a plain loop: one instance at a time, window from Genome.window, model forward
    genome = open_genome(run / "g.fa")
    models = {(r.tf, r.regime): load_checkpoint(r.path)[0] for r in discover_models(run / "models")}
    tol = 1e-3 if torch.cuda.is_available() else 1e-5  # a GPU's TF32 convolutions: ~1.4e-5 seen on an H200
    for row in got.sample(40, seed=0).iter_rows(named=True):
        w = genome.window(row["chrom"], (row["start"] + row["end"]) // 2, 200)
        with torch.no_grad():
            z = models[(row["model_tf"], row["regime"])](torch.from_numpy(one_hot(w.codes)[None])).item()
        assert row["logit"] == pytest.approx(z, abs=tol)
        assert row["prob_bound"] == pytest.approx(1 / (1 + np.exp(-row["logit"])), abs=1e-6)
        assert row["model_tf"] == row["tf"]
    # order: for each model, the instances in file order
    f = next(p for p in parquet_files(out) if "tf=A" in str(p))
    t = pl.read_parquet(f)
    assert t["regime"].to_list() == sorted(t["regime"].to_list(), key=t["regime"].to_list().index)
    # same partitioning as the instances, deterministic names, provenance record
    assert all(
        p.parent.name.startswith("chrom=") and p.parent.parent.name.startswith("tf=") for p in parquet_files(out)
    )
    rec = json.loads((out / "_predict.json").read_text())
    assert rec["genome"] == str((run / "g.fa").resolve())
    assert {(m["tf"], m["regime"]) for m in rec["models"]} == {
        ("A", "pvalue"),
        ("A", "open"),
        ("B", "pvalue"),
    }


def test_rerun_replaces_and_removes_stale_files(run, tmp_path):
    out = tmp_path / "pred"
    predict(run / "instances", run / "models", out, PredictConfig(chunk_rows=7), use_ray=False)
    many = len(parquet_files(out))
    predict(run / "instances", run / "models", out, PredictConfig(chunk_rows=1000), use_ray=False)
    files = parquet_files(out)
    assert len(files) < many and all(p.name.endswith(".parquet") and "-r0-" in p.name for p in files)
    assert _read(out).select(KEY).is_unique().all()
    # runs for one TF at a time add up; the record lists both
    split = tmp_path / "split"
    predict(run / "instances", run / "models", split, PredictConfig(chunk_rows=1000), tfs=["A"], use_ray=False)
    predict(run / "instances", run / "models", split, PredictConfig(chunk_rows=1000), tfs=["B"], use_ray=False)
    assert _read(split).sort(KEY).equals(_read(out).sort(KEY))
    rec = json.loads((split / "_predict.json").read_text())
    assert rec["tfs"] == ["A", "B"] and len(rec["models"]) == 3 and rec["last_run"]["tfs"] == ["B"]
    # another genome into the same directory is refused
    other = write_toy_genome(tmp_path / "other.fa", {"chr1": 6000, "chr2": 1500}, seed=9)
    with pytest.raises(InputError, match="other instances or another genome"):
        predict(run / "instances", run / "models", split, genome=other, use_ray=False)


def test_cross_tf_and_rc_average(run, tmp_path):
    import torch

    from scanner.models import load_checkpoint, reverse_complement_one_hot

    out = tmp_path / "cross"
    cfg = PredictConfig(cross_tf=True, rc_average=True, chunk_rows=1000)
    predict(run / "instances", run / "models", out, cfg, use_ray=False, regimes=["pvalue"])
    got = _read(out)
    inst = _read(run / "instances")
    assert got.height == 2 * inst.height  # two pvalue models (A, B) on every instance
    assert set(got.group_by("tf", "model_tf").len().select("tf", "model_tf").iter_rows()) == {
        ("A", "A"),
        ("A", "B"),
        ("B", "A"),
        ("B", "B"),
    }
    genome = open_genome(run / "g.fa")
    model = load_checkpoint(run / "models" / "tf=A" / "regime=pvalue")[0]
    row = got.filter((pl.col("tf") == "B") & (pl.col("model_tf") == "A")).row(3, named=True)
    x = torch.from_numpy(one_hot(genome.window(row["chrom"], (row["start"] + row["end"]) // 2, 200).codes)[None])
    with torch.no_grad():
        z = 0.5 * (model(x).item() + model(reverse_complement_one_hot(x)).item())
    assert row["logit"] == pytest.approx(z, abs=1e-5)


def test_bad_inputs(run, tmp_path):
    inst, models = run / "instances", run / "models"
    with pytest.raises(InputError, match="no model for tf 'C'"):
        predict(inst, models, tmp_path / "o", tfs=["C"], use_ray=False)
    with pytest.raises(InputError, match="models directory not found"):
        predict(inst, tmp_path / "none", tmp_path / "o", use_ray=False)
    with pytest.raises(InputError, match="overlaps the instances"):
        predict(inst, models, inst / "pred", use_ray=False)
    # no _scan.json and no --genome
    inst2 = tmp_path / "inst2"
    shutil.copytree(inst, inst2)
    (inst2 / "_scan.json").unlink()
    with pytest.raises(InputError, match="pass --genome"):
        predict(inst2, models, tmp_path / "o", use_ray=False)
    # a genome without chr2
    small = write_toy_genome(tmp_path / "small.fa", {"chr1": 6000}, seed=4)
    with pytest.raises(InputError, match="'chr2' is not in the genome"):
        predict(inst, models, tmp_path / "o", genome=small, use_ray=False)
    # a checkpoint whose weights do not fit its model.json
    models2 = tmp_path / "models2"
    shutil.copytree(models, models2)
    js = models2 / "tf=A" / "regime=open" / "model.json"
    meta = json.loads(js.read_text())
    meta["spec"]["seq_len"] = 300
    js.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="do not fit"):
        predict(inst, models2, tmp_path / "o", use_ray=False)
    # an instance file missing a column: found while planning
    inst3 = tmp_path / "inst3"
    shutil.copytree(inst, inst3)
    f = parquet_files(inst3)[0]
    pq.write_table(pq.read_table(f).drop_columns(["score"]), f)
    with pytest.raises(InputError, match="'score' is missing"):
        predict(inst3, models, tmp_path / "o", use_ray=False)
    assert not (tmp_path / "o").exists()  # nothing written before the checks


def test_cli_predict(run, tmp_path):
    from typer.testing import CliRunner

    from scanner.cli import app

    out = tmp_path / "p" / "predictions"
    args = [
        "predict",
        "--instances",
        str(run),  # a run directory: its instances
        "--models",
        str(run / "models"),
        "--out",
        str(out.parent),  # the run directory written to
    ]
    r = CliRunner().invoke(app, [*args, "--tf", "B", "--no-ray"])
    assert r.exit_code == 0, r.output
    assert "prediction rows" in r.stdout and pq.read_table(parquet_files(out)[0]).num_rows > 0
    bad = CliRunner().invoke(app, [*args, "--tf", "Z", "--no-ray"])
    assert bad.exit_code == 2 and "no model for tf 'Z'" in bad.stderr


@pytest.mark.ray
def test_ray_equals_in_process(ray_cluster, run, tmp_path):
    import torch

    # a GPU's TF32 convolutions round differently for other batch compositions (the Ray path splits
    # items to balance its actors): 1.3e-4 relative seen on an H200; on a CPU the paths agree to 1e-5
    tol = 1e-3 if torch.cuda.is_available() else 1e-5
    cfg = PredictConfig(batch_size=16, chunk_rows=20, cross_tf=True)
    local = predict(run / "instances", run / "models", tmp_path / "local", cfg, use_ray=False)
    remote = predict(run / "instances", run / "models", tmp_path / "ray", cfg, use_ray=True)
    assert remote.rows == local.rows and remote.files == local.files
    for s in (local, remote):  # the items' spans, measured where they ran, fit inside the call
        t = s.timings
        assert t["first_item_s"] >= 0 and t["items_s"] > 0
        assert t["first_item_s"] + t["items_s"] <= s.seconds + 0.05
    rel = lambda root: sorted(str(p.relative_to(root)) for p in parquet_files(root))  # noqa: E731
    assert rel(tmp_path / "ray") == rel(tmp_path / "local")
    # file by file: same rows in the same order (no row lost, duplicated or reordered)
    for name in rel(tmp_path / "local"):
        a = pl.read_parquet(tmp_path / "local" / name)
        b = pl.read_parquet(tmp_path / "ray" / name)
        assert a.select(KEY).equals(b.select(KEY))
        np.testing.assert_allclose(a["logit"].to_numpy(), b["logit"].to_numpy(), rtol=tol, atol=1e-6)
    # an input error inside an actor reaches the caller as InputError
    inst2 = tmp_path / "inst2"
    shutil.copytree(run / "instances", inst2)
    f = parquet_files(inst2)[-1]
    t = pq.read_table(f)
    pq.write_table(t.set_column(t.schema.get_field_index("end"), "end", [np.zeros(t.num_rows, np.int64)]), f)
    with pytest.raises(InputError, match=r"end 0 < start"):
        predict(inst2, run / "models", tmp_path / "bad", cfg, use_ray=True)


@pytest.mark.parametrize("arch", ["small", "deepsea"])
def test_fused_model_equals_eval_model(arch):
    import torch

    from scanner.models import ModelSpec, build_model, fuse_for_inference

    torch.manual_seed(0)
    spec = ModelSpec(arch=arch, seq_len=300 if arch == "deepsea" else 200)
    model = build_model(spec)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_for_inference(model)
    assert model.training  # the caller's model is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in fused.modules())
    x = torch.from_numpy(one_hot(np.random.default_rng(1).integers(0, 5, (6, spec.seq_len)).astype(np.uint8)))
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model.eval()(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rc_average", [False, True])
def test_device_path_equals_host_path(rc_average):
    """The accelerator path (codes sent once, one-hot on the device, one copy back) gives the host
    path's logits; run here on the CPU, it checks the encoding, batching and order."""
    import torch

    from scanner.models import ModelSpec, build_model

    torch.manual_seed(3)
    model = build_model(ModelSpec(seq_len=200)).eval()
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 4, (37, 200)).astype(np.uint8)
    codes[rng.random(codes.shape) < 0.05] = 4  # N columns: 0.25 in every row
    want = apply_mod.predict_codes(model, codes, batch_size=8, rc_average=rc_average)
    got = apply_mod._logits_on_device(model, codes, 8, rc_average, "cpu")
    assert got.dtype == np.float32 and got.shape == (37,)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert apply_mod._logits_on_device(model, codes[:0], 8, rc_average, "cpu").shape == (0,)


def test_resume_with_another_executor_keeps_one_row_per_key(run, tmp_path, monkeypatch):
    """An interrupted run leaves nothing visible; a rerun (here without Ray, or another actor count) reuses
    every finished unit and publishes exactly one row per (instance, model)."""
    import scanner.predict.run as predict_mod

    out = tmp_path / "pred"
    cfg = PredictConfig(chunk_rows=7)
    calls = {"n": 0}
    real = predict_mod.predict_item

    def dies_after_three(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt  # the driver is killed mid-run
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_mod, "predict_item", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        predict(run / "instances", run / "models", out, cfg, use_ray=False)
    assert not out.exists()  # nothing readable as complete
    monkeypatch.setattr(predict_mod, "predict_item", real)
    lines = []
    predict(run / "instances", run / "models", out, cfg, use_ray=False, log=lines.append)
    assert any("3 item(s) done by an earlier attempt" in ln for ln in lines)
    got = _read(out)
    inst = _read(run / "instances")
    assert got.select(KEY).is_unique().all()
    assert got.height == 2 * (inst["tf"] == "A").sum() + (inst["tf"] == "B").sum()
    # other settings: a new staging area, nothing of the first mixes in; the old state stays until then
    predict(run / "instances", run / "models", out, PredictConfig(chunk_rows=5, rc_average=True), use_ray=False)
    again = _read(out)
    assert again.height == got.height and again.select(KEY).is_unique().all()
    assert not again.join(got, on=KEY).filter(pl.col("logit") == pl.col("logit_right")).height == got.height


def test_a_second_writer_is_refused_and_the_first_output_is_intact(run, tmp_path):
    import subprocess
    import sys
    import time

    out = tmp_path / "pred"
    predict(run / "instances", run / "models", out, PredictConfig(chunk_rows=1000), use_ray=False)
    before = _read(out).sort(KEY)
    holder = subprocess.Popen(  # another scanner writing the same output
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom scanner.store import RunDir\n"
            f"with RunDir({str(tmp_path)!r}).lock('pred'):\n    print('held', flush=True)\n    time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=rf"another scanner \(pid {holder.pid} on"):
            predict(run / "instances", run / "models", out, PredictConfig(chunk_rows=7), use_ray=False)
    finally:
        holder.kill()
        holder.wait()
    assert _read(out).sort(KEY).equals(before)
    time.sleep(0.1)
    predict(run / "instances", run / "models", out, PredictConfig(chunk_rows=7), use_ray=False)  # dead: taken over


def replace_rows(item, lo, hi):
    from dataclasses import replace

    return replace(item, lo=lo, hi=hi)
