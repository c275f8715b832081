"""The genome-wide scan stage: shards, resume, Ray == in-process, output layout, bad input, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from scanner.cli import app
from scanner.errors import InputError
from scanner.io import read_dataset
from scanner.motifs import Motif, write_meme
from scanner.scan import ScanConfig, compact, load_scan_meta, scan_genome
from scanner.scan.shards import plan_shards
from scanner.schemas import INSTANCES

SITE = "TTGACGTCAT"  # the planted motif's consensus


def _write_genome(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    chroms = {"chr1": 23_000, "chr2": 9_000, "chrM": 400}
    lines = []
    for name, n in chroms.items():
        seq = np.array(list(rng.choice(list("ACGT"), n)))
        for pos in range(150, n - 20, 997):  # planted sites, some across every shard boundary below
            seq[pos : pos + len(SITE)] = list(SITE)
        seq[5000:5100] = "N"
        seq[7000:7600] = np.char.lower(seq[7000:7600])
        text = "".join(seq)
        lines.append(f">{name}")
        lines.extend(text[i : i + 61] for i in range(0, len(text), 61))
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_motifs(path: Path) -> Path:
    idx = ["ACGT".index(c) for c in SITE]
    probs = np.full((len(SITE), 4), 0.04)
    probs[np.arange(len(SITE)), idx] = 0.88
    other = np.random.default_rng(1).dirichlet(np.ones(4) * 0.5, size=7)
    return write_meme([Motif("SITE1", "SITEF", probs, 40), Motif("RND1", "RNDF", other, 20)], path)


@pytest.fixture()
def inputs(tmp_path):
    return _write_genome(tmp_path / "g.fa"), _write_motifs(tmp_path / "m.meme")


def _rows(out: Path) -> pl.DataFrame:
    return pl.from_arrow(read_dataset(out / "instances", INSTANCES)).sort(["motif_id", "chrom", "start", "strand"])


def test_plan_shards_overlap_and_cover():
    shards = plan_shards({"a": 2500, "b": 999}, 1000, 9)
    assert [(s.chrom, s.start, s.end, s.read_end) for s in shards] == [
        ("a", 0, 1000, 1009),
        ("a", 1000, 2000, 2009),
        ("a", 2000, 2500, 2500),
        ("b", 0, 999, 999),
    ]
    assert len({s.key for s in shards}) == 4


def test_shard_boundaries_lose_and_duplicate_nothing(inputs, tmp_path, monkeypatch):
    genome, motifs = inputs
    one = scan_genome(genome, [str(motifs)], tmp_path / "one", ScanConfig(shard_size=100_000), use_ray=False)
    monkeypatch.setattr(compact, "MERGE_MIN_FILES", 0)  # merge this small scan's parts as a large one's
    many = scan_genome(genome, [str(motifs)], tmp_path / "many", ScanConfig(shard_size=1000), use_ray=False)
    # in-process shards run on one thread per core (at most one per shard)
    assert many.timings["threads"] == min(many.shards, len(os.sched_getaffinity(0)))
    assert one.timings["threads"] == min(one.shards, len(os.sched_getaffinity(0)))
    assert many.shards == 23 + 9 + 1 and one.shards == 3
    a, b = _rows(tmp_path / "one"), _rows(tmp_path / "many")
    assert a.equals(b)
    starts = set(a.filter(pl.col("tf") == "SITEF", pl.col("strand") == "+")["start"].to_list())
    planted = {p for p in range(150, 23_000 - 20, 997) if not (4990 < p < 5100)}
    assert planted <= starts  # every planted site on chr1 is found (once: see the uniqueness check)
    assert a.select(pl.struct("chrom", "start", "strand", "motif_id").is_unique().all()).item()
    # every partition of two parts or more was merged into one file; chrM (one shard) kept its part
    files = {f.parent.name: f.name for f in (tmp_path / "many" / "instances").glob("tf=SITEF/chrom=*/*.parquet")}
    assert files == {
        "chrom=chr1": "part-00000-all.parquet",
        "chrom=chr2": "part-00001-all.parquet",
        "chrom=chrM": "part-00002-00000.parquet",
    }
    dirs = list((tmp_path / "many" / "instances").glob("tf=*/chrom=*"))
    assert all(len(list(d.glob("*.parquet"))) == 1 for d in dirs)
    assert many.timings["merged_partitions"] >= 4 and many.timings["merged_parts"] > 20
    assert one.timings["merged_partitions"] == 0


def test_compact_partition_merges_in_genome_order_and_finishes_an_interrupted_merge(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scanner.scan.compact import compact_partition, partitions_to_merge

    d = tmp_path / "tf=A" / "chrom=c"
    d.mkdir(parents=True)
    n = 11
    for k in reversed(range(n)):  # written out of order; names give the genome order
        pq.write_table(pa.table({"start": [10 * k, 10 * k + 1]}), d / f"part-00003-{k:05d}.parquet")
    single = tmp_path / "tf=B" / "chrom=c"
    single.mkdir(parents=True)
    pq.write_table(pa.table({"start": [5]}), single / "part-00003-00000.parquet")
    assert partitions_to_merge(tmp_path, min_files=n + 1) == []  # few files in all: parts stay
    assert partitions_to_merge(tmp_path, min_files=n) == [d]  # a lone part is left alone
    assert compact_partition(single) == 0
    monkeypatch.setattr(compact, "ROW_GROUP_ROWS", 5)  # streamed: row groups of >= 5 rows (3 parts each)
    assert compact_partition(d) == n
    (only,) = d.iterdir()
    assert only.name == "part-00003-all.parquet"
    assert pq.ParquetFile(only).metadata.num_row_groups == -(-n // 3)
    assert pq.read_table(only).column("start").to_pylist() == [v for k in range(n) for v in (10 * k, 10 * k + 1)]
    # a crash after the merged file was written and before the parts were deleted: parts are dropped
    pq.write_table(pa.table({"start": [0, 1]}), d / "part-00003-00000.parquet")
    assert partitions_to_merge(tmp_path, min_files=10**9) == [d]
    assert compact_partition(d) == 1
    assert [p.name for p in d.iterdir()] == ["part-00003-all.parquet"]
    assert pq.read_table(only).num_rows == 2 * n
    assert compact_partition(d) == 0 and partitions_to_merge(tmp_path, min_files=0) == []


def test_output_layout_metadata_and_polars_read(inputs, tmp_path):
    genome, motifs = inputs
    s = scan_genome(genome, [str(motifs)], tmp_path / "o", ScanConfig(shard_size=5000), use_ray=False)
    root = tmp_path / "o" / "instances"
    assert (root / "tf=SITEF" / "chrom=chr1").is_dir()
    assert s.timings["merged_partitions"] == 0 and len(list(root.glob("tf=SITEF/chrom=chr1/part-*.parquet"))) == 5
    df = pl.scan_parquet(f"{root}/**/*.parquet", hive_partitioning=True).collect()
    assert df.height == sum(s.hits.values())
    assert set(df["tf"].unique()) <= {"SITEF", "RNDF"}
    width = pl.when(pl.col("tf") == "SITEF").then(10).otherwise(7)
    assert df.select((pl.col("end") - pl.col("start") == width).all()).item()
    assert df["pvalue"].max() < 1e-4
    meta = load_scan_meta(root)
    assert meta.complete and meta.genome == genome.resolve() and [m.motif_id for m in meta.motifs] == ["SITE1", "RND1"]
    assert meta.background.is_symmetric
    recorded = json.loads((root / "_scan.json").read_text())
    assert recorded["exact_pvalues"] == {"SITE1": True, "RND1": True}
    assert recorded["hits"] == s.hits
    lower = df.filter(pl.col("chrom") == "chr1", pl.col("start").is_between(7000, 7590))
    assert lower.height > 0 and lower["sequence"].str.contains("[acgt]").not_().all()  # upper case


def test_skip_masked_and_max_strand_change_the_output(inputs, tmp_path):
    genome, motifs = inputs
    base = scan_genome(genome, [str(motifs)], tmp_path / "a", ScanConfig(), use_ray=False)
    masked = scan_genome(genome, [str(motifs)], tmp_path / "b", ScanConfig(skip_masked=True), use_ray=False)
    best = scan_genome(genome, [str(motifs)], tmp_path / "c", ScanConfig(max_strand=True), use_ray=False)
    assert sum(masked.hits.values()) < sum(base.hits.values())
    df = _rows(tmp_path / "c")
    assert df.select(pl.struct("chrom", "start", "motif_id").is_unique().all()).item()
    assert sum(best.hits.values()) <= sum(base.hits.values())


def test_interrupted_scan_resumes_and_matches(inputs, tmp_path):
    genome, motifs = inputs
    cfg = ScanConfig(shard_size=2000)
    full = scan_genome(genome, [str(motifs)], tmp_path / "full", cfg, use_ray=False)
    out = tmp_path / "part"
    scan_genome(genome, [str(motifs)], out, cfg, use_ray=False)
    # Simulate a crash: half the shards lost their marker (and some of their files).
    markers = sorted((out / "instances" / "_shards").glob("*.json"))
    for m in markers[::2]:
        m.unlink()
        for f in (out / "instances").rglob(f"part-{m.stem}.parquet"):
            f.unlink()
    seen = []
    again = scan_genome(genome, [str(motifs)], out, cfg, use_ray=False, progress=lambda d, t, r: seen.append(r))
    assert again.reused == len(markers) - len(markers[::2]) and seen[0] == again.reused
    assert _rows(out).equals(_rows(tmp_path / "full"))
    assert again.hits == full.hits
    assert not list((out / "instances").rglob(".*.tmp"))


def test_existing_output_with_other_settings_is_refused(inputs, tmp_path):
    genome, motifs = inputs
    scan_genome(genome, [str(motifs)], tmp_path / "o", ScanConfig(), use_ray=False)
    with pytest.raises(InputError, match="other settings"):
        scan_genome(genome, [str(motifs)], tmp_path / "o", ScanConfig(pvalue=1e-5), use_ray=False)
    s = scan_genome(genome, [str(motifs)], tmp_path / "o", ScanConfig(pvalue=1e-5), use_ray=False, overwrite=True)
    assert _rows(tmp_path / "o")["pvalue"].max() < 1e-5 and s.reused == 0


def test_missing_and_stale_fai_are_rebuilt_unwritable_dir_is_explained(inputs, tmp_path):
    genome, motifs = inputs
    fai = Path(str(genome) + ".fai")
    assert not fai.exists()
    scan_genome(genome, [str(motifs)], tmp_path / "o", ScanConfig(chroms=("chr2",)), use_ray=False)
    assert fai.exists()
    fai.write_text("chr1\t999999\t6\t61\t62\n")  # wrong lengths: points past the end
    os.utime(fai, (genome.stat().st_mtime + 10,) * 2)
    scan_genome(genome, [str(motifs)], tmp_path / "o2", ScanConfig(chroms=("chr2",)), use_ray=False)
    assert "chr2" in fai.read_text()
    ro = tmp_path / "ro"
    ro.mkdir()
    g2 = ro / "g.fa"
    g2.write_text(genome.read_text())
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("directory permissions are not enforced for this user")
        with pytest.raises(InputError, match="not writable"):
            scan_genome(g2, [str(motifs)], tmp_path / "o3", ScanConfig(), use_ray=False)
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chroms": ("1",)}, "chromosome '1' is not in the genome.*'chr1'"),
        ({"pvalue": 0.0}, "p-value threshold"),
        ({"kernel": "gpu"}, "kernel"),
        ({"shard_size": 10}, "shard size"),
    ],
)
def test_bad_settings(inputs, tmp_path, kwargs, match):
    genome, motifs = inputs
    with pytest.raises(InputError, match=match):
        scan_genome(genome, [str(motifs)], tmp_path / "o", ScanConfig(**kwargs), use_ray=False)


def test_bad_genome_and_motifs(tmp_path, inputs):
    genome, motifs = inputs
    with pytest.raises(InputError, match="FASTA file not found"):
        scan_genome(tmp_path / "nope.fa", [str(motifs)], tmp_path / "o", use_ray=False)
    gz = tmp_path / "g.fa.gz"
    import gzip

    gz.write_bytes(gzip.compress(genome.read_bytes()))
    with pytest.raises(InputError, match="plain gzip"):
        scan_genome(gz, [str(motifs)], tmp_path / "o", use_ray=False)
    with pytest.raises(InputError, match="unknown JASPAR"):
        scan_genome(genome, ["MA9999.9"], tmp_path / "o", use_ray=False)


@pytest.mark.ray
def test_ray_path_equals_in_process(ray_cluster, inputs, tmp_path, monkeypatch):
    genome, motifs = inputs
    monkeypatch.setattr(compact, "MERGE_MIN_FILES", 0)  # the driver decides; the actors merge
    cfg = ScanConfig(shard_size=2000)
    local = scan_genome(genome, [str(motifs)], tmp_path / "local", cfg, use_ray=False)
    dist = scan_genome(genome, [str(motifs)], tmp_path / "ray", cfg, use_ray=True)
    assert dist.hits == local.hits and dist.shards == local.shards
    assert dist.timings["merged_partitions"] == local.timings["merged_partitions"] > 0
    names = lambda root: sorted(str(f.relative_to(root)) for f in root.rglob("*.parquet"))  # noqa: E731
    assert names(tmp_path / "ray" / "instances") == names(tmp_path / "local" / "instances")
    assert _rows(tmp_path / "ray").equals(_rows(tmp_path / "local"))
    markers = {json.loads(p.read_text())["key"] for p in (tmp_path / "ray" / "instances" / "_shards").glob("*.json")}
    assert len(markers) == dist.shards


@pytest.mark.parametrize("use_gpu", [False, True])
def test_node_worker_without_the_drivers_tables_rebuilds_them(inputs, tmp_path, use_gpu):
    """A restarted actor never got the driver's tables: its first shard builds them, same output. A GPU
    actor scans with numba until its device has started (and where there is no CUDA, as here)."""
    from dataclasses import asdict

    from scanner.motifs.readers import read_meme
    from scanner.scan.genome_scan import ScanNodeWorker, _motif_to_dict

    genome, motifs = inputs
    cfg = ScanConfig(shard_size=4000, background="uniform")
    local = scan_genome(genome, [str(motifs)], tmp_path / "local", cfg, use_ray=False)
    out = tmp_path / "worker" / "instances"
    worker = ScanNodeWorker(
        str(genome), [_motif_to_dict(m) for m in read_meme(motifs)[0]], str(out), asdict(cfg), use_gpu, 2
    )
    if use_gpu:
        worker._device_ready.clear()  # CUDA still starting
        assert worker._kernel() == ("numba", "cpu")
    for shard in plan_shards({"chr1": 23_000, "chr2": 9_000, "chrM": 400}, 4000, len(SITE) - 1):
        worker.scan(shard.to_dict(), [0.25] * 4)
    assert sum(local.hits.values()) > 0
    assert _rows(tmp_path / "worker").equals(_rows(tmp_path / "local"))


def test_cli_scan_and_export(inputs, tmp_path):
    genome, motifs = inputs
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(app, ["scan", "-g", str(genome), "-m", str(motifs), "--out", str(out), "--no-ray"])
    assert res.exit_code == 0, res.output
    assert "instances of 2 TFs" in res.output
    res = runner.invoke(app, ["export", str(out / "instances"), "--fimo-text"])
    assert res.exit_code == 0
    lines = res.output.strip().splitlines()
    assert lines[0].split("\t")[:4] == ["motif_id", "motif_alt_id", "sequence_name", "start"]
    df = _rows(out)
    first = df.filter(pl.col("motif_id") == "SITE1").sort(["chrom", "start", "strand"]).row(0, named=True)
    fields = lines[1].split("\t")  # motifs in the file's order, as fimo --text
    assert fields[0] == first["motif_id"] and int(fields[3]) == first["start"] + 1 and int(fields[4]) == first["end"]
    bed = tmp_path / "x.bed"
    res = runner.invoke(app, ["export", str(out / "instances"), "--bed", "-o", str(bed)])
    assert res.exit_code == 0
    b = bed.read_text().splitlines()[0].split("\t")
    lowest = df.sort(["chrom", "start", "end"]).row(0, named=True)  # coordinate-sorted
    assert int(b[1]) == lowest["start"] and int(b[2]) == lowest["end"] and len(b) == 6


def test_ray_start_note_only_when_ray_start_dominates():
    from scanner.commands.scan import ray_start_note

    note = ray_start_note({"setup_s": 4.2, "shards_s": 2.0}, 7.0)
    assert note is not None and "4.2 s of this 7.0 s" in note and "--no-ray" in note
    assert ray_start_note({"setup_s": 1.0, "shards_s": 60.0}, 62.0) is None
    assert ray_start_note({}, 0.0) is None


def test_cli_bad_input_exits_2_with_a_message(inputs, tmp_path):
    genome, _ = inputs
    bad = tmp_path / "bad.meme"
    bad.write_text(
        "MEME version 4\n\nALPHABET= ACGT\n\nMOTIF X\nletter-probability matrix: alength= 4 w= 1\n 0.5 0.5 0.5 0.5\n"
    )
    res = CliRunner().invoke(app, ["scan", "-g", str(genome), "-m", str(bad), "--out", str(tmp_path / "o"), "--no-ray"])
    assert res.exit_code == 2
    assert "bad.meme:7" in res.output and "sums to 2" in res.output
    res = CliRunner().invoke(
        app, ["scan", "-g", str(genome), "-m", str(bad), "--out", str(tmp_path / "o"), "--chroms", "chrX"]
    )
    assert res.exit_code == 2


def test_node_actor_specs_use_every_gpu_and_the_remaining_cores():
    from scanner.scan.genome_scan import CPU_ACTOR_THREADS, GPU_ACTOR_THREADS, node_actor_specs

    assert CPU_ACTOR_THREADS == 4  # the figures below assume it
    # CPU node: actors of at most 4 threads, cores dealt evenly; "auto"/"numba" leave GPUs alone
    assert node_actor_specs({"CPU": 2.0}, use_gpu=False) == [({"num_cpus": 2}, 2, False)]
    assert node_actor_specs({"CPU": 8.0}, use_gpu=False) == [({"num_cpus": 4}, 4, False)] * 2
    threads = [t for _, t, _ in node_actor_specs({"CPU": 14.0}, use_gpu=False)]
    assert threads == [4, 4, 3, 3]
    assert node_actor_specs({"CPU": 16.0}, use_gpu=False, max_threads=16) == [({"num_cpus": 16}, 16, False)]
    for kernel in ("auto", "numba"):
        assert node_actor_specs({"CPU": 4.0, "GPU": 1.0}, use_gpu=True, kernel=kernel) == [({"num_cpus": 4}, 4, False)]
    # --kernel torch on a GPU node: an actor per GPU, and the cores their host side leaves run beside them
    specs = node_actor_specs({"CPU": 16.0, "GPU": 2.0}, use_gpu=True, kernel="torch")
    gpu = [s for s in specs if s[2]]
    assert len(gpu) == 2 and all(s[0] == {"num_gpus": 1, "num_cpus": 0} for s in gpu)
    cpu = [s for s in specs if not s[2]]
    assert sum(t for _, t, _ in cpu) == 16 - 2 * GPU_ACTOR_THREADS and all(r["num_cpus"] == t for r, t, _ in cpu)
    assert max(t for _, t, _ in cpu) <= CPU_ACTOR_THREADS
    # the CI fixture's node (2 CPUs, 1 logical GPU): the GPU actor alone
    assert node_actor_specs({"CPU": 2.0, "GPU": 1.0}, use_gpu=True, kernel="torch") == [
        ({"num_gpus": 1, "num_cpus": 0}, 2, True)
    ]
    assert node_actor_specs({}, use_gpu=False) == []


@pytest.mark.ray
def test_ray_gpu_actor_path_equals_in_process(ray_cluster, inputs, tmp_path):
    """``--kernel torch`` on the fixture's logical GPU: the GPU actor is scheduled (num_gpus=1) and,
    with no CUDA in the process, scans with numba; same rows as the in-process scan."""
    genome, motifs = inputs
    cfg = ScanConfig(shard_size=4000, kernel="torch")
    local = scan_genome(genome, [str(motifs)], tmp_path / "local", cfg, use_ray=False)
    dist = scan_genome(genome, [str(motifs)], tmp_path / "ray", cfg, use_ray=True)
    assert dist.timings["actors"] == 1 and dist.hits == local.hits
    assert _rows(tmp_path / "ray").equals(_rows(tmp_path / "local"))
