"""Cluster jobs against a real Ray head on 127.0.0.1 (cluster/local.sh), through the Jobs API over HTTP.

The head runs in its own process group with its own ports and temp dir, and is stopped with SIGINT
to that group (never `ray stop`). This process never calls ``ray.init``: it is only an HTTP client of
the head, so it does not interfere with the session's in-process ``ray_cluster`` fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl
import pytest
import tomli_w
from typer.testing import CliRunner

from scanner.errors import InputError
from scanner.run.jobs_api import JobsClient

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[1]
LOCAL_SH = REPO / "cluster" / "local.sh"


@dataclass(frozen=True)
class Head:
    url: str
    gcs: str
    directory: Path


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head (2 CPUs) on loopback, with every port chosen free and a private temp dir."""
    if shutil.which("setsid") is None:
        pytest.skip("setsid is needed to start the head in its own process group")
    # short path: Ray's unix socket paths under the temp dir must stay below 108 characters
    directory = Path(tempfile.mkdtemp(prefix="scn-head-", dir="/tmp"))
    gcs, dash, client, agent, agent_grpc, runtime_env, metrics = _free_ports(7)
    env = {
        **os.environ,
        "SCANNER_HEAD_DIR": str(directory),
        "RAY_PORT": str(gcs),
        "DASHBOARD_PORT": str(dash),
        "NUM_CPUS": "2",
        "RAY_AUTH_MODE": "disabled",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    extra = [
        "--ray-client-server-port", str(client),
        "--dashboard-agent-listen-port", str(agent),
        "--dashboard-agent-grpc-port", str(agent_grpc),
        "--runtime-env-agent-port", str(runtime_env),
        "--metrics-export-port", str(metrics),
        "--object-store-memory", str(150 << 20),
    ]  # fmt: skip
    started = subprocess.run(
        [str(LOCAL_SH), "start", *extra], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    try:
        if started.returncode != 0:
            pytest.fail(f"could not start a Ray head:\n{started.stdout}\n{started.stderr}")
        yield Head(url=f"http://127.0.0.1:{dash}", gcs=f"127.0.0.1:{gcs}", directory=directory)
    finally:
        subprocess.run([str(LOCAL_SH), "stop"], env=env, capture_output=True, timeout=120, check=False)
        shutil.rmtree(directory, ignore_errors=True)


def write_config(path: Path, out: Path, **changes: dict) -> Path:
    doc = {
        "out": str(out),
        "use_ray": False,
        "simulate": {"size_mb": 1.0, "n_chroms": 4, "tfs": ["ALPHA"]},
        "scan": {"shard_size": 100_000},
        "label": {"regimes": ["pvalue"], "val_chroms": ["chr3"], "test_chroms": ["chr4"]},
        "train": {"epochs": 1, "batch_size": 32, "cpus_per_model": 1.0},
        "predict": {"chunk_rows": 256},
    }
    for section, values in changes.items():
        doc[section] = {**doc.get(section, {}), **values} if isinstance(values, dict) else values
    path.write_text(tomli_w.dumps(doc))
    return path


def cli(*args: str):
    from scanner.cli import app

    return CliRunner().invoke(app, list(args))


def test_submit_poll_logs_status(ray_head, tmp_path):
    out = tmp_path / "run"
    config = write_config(tmp_path / "run.toml", out)
    res = cli("submit", str(config), "--address", ray_head.url)
    assert res.exit_code == 0, res.output
    job_id = res.stdout.strip().splitlines()[-1]
    assert job_id.startswith("raysubmit_")

    client = JobsClient(ray_head.url)
    info = client.wait(job_id, timeout=420, poll=1.0)
    logs = client.logs(job_id)
    assert info.status == "SUCCEEDED", logs[-3000:]
    assert info.out == str(out) and info.is_scanner

    # the run it made
    doc = json.loads((out / "manifest.json").read_text())
    assert all(s["status"] == "done" for s in doc["stages"].values())
    inst = pl.scan_parquet(out / "instances" / "**" / "*.parquet").collect()
    pred = pl.scan_parquet(out / "predictions" / "**" / "*.parquet").collect()
    assert pred.height == inst.height > 100

    # status: the job's state and the manifest, from the file and (when unreadable here) the log
    res = cli("status", job_id, "--address", ray_head.url)
    assert res.exit_code == 0, res.output
    assert "SUCCEEDED" in res.stdout and "all stages done" in res.stdout
    assert "predict" in res.stdout and f"{pred.height:,}" in res.stdout
    res = cli("status", "--address", ray_head.url)  # latest scanner job
    assert res.exit_code == 0 and job_id in res.stdout
    from_log = client.manifest(replace(info, metadata={**info.metadata, "scanner_out": str(tmp_path / "elsewhere")}))
    assert {k: v["status"] for k, v in from_log["stages"].items()} == {k: "done" for k in doc["stages"]}

    # logs, without and with the manifest lines; --follow on a finished job prints it all
    res = cli("logs", job_id, "--address", ray_head.url)
    assert res.exit_code == 0
    assert "[scan] done" in res.stdout and "run complete" in res.stdout and "SCANNER_MANIFEST" not in res.stdout
    assert "SCANNER_MANIFEST" in cli("logs", job_id, "--address", ray_head.url, "--manifest-lines").stdout
    assert "run complete" in cli("logs", job_id, "--address", ray_head.url, "--follow").stdout

    res = cli("jobs", "--address", ray_head.url)
    assert res.exit_code == 0 and job_id in res.stdout and "SUCCEEDED" in res.stdout and str(out) in res.stdout


def test_stop_a_running_job(ray_head, tmp_path):
    out = tmp_path / "big"
    config = write_config(
        tmp_path / "big.toml",
        out,
        simulate={"size_mb": 60.0, "n_chroms": 10},
        label={"val_chroms": ["chr8"], "test_chroms": ["chr9"]},
    )
    client = JobsClient(ray_head.url)
    job_id = f"scanner-stop-{uuid.uuid4().hex[:8]}"
    assert client.submit_run(config, job_id=job_id) == job_id
    deadline = time.monotonic() + 300
    while not (out / "manifest.json").is_file():  # the driver has started the run
        assert time.monotonic() < deadline, client.logs(job_id)[-2000:]
        assert not client.info(job_id).terminal, client.logs(job_id)[-2000:]
        time.sleep(0.5)
    res = cli("status", job_id, "--address", ray_head.url)
    assert res.exit_code == 0, res.output
    assert "RUNNING" in res.stdout and "simulate" in res.stdout

    res = cli("stop", job_id, "--address", ray_head.url, "--wait", "60")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == f"{job_id}: STOPPED"
    assert client.info(job_id).status == "STOPPED"
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["stages"]["simulate"]["status"] == "running"  # the next run marks it interrupted
    assert any(j.job_id == job_id and j.status == "STOPPED" for j in client.list_jobs())


def test_unknown_job_and_bad_submissions(ray_head, tmp_path):
    res = cli("status", "raysubmit_doesnotexist", "--address", ray_head.url)
    assert res.exit_code == 2 and "no such job" in res.output
    res = cli("logs", "raysubmit_doesnotexist", "--address", ray_head.url)
    assert res.exit_code == 2 and "no such job" in res.output
    bad = tmp_path / "bad.toml"
    bad.write_text('out = "x"\n[simulate]\nsize_mb = "big"\n')
    res = cli("submit", str(bad), "--address", ray_head.url)  # rejected before anything is sent
    assert res.exit_code == 2 and "simulate.size_mb" in res.output
    res = cli("jobs", "--address", ray_head.url, "--header", "novalue")
    assert res.exit_code == 2 and "NAME=VALUE" in res.output


def test_unreachable_jobs_api():
    (port,) = _free_ports(1)
    with pytest.raises(InputError, match="cannot reach the Ray Jobs API"):
        JobsClient(f"http://127.0.0.1:{port}")
    res = cli("jobs", "--address", f"http://127.0.0.1:{port}")
    assert res.exit_code == 2 and "cannot reach" in res.output
