"""Where a scan runs (threads or Ray, and why), the motif table cache, and what a scan must not leave
silent (motifs that cannot reach the threshold, an empty result, a damaged FASTA)."""

from __future__ import annotations

import json
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scanner.cli import app
from scanner.motifs import Motif, write_meme
from scanner.scan import ScanConfig, scan_genome, table_cache
from scanner.scan import executor as executor_module
from scanner.scan.executor import choose_executor
from scanner.scan.pvalues import PValueTable


def _genome(path: Path, seed: int = 3, n: int = 20_000, tail: str = "\n") -> Path:
    rng = np.random.default_rng(seed)
    seq = "".join(rng.choice(list("ACGT"), n))
    site = "TTGACGTCAT"
    seq = seq[:500] + site + seq[510:]
    path.write_text(">chr1\n" + "\n".join(seq[i : i + 60] for i in range(0, n, 60)) + tail)
    return path


def _motifs(path: Path) -> Path:
    idx = ["ACGT".index(c) for c in "TTGACGTCAT"]
    probs = np.full((10, 4), 0.04)
    probs[np.arange(10), idx] = 0.88
    weak = np.full((4, 4), 0.1)
    weak[np.arange(4), [0, 1, 2, 3]] = 0.7  # 4 columns: its best word has p = 4**-4 > 1e-4
    return write_meme([Motif("SITE1", "SITEF", probs, 40), Motif("WEAK1", "WEAKF", weak, 20)], path)


# ---- executor ----------------------------------------------------------------------------------


def test_executor_rule(monkeypatch):
    monkeypatch.setattr(executor_module, "running_cluster_address", lambda: None)
    monkeypatch.setattr(executor_module, "_ray_in_process", lambda: False)
    small = choose_executor(None, None, 10_000_000, 10, 2, env={})
    assert small.executor == "local" and "10%" in small.reason
    # a genome-sized scan: Ray's start is under 10% of the work
    big = choose_executor(None, None, 3_000_000_000, 100, 2, env={})
    assert big.executor == "ray" and big.address is None
    assert choose_executor(None, "ray://h:10001", 1000, 1, 2, env={}).address == "ray://h:10001"
    env = choose_executor(None, None, 1000, 1, 2, env={"RAY_ADDRESS": "h:6379"})
    assert env.executor == "ray" and env.address == "h:6379" and "RAY_ADDRESS" in env.reason
    assert choose_executor("ray", None, 1000, 1, 2, env={}).executor == "ray"
    assert choose_executor("local", "ray://h:10001", 10**12, 100, 2, env={}).executor == "local"
    monkeypatch.setattr(executor_module, "running_cluster_address", lambda: "127.0.0.1:6379")
    running = choose_executor(None, None, 1000, 1, 2, env={})
    assert running.executor == "ray" and running.address == "127.0.0.1:6379"
    with pytest.raises(ValueError):
        choose_executor("gpu", None, 1, 1, 1, env={})


def test_running_cluster_address_ignores_a_stale_file(tmp_path):
    import socket

    (tmp_path / "ray").mkdir()
    assert executor_module.running_cluster_address(str(tmp_path)) is None  # no file
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}\n")
    try:
        assert executor_module.running_cluster_address(str(tmp_path)) == f"127.0.0.1:{port}"
    finally:
        server.close()
    assert executor_module.running_cluster_address(str(tmp_path)) is None  # nothing listens any more


def test_small_scan_without_address_starts_no_ray(tmp_path, monkeypatch):
    import scanner.runtime

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(executor_module, "running_cluster_address", lambda: None)
    monkeypatch.setattr(executor_module, "_ray_in_process", lambda: False)

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started for a small scan")

    monkeypatch.setattr(scanner.runtime, "ray_session", no_ray)
    genome, motifs = _genome(tmp_path / "g.fa"), _motifs(tmp_path / "m.meme")
    s = scan_genome(genome, [str(motifs)], tmp_path / "o", ScanConfig())
    assert s.executor == "local" and "threads" in s.reason and s.hits["SITEF"] >= 1
    res = CliRunner().invoke(app, ["scan", "-g", str(genome), "-m", str(motifs), "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert "ran on: local" in res.output


@pytest.mark.ray
def test_scan_with_an_address_joins_that_ray(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    genome, motifs = _genome(tmp_path / "g.fa"), _motifs(tmp_path / "m.meme")
    address = ray_cluster.get_runtime_context().gcs_address
    s = scan_genome(genome, [str(motifs)], tmp_path / "o", ScanConfig(), address=address)
    assert s.executor == "ray" and address in s.reason and s.timings["actors"] >= 1
    local = scan_genome(genome, [str(motifs)], tmp_path / "l", ScanConfig(), use_ray=False)
    assert local.hits == s.hits


# ---- table cache -------------------------------------------------------------------------------


def _w(seed: int = 0, length: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    bg = np.array([0.3, 0.2, 0.2, 0.3])
    p = rng.dirichlet(np.ones(4) * 0.5, size=length)
    return np.log2(((p * 20 + 0.1 * bg) / 20.1) / bg), bg


def test_cache_miss_then_hit_skips_the_build(tmp_path, monkeypatch):
    w, bg = _w()
    built = []
    real = PValueTable.build
    monkeypatch.setattr(PValueTable, "build", classmethod(lambda cls, *a, **k: built.append(1) or real(*a, **k)))
    first = table_cache.cached_build(tmp_path, w, bg, 1e-4, "exact")
    assert len(built) == 1 and len(list(tmp_path.glob("*.pkl"))) == 1
    again = table_cache.cached_build(tmp_path, w, bg, 1e-4, "exact")
    assert len(built) == 1  # read from disk
    scores = np.linspace(first.cut - 1, w.max(axis=1).sum(), 200)
    for a, b in zip(first.evaluate(scores), again.evaluate(scores), strict=True):
        np.testing.assert_array_equal(a, b)
    # every part of the key makes another entry
    table_cache.cached_build(tmp_path, w, bg, 1e-5, "exact")
    table_cache.cached_build(tmp_path, w, bg, 1e-4, "fimo")
    table_cache.cached_build(tmp_path, w, np.array([0.2, 0.3, 0.3, 0.2]), 1e-4, "exact")
    table_cache.cached_build(tmp_path, w + 1e-12, bg, 1e-4, "exact")
    assert len(built) == 5 and len(list(tmp_path.glob("*.pkl"))) == 5
    monkeypatch.setattr(table_cache, "code_version", lambda: "another version")
    table_cache.cached_build(tmp_path, w, bg, 1e-4, "exact")
    assert len(built) == 6


def test_corrupt_or_foreign_entry_is_rebuilt_and_replaced(tmp_path):
    w, bg = _w(1)
    path = tmp_path / f"{table_cache.table_key(w, bg, 1e-4, 'exact')}.pkl"
    tmp_path.mkdir(exist_ok=True)
    path.write_bytes(b"\x80\x05truncated")
    table = table_cache.cached_build(tmp_path, w, bg, 1e-4, "exact")
    assert isinstance(table, PValueTable)
    assert table_cache.load_table(tmp_path, w, bg, 1e-4, "exact") is not None  # replaced by a good one
    other, _ = _w(2)
    path.write_bytes(pickle.dumps(PValueTable.build(other, bg, 1e-4)))  # a valid table of another matrix
    assert table_cache.load_table(tmp_path, w, bg, 1e-4, "exact") is None


def test_concurrent_writers_leave_one_whole_entry(tmp_path):
    w, bg = _w(3, 12)
    table = PValueTable.build(w, bg, 1e-4)
    errors = []

    def write():
        try:
            for _ in range(20):
                assert table_cache.store_table(tmp_path, table)
                got = table_cache.load_table(tmp_path, w, bg, 1e-4, "exact")
                assert got is not None and got.cut == table.cut
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(list(tmp_path.iterdir())) == 1  # no temporary file left behind


def test_scan_uses_the_cache_and_it_can_be_deleted_or_turned_off(tmp_path):
    genome, motifs = _genome(tmp_path / "g.fa"), _motifs(tmp_path / "m.meme")
    cache = tmp_path / "cache"
    a = scan_genome(genome, [str(motifs)], tmp_path / "a", ScanConfig(table_cache=str(cache)), use_ray=False)
    n = len(list(cache.glob("*.pkl")))
    assert n == 2  # one table per motif (symmetric background: both strands share it)
    b = scan_genome(genome, [str(motifs)], tmp_path / "b", ScanConfig(table_cache=str(cache)), use_ray=False)
    assert b.hits == a.hits
    for f in cache.iterdir():
        f.unlink()
    c = scan_genome(genome, [str(motifs)], tmp_path / "c", ScanConfig(table_cache="off"), use_ray=False)
    assert c.hits == a.hits and not list(cache.iterdir())


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SCANNER_CACHE_DIR", str(tmp_path / "x"))
    assert table_cache.resolve_cache_dir(None) == tmp_path / "x"
    monkeypatch.delenv("SCANNER_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert table_cache.resolve_cache_dir(None) == tmp_path / "xdg" / "scanner" / "motif-tables"
    assert table_cache.resolve_cache_dir("off") is None
    assert table_cache.resolve_cache_dir(str(tmp_path / "y")) == tmp_path / "y"


# ---- nothing silent ----------------------------------------------------------------------------


def test_unreachable_motifs_are_listed_with_their_best_pvalue(tmp_path):
    genome, motifs = _genome(tmp_path / "g.fa"), _motifs(tmp_path / "m.meme")
    res = CliRunner().invoke(
        app, ["scan", "-g", str(genome), "-m", str(motifs), "--out", str(tmp_path / "o"), "--no-ray"]
    )
    assert res.exit_code == 0, res.output
    assert "cannot reach the threshold" in res.output and "WEAK1 (0.00391)" in res.output
    meta = json.loads((tmp_path / "o" / "instances" / "_scan.json").read_text())
    assert meta["unreachable"] == {"WEAK1": pytest.approx(4.0**-4, rel=0.02)}  # genome background
    assert meta["exact_hit_calls"] == {"SITE1": True, "WEAK1": True}
    assert meta["undecided_windows"] == {"SITE1": 0, "WEAK1": 0}
    assert meta["executor"]["executor"] == "local"


def test_a_scan_with_no_hit_is_a_complete_empty_result(tmp_path):
    genome = _genome(tmp_path / "g.fa")
    weak = np.full((4, 4), 0.1)
    weak[np.arange(4), [0, 1, 2, 3]] = 0.7
    motifs = write_meme([Motif("WEAK1", "WEAKF", weak, 20)], tmp_path / "w.meme")
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["scan", "-g", str(genome), "-m", str(motifs), "--out", str(out), "--no-ray"])
    assert res.exit_code == 0, res.output
    assert "complete, empty result" in res.output
    meta = json.loads((out / "instances" / "_scan.json").read_text())
    assert meta["complete"] and meta["total_hits"] == 0 and meta["hits"] == {}
    res = CliRunner().invoke(app, ["export", str(out / "instances"), "--fimo"])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0].startswith("motif_id")
    assert len(res.stdout.strip().splitlines()) == 1  # header only
    assert "0 rows: the scan found 0 instances" in res.stderr  # and why, on stderr


def test_empty_record_and_file_cut_mid_line_are_warned_about(tmp_path):
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGT"), 3000))
    fa = tmp_path / "cut.fa"
    fa.write_text(">chr1\n" + "\n".join(seq[i : i + 60] for i in range(0, 3000, 60)) + "\n>empty\n>chr2\nACGTACGTAC")
    motifs = _motifs(tmp_path / "m.meme")
    s = scan_genome(fa, [str(motifs)], tmp_path / "o", ScanConfig(), use_ray=False)
    text = "\n".join(s.warnings)
    assert "record 'empty' is empty" in text and str(fa) in text
    assert "ends mid-line" in text and "'chr2'" in text
    meta = json.loads((tmp_path / "o" / "instances" / "_scan.json").read_text())
    assert meta["warnings"] == s.warnings
    res = CliRunner().invoke(app, ["scan", "-g", str(fa), "-m", str(motifs), "--out", str(tmp_path / "c"), "--no-ray"])
    assert res.exit_code == 0 and "warning:" in res.output and "'empty'" in res.output
    good = _genome(tmp_path / "good.fa")
    assert not scan_genome(good, [str(motifs)], tmp_path / "g", ScanConfig(), use_ray=False).warnings
    assert os.path.getsize(good) > 0
