"""``scanner run``: stages in order, the manifest, skip/resume rules, failures, status and report.

One tiny simulated run is made in-process (no Ray) for the module; tests that change it work on a
copy of its directory.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from scanner.errors import InputError
from scanner.run.config import from_dict
from scanner.run.manifest import (
    Manifest,
    format_status,
    parquet_rows,
    read_manifest,
    stage_eta,
    status_rows,
)
from scanner.run.pipeline import (
    last_manifest_in_log,
    manifest_printer,
    run_pipeline,
    stage_names,
    stage_outputs,
    stage_signature,
)
from scanner.store import RunDir, visible_files

KEY = ["chrom", "start", "end", "strand", "motif_id"]


def tiny_config(out: Path, **sections: dict) -> dict:
    """A run small enough for a unit test: 1 Mb, one TF, one regime, one epoch."""
    doc = {
        "out": str(out),
        "use_ray": False,
        "simulate": {"size_mb": 1.0, "n_chroms": 4, "tfs": ["ALPHA"]},
        "scan": {"shard_size": 100_000},
        "label": {"regimes": ["pvalue"], "val_chroms": ["chr3"], "test_chroms": ["chr4"]},
        "train": {"epochs": 1, "batch_size": 32},
        "predict": {"chunk_rows": 256},
        "interpret": {"methods": ["saliency"], "top": 2, "flank": 30},
        "interpret_benchmark": {
            "tf": "ALPHA",
            "methods": ["saliency"],
            "n_sequences": 5,
            "naive_sequences": 0,
            "epochs": 1,
        },
    }
    doc.update(sections)
    return doc


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "run"
    cfg = from_dict(tiny_config(out))
    lines: list[str] = []
    docs: list[dict] = []
    result = run_pipeline(cfg, log=lines.append, on_manifest=docs.append)
    return cfg, result, lines, docs


@pytest.fixture
def run_copy(base_run, tmp_path):
    cfg, *_ = base_run
    out = tmp_path / "copy"
    shutil.copytree(cfg.out, out)
    return replace(cfg, out=out)


def _table(out: Path, name: str) -> pl.DataFrame:
    df = pl.scan_parquet(out / name / "**" / "*.parquet", hive_partitioning=True).collect()
    return df.sort(df.columns)


def test_every_stage_runs_and_is_recorded(base_run):
    cfg, result, lines, docs = base_run
    names = stage_names(cfg)
    assert names == ["simulate", "scan", "label", "train", "evaluate", "predict", "interpret", "interpret_benchmark"]
    assert result.ran == tuple(names) and result.skipped == ()
    doc = read_manifest(cfg.out)
    assert doc == result.manifest
    for name in names:
        rec = doc["stages"][name]
        assert rec["status"] == "done", name
        assert rec["done"] == rec["total"] >= 1, name
        assert rec["seconds"] is not None and rec["inputs_hash"] and rec["outputs"], name
        assert rec["outputs"] == stage_signature(cfg.out, name)
    inst = _table(cfg.out, "instances")
    assert doc["stages"]["scan"]["rows"] == inst.height > 100
    assert doc["stages"]["scan"]["total"] == len(list((cfg.out / "instances" / "_shards").glob("*.json")))
    pred = _table(cfg.out, "predictions")
    assert doc["stages"]["predict"]["rows"] == pred.height == inst.height  # one model
    assert pred.select(KEY).unique().height == inst.height
    run = RunDir(cfg.out)
    assert doc["stages"]["label"]["rows"] == parquet_rows(run.dataset("labelled").files())
    assert stage_outputs(cfg.out, "label") == sorted(
        visible_files(run.dataset("labelled").root) + visible_files(run.dataset("datasets").root)
    )
    assert doc["stages"]["evaluate"]["rows"] == pl.read_parquet(cfg.out / "metrics.parquet").height == 2
    assert (cfg.out / "interpret_benchmark" / "benchmark.parquet").is_file()
    assert any(line.startswith("[predict] done") for line in lines)
    # the manifest callback saw every stage go running -> done
    seen = {(n, s["status"]) for d in docs for n, s in d["stages"].items()}
    assert {(n, "running") for n in names} <= seen and {(n, "done") for n in names} <= seen


def test_rerun_skips_complete_stages(run_copy):
    t = time.perf_counter()
    result = run_pipeline(run_copy)
    assert result.ran == () and len(result.skipped) == 8
    assert time.perf_counter() - t < 10  # no stage work, no Ray, no torch


def test_changed_setting_reruns_only_what_depends_on_it(run_copy):
    before = _table(run_copy.out, "predictions")
    items_before = read_manifest(run_copy.out)["stages"]["predict"]["total"]
    cfg = replace(
        run_copy, predict=replace(run_copy.predict, settings=replace(run_copy.predict.settings, chunk_rows=16))
    )
    result = run_pipeline(cfg)
    # other file names: the predictions' signature changes, so interpret (which reads them) re-runs;
    # evaluate and interpret_benchmark do not read them
    assert result.ran == ("predict", "interpret")
    assert result.manifest["stages"]["predict"]["total"] > items_before  # smaller work items
    from polars.testing import assert_frame_equal

    assert_frame_equal(_table(cfg.out, "predictions"), before)
    result2 = run_pipeline(cfg)
    assert result2.ran == ()
    cfg3 = replace(cfg, evaluate=replace(cfg.evaluate, batch_size=17))
    assert run_pipeline(cfg3).ran == ("evaluate",)


def test_deleted_output_reruns_that_stage(run_copy):
    victim = sorted((run_copy.out / "labelled").rglob("*.parquet"))[0]
    victim.unlink()
    result = run_pipeline(run_copy)
    # the label stage writes the same files again, so nothing downstream of it re-runs
    assert result.ran == ("label",)
    assert victim.is_file()
    pred = sorted((run_copy.out / "predictions").rglob("*.parquet"))[0]
    pred.write_bytes(pred.read_bytes()[:-10])  # truncated: size changed
    assert run_pipeline(run_copy).ran[0] == "predict"


def test_interrupted_train_reuses_finished_models(run_copy):
    model_pt = next((run_copy.out / "models").rglob("model.pt"))
    mtime = model_pt.stat().st_mtime_ns
    path = run_copy.out / "manifest.json"
    doc = json.loads(path.read_text())
    doc["stages"]["train"]["status"] = "running"  # as a driver killed mid-stage leaves it
    path.write_text(json.dumps(doc))
    result = run_pipeline(run_copy)
    assert result.ran == ("train",)
    assert result.manifest["stages"]["train"]["note"] == "1 model(s), 1 reused"
    assert result.manifest["stages"]["train"]["attempts"] == 2
    assert model_pt.stat().st_mtime_ns == mtime


def test_a_failed_stage_is_recorded_and_retried(run_copy, monkeypatch):
    import scanner.predict.run

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash in predict")

    cfg = replace(
        run_copy, predict=replace(run_copy.predict, settings=replace(run_copy.predict.settings, batch_size=7))
    )
    monkeypatch.setattr(scanner.predict.run, "predict", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_pipeline(cfg)
    doc = read_manifest(cfg.out)
    assert doc["stages"]["predict"]["status"] == "failed"
    assert "simulated crash in predict" in doc["stages"]["predict"]["error"]
    assert doc["stages"]["evaluate"]["status"] == "done"
    assert "failed" in format_status(doc)
    monkeypatch.undo()
    ran = run_pipeline(cfg).ran
    # Only predict and what reads its output: another batch size may change the logits' last bits (and so
    # the predictions' file sizes that interpret's input signature holds).
    assert ran[0] == "predict" and set(ran) <= {"predict", "interpret"}
    assert read_manifest(cfg.out)["stages"]["predict"]["status"] == "done"


def test_until_force_and_bad_stage_names(run_copy):
    result = run_pipeline(run_copy, until="evaluate", force=["evaluate"])
    assert result.ran == ("evaluate",) and "predict" not in result.skipped
    assert read_manifest(run_copy.out)["stages"]["predict"]["status"] == "done"  # not forgotten
    with pytest.raises(InputError, match="unknown or inactive stage 'variants'"):
        run_pipeline(run_copy, force=["variants"])
    with pytest.raises(InputError, match="unknown or inactive stage"):
        run_pipeline(replace(run_copy, interpret=None), until="interpret")


def test_variants_stage_scores_a_vcf(run_copy, tmp_path):
    from scanner.genome import open_genome
    from scanner.results import query as q

    inst = _table(run_copy.out, "instances").sort("chrom", "start").head(3)
    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    with open_genome(run_copy.out / "sim" / "genome.fa") as g:
        for i, r in enumerate(inst.iter_rows(named=True)):
            pos = (r["start"] + r["end"]) // 2  # 0-based, inside the site
            ref = g.fetch(r["chrom"], pos, pos + 1).upper()
            alt = "A" if ref != "A" else "C"
            lines.append(f"{r['chrom']}\t{pos + 1}\trs{i}\t{ref}\t{alt}\t.\tPASS\t.")
    vcf = tmp_path / "calls.vcf"
    vcf.write_text("\n".join(lines) + "\n")
    doc = tiny_config(run_copy.out, variants={"vcf": str(vcf), "chunk_variants": 2})
    cfg = from_dict(doc)
    assert stage_names(cfg)[-2:] == ["variants", "interpret_benchmark"]
    result = run_pipeline(cfg)
    assert result.ran == ("variants",)
    rec = result.manifest["stages"]["variants"]
    assert rec["status"] == "done" and rec["rows"] >= 3
    got = q.variant_scores(run_copy.out, "rs0")
    assert got.height >= 1 and "delta_pvalue" in got.columns
    assert run_pipeline(cfg).ran == ()
    vcf.write_text("\n".join(lines[:-1]) + "\n")  # the VCF changed: only variants re-runs
    assert run_pipeline(cfg).ran == ("variants",)


def test_features_stage(run_copy):
    from scanner.results import query as q

    feats = {"splits": [], "max_windows": 120, "n_shuffles": 2, "modisco": {"min_seqlets": 10}}
    cfg = from_dict(tiny_config(run_copy.out, features=feats))
    assert stage_names(cfg)[-2:] == ["features", "interpret_benchmark"]
    result = run_pipeline(cfg)
    assert result.ran == ("features",)
    assert result.manifest["stages"]["features"]["status"] == "done"
    record = json.loads((run_copy.out / "features" / "_features.json").read_text())
    assert 0 < record["models"][0]["windows"] <= 120 and record["config"]["n_shuffles"] == 2
    assert any(str(run_copy.out / "sim" / "context_motifs.meme") == d for d in record["databases"])
    assert "features" in q.available(run_copy.out)
    assert run_pipeline(cfg).ran == ()


def test_a_scan_the_pipeline_did_not_make_is_not_replaced(run_copy, tmp_path):
    out = tmp_path / "foreign"
    shutil.copytree(run_copy.out / "sim", out / "sim")
    shutil.copytree(run_copy.out / "instances", out / "instances")  # no manifest: not the pipeline's
    files = sorted((out / "instances").rglob("*.parquet"))
    cfg = replace(run_copy, out=out, scan=replace(run_copy.scan, pvalue=1e-5))
    with pytest.raises(InputError, match="other settings"):
        run_pipeline(cfg)
    assert sorted((out / "instances").rglob("*.parquet")) == files
    assert read_manifest(out)["stages"]["scan"]["status"] == "failed"


def test_one_driver_per_run_directory(tmp_path):
    import subprocess
    import sys

    from scanner.store import LockedError

    cfg = from_dict(tiny_config(tmp_path / "run"))
    holder = subprocess.Popen(  # another driver holding the run directory
        [
            sys.executable,
            "-c",
            "import sys, time; from scanner.store import RunDir\n"
            "with RunDir(sys.argv[1]).lock('run'):\n print('held', flush=True); time.sleep(60)",
            str(cfg.out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=str(holder.pid)):
            run_pipeline(cfg)
        assert not (cfg.out / "instances").exists()  # refused before any work
    finally:
        holder.kill()
        holder.wait()


def test_bad_input_marks_the_stage_failed(tmp_path):
    doc = tiny_config(tmp_path / "bad")
    doc.pop("simulate")
    doc["inputs"] = {
        "genome": str(tmp_path / "missing.fa"),
        "motifs": ["MA0139.2"],
        "peaks": {"CTCF": str(tmp_path / "p.bed")},
    }
    with pytest.raises(InputError, match="not found"):
        run_pipeline(from_dict(doc))
    rec = read_manifest(tmp_path / "bad")["stages"]["scan"]
    assert rec["status"] == "failed" and "missing.fa" in rec["error"]


# ---- manifest units -------------------------------------------------------------------------------


def test_manifest_life_cycle_and_eta(tmp_path):
    m = Manifest.open(tmp_path)
    m.plan(["a", "b"], "cfg")
    assert not m.is_complete("a", "h", "sig")
    m.start("a", "h", unit="shards")
    m.progress("a", 0, 10)
    m.stages["a"].started = time.time() - 30
    m.progress("a", 5, 10)
    m.save()
    doc = read_manifest(tmp_path)
    now = time.time()
    eta = stage_eta(doc["stages"]["a"], now)
    assert eta == pytest.approx(30.0, abs=2.0)  # 5 of 10 shards in 30 s -> 30 s left
    rows = status_rows(doc, now)
    assert rows[0]["progress"] == "5/10 shards" and rows[0]["status"] == "running" and rows[0]["left"] == "30.0s"
    assert rows[1]["status"] == "pending" and rows[1]["left"] == "-"
    assert "time left: 30.0s + stages not started" in format_status(doc, now)
    m.finish("a", outputs="sig", rows=42)
    assert m.is_complete("a", "h", "sig")
    assert not m.is_complete("a", "h2", "sig") and not m.is_complete("a", "h", "other")
    again = Manifest.open(tmp_path)
    again.plan(["a", "b"], "cfg")
    assert again.stages["a"].status == "done" and again.stages["a"].rows == 42
    again.start("b", "x")
    again2 = Manifest.open(tmp_path)  # a new driver finds "b" running: its old driver died
    again2.plan(["a", "b"], "cfg")
    assert again2.stages["b"].status == "failed" and "interrupted" in again2.stages["b"].error


def test_not_a_manifest(tmp_path):
    with pytest.raises(InputError, match="no run manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"stages": {}}')
    with pytest.raises(InputError, match="not a scanner run manifest"):
        read_manifest(tmp_path)


def test_manifest_log_lines_round_trip(base_run):
    import io

    doc = base_run[1].manifest
    buf = io.StringIO()
    emit = manifest_printer(buf, min_interval=3600)
    emit(doc)
    emit(doc)  # same statuses within the interval: not printed again
    changed = json.loads(json.dumps(doc))
    changed["stages"]["predict"]["status"] = "running"
    emit(changed)
    text = "noise\n" + buf.getvalue() + "more noise\n"
    assert text.count("SCANNER_MANIFEST ") == 2
    assert last_manifest_in_log(text) == changed
    assert last_manifest_in_log("nothing here") is None


# ---- status and report from the CLI ---------------------------------------------------------------


def test_status_of_a_run_directory(base_run):
    from scanner.cli import app

    cfg = base_run[0]
    res = CliRunner().invoke(app, ["status", "--out", str(cfg.out)])
    assert res.exit_code == 0, res.output
    assert "all stages done" in res.output
    for name in stage_names(cfg):
        assert name in res.output


def test_report_has_every_section(base_run, tmp_path):
    from scanner.cli import app

    cfg = base_run[0]
    res = CliRunner().invoke(app, ["report", str(cfg.out), "--output", str(tmp_path / "rep"), "--top-sites", "2"])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "rep" / "index.html").read_text()
    for title in ("Stages", "Instances", "Metrics", "ROC and PR curves", "Interpretation benchmark", "Top sites"):
        assert f"<h2>{title}</h2>" in page, title
    metrics = pl.read_parquet(cfg.out / "metrics.parquet")
    test_auroc = metrics.filter(pl.col("split") == "test")["auroc"][0]
    assert f"{test_auroc:.3f}" in page
    assert page.count("data:image/png;base64,") == len(list((tmp_path / "rep").glob("*.png"))) >= 4
    assert len(list((tmp_path / "rep").glob("site_*.png"))) == 2


def test_report_of_an_empty_directory(tmp_path):
    from scanner.results.report import build_report

    with pytest.raises(InputError, match="nothing to report"):
        build_report(tmp_path)
