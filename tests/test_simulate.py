"""The simulator: determinism, ground truth consistent with the FASTA, rules, peaks, CLI."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from scanner.cli import app
from scanner.errors import InputError
from scanner.genome import encode, open_genome, reverse_complement
from scanner.labels.intervals import contained_in, read_intervals
from scanner.motifs import Background, log_odds, read_motif_file
from scanner.simulate.genome import SimulationConfig, causal_mask, read_truth, simulate
from scanner.simulate.rules import SIMULATED_TFS, score_threshold, simulated_motif

SMALL = SimulationConfig(size_mb=1.0, n_chroms=10, tfs=("ALPHA", "BETA", "GAMMA"), seed=3)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("sim"), SMALL)


@pytest.fixture(scope="module")
def truth(sim):
    return read_truth(sim.out_dir)


def test_outputs_and_chromosomes(sim):
    g = open_genome(sim.genome)
    assert list(g.lengths) == [f"chr{i}" for i in range(1, 11)]
    assert sum(g.lengths.values()) == pytest.approx(1e6, abs=10)
    text = sim.genome.read_text()
    assert "N" in text and any(c in text for c in "acgt")  # gaps and soft-masked runs
    motifs = read_motif_file(sim.motifs)
    assert [m.name for m in motifs] == ["ALPHA", "BETA", "GAMMA"]
    assert {m.name for m in read_motif_file(sim.context_motifs)} == {"ALPHA_P", "GAMMA_P", "PIONEER"}
    assert set(sim.peaks) == {"ALPHA", "BETA", "GAMMA"}
    for p in [*sim.peaks.values(), sim.open_bed, sim.blacklist]:
        assert read_intervals(p, chrom_lengths=g.lengths).height > 0


def test_deterministic_with_seed(tmp_path, sim):
    again = simulate(tmp_path / "a", SMALL)
    assert again.genome.read_bytes() == sim.genome.read_bytes()
    assert read_truth(again.out_dir).equals(read_truth(sim.out_dir))
    for tf in SMALL.tfs:
        assert again.peaks[tf].read_text() == sim.peaks[tf].read_text()
    other = simulate(tmp_path / "b", SimulationConfig(size_mb=1.0, seed=4))
    assert other.genome.read_bytes() != sim.genome.read_bytes()


def test_truth_matches_fasta_at_stated_strand(sim, truth):
    g = open_genome(sim.genome)
    assert truth["site_id"].to_list() == list(range(truth.height))
    for r in truth.iter_rows(named=True):
        plus = g.fetch(r["chrom"], r["start"], r["end"]).upper()
        assert len(plus) == r["end"] - r["start"]
        on_motif_strand = plus if r["strand"] == "+" else reverse_complement(plus)
        assert on_motif_strand == r["sequence"], r


def test_sites_score_high_on_their_strand_and_avoid_gaps(truth):
    for tf, part in truth.group_by("tf"):
        m = simulated_motif(tf[0])
        lo = log_odds(m, Background.uniform())
        thresh = score_threshold(lo, 1e-5 if tf[0] in SMALL.tfs else 1e-4)
        codes = np.stack([encode(s) for s in part["sequence"]])
        assert codes.max() < 4  # no N inside a planted site
        scores = lo[np.arange(m.length)[None, :], codes].sum(axis=1)
        assert (scores >= thresh - 1e-9).all()


def test_no_two_sites_overlap(truth):
    t = truth.sort("chrom", "start")
    same = t["chrom"].to_numpy()[1:] == t["chrom"].to_numpy()[:-1]
    assert (t["start"].to_numpy()[1:][same] >= t["end"].to_numpy()[:-1][same]).all()


def test_rules_and_causal_positions(truth):
    cores = truth.filter(pl.col("kind").is_in(["bound", "decoy", "background"]))
    members: dict[int, list[dict]] = {}
    for row in truth.iter_rows(named=True):
        members.setdefault(row["core_id"], []).append(row)
    near = SMALL.partner_distance
    for r in cores.iter_rows(named=True):
        spec = SIMULATED_TFS[r["tf"]]
        ctx = [c for c in members.get(r["site_id"], []) if c["site_id"] != r["site_id"]]
        centre = (r["start"] + r["end"]) // 2
        partners = [c for c in ctx if c["kind"] == "partner"]
        pioneers = [c for c in ctx if c["kind"] == "pioneer"]
        is_near = any(near[0] - 1 <= abs((p["start"] + p["end"]) // 2 - centre) <= near[1] + 1 for p in partners)
        is_open = r["in_open"]
        assert is_open == (len(pioneers) >= 2)
        assert r["rule_bound"] == ((is_open or not spec.needs_open) and (is_near or not spec.needs_partner))
        assert r["kind"] == ("bound" if r["rule_bound"] else "decoy" if ctx else "background")
        causal = sorted((iv["start"], iv["end"]) for iv in r["causal"])
        expected = []
        if r["rule_bound"]:
            if spec.needs_partner:
                expected += [(p["start"], p["end"]) for p in partners]
            if spec.needs_open:
                expected += [(p["start"], p["end"]) for p in pioneers]
        assert causal == sorted(expected)
        assert sorted((iv["start"], iv["end"]) for iv in r["context"]) == sorted((c["start"], c["end"]) for c in ctx)
    assert cores.height == 3 * 250
    noise = cores.filter(pl.col("bound") != pl.col("rule_bound")).height / cores.height
    assert noise < 0.06


def test_causal_mask(truth):
    row = truth.filter(pl.col("kind") == "bound", pl.col("tf") == "ALPHA").row(0, named=True)
    centre = (row["start"] + row["end"]) // 2
    ws = centre - 500
    mask = causal_mask(row, ws, 1000)
    assert mask.shape == (1000,) and mask.dtype == bool
    assert mask.sum() == sum(iv["end"] - iv["start"] for iv in row["causal"])  # all inside the window
    for iv in row["causal"]:
        assert mask[iv["start"] - ws : iv["end"] - ws].all()
    assert not mask[row["start"] - ws : row["end"] - ws].any()  # the core itself is not causal
    # tuples work too, and parts outside the window are clipped
    assert causal_mask({"causal": [(ws - 5, ws + 3)]}, ws, 10).tolist() == [True] * 3 + [False] * 7
    assert not causal_mask({"causal": []}, 0, 5).any()


def test_peaks_mark_exactly_the_bound_cores(sim, truth):
    g = open_genome(sim.genome)
    cores = truth.filter(pl.col("kind").is_in(["bound", "decoy", "background"]))
    for tf in SMALL.tfs:
        peaks = read_intervals(sim.peaks[tf], chrom_lengths=g.lengths)
        assert peaks["summit"].is_not_null().all()
        assert ((peaks["summit"] >= peaks["start"]) & (peaks["summit"] < peaks["end"])).all()
        c = cores.filter(pl.col("tf") == tf)
        inside = contained_in(c, peaks)
        assert inside.to_list() == c["bound"].to_list()
    opened = read_intervals(sim.open_bed, chrom_lengths=g.lengths)
    assert contained_in(truth, opened).to_list() == truth["in_open"].to_list()


def test_score_threshold_is_exact():
    rng = np.random.default_rng(0)
    lo = rng.normal(size=(6, 4))
    scores = np.array([sum(lo[i, b] for i, b in enumerate(w)) for w in itertools.product(range(4), repeat=6)])
    for p in (1e-1, 1e-2, 3e-3):
        t = score_threshold(lo, p)
        assert (scores >= t - 1e-9).mean() <= p
        below = scores[scores < t - 1e-9].max()
        assert (scores >= below - 1e-9).mean() > p  # t is the smallest achievable such score


def test_bad_config(tmp_path):
    with pytest.raises(InputError, match="unknown simulated TF"):
        SimulationConfig(tfs=("ALPHA", "DELTA"))
    with pytest.raises(InputError, match="do not fit"):
        simulate(tmp_path, SimulationConfig(size_mb=0.1, n_chroms=2, sites_per_mb=900))
    with pytest.raises(InputError, match="shorter"):
        SimulationConfig(size_mb=0.01, n_chroms=10)


def test_cli(tmp_path):
    res = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path), "--size-mb", "0.5", "--seed", "2"])
    assert res.exit_code == 0, res.output
    sim = tmp_path / "sim"  # --out is the run directory
    assert (sim / "genome.fa.fai").is_file() and (sim / "truth.parquet").is_file()
    assert "peaks:" in res.output
    bad = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path), "--tf", "NOPE"])
    assert bad.exit_code == 2 and "unknown simulated TF" in bad.output and "--tf:" in bad.output
    old = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path), "--tfs", "NOPE"])  # hidden old spelling
    assert old.exit_code == 2 and "--tfs is now --tf" in old.output
