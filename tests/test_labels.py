"""Labelling: peak reading and bad input, overlap semantics, splits, the label stage (in-process and Ray)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from scanner.cli import app
from scanner.errors import InputError
from scanner.genome import open_genome
from scanner.io import partition_dir, read_dataset, write_parquet_atomic
from scanner.labels.intervals import contained_in, overlaps_any, read_intervals, summit_distance
from scanner.labels.run import LabelConfig, label
from scanner.labels.splits import resolve_splits
from scanner.schemas import DATASETS, INSTANCES, LABELLED
from scanner.simulate.genome import SimulationConfig, read_truth, simulate

LENGTHS = {"chr1": 1000, "chr2": 500}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---- reading ----------------------------------------------------------------------------------------
def test_read_narrowpeak_bed_and_gzip(tmp_path):
    np_text = "track name=x\n# comment\nchr1\t10\t50\tp\t0\t.\t1\t2\t3\t5\nchr2\t0\t9\tq\t0\t.\t1\t2\t3\t-1\n"
    df = read_intervals(_write(tmp_path / "a.narrowPeak", np_text), chrom_lengths=LENGTHS)
    assert df.to_dicts() == [
        {"chrom": "chr1", "start": 10, "end": 50, "summit": 15},
        {"chrom": "chr2", "start": 0, "end": 9, "summit": None},
    ]
    gz = tmp_path / "a.narrowPeak.gz"
    gz.write_bytes(gzip.compress(np_text.encode()))
    assert read_intervals(gz).equals(df)
    bed = read_intervals(_write(tmp_path / "b.bed", "chr1 5 6\nchr1\t7\t9\tname\t1.5\n"))
    assert bed["start"].to_list() == [5, 7] and bed["summit"].is_null().all()
    # a '#' header and 14 columns (the Pho4 file's layout): column 10 is not a summit
    pho4 = "#chrom\tstart0\tend\tname\n" + "chr1\t1\t20\tn\t8.6\t.\tTRUE\tTRUE\tTRUE\t8.682\t1\t2\t3\tGENE\n"
    assert read_intervals(_write(tmp_path / "c.bed", pho4)).row(0) == ("chr1", 1, 20, None)


@pytest.mark.parametrize(
    ("text", "name", "match"),
    [
        ("chr1\t10\t50\nchr1\t50\t50\n", "x.bed", r"x\.bed:2.*end \(50\) must be greater than start \(50\)"),
        ("chr1\t10\t5\n", "x.bed", r"x\.bed:1.*end \(5\) must be greater"),
        ("chr1\tten\t50\n", "x.bed", r"x\.bed:1, field 'column start'.*integer, got 'ten'"),
        ("chrom\tstart\tend\nchr1\t1\t2\n", "x.bed", r"x\.bed:1.*header line must start with '#'"),
        ("chr1\t1\t2.5\n", "x.bed", r"x\.bed:1.*end must be an integer, got '2.5'"),
        ("chr1\t1\n", "x.bed", r"x\.bed:1.*at least 3"),
        ("chr1\t-1\t5\n", "x.bed", r"x\.bed:1.*start must be >= 0"),
        ("chr1\t10\t50\n1\t10\t50\n", "x.bed", r"x\.bed:2.*chromosome '1'.*add the 'chr' prefix"),
        ("chrX\t10\t50\n", "x.bed", r"x\.bed:1.*chromosome 'chrX' is not in the genome"),
        ("chr2\t10\t501\n", "x.bed", r"x\.bed:1.*past the end of chr2 \(500 bp\)"),
        ("", "x.bed", r"x\.bed: no peaks in the file"),
        ("# only a comment\n\n", "x.bed", r"x\.bed: no peaks"),
        ("chr1\t10\t50\tp\t0\t.\t1\t2\t3\t40\n", "x.narrowPeak", r"x\.narrowPeak:1.*summit offset 40"),
        ("chr1\t10\t50\tp\t0\t.\t1\t2\t3\tmid\n", "x.narrowPeak", r"x\.narrowPeak:1.*column 10"),
    ],
)
def test_bad_peak_files(tmp_path, text, name, match):
    with pytest.raises(InputError, match=match):
        read_intervals(_write(tmp_path / name, text), chrom_lengths=LENGTHS)


def test_ensembl_names_get_a_prefix_hint(tmp_path):
    with pytest.raises(InputError, match="drop the 'chr' prefix"):
        read_intervals(_write(tmp_path / "x.bed", "chr1\t1\t5\n"), chrom_lengths={"1": 100})


def test_empty_blacklist_is_allowed(tmp_path):
    assert read_intervals(_write(tmp_path / "b.bed", ""), allow_empty=True).height == 0


# ---- overlap semantics ---------------------------------------------------------------------------
def _df(rows):
    return pl.DataFrame(rows, schema={"chrom": pl.String, "start": pl.Int64, "end": pl.Int64}, orient="row")


def test_containment_edges():
    peaks = _df([("chr1", 100, 200)])
    sites = _df(
        [
            ("chr1", 190, 200),  # ends exactly at the peak's end: inside
            ("chr1", 100, 110),  # starts at the peak's start: inside
            ("chr1", 195, 205),  # runs past the end: not inside, overlaps
            ("chr1", 200, 210),  # starts at the end: neither
            ("chr1", 90, 100),  # ends at the start: neither
            ("chr1", 95, 105),  # straddles the start: overlaps only
            ("chr2", 150, 160),  # other chromosome
        ]
    )
    assert contained_in(sites, peaks).to_list() == [True, True, False, False, False, False, False]
    assert overlaps_any(sites, peaks).to_list() == [True, True, True, False, False, True, False]


def test_containment_needs_one_peak_and_handles_nesting():
    peaks = _df([("chr1", 100, 150), ("chr1", 140, 200), ("chr1", 10, 500), ("chr1", 600, 700)])
    sites = _df([("chr1", 145, 155), ("chr1", 560, 620), ("chr1", 650, 660)])
    assert contained_in(sites, peaks).to_list() == [True, False, True]
    only_two = peaks.head(2)  # 130-155 spans two overlapping peaks but lies inside neither
    assert contained_in(_df([("chr1", 130, 155), ("chr1", 145, 155)]), only_two).to_list() == [False, True]


def _naive(sites, ivs):
    inside, over = [], []
    for c, s, e in sites.iter_rows():
        inside.append(any(c == ic and is_ <= s and e <= ie for ic, is_, ie in ivs.iter_rows()))
        over.append(any(c == ic and is_ < e and s < ie for ic, is_, ie in ivs.iter_rows()))
    return inside, over


def test_overlap_matches_naive_reference():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n_iv, n_s = rng.integers(0, 30), rng.integers(1, 60)

        def rand(n, maxlen):
            c = rng.choice(["chr1", "chr2"], n)
            s = rng.integers(0, 300, n)
            return _df(list(zip(c.tolist(), s.tolist(), (s + rng.integers(1, maxlen, n)).tolist(), strict=True)))

        ivs, sites = rand(n_iv, 80), rand(n_s, 20)
        inside, over = _naive(sites, ivs)
        assert contained_in(sites, ivs).to_list() == inside
        assert overlaps_any(sites, ivs).to_list() == over


def test_summit_distance():
    peaks = pl.DataFrame(
        {
            "chrom": ["chr1", "chr1", "chr2"],
            "start": [0, 300, 0],
            "end": [200, 400, 50],
            "summit": [100, None, 10],
        }
    )  # the second peak has no summit: its midpoint 350 is used
    sites = _df([("chr1", 95, 105), ("chr1", 110, 120), ("chr1", 80, 90), ("chr1", 355, 360), ("chr3", 1, 5)])
    # 100 in [95,105): 0; 110-100=10; 100-89=11; 355-350=5; no summit on chr3: null
    assert summit_distance(sites, peaks).to_list() == [0, 10, 11, 5, None]


# ---- splits --------------------------------------------------------------------------------------
def test_default_splits():
    chroms = [f"chr{i}" for i in range(1, 12)]
    s = resolve_splits(chroms)
    assert s["chr8"] == "val" and s["chr9"] == "test" and s["chr1"] == "train"
    assert [k for k, v in s.items() if v != "train"] == ["chr8", "chr9"]
    yeast = ["chrI", "chrII", "chrIII", "chrIV", "chrV", "chrVI", "chrVII", "chrVIII", "chrIX", "chrX"]
    y = resolve_splits(yeast)
    assert (y["chrVIII"], y["chrIX"]) == ("val", "test")
    e = resolve_splits([str(i) for i in range(1, 23)] + ["X", "MT"])
    assert (e["8"], e["9"]) == ("val", "test")
    other = resolve_splits(["a", "b", "c", "d", "chrM", "e_random"])
    assert (other["b"], other["c"]) == ("val", "test")  # candidates a,b,c,d: index (4-1)//2 = 1


def test_explicit_and_bad_splits():
    chroms = ["chr1", "chr2", "chr3", "chr4"]
    s = resolve_splits(chroms, val=["chr1", "chr2"], test=["chr3"])
    assert s == {"chr1": "val", "chr2": "val", "chr3": "test", "chr4": "train"}
    with pytest.raises(InputError, match="both validation and test"):
        resolve_splits(chroms, val=["chr1"], test=["chr1"])
    with pytest.raises(InputError, match=r"chromosome '5'.*add the 'chr' prefix"):
        resolve_splits([*chroms, "chr5"], val=["5"])
    with pytest.raises(InputError, match="give --val-chroms"):
        resolve_splits(["a", "b"])


# ---- the label stage -----------------------------------------------------------------------------
def write_instances(root: Path, df: pl.DataFrame, genome: Path | None = None) -> Path:
    """Write rows (INSTANCES columns) as an instances dataset, like ``scanner scan`` does."""
    for (tf, chrom), part in df.group_by("tf", "chrom"):
        path = partition_dir(root, [("tf", tf), ("chrom", chrom)]) / "part-00000.parquet"
        write_parquet_atomic(part.sort("start").to_arrow().cast(INSTANCES), path)
    if genome is not None:
        (root / "_scan.json").write_text(json.dumps({"genome": str(genome), "pvalue": 1e-4}))
    return root


def instances_from_truth(sim, n_random: int, seed: int = 0) -> pl.DataFrame:
    """Planted cores (strong p-values) plus random weak 'hits', in the INSTANCES schema."""
    rng = np.random.default_rng(seed)
    truth = read_truth(sim.out_dir)
    cores = truth.filter(pl.col("kind").is_in(["bound", "decoy", "background"]))
    g = open_genome(sim.genome)
    frames = []
    for i, tf in enumerate(sorted(sim.peaks)):
        c = cores.filter(pl.col("tf") == tf).select("chrom", "start", "end", "strand", "sequence")
        chroms = rng.choice(list(g.lengths), n_random)
        starts = np.array([rng.integers(0, g.lengths[ch] - 14) for ch in chroms])
        acgt = np.array([g.codes(ch, s, s + 14).max() < 4 for ch, s in zip(chroms, starts, strict=True)])
        chroms, starts = chroms[acgt], starts[acgt]  # a scanner reports A/C/G/T sites only
        r = pl.DataFrame({"chrom": chroms, "start": starts, "end": starts + 14, "strand": "+", "sequence": "N"})
        both = pl.concat([c, r]).unique(["chrom", "start", "strand"], keep="first", maintain_order=True)
        p = np.concatenate([10 ** -rng.uniform(5, 8.5, c.height), 10 ** -rng.uniform(4, 5.5, both.height - c.height)])
        frames.append(
            both.with_columns(
                pl.lit(f"SIM000{i + 1}").alias("motif_id"),
                pl.lit(tf).alias("tf"),
                pl.Series("score", -np.log2(p), dtype=pl.Float32),
                pl.Series("pvalue", p),
            ).select(INSTANCES.names)
        )
    return pl.concat(frames)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("sim"), SimulationConfig(size_mb=1.0, seed=11))


@pytest.fixture(scope="module")
def run_in_process(sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    inst = instances_from_truth(sim, 400)
    write_instances(out / "instances", inst, sim.genome)
    res = label(
        out / "instances",
        sim.peaks,
        out,
        LabelConfig(),
        open_chromatin=sim.open_bed,
        blacklist=sim.blacklist,
    )
    return out, inst, res


def test_label_stage_in_process(sim, run_in_process):
    out, inst, res = run_in_process
    lab = pl.from_arrow(read_dataset(out / "labelled", LABELLED))
    truth = read_truth(sim.out_dir)
    blacklist = read_intervals(sim.blacklist)
    kept = inst.filter(~overlaps_any(inst, blacklist))
    assert lab.height == kept.height  # blacklisted instances dropped, nothing else
    assert not overlaps_any(lab, blacklist).any()
    # planted cores: bound and in_open exactly as the truth says
    cores = truth.filter(pl.col("kind").is_in(["bound", "decoy", "background"])).select(
        "chrom", "start", "tf", pl.col("bound").alias("truth_bound"), pl.col("in_open").alias("truth_open")
    )
    j = lab.join(cores, on=["chrom", "start", "tf"], how="inner")
    assert j.height > 0.95 * cores.height
    assert (j["bound"] == j["truth_bound"]).all() and (j["in_open"] == j["truth_open"]).all()
    # no chromosome in two splits; defaults chr8/chr9
    per = lab.group_by("chrom").agg(pl.col("split").n_unique().alias("k"), pl.col("split").first())
    assert (per["k"] == 1).all()
    assert dict(per.select("chrom", "split").iter_rows())["chr8"] == "val"
    assert dict(per.select("chrom", "split").iter_rows())["chr9"] == "test"
    # gc and window fields against a direct computation
    g = open_genome(sim.genome)
    for r in lab.sample(20, seed=1).iter_rows(named=True):
        w = g.window(r["chrom"], (r["start"] + r["end"]) // 2, 1000)
        assert w.start == r["window_start"] and w.padded == r["window_padded"]
        acgt = w.codes[w.codes < 4]
        assert r["gc"] == pytest.approx(np.isin(acgt, [1, 2]).mean(), abs=1e-6)
    assert res.counts["labelled"].sum() == lab.height
    assert json.loads((out / "labelled" / "_label.json").read_text())["splits"]["chr9"] == "test"


def test_datasets_written_by_label(run_in_process):
    out, _, res = run_in_process
    ds = pl.from_arrow(read_dataset(out / "datasets", DATASETS))
    assert set(ds["regime"].unique()) == {"pvalue", "gc", "open", "random"}
    assert (ds["window"].str.len_bytes() == 1000).all()
    sizes = json.loads((out / "datasets" / "_datasets.json").read_text())["sizes"]
    assert pl.DataFrame(sizes).select(res.sizes.columns).equals(res.sizes)
    counted = ds.group_by("regime", "tf", "split").len()
    for r in res.sizes.filter(pl.col("n") > 0).iter_rows(named=True):
        n = counted.filter(
            (pl.col("regime") == r["regime"]) & (pl.col("tf") == r["tf"]) & (pl.col("split") == r["split"])
        )["len"]
        assert n.item() == r["n"]
    files = sorted(p.relative_to(out / "datasets").parts[:3] for p in (out / "datasets").rglob("*.parquet"))
    assert ("regime=pvalue", "tf=ALPHA", "split=train") in files


@pytest.mark.ray
def test_ray_path_equals_in_process(sim, run_in_process, ray_cluster, tmp_path):
    out, _, _ = run_in_process
    label(
        out / "instances",
        sim.peaks,
        tmp_path,
        LabelConfig(batch_size=256),
        open_chromatin=sim.open_bed,
        blacklist=sim.blacklist,
        use_ray=True,
    )
    for ds, schema in (("labelled", LABELLED), ("datasets", DATASETS)):
        a = pl.from_arrow(read_dataset(out / ds, schema))
        b = pl.from_arrow(read_dataset(tmp_path / ds, schema))
        assert a.height > 0 and a.equals(b), ds


def test_mask_core_and_summit_distance(sim, run_in_process, tmp_path):
    out, _, _ = run_in_process
    label(
        out / "instances",
        {"ALPHA": sim.peaks["ALPHA"]},
        tmp_path,
        LabelConfig(mask_core=True, summit_distance=30, regimes=("random",)),
        open_chromatin=sim.open_bed,
    )
    ds = pl.from_arrow(read_dataset(tmp_path / "datasets", DATASETS))
    assert set(ds["tf"]) == {"ALPHA"} and set(ds["regime"]) == {"random"}
    for r in ds.head(50).iter_rows(named=True):
        lo, hi = r["start"] - r["window_start"], r["end"] - r["window_start"]
        assert set(r["window"][lo:hi]) == {"N"} and r["window"][lo - 1] != "N"
    truth = read_truth(sim.out_dir).filter(pl.col("tf") == "ALPHA", pl.col("bound"))
    lab = pl.from_arrow(read_dataset(tmp_path / "labelled", LABELLED))
    j = lab.join(truth.select("chrom", "start"), on=["chrom", "start"])
    assert j["bound"].mean() > 0.95  # planted summits lie within ~8 bp of the core


def test_tf_matching_and_skips(sim, run_in_process, tmp_path, capsys):
    out, _, _ = run_in_process
    res = label(
        out / "instances",
        {"alpha": sim.peaks["ALPHA"], "ZETA": sim.peaks["BETA"]},
        tmp_path,
        LabelConfig(regimes=("random",)),
    )
    err = capsys.readouterr().err
    assert "names differ in case" in err and "no instances of TF 'ZETA'" in err
    assert "instances of TF 'BETA' have no --peaks file" in err
    assert res.counts["tf"].to_list() == ["ALPHA"] and set(res.skipped) == {"ZETA", "BETA"}
    with pytest.raises(InputError, match="no TF has both instances and a peak file"):
        label(out / "instances", {"ZETA": sim.peaks["BETA"]}, tmp_path)
    with pytest.raises(InputError, match="'open' regime needs"):
        label(out / "instances", sim.peaks, tmp_path, LabelConfig(regimes=("open",)))


def test_genome_comes_from_scan_json(sim, tmp_path):
    inst = instances_from_truth(sim, 10).filter(pl.col("tf") == "ALPHA")
    write_instances(tmp_path / "instances", inst)  # no _scan.json
    with pytest.raises(InputError, match="pass --genome"):
        label(tmp_path / "instances", {"ALPHA": sim.peaks["ALPHA"]}, tmp_path)
    bad = inst.with_columns(pl.lit("1").alias("chrom")).head(3)
    write_instances(tmp_path / "other", bad, sim.genome)
    with pytest.raises(InputError, match=r"chromosome '1'.*add the 'chr' prefix.*were they scanned"):
        label(tmp_path / "other", {"ALPHA": sim.peaks["ALPHA"]}, tmp_path)


def test_cli_label(sim, run_in_process, tmp_path):
    out, _, _ = run_in_process
    args = ["label", "--instances", str(out), "--out", str(tmp_path), "--no-ray"]  # another run's instances
    res = CliRunner().invoke(
        app,
        [
            *args,
            "--peaks",
            f"ALPHA={sim.peaks['ALPHA']}",
            "--regime",
            "pvalue,random",
            "--val-chroms",
            "chr2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "pvalue  ALPHA  train" in res.output
    bad_peaks = _write(tmp_path / "bad.bed", "chr1\t10\t5\n")
    res = CliRunner().invoke(app, [*args, "--peaks", f"ALPHA={bad_peaks}"])
    assert res.exit_code == 2 and "bad.bed:1" in res.output and "must be greater than start" in res.output
    res = CliRunner().invoke(app, [*args, "--peaks", "ALPHA"])
    assert res.exit_code == 2 and "expected TF=path" in res.output


# ---- end to end with the real scanner ------------------------------------------------------------
def test_simulate_scan_label_end_to_end(tmp_path):
    from scanner.scan import ScanConfig, scan_genome

    sim = simulate(tmp_path / "sim", SimulationConfig(size_mb=1.0, seed=21))
    scan_genome(sim.genome, [str(sim.motifs)], tmp_path, ScanConfig(), use_ray=False)
    label(tmp_path / "instances", sim.peaks, tmp_path, open_chromatin=sim.open_bed, blacklist=sim.blacklist)
    lab = pl.from_arrow(read_dataset(tmp_path / "labelled", LABELLED))
    truth = read_truth(sim.out_dir).filter(pl.col("kind").is_in(["bound", "decoy", "background"]))
    blacklist = read_intervals(sim.blacklist)
    truth = truth.filter(~overlaps_any(truth, blacklist))
    j = truth.join(lab, on=["chrom", "start", "end", "strand", "tf"], how="left", suffix="_lab")
    assert j["bound_lab"].is_not_null().all()  # the scan finds every planted core at p < 1e-4
    assert (j["bound_lab"] == j["bound"]).all() and (j["in_open_lab"] == j["in_open"]).all()
    planted_bound = j.filter(pl.col("bound"))
    assert planted_bound.height > 100 and (planted_bound["pvalue"] < 5e-5).all()  # 1e-5 at uniform bg
    chance = lab.join(truth.select("chrom", "start", "tf"), on=["chrom", "start", "tf"], how="anti")
    assert chance.height > 0 and chance["bound"].mean() < 0.2  # chance matches: mostly unbound


@pytest.mark.slow
def test_yeast_pho4_end_to_end(shared_data, tmp_path):
    from scanner.scan import ScanConfig, scan_genome

    bed = shared_data / "yeast_sacCer3/tf_binding/pho4_He2017_bound_regions.sacCer3.bed"
    lines = bed.read_text().splitlines()
    header = lines[0].lstrip("#").split("\t")
    rows = [ln.split("\t") for ln in lines[1:]]
    col = header.index("bound_ScPho4")
    peaks = _write(tmp_path / "pho4_bound.bed", "".join("\t".join(r[:3]) + "\n" for r in rows if r[col] == "TRUE"))
    scan_genome(
        shared_data / "yeast_sacCer3/genome/sacCer3.fa",
        ["MA0357.1"],
        tmp_path,
        ScanConfig(),
        use_ray=False,
    )
    res = label(tmp_path / "instances", {"Pho4": peaks}, tmp_path)  # JASPAR names it PHO4: case-insensitive
    lab = pl.from_arrow(read_dataset(tmp_path / "labelled", LABELLED))
    assert res.counts["peaks"].item() == 75
    splits = dict(lab.select("chrom", "split").unique().iter_rows())
    assert (splits["chrVIII"], splits["chrIX"]) == ("val", "test")
    sites = lab.filter(pl.col("sequence").str.contains("CACGTG")).unique(["chrom", "start"])
    # pinned from this project's exact scan (p < 1e-4, genome background): 381 CACGTG sites, 67 bound
    assert (sites.height, int(sites["bound"].sum())) == (381, 67)
    assert lab.height == 1542 and int(lab["bound"].sum()) == 156
