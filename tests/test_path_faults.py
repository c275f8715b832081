"""Every output-path fault and every unreadable input a user can cause is exit code 2 with one line
naming the path: no traceback, and nothing already published is touched."""

from __future__ import annotations

import errno
import os

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from scanner.cli import app
from scanner.io import parquet_files
from scanner.toydata import write_toy_genome, write_toy_instances


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    import torch

    from scanner.models import ModelSpec, build_model, save_checkpoint

    root = tmp_path_factory.mktemp("faults")
    genome = write_toy_genome(root / "g.fa", {"chr1": 3000}, seed=2)
    write_toy_instances(root / "instances", genome, tfs=("A",), files_per_chrom=1, n_per_chrom=10)
    torch.manual_seed(0)
    spec = ModelSpec(arch="small", seq_len=200)
    save_checkpoint(
        build_model(spec).eval(), spec, root / "models" / "tf=A" / "regime=pvalue", {"tf": "A", "regime": "pvalue"}
    )
    return root


def _predict(inputs, out, *extra):
    """``scanner predict`` writing the predictions dataset ``out`` (``--out`` is its run directory)."""
    args = ["predict", "--instances", str(inputs / "instances"), "--models", str(inputs / "models")]
    run = out.parent if out.name == "predictions" else out
    return CliRunner().invoke(app, [*args, "--out", str(run), "--no-ray", *extra])


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    err = [ln for ln in result.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and result.stderr.strip().splitlines()[-1] == err[0], result.stderr
    for n in needles:
        assert n in err[0], err[0]
    assert "Traceback" not in result.output


def test_output_that_is_a_file(inputs, tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    _one_line_error(_predict(inputs, f / "predictions"), str(f))
    _one_line_error(_predict(inputs, f), str(f))


@pytest.mark.skipif(os.geteuid() == 0, reason="directory permissions are not enforced for root")
def test_read_only_output(inputs, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        _one_line_error(_predict(inputs, ro / "predictions"), str(ro))
    finally:
        ro.chmod(0o700)


def test_full_disk_is_named(inputs, tmp_path, monkeypatch):
    import scanner.store as store

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out"))

    monkeypatch.setattr(store.os, "fsync", full)
    _one_line_error(_predict(inputs, tmp_path / "out" / "predictions"), "no space left", str(tmp_path / "out"))


def test_corrupt_parquet_and_truncated_checkpoint_are_named(inputs, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(inputs, bad)
    victim = parquet_files(bad / "instances")[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    _one_line_error(_predict(bad, tmp_path / "p1" / "predictions"), str(victim), "cut short")
    shutil.copytree(inputs / "instances", bad / "instances", dirs_exist_ok=True)
    pt = bad / "models" / "tf=A" / "regime=pvalue" / "model.pt"
    pt.write_bytes(pt.read_bytes()[:100])
    _one_line_error(_predict(bad, tmp_path / "p2" / "predictions"), str(pt), "unreadable weights")


def test_published_output_survives_a_failed_rerun(inputs, tmp_path, monkeypatch):
    out = tmp_path / "run" / "predictions"
    assert _predict(inputs, out).exit_code == 0
    before = sorted((f.name, pq.read_table(f).num_rows) for f in parquet_files(out))
    import scanner.predict.run as predict_mod

    def boom(*_a, **_k):
        raise OSError(errno.EIO, "Input/output error", str(out))

    monkeypatch.setattr(predict_mod, "write_parquet_atomic", boom)
    _one_line_error(_predict(inputs, out, "--rc-average"), "Input/output error")
    assert sorted((f.name, pq.read_table(f).num_rows) for f in parquet_files(out)) == before
