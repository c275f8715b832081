"""Training: streaming loader, learning a planted rule, checkpoints, schedule, EMA, Ray == in-process."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from scanner.data_loading import (
    available_partitions,
    dataset_hash,
    iter_batches,
    partition_files,
    prefetch,
    windows_to_codes,
)
from scanner.errors import InputError
from scanner.genome import encode, one_hot, reverse_complement_codes
from scanner.io import partition_dir, write_parquet_atomic
from scanner.toydata import PARTNER, toy_dataset_table, toy_windows, write_toy_datasets
from scanner.train import Schedule, TrainConfig, checkpoint_dir, train_model, train_models

FAST = dict(epochs=5, batch_size=32, lr=3e-3, patience=5, ensemble=1)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: CI has 2 shared cores (oversubscribed threads run ~20x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "datasets"
    return write_toy_datasets(root, sizes={"train": 800, "val": 200, "test": 200}, seed=5)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    result = train_model(data, "TOY", "pvalue", out / "m", TrainConfig(**FAST))
    return result, out / "m"


# ---- data loading ------------------------------------------------------------------------------------


def test_toy_rule_is_as_documented():
    windows, labels = toy_windows(200, 200, seed=1)
    assert all((PARTNER in w) == bool(lab) for w, lab in zip(windows, labels, strict=True))
    assert all(len(w) == 200 for w in windows)


def test_windows_to_codes_equals_encode():
    windows = ["ACGTN" * 4, "acgtA" * 4, "NNNNNNNNNNNNNNNNNNNT"]
    codes = windows_to_codes(windows)
    assert codes.dtype == np.uint8 and codes.shape == (3, 20)
    for w, c in zip(windows, codes, strict=True):
        np.testing.assert_array_equal(c, encode(w))
    with pytest.raises(InputError, match="expected 20"):
        windows_to_codes(["ACGT" * 5, "ACG"], source="f.parquet")


def test_iter_batches_streams_every_row_once(tmp_path):
    t = toy_dataset_table(250, 200, seed=2)
    f = write_parquet_atomic(t, tmp_path / "p.parquet", row_group_size=30)
    expected = one_hot(windows_to_codes(t.column("window")))
    labels = t.column("label").to_numpy()
    # in order, small buffer: exactly the file's rows
    got = list(iter_batches([f], 64, buffer_rows=50))
    assert [len(b.y) for b in got] == [64, 64, 64, 58]
    np.testing.assert_array_equal(np.concatenate([b.x for b in got]), expected)
    np.testing.assert_array_equal(np.concatenate([b.y for b in got]), labels)
    # shuffled: a permutation of the rows, the same for the same seed, different for another seed
    a = np.concatenate([b.score for b in iter_batches([f], 64, shuffle=True, seed=1, buffer_rows=100)])
    b = np.concatenate([b.score for b in iter_batches([f], 64, shuffle=True, seed=1, buffer_rows=100)])
    c = np.concatenate([b.score for b in iter_batches([f], 64, shuffle=True, seed=2, buffer_rows=100)])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(np.sort(a), np.sort(t.column("score").to_numpy()))
    assert sum(len(b.y) for b in iter_batches([f], 64, drop_last=True)) == 192


def test_prefetch_keeps_order_relays_errors_and_stops_with_the_consumer(tmp_path):
    import threading

    t = toy_dataset_table(250, 200, seed=2)
    f = write_parquet_atomic(t, tmp_path / "p.parquet", row_group_size=30)
    direct = list(iter_batches([f], 16, shuffle=True, seed=5, rc_augment=True, buffer_rows=100))
    ahead = list(prefetch(iter_batches([f], 16, shuffle=True, seed=5, rc_augment=True, buffer_rows=100)))
    assert len(ahead) == len(direct)
    for a, b in zip(ahead, direct, strict=True):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)

    def failing():
        yield direct[0]
        raise InputError("bad row group", source="p.parquet")

    got = []
    with pytest.raises(InputError, match="bad row group"):
        for b in prefetch(failing()):
            got.append(b)
    assert len(got) == 1

    produced = []

    def endless():
        while True:
            produced.append(1)
            yield direct[0]

    stream = prefetch(endless(), depth=2)
    next(stream)
    stream.close()  # the consumer stops early: the producer thread ends too
    assert not any(th.name == "batch-prefetch" for th in threading.enumerate())
    assert len(produced) <= 5
    with pytest.raises(ValueError, match="depth"):
        next(prefetch(iter([]), depth=0))


def test_rc_augment_rows_are_original_or_reverse_complement(tmp_path):
    t = toy_dataset_table(100, 200, seed=3)
    f = write_parquet_atomic(t, tmp_path / "p.parquet")
    codes = windows_to_codes(t.column("window"))
    x = np.concatenate([b.x for b in iter_batches([f], 32, rc_augment=True, seed=0)])
    fwd, rev = one_hot(codes), one_hot(reverse_complement_codes(codes))
    is_fwd = (x == fwd).all(axis=(1, 2))
    is_rev = (x == rev).all(axis=(1, 2))
    assert (is_fwd | is_rev).all()
    assert 20 < is_rev.sum() < 80


def test_bad_rows_raise_input_error(tmp_path):
    t = toy_dataset_table(10, 200, seed=3)
    labels = t.column("label").to_numpy().copy()
    labels[3] = 2
    bad = t.set_column(t.schema.get_field_index("label"), "label", [labels])
    f = write_parquet_atomic(bad, tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="label 2"):
        list(iter_batches([f], 4))
    g = write_parquet_atomic(t.drop_columns(["window"]), tmp_path / "nowin.parquet")
    with pytest.raises(InputError, match="'window' is missing"):
        list(iter_batches([g], 4))


def test_missing_partitions_name_what_exists(data, tmp_path):
    assert available_partitions(data) == {("pvalue", "TOY"): {"train", "val", "test"}}
    with pytest.raises(InputError, match=r"TF .CTCF. has no data.*TOY"):
        partition_files(data, "pvalue", "CTCF", "train")
    with pytest.raises(InputError, match="regime 'open' has no data"):
        partition_files(data, "open", "TOY", "train")
    with pytest.raises(InputError, match="datasets directory not found"):
        available_partitions(tmp_path / "nope")


def test_dataset_hash_changes_with_content(tmp_path):
    a = write_parquet_atomic(toy_dataset_table(5, 200, seed=1), tmp_path / "a.parquet")
    h1 = dataset_hash([a], root=tmp_path)
    assert h1 == dataset_hash([a], root=tmp_path) and h1.startswith("sha256:")
    write_parquet_atomic(toy_dataset_table(5, 200, seed=2), a)
    assert dataset_hash([a], root=tmp_path) != h1


# ---- schedule and EMA ---------------------------------------------------------------------------------


def test_reference_schedule_divides_then_stops():
    s = Schedule(TrainConfig(lr=0.01, patience=2, schedule="reference", min_lr=1e-4))
    assert s.step(1.0) and s.lr == 0.01
    lrs = []
    for _ in range(8):
        assert not s.step(1.0)
        lrs.append(s.lr)
        if s.stop:
            break
    # two flat epochs per division: 0.01 -> 1e-3 -> 1e-4 (not below min) -> 1e-5 (stop)
    assert lrs == pytest.approx([0.01, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5])
    assert s.stop
    e = Schedule(TrainConfig(patience=2))
    assert e.step(1.0) and not e.step(1.1) and not e.stop
    assert e.step(0.5) and not e.step(0.6) and not e.step(0.7) and e.stop


def test_weight_ema_follows_the_formula():
    import torch

    from scanner.models import WeightEMA

    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    ema = WeightEMA(model, 0.9)
    w0 = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)  # update 0: decay min(0.9, 1/10) = 0.1
    np.testing.assert_allclose(ema.module[0].weight.numpy(), (0.1 * w0 + 0.9 * (w0 + 1)).numpy(), rtol=1e-6)
    assert model[0].weight.requires_grad and not ema.module[0].weight.requires_grad
    with pytest.raises(ValueError):
        WeightEMA(model, 1.0)


# ---- training ----------------------------------------------------------------------------------------


def test_learns_planted_rule_and_loss_decreases(trained):
    result, _ = trained
    test = next(m for m in result.metrics if m["split"] == "test")
    assert test["auroc"] > 0.95, result.metrics
    assert test["score_auroc"] < 0.8  # the motif score alone cannot tell
    assert test["n"] == 200 and test["n_pos"] + test["n_neg"] == 200
    losses = result.history["train_loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert result.samples_per_s > 0 and 0 <= result.best_epoch <= result.epochs_run


def test_checkpoint_round_trips(trained, data):
    import torch

    from scanner.evaluate import predict_files
    from scanner.models import load_checkpoint

    result, out = trained
    model, meta = load_checkpoint(out)
    assert meta["tf"] == "TOY" and meta["regime"] == "pvalue" and meta["spec"].seq_len == 200
    assert meta["data_hash"] == result.data_hash
    assert meta["train_config"]["lr"] == FAST["lr"]
    assert meta["metrics"] == json.loads(json.dumps(result.metrics))
    assert (out / "roc.png").stat().st_size > 0 and (out / "pr.png").stat().st_size > 0
    # the saved weights reproduce the recorded test loss
    y, z, _ = predict_files(model, partition_files(data, "pvalue", "TOY", "test"), width=200)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y, dtype=torch.float))
    recorded = next(m for m in result.metrics if m["split"] == "test")["loss"]
    # recorded on the training device: a GPU's TF32 convolutions differ from this CPU pass by ~4e-4
    assert float(loss) == pytest.approx(recorded, rel=1e-3 if torch.cuda.is_available() else 1e-5)


def test_wrong_shape_checkpoint_is_input_error(trained, tmp_path):
    import shutil

    from scanner.models import load_checkpoint

    _, out = trained
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    meta = json.loads((bad / "model.json").read_text())
    meta["spec"]["seq_len"] = 400
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="do not fit"):
        load_checkpoint(bad)


def test_seeded_runs_are_identical_and_ema_runs(data, tmp_path):
    import torch

    cfg = TrainConfig(epochs=1, batch_size=64, seed=3, ema=0.99, rc_augment=True, max_shift=5, ensemble=2)
    flags = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    a = train_model(data, "TOY", "pvalue", tmp_path / "a", cfg, evaluate=False)
    b = train_model(data, "TOY", "pvalue", tmp_path / "b", cfg, evaluate=False)
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == flags  # restored
    assert a.history == b.history and a.metrics == []
    sa = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    sb = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_bad_inputs_are_input_errors(data, tmp_path):
    with pytest.raises(InputError, match="TF 'NOPE' has no data"):
        train_models(data, tmp_path / "m", TrainConfig(**FAST), tfs=["NOPE"], use_ray=False)
    with pytest.raises(InputError, match="no dataset partitions"):
        train_models(tmp_path, tmp_path / "m", use_ray=False)
    with pytest.raises(InputError, match="--schedule"):
        TrainConfig(schedule="cosine").validate()
    # one class only in train
    root = tmp_path / "one"
    write_toy_datasets(root, sizes={"train": 20, "val": 10, "test": 10})
    f = partition_files(root, "pvalue", "TOY", "train")[0]
    t = pq.read_table(f)
    t = t.filter(t.column("label").to_numpy() == 1)
    write_parquet_atomic(t, f)
    with pytest.raises(InputError, match="one class only"):
        train_model(root, "TOY", "pvalue", tmp_path / "x", TrainConfig(**FAST))
    # windows of another length in val
    root2 = tmp_path / "len"
    write_toy_datasets(root2, sizes={"train": 20, "val": 10, "test": 10})
    d = partition_dir(root2, [("regime", "pvalue"), ("tf", "TOY"), ("split", "val")])
    write_parquet_atomic(toy_dataset_table(10, 240, split="val"), d / "part-00000.parquet")
    with pytest.raises(InputError, match="240 bp in split 'val'"):
        train_model(root2, "TOY", "pvalue", tmp_path / "y", TrainConfig(**FAST))


def test_cli_train_no_ray(data, tmp_path):
    from typer.testing import CliRunner

    from scanner.cli import app

    out = tmp_path / "models"
    r = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path),  # the run directory: writes RUN/models and RUN/metrics.parquet
            "--tf",
            "TOY",
            "--regime",
            "pvalue",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--no-ray",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "k-mer" in r.stdout and "vs baselines" in r.stdout
    assert (checkpoint_dir(out, "TOY", "pvalue") / "model.pt").is_file()
    assert pq.read_table(tmp_path / "metrics.parquet").num_rows == 2
    # --reference: the reference's settings, explicit flags win
    ref_out = tmp_path / "ref" / "models"
    r = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(ref_out),  # the dataset itself (the spelling before 0.2): works, with a note
            "--reference",
            "--arch",
            "small",
            "--epochs",
            "1",
            "--no-evaluate",
            "--no-ray",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "--out is the run directory" in r.stderr
    meta = json.loads((checkpoint_dir(ref_out, "TOY", "pvalue") / "model.json").read_text())
    assert meta["spec"]["arch"] == "small" and meta["train_config"]["epochs"] == 1
    assert meta["train_config"]["ema"] == 0.999 and meta["train_config"]["schedule"] == "reference"
    assert meta["train_config"]["lr"] == 0.01 and meta["train_config"]["rc_augment"] is True
    bad = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(tmp_path), "--tf", "X", "--no-ray"])
    assert bad.exit_code == 2 and "error:" in bad.stderr and "TF 'X' has no data" in bad.stderr
    none = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "empty"), "--no-ray"])  # no datasets there
    assert none.exit_code == 2 and "--data" in none.stderr and "scanner label" in none.stderr


@pytest.mark.ray
def test_ray_training_equals_in_process(ray_cluster, data, tmp_path):
    import torch

    cfg = TrainConfig(epochs=1, batch_size=64, seed=1, ensemble=1)
    local = train_models(data, tmp_path / "local" / "models", cfg, use_ray=False)
    remote = train_models(data, tmp_path / "ray" / "models", cfg, use_ray=True)
    assert [(r.tf, r.regime) for r in remote] == [("TOY", "pvalue")]
    assert remote[0].history["train_loss"] == pytest.approx(local[0].history["train_loss"], rel=1e-4)
    sa = torch.load(checkpoint_dir(tmp_path / "local" / "models", "TOY", "pvalue") / "model.pt", weights_only=True)
    sb = torch.load(checkpoint_dir(tmp_path / "ray" / "models", "TOY", "pvalue") / "model.pt", weights_only=True)
    # On a GPU the two processes may get other (each deterministic) cuDNN algorithms, whose TF32
    # rounding differs; Adam's normalised steps turn that into weight differences of up to ~lr over an
    # epoch (2.7e-3 seen on an H200). On a CPU the runs agree to float rounding.
    rtol, atol = (0.0, 1e-2) if torch.cuda.is_available() else (1e-4, 1e-5)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=rtol, atol=atol)
    a = pq.read_table(tmp_path / "local" / "metrics.parquet").to_pylist()
    b = pq.read_table(tmp_path / "ray" / "metrics.parquet").to_pylist()
    assert [r["split"] for r in a] == [r["split"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert rb["auroc"] == pytest.approx(ra["auroc"], abs=atol * 2 if torch.cuda.is_available() else 1e-3)
    # an input error raised inside a Ray task reaches the caller as InputError
    root = tmp_path / "one"
    write_toy_datasets(root, sizes={"train": 20, "val": 10, "test": 10})
    f = partition_files(root, "pvalue", "TOY", "train")[0]
    t = pq.read_table(f)
    write_parquet_atomic(t.filter(t.column("label").to_numpy() == 0), f)
    with pytest.raises(InputError, match="one class only"):
        train_models(root, tmp_path / "m", cfg, use_ray=True)
