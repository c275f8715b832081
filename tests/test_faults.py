"""Failures: a driver killed mid-run resumes to the same output; a Ray worker killed during predict
is restarted and its work item retried, leaving exactly one row per instance and model.

The reference is one uninterrupted in-process run. The driver test kills a ``scanner run``
subprocess (SIGKILL) once the scan has written some shard markers, runs again, and compares every
dataset with the reference row for row. The worker test submits the predict stage of a copy of the
reference to a real Ray head (cluster/local.sh) with small work items and kills one ``Predictor``
actor's process, found through Ray's state API over HTTP; this process never calls ``ray.init``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import tomli_w
from polars.testing import assert_frame_equal

# the loopback head fixture of test_jobs (module scope: this module starts its own head)
from test_jobs import ray_head  # noqa: F401

from scanner.run.config import from_dict, load_config
from scanner.run.manifest import read_manifest
from scanner.run.pipeline import run_pipeline
from scanner.store import RunDir

KEY = ["chrom", "start", "end", "strand", "motif_id"]
DATASETS = ("instances", "labelled", "datasets", "predictions")


def config_doc(out: Path, **changes: dict) -> dict:
    doc = {
        "out": str(out),
        "use_ray": False,
        "simulate": {"size_mb": 1.0, "n_chroms": 4, "tfs": ["ALPHA"]},
        "scan": {"shard_size": 5_000},  # ~200 shards: the scan lasts long enough to be interrupted
        "label": {"regimes": ["pvalue"], "val_chroms": ["chr3"], "test_chroms": ["chr4"]},
        "train": {"epochs": 1, "batch_size": 32, "cpus_per_model": 1.0},
        "predict": {"chunk_rows": 256},
    }
    for section, values in changes.items():
        doc[section] = {**doc.get(section, {}), **values} if isinstance(values, dict) else values
    return doc


def table(out: Path, name: str) -> pl.DataFrame:
    df = pl.scan_parquet(out / name / "**" / "*.parquet", hive_partitioning=True).collect()
    return df.sort(df.columns)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run, in this process (torch on one thread, like the subprocess below)."""
    import torch

    out = tmp_path_factory.mktemp("faults") / "reference"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_pipeline(from_dict(config_doc(out)))
    finally:
        torch.set_num_threads(before)
    return out


def test_killed_driver_resumes_to_identical_output(reference, tmp_path):
    out = tmp_path / "interrupted"
    config = tmp_path / "run.toml"
    config.write_text(tomli_w.dumps(config_doc(out)))
    total = read_manifest(reference)["stages"]["scan"]["total"]
    instances = RunDir(out).dataset("instances")

    def markers() -> list:
        return [m for d in instances.staged() for m in (d / "_shards").glob("*.json")]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "driver.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "scanner.cli", "run", str(config), "--no-ray"], stdout=log, stderr=log, env=env
    )
    try:
        deadline = time.monotonic() + 240
        while len(markers()) < 3:
            assert proc.poll() is None, (tmp_path / "driver.log").read_text()
            assert time.monotonic() < deadline, "the scan did not start"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    done_at_kill = len(markers())
    assert 3 <= done_at_kill < total, "the driver was not killed during the scan"
    assert not instances.root.exists()  # nothing readable as complete
    doc = read_manifest(out)
    assert doc["stages"]["simulate"]["status"] == "done"
    assert doc["stages"]["scan"]["status"] == "running"  # as the killed driver left it

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_pipeline(load_config(config))
    finally:
        torch.set_num_threads(before)
    assert result.skipped == ("simulate",)
    scan = result.manifest["stages"]["scan"]
    assert scan["status"] == "done" and scan["attempts"] == 2
    reused = int(scan["note"].split("(")[1].split()[0])
    assert done_at_kill <= reused < total  # only the missing shards were scanned again
    for name in DATASETS:
        assert_frame_equal(table(out, name), table(reference, name), check_exact=True)
    assert_frame_equal(pl.read_parquet(out / "metrics.parquet"), pl.read_parquet(reference / "metrics.parquet"))
    for ours in sorted((out / "instances").rglob("*.parquet")):  # same files, no duplicates or leftovers
        assert (reference / ours.relative_to(out)).is_file()
    assert len(list((out / "instances").rglob("*.parquet"))) == len(list((reference / "instances").rglob("*.parquet")))


@pytest.mark.ray
def test_worker_killed_during_predict_is_retried(reference, ray_head, tmp_path):  # noqa: F811
    from ray.util.state import list_actors

    from scanner.run.jobs_api import JobsClient

    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    config = tmp_path / "predict.toml"
    # small work items: ~200 Ray Data tasks, so the predict stage lasts long enough to be interrupted
    config.write_text(tomli_w.dumps(config_doc(out, use_ray=True, predict={"chunk_rows": 4})))
    client = JobsClient(ray_head.url)
    t0 = time.time()
    job_id = client.submit_run(config)

    def predictors() -> list:
        actors = list_actors(
            address=ray_head.url, filters=[("state", "=", "ALIVE")], detail=True, raise_on_missing_output=False
        )
        return [a for a in actors if "Predictor" in a.class_name]

    predictions = RunDir(out).dataset("predictions")

    def new_outputs() -> int:  # predict writes into its staging area until it publishes
        dirs = [predictions.root, *predictions.staged()]
        return sum(1 for d in dirs for f in d.rglob("*.parquet") if f.stat().st_mtime >= t0)

    deadline = time.monotonic() + 300
    alive = []
    while not alive:
        assert time.monotonic() < deadline and not client.info(job_id).terminal, client.logs(job_id)[-3000:]
        alive = predictors()
        time.sleep(0.2)
    victim = alive[0]
    while new_outputs() == 0:  # the actors are working
        assert time.monotonic() < deadline and not client.info(job_id).terminal, client.logs(job_id)[-3000:]
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    written_at_kill = new_outputs()

    info = client.wait(job_id, timeout=300)
    logs = client.logs(job_id)
    assert info.status == "SUCCEEDED", logs[-3000:]
    doc = read_manifest(out)
    assert [n for n, s in doc["stages"].items() if s["attempts"] == 2] == ["predict"]  # the only stage re-run
    total = doc["stages"]["predict"]["total"]
    assert written_at_kill < total, "the worker was not killed during predict"
    restarted = [
        a
        for a in list_actors(address=ray_head.url, detail=True, raise_on_missing_output=False)
        if a.actor_id == victim.actor_id
    ]
    assert restarted and restarted[0].num_restarts >= 1

    pred, ref = table(out, "predictions"), table(reference, "predictions")
    inst = table(reference, "instances")
    assert pred.height == inst.height == pred.select([*KEY, "regime", "model_tf"]).unique().height
    assert_frame_equal(pred.drop("logit", "prob_bound"), ref.drop("logit", "prob_bound"))
    assert_frame_equal(pred, ref, check_exact=False, rtol=0, atol=1e-5)  # other batch sizes than the reference's
