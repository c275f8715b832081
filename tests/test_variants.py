"""Variant scoring: allele/window geometry against slow references, the stage on a simulated genome
with hand-set motif models, created hits, Ray == in-process, --sequences, the regime comparison, CLI."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scanner.errors import InputError
from scanner.genome import decode, encode, one_hot, open_genome
from scanner.io import parquet_files
from scanner.scan import (
    ScanConfig,
    build_lookup_plan,
    load_scan_meta,
    prepare_motifs,
    scan_chunk,
    scan_genome,
)
from scanner.simulate.genome import SimulationConfig, simulate
from scanner.toydata import write_toy_genome
from scanner.variants import (
    VariantConfig,
    compare_regimes,
    read_sequences,
    score_sequences,
    score_vcf,
    spearman,
)
from scanner.variants.alleles import (
    alt_window,
    gap,
    left_align,
    nearest_gap,
    pair_windows,
    right_anchored,
    trim_alleles,
)
from scanner.variants.motif import MotifSet, created_hits, word_pvalues
from scanner.variants.sequences import fit_to_window

W = 200
COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}
HEAD = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- helpers -------------------------------------------------------------------------------------


def motif_model(pm, a: float, b: float = -2.0, t: float = 10.0):
    """A network whose logit is ``a * sum over positions and strands of relu(site score - t) + b``.

    Built from a ``ModelSpec`` so that ``load_checkpoint`` rebuilds it: conv1 holds the motif's
    log-odds (bits) for each strand, every batch norm is the identity, the rest sums.
    """
    import torch

    from scanner.models import ModelSpec, build_model

    spec = ModelSpec(
        arch="small",
        seq_len=W,
        conv_channels=(2, 1, 1),
        conv_widths=(pm.length, 1, 1),
        pool_sizes=(1, 1, 1),
        dropouts=(0.0, 0.0, 0.0),
        dense_units=1,
    )
    m = build_model(spec)
    with torch.no_grad():
        conv1, conv2, conv3 = (x for x in m if isinstance(x, torch.nn.Conv1d))
        conv1.weight[0] = torch.tensor(pm.w.T)
        conv1.weight[1] = torch.tensor(np.ascontiguousarray(pm.w[::-1][:, [3, 2, 1, 0]].T))
        conv1.bias[:] = -t
        for c in (conv2, conv3):
            c.weight.fill_(1.0)
            c.bias.zero_()
        for bn in (x for x in m if isinstance(x, torch.nn.BatchNorm1d)):
            bn.running_mean.zero_()
            bn.running_var.fill_(1 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.zero_()
        lin1, lin2 = (x for x in m if isinstance(x, torch.nn.Linear))
        lin1.weight.fill_(1.0)
        lin1.bias.zero_()
        lin2.weight.fill_(a)
        lin2.bias.fill_(b)
    return m.eval(), spec


def random_model(seed: int):
    import torch

    from scanner.models import ModelSpec, build_model

    torch.manual_seed(seed)
    spec = ModelSpec(seq_len=W)
    m = build_model(spec)
    with torch.no_grad():
        for bn in (x for x in m if isinstance(x, torch.nn.BatchNorm1d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    return m.eval(), spec


def alt_reference(chrom_seq: str, ws: int, width: int, vs: int, ve: int, ins: str, centre: int) -> str:
    """The ALT window read straight off the ALT haplotype (N beyond its ends)."""
    hap = chrom_seq[:vs] + ins + chrom_seq[ve:]
    d = len(ins) - (ve - vs)
    first = ws + d if right_anchored(ve, centre) else ws
    return "".join(hap[i] if 0 <= i < len(hap) else "N" for i in range(first, first + width))


def leftmost_indel(chrom_seq: str, pos: int, ref: str, alt: str) -> tuple[int, int, str]:
    """Slow reference for normalisation: trim, then for a pure indel try every start to its left and
    keep the first that gives the same ALT haplotype (other kinds: as trimmed)."""
    s0, e0, ins, kind = trim_alleles(pos, ref, alt)
    if kind not in ("insertion", "deletion"):
        return s0, e0, ins
    seq, n = chrom_seq.upper(), e0 - s0
    lo, hi = max(0, s0 - 300), e0 + 300
    hap = seq[lo:s0] + ins + seq[e0:hi]
    for s in range(lo, s0 + 1):
        x = hap[s - lo : s - lo + len(ins)]
        if seq[lo:s] + x + seq[s + n : hi] == hap:
            return s, s + n, x
    raise AssertionError("unreachable: the trimmed position itself qualifies")


def ref_window(chrom_seq: str, ws: int, width: int) -> str:
    return "".join(chrom_seq[i] if 0 <= i < len(chrom_seq) else "N" for i in range(ws, ws + width))


def write_vcf(path, records):
    path.write_text(HEAD + "".join(f"{c}\t{p}\t{i}\t{r}\t{a}\t.\tPASS\t.\n" for c, p, i, r, a in records))
    return path


def read_scores(out) -> pl.DataFrame:
    return pl.read_parquet(parquet_files(out / "scores"), hive_partitioning=False)


# ---- the simulated run -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from scanner.models import save_checkpoint

    root = tmp_path_factory.mktemp("variants")
    res = simulate(root / "sim", SimulationConfig(size_mb=0.2, n_chroms=2, tfs=("ALPHA",), seed=1))
    scan_genome(res.genome, [str(res.motifs)], root, ScanConfig(), use_ray=False)
    pm = load_scan_meta(root / "instances").prepared()[0]
    for regime, a in (("pvalue", 1.0), ("open", -0.5)):
        model, spec = motif_model(pm, a)
        save_checkpoint(model, spec, root / "models" / "tf=ALPHA" / f"regime={regime}", {"tf": "ALPHA"})
    model, spec = random_model(3)
    save_checkpoint(model, spec, root / "rmodels" / "tf=ALPHA" / "regime=random", {"tf": "ALPHA"})
    g = open_genome(res.genome)
    seqs = {c: g.fetch(c, 0, n).upper() for c, n in g.lengths.items()}
    g.close()
    inst = pl.read_parquet(parquet_files(root / "instances")).sort("chrom", "start")
    truth = pl.read_parquet(res.truth)
    return SimpleNamespace(root=root, genome=res.genome, pm=pm, seqs=seqs, inst=inst, truth=truth)


def _core_variants(sim):
    """An SNV that weakens a planted bound core most, a 5-bp deletion inside another, a far SNV."""
    cores = sim.truth.filter((pl.col("kind") == "bound") & (pl.col("tf") == "ALPHA")).sort("start")
    c1, c2 = cores.row(0, named=True), cores.row(1, named=True)
    w = sim.pm.w
    j = int(np.argmax(w.max(axis=1) - w.min(axis=1)))
    worst = "ACGT"[int(np.argmin(w[j]))]
    if c1["strand"] == "+":
        gpos, alt = c1["start"] + j, worst
    else:
        gpos, alt = c1["end"] - 1 - j, COMP[worst]
    seq = sim.seqs[c1["chrom"]]
    snv = (c1["chrom"], gpos + 1, "snv1", seq[gpos], alt)
    mid = (c2["start"] + c2["end"]) // 2 - 3
    s2 = sim.seqs[c2["chrom"]]
    dele = (c2["chrom"], mid + 1, "del1", s2[mid : mid + 6], s2[mid])  # deletes [mid+1, mid+6)
    # a position farther than W from every instance
    starts = sim.inst.filter(pl.col("chrom") == "chr1").get_column("start").to_numpy()
    far = next(p for p in range(500, len(sim.seqs["chr1"]) - 500, 50) if np.abs(starts - p).min() > 2 * W)
    fsnv = ("chr1", far + 1, "far1", sim.seqs["chr1"][far], "A" if sim.seqs["chr1"][far] != "A" else "G")
    return snv, dele, fsnv, c1, c2, far


def test_destroying_a_planted_core_gives_a_large_negative_delta(sim, tmp_path):
    snv, dele, fsnv, c1, c2, far = _core_variants(sim)
    vcf = write_vcf(tmp_path / "v.vcf", [snv, dele, fsnv])
    s = score_vcf(vcf, sim.root / "models", tmp_path / "out", use_ray=False)
    df = read_scores(tmp_path / "out")
    assert s.alleles == 3 and s.rows == df.height
    core = df.filter((pl.col("vcf_id") == "snv1") & (pl.col("inst_start") == c1["start"]))
    by = {r["regime"]: r for r in core.iter_rows(named=True)}
    assert by["pvalue"]["delta_logit"] < -3.0  # the motif model loses most of the site's score
    assert by["open"]["delta_logit"] == pytest.approx(-0.5 * by["pvalue"]["delta_logit"], rel=1e-5)
    assert by["pvalue"]["var_in_site"] and by["pvalue"]["hit_ref"] and by["pvalue"]["distance"] == 0
    assert by["pvalue"]["site_pvalue_alt"] > by["pvalue"]["site_pvalue_ref"]
    scan_p = sim.inst.filter(pl.col("start") == c1["start"], pl.col("chrom") == c1["chrom"]).get_column("pvalue")
    assert by["pvalue"]["site_pvalue_ref"] == pytest.approx(scan_p[0], rel=1e-9)
    d = df.filter((pl.col("vcf_id") == "del1") & (pl.col("inst_start") == c2["start"]))
    assert d.height == 2 and d.get_column("kind").unique().to_list() == ["deletion"]
    r = d.row(0, named=True)
    assert r["var_in_site"] and r["site_bases_deleted"] == 5 and r["hit_ref"] and not r["hit_alt"]
    assert (d.get_column("delta_logit") < -3).sum() == 1  # the pvalue model; the open one is positive
    # the far variant: one row, no window, the distance to the nearest instance
    f = df.filter(pl.col("vcf_id") == "far1")
    assert f.height == 1 and not f.row(0, named=True)["in_window"] and f.row(0, named=True)["regime"] is None
    inst1 = sim.inst.filter(pl.col("chrom") == "chr1")
    want = int(gap(far, far + 1, inst1.get_column("start").to_numpy(), inst1.get_column("end").to_numpy()).min())
    assert f.row(0, named=True)["distance"] == want
    # comparison: the two regimes disagree in sign on every destroyed site, Spearman -1 over the file
    cmp = pl.read_parquet(tmp_path / "out" / "comparison.parquet")
    assert f"{snv[0]}:{snv[1]}:{snv[3]}:{snv[4]}" in cmp.get_column("variant_id").to_list()
    assert cmp.height == 2  # the far variant is in no window: not compared
    assert cmp.get_column("sign_flip").all()
    corr = pl.read_parquet(tmp_path / "out" / "correlations.parquet")
    assert corr.height == 1 and corr.row(0, named=True)["n"] == 2
    assert any("sign flips 2" in line for line in s.comparison)


def test_rows_match_a_slow_reference(sim, tmp_path):
    """Random SNVs and indels near instances: every logit equals the model on windows cut from the
    ALT haplotype directly; site p-values of scanned instances equal the scan's."""
    import torch

    from scanner.models import load_checkpoint

    rng = np.random.default_rng(5)
    records = []
    inst = sim.inst.sample(12, seed=2)
    for k, r in enumerate(inst.iter_rows(named=True)):
        seq = sim.seqs[r["chrom"]]
        p = int(np.clip(r["start"] + rng.integers(-60, 60), 2, len(seq) - 20))
        kind = k % 4
        if kind == 0:
            ref, alt = seq[p], "ACGT"[(encode(seq[p])[0] + 1) % 4]
        elif kind == 1:
            ref, alt = seq[p : p + 4], seq[p]  # deletion of 3
        elif kind == 2:
            ref, alt = seq[p], seq[p] + "GATTA"  # insertion of 5
        else:
            ref, alt = seq[p : p + 3], "TT"  # complex
        if ref != alt:
            records.append((r["chrom"], p + 1, f"v{k}", ref, alt))
    records.append(("chr2", 3, "edge", sim.seqs["chr2"][2:5], sim.seqs["chr2"][2]))  # window runs off the start
    vcf = write_vcf(tmp_path / "r.vcf", records)
    for rc in (False, True):
        out = tmp_path / f"out{rc}"
        score_vcf(
            vcf,
            sim.root / "rmodels",
            out,
            VariantConfig(rc_average=rc, chunk_variants=4),
            instances=sim.root / "instances",
            use_ray=False,
        )
        df = read_scores(out).filter(pl.col("in_window"))
        assert df.height > 10
        model, _ = load_checkpoint(sim.root / "rmodels" / "tf=ALPHA" / "regime=random")
        refs, alts, shifted = [], [], 0
        for r in df.iter_rows(named=True):
            seq = sim.seqs[r["chrom"]]
            s0, e0, ins = leftmost_indel(seq, r["pos"], r["ref"], r["alt"])
            assert (s0, e0) == (r["var_start"], r["var_end"])
            shifted += s0 != trim_alleles(r["pos"], r["ref"], r["alt"])[0]
            centre = (r["inst_start"] + r["inst_end"]) // 2
            assert r["window_start"] == centre - W // 2
            refs.append(ref_window(seq, r["window_start"], W))
            alts.append(alt_reference(seq, r["window_start"], W, s0, e0, ins, centre))
        assert shifted > 0  # some indels sat in a repeat and were moved left
        with torch.no_grad():
            for col, texts in (("logit_ref", refs), ("logit_alt", alts)):
                x = torch.from_numpy(one_hot(np.stack([encode(t) for t in texts])))
                z = model(x).reshape(-1)
                if rc:
                    z = 0.5 * (z + model(x.flip(dims=(1, 2))).reshape(-1))
                np.testing.assert_allclose(df.get_column(col).to_numpy(), z.numpy(), atol=2e-4)
        scanned = df.filter(pl.col("inst_source") == "scan").join(
            sim.inst.select(
                "chrom",
                pl.col("start").alias("inst_start"),
                pl.col("strand").alias("inst_strand"),
                pl.col("pvalue"),
            ),
            on=["chrom", "inst_start", "inst_strand"],
        )
        np.testing.assert_allclose(scanned.get_column("site_pvalue_ref"), scanned.get_column("pvalue"), rtol=1e-9)
        assert (scanned.get_column("hit_ref")).all()


def _near_hit(sim):
    """A window of the genome (far from instances) that one SNV turns into a hit: (chrom, start, strand,
    genome position, genome alt base)."""
    pm = sim.pm
    loose = prepare_motifs(
        load_scan_meta(sim.root / "instances").motifs, load_scan_meta(sim.root / "instances").background, 2e-3
    )
    plan = build_lookup_plan(loose)
    seq = sim.seqs["chr1"]
    hits = scan_chunk(encode(seq), None, loose, plan, chrom="chr1").to_pylist()
    starts = sim.inst.filter(pl.col("chrom") == "chr1").get_column("start").to_numpy()
    for h in hits:
        if h["pvalue"] < 1e-4 or np.abs(starts - h["start"]).min() < 3 * W:
            continue
        word = encode(h["sequence"])
        for j in range(pm.length):
            for b in range(4):
                if b == word[j]:
                    continue
                w2 = word.copy()
                w2[j] = b
                _, hit = word_pvalues(pm, w2[None, :], h["strand"])
                if hit[0]:
                    if h["strand"] == "+":
                        return "chr1", h["start"], h["strand"], h["start"] + j, "ACGT"[b]
                    return "chr1", h["start"], h["strand"], h["end"] - 1 - j, "TGCA"[b]
    pytest.skip("no near-hit found in the simulated genome")


def test_a_created_site_is_scored(sim, tmp_path):
    chrom, start, strand, gpos, alt = _near_hit(sim)
    vcf = write_vcf(tmp_path / "c.vcf", [(chrom, gpos + 1, "new1", sim.seqs[chrom][gpos], alt)])
    score_vcf(vcf, sim.root / "models", tmp_path / "out", use_ray=False)
    df = read_scores(tmp_path / "out")
    made = df.filter(pl.col("inst_source") == "created", pl.col("inst_start") == start, pl.col("inst_strand") == strand)
    assert made.height == 2  # two regimes
    r = made.filter(pl.col("regime") == "pvalue").row(0, named=True)
    assert r["in_window"] and r["var_in_site"] and not r["hit_ref"] and r["hit_alt"]
    assert r["site_pvalue_alt"] < 1e-4 <= r["site_pvalue_ref"]
    assert r["delta_logit"] > 0  # the motif model gains the site
    # without created hits the variant is in no instance window
    score_vcf(vcf, sim.root / "models", tmp_path / "out2", VariantConfig(created_hits=False), use_ray=False)
    assert read_scores(tmp_path / "out2").get_column("in_window").to_list() == [False]


@pytest.mark.ray
def test_ray_equals_in_process(ray_cluster, sim, tmp_path):
    snv, dele, fsnv, *_ = _core_variants(sim)
    extra = [
        (c, p + 40, f"x{p}", sim.seqs[c][p + 39], "A" if sim.seqs[c][p + 39] != "A" else "T")
        for c, p, *_ in (snv, dele)
    ]
    vcf = write_vcf(tmp_path / "v.vcf", [snv, dele, fsnv, *extra])
    cfg = VariantConfig(chunk_variants=2, batch_size=3)
    local = score_vcf(vcf, sim.root / "models", tmp_path / "local", cfg, use_ray=False)
    remote = score_vcf(vcf, sim.root / "models", tmp_path / "ray", cfg, use_ray=True)
    assert remote.rows == local.rows and remote.files == local.files > 1
    rel = lambda root: sorted(str(p.relative_to(root)) for p in parquet_files(root))  # noqa: E731
    assert rel(tmp_path / "ray") == rel(tmp_path / "local")
    for a, b in zip(parquet_files(tmp_path / "local"), parquet_files(tmp_path / "ray"), strict=True):
        assert pq.read_table(a).equals(pq.read_table(b)), a.name


# ---- geometry against brute force ------------------------------------------------------------------


def test_trim_alleles():
    assert trim_alleles(10, "A", "G") == (10, 11, "G", "snv")
    assert trim_alleles(10, "AC", "GT") == (10, 12, "GT", "mnv")
    assert trim_alleles(10, "ACGT", "A") == (11, 14, "", "deletion")
    assert trim_alleles(10, "A", "ATTG") == (11, 11, "TTG", "insertion")
    assert trim_alleles(10, "ACG", "TTG") == (10, 12, "TT", "mnv")
    assert trim_alleles(10, "AC", "GTT") == (10, 12, "GTT", "complex")
    assert trim_alleles(10, "ATT", "AT") == (11, 12, "", "deletion")  # suffix first: left-most of the two T
    assert trim_alleles(10, "A", "A")[3] == "none"


def test_left_align_matches_the_slow_reference():
    seq = "GCAAAGTCACACAGNNAAT"
    fetch = lambda a, b: seq[max(0, a) : b]  # noqa: E731
    # deleting any A of AAA is deleting the first; the inserted bases rotate as the allele moves
    assert left_align(4, 5, "", fetch) == (2, 3, "")
    assert left_align(11, 13, "", fetch) == (7, 9, "")  # CA deleted from CACACA: leftmost CA... at 7
    assert left_align(13, 13, "CA", fetch) == (7, 7, "CA")  # CACACA + CA
    assert left_align(13, 13, "AC", fetch) == (13, 13, "AC")  # the base before (A) is not its last (C)
    assert left_align(1, 1, "GAC", fetch) == (1, 1, "GAC")  # nothing to the left matches
    assert left_align(18, 18, "A", fetch) == (16, 16, "A")  # stops at the N run
    assert left_align(0, 1, "", fetch) == (0, 1, "")  # chromosome start
    assert left_align(3, 4, "T", fetch) == (3, 4, "T")  # an SNV is not moved
    rng = np.random.default_rng(4)
    for _ in range(300):  # random indels in a repeat-rich sequence against brute force
        chrom = "".join(rng.choice(list("AC"), 200)) + "".join(rng.choice(list("ACGT"), 100))
        p = int(rng.integers(1, 280))
        n = int(rng.integers(1, 6))
        if rng.random() < 0.5:
            ref, alt = chrom[p - 1 : p + n], chrom[p - 1]
        else:
            ref, alt = chrom[p - 1], chrom[p - 1] + "".join(rng.choice(list("AC"), n))
        s0, e0, ins, _ = trim_alleles(p - 1, ref, alt)
        got = left_align(s0, e0, ins, lambda a, b, c=chrom: c[max(0, a) : b], block=7)
        assert got == leftmost_indel(chrom, p - 1, ref, alt)


def test_pairs_and_nearest_gap_match_brute_force():
    rng = np.random.default_rng(0)
    starts = np.sort(rng.integers(0, 5000, 80))
    ends = starts + rng.integers(6, 20, 80)
    vs = rng.integers(0, 5200, 300)
    ve = vs + rng.integers(0, 6, 300)  # includes insertions (ve == vs)
    for width in (50, 201):
        ws = np.sort((starts + ends) // 2 - width // 2)
        vi, wi = pair_windows(vs, ve, ws, width)
        got = set(zip(vi.tolist(), wi.tolist(), strict=True))
        want = set()
        for i in range(len(vs)):
            for j in range(len(ws)):
                inside = (
                    (ws[j] < vs[i] < ws[j] + width) if vs[i] == ve[i] else (ws[j] < ve[i] and vs[i] < ws[j] + width)
                )
                if inside:
                    want.add((i, j))
        assert got == want
    near = nearest_gap(vs, ve, starts, ends)
    brute = np.array([gap(vs[i], ve[i], starts, ends).min() for i in range(len(vs))])
    np.testing.assert_array_equal(near, brute)
    assert (nearest_gap(vs[:3], ve[:3], starts[:0], ends[:0]) == -1).all()


def test_alt_window_matches_the_haplotype(tmp_path):
    g = open_genome(write_toy_genome(tmp_path / "g.fa", {"c": 700}, seed=3))
    seq = g.fetch("c", 0, 700).upper()
    rng = np.random.default_rng(1)
    width, margin = 101, 12
    for _ in range(400):
        s = int(rng.integers(0, 690))
        e = s + int(rng.integers(4, 12))
        centre = (s + e) // 2
        ws = centre - width // 2
        vs = int(rng.integers(max(ws + 1, 0), min(ws + width - 1, 699)))  # variants lie on the chromosome
        ve = min(vs + int(rng.integers(0, 8)), ws + width + 4, 700)
        ins = decode(rng.integers(0, 4, int(rng.integers(0 if ve > vs else 1, 9))).astype(np.uint8))
        ext = g.codes("c", ws - margin, ws + width + margin)
        got = decode(alt_window(ext, margin, width, ws, vs, ve, encode(ins), centre))
        assert got == alt_reference(seq, ws, width, vs, ve, ins, centre), (s, e, vs, ve, ins)
        if ve <= centre or vs >= centre + 1:  # the site's bases away from the variant stay in place
            keep = range(max(s, ve), e) if vs < centre else range(s, min(e, vs))
            for p in keep:
                assert got[p - ws] == seq[p]


def test_created_hits_on_planted_words():
    from scanner.motifs import Background
    from scanner.simulate.rules import simulated_motif

    pm = prepare_motifs([simulated_motif("ALPHA")], Background.uniform())[0]
    motifs = MotifSet.build([pm])
    k = pm.length - 1
    rng = np.random.default_rng(4)
    best = np.argmax(pm.w, axis=1).astype(np.uint8)
    worst = np.argmin(pm.w, axis=1).astype(np.uint8)
    # variant 0: the consensus with its most informative bases broken until it is no hit; the SNV
    # restores the last one broken, which makes it a hit again (created, + strand, site at 1000 - j)
    word = best.copy()
    for j in np.argsort(-(pm.w.max(axis=1) - pm.w.min(axis=1))):
        word[j] = worst[j]
        if not word_pvalues(pm, word[None, :], "+")[1][0]:
            break
    ctx = rng.integers(0, 4, 2 * k + 1).astype(np.uint8)
    ctx[k - j : k - j + pm.length] = word
    # variant 1: an intact consensus; an SNV at its third base keeps the hit (nothing created)
    ctx2 = rng.integers(0, 4, 2 * k + 1).astype(np.uint8)
    ctx2[k - 2 : k - 2 + pm.length] = best
    ch = created_hits(
        [ctx, ctx2],
        np.array([1000, 5000]),
        np.array([1001, 5001]),
        [np.array([best[j]], np.uint8), np.array([(best[2] + 1) % 4], np.uint8)],
        motifs,
    )
    assert word_pvalues(pm, np.where(np.arange(pm.length) == j, best, word)[None, :], "+")[1][0]
    sel = (ch.variant == 0) & (ch.strand == "+") & (ch.start == 1000 - j)
    assert sel.sum() == 1 and ch.end[sel][0] == 1000 - j + pm.length
    assert (ch.pvalue_alt < 1e-4).all()
    assert not ((ch.variant == 1) & (ch.start == 4998)).any()
    # a deletion that joins two halves of the consensus creates it
    half = pm.length // 2
    ctx3 = np.concatenate([best[:half], rng.integers(0, 4, 3).astype(np.uint8), best[half:]])
    ctx3 = np.concatenate([rng.integers(0, 4, k - half).astype(np.uint8), ctx3, rng.integers(0, 4, k).astype(np.uint8)])
    ch3 = created_hits([ctx3], np.array([700]), np.array([703]), [np.zeros(0, np.uint8)], motifs)
    assert ((ch3.start == 700 - half) & (ch3.strand == "+")).sum() == 1


# ---- --sequences -----------------------------------------------------------------------------------


def test_sequences_match_the_vcf_path(sim, tmp_path):
    snv, dele, *_ = _core_variants(sim)
    vcf = write_vcf(tmp_path / "v.vcf", [snv, dele])
    score_vcf(vcf, sim.root / "models", tmp_path / "vcfout", use_ray=False)
    df = read_scores(tmp_path / "vcfout").filter(pl.col("in_window"), pl.col("regime") == "pvalue")
    lines = ["id\tref\talt\tnote"]
    for k, r in enumerate(df.iter_rows(named=True)):
        seq = sim.seqs[r["chrom"]]
        s0, e0, ins, _ = trim_alleles(r["pos"], r["ref"], r["alt"])
        centre = (r["inst_start"] + r["inst_end"]) // 2
        lines.append(
            f"p{k}\t{ref_window(seq, r['window_start'], W)}\t"
            f"{alt_reference(seq, r['window_start'], W, s0, e0, ins, centre).lower()}\tx"
        )
    (tmp_path / "s.tsv").write_text("\n".join(lines) + "\n")
    s = score_sequences(tmp_path / "s.tsv", sim.root / "models", tmp_path / "seqout", use_ray=False)
    assert s.mode == "sequences" and s.rows == 2 * df.height
    got = read_scores(tmp_path / "seqout").filter(pl.col("regime") == "pvalue").sort("line")
    np.testing.assert_allclose(got.get_column("logit_ref"), df.get_column("logit_ref"), atol=1e-5)
    np.testing.assert_allclose(got.get_column("logit_alt"), df.get_column("logit_alt"), atol=1e-5)
    # the best site touching the change is the (destroyed) instance: same REF p-value, a hit
    assert got.get_column("hit_ref").all()
    assert (
        got.get_column("site_pvalue_ref").to_numpy() <= df.get_column("site_pvalue_ref").to_numpy() * (1 + 1e-9)
    ).all()
    cmp = pl.read_parquet(tmp_path / "seqout" / "comparison.parquet")
    assert cmp.columns[0] == "id" and cmp.get_column("sign_flip").all()


def test_fit_to_window_and_tsv_errors(tmp_path):
    assert decode(fit_to_window(encode("ACGTA"), 8)) == "NACGTANN"
    assert decode(fit_to_window(encode("ACGTACG"), 4)) == "CGTA"
    assert decode(fit_to_window(encode("ACGT"), 4)) == "ACGT"
    cases = {
        "id\tref\n": "missing alt",
        "id\tref\talt\nx\tAC\n": "expected 3 tab-separated",
        "id\tref\talt\nx\tAC\tAG\nx\tAC\tAT\n": "repeats line 2",
        "id\tref\talt\n\tAC\tAG\n": "empty id",
        "id\tref\talt\nx\tACRT\tAG\n": "letter 'R' at position 3",
        "id\tref\talt\nx\t\tAG\n": "empty sequence",
        "id\tref\talt\n": "no sequence pairs",
        "# only a comment\n": "no header",
    }
    for text, match in cases.items():
        p = tmp_path / "bad.tsv"
        p.write_text(text)
        with pytest.raises(InputError, match=match):
            read_sequences(p)
    p = tmp_path / "ok.tsv"
    p.write_text("# comment\nalt\tid\tref\nGG\ta\tgc\n")
    t = read_sequences(p)
    assert t.to_pylist() == [{"id": "a", "line": 3, "ref": "GC", "alt": "GG"}]


# ---- the regime comparison -------------------------------------------------------------------------


def test_compare_regimes_flags_and_correlations():
    rows = []
    deltas = {
        "a": [3.0, -2.0, 0.05, 1.0, -0.5],
        "b": [-1.0, -2.5, -0.05, 0.9, -0.4],
        "c": [None, 1.0, 0.0, 0.5, 0.2],
    }
    for r, ds in deltas.items():
        for i, d in enumerate(ds):
            if d is None:
                continue
            rows.append({"id": f"v{i}", "tf": "T", "regime": r, "delta_logit": d, "abs_delta": abs(d)})
            # a weaker second instance of the same variant is ignored
            rows.append({"id": f"v{i}", "tf": "T", "regime": r, "delta_logit": d / 10, "abs_delta": abs(d) / 10})
    df = pl.DataFrame(rows)
    cmp, corr = compare_regimes(df, ("id",), top_fraction=0.2, min_delta=0.1)
    c = pl.from_arrow(cmp).sort("id")
    assert c.get_column("delta_a").to_list() == [3.0, -2.0, pytest.approx(0.05), 1.0, -0.5]
    assert c.get_column("n_regimes").to_list() == [2, 3, 3, 3, 3]
    # v0: +3 vs -1 and v1: -2 / -2.5 / +1 and v4: -0.5 / +0.2 are flips; v2: +-0.05 is below min_delta
    assert c.get_column("sign_flip").to_list() == [True, True, False, False, True]
    # top 20% of 5 = the single largest |delta| per regime: a -> v0, b -> v1, c -> v1
    assert c.get_column("top_a").to_list() == [True, False, False, False, False]
    assert c.get_column("rank_flip").to_list() == [True, True, False, False, False]
    k = pl.from_arrow(corr)
    ab = k.filter(pl.col("regime_a") == "a", pl.col("regime_b") == "b").row(0, named=True)
    assert ab["n"] == 5 and ab["spearman"] == pytest.approx(spearman(deltas["a"], deltas["b"]))
    assert ab["sign_flips"] == 1 and ab["rank_flips"] == 2
    assert k.filter(pl.col("regime_b") == "c").get_column("n").to_list() == [4, 4]


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.normal(size=50).round(1)  # ties
    y = x + rng.normal(size=50)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-12)
    assert spearman([1, 2], [2, 1]) is None and spearman([1, 1, 1], [1, 2, 3]) is None


# ---- command line and outputs ----------------------------------------------------------------------


def test_cli_and_a_failed_run_keeps_earlier_output(sim, tmp_path):
    from typer.testing import CliRunner

    from scanner.cli import app

    snv, _, fsnv, *_ = _core_variants(sim)
    vcf = write_vcf(tmp_path / "v.vcf", [snv, fsnv])
    run = tmp_path / "out"  # the run directory; the dataset is RUN/variants
    out = run / "variants"
    args = ["variants", "--models", str(sim.root), "--out", str(run), "--no-ray"]
    r = CliRunner().invoke(app, [*args, "--vcf", str(vcf)])
    assert r.exit_code == 0, r.output
    assert "rows" in r.stdout and "Spearman" in r.stdout and "comparison.parquet" in r.stdout
    before = {p: p.read_bytes() for p in parquet_files(out)}
    assert (out / "_variants.json").is_file() and len(before) >= 3
    bad = write_vcf(tmp_path / "bad.vcf", [("chr1", 10, ".", "A" if sim.seqs["chr1"][9] != "A" else "C", "G")])
    r = CliRunner().invoke(app, [*args, "--vcf", str(bad)])
    assert r.exit_code == 2 and "differs from the genome" in r.stderr
    assert {p: p.read_bytes() for p in parquet_files(out)} == before
    r = CliRunner().invoke(app, [*args, "--vcf", str(vcf), "--sequences", str(vcf)])
    assert r.exit_code == 2 and "exactly one of --vcf and --sequences" in r.stderr
    r = CliRunner().invoke(app, [*args, "--vcf", str(vcf), "--max-allele-length", "120"])
    assert r.exit_code == 2 and "too long for 200-bp windows" in r.stderr
    r = CliRunner().invoke(app, [*args, "--vcf", str(vcf), "--tf", "NOPE"])
    assert r.exit_code == 2 and "no model for tf 'NOPE'" in r.stderr
    tsv = tmp_path / "s.tsv"
    seq = sim.seqs["chr1"][3000 : 3000 + W]
    tsv.write_text(f"id\tref\talt\na\t{seq}\t{seq[:100]}T{seq[101:]}\nb\t{seq[:150]}\t{seq[:150]}\n")
    r = CliRunner().invoke(app, [*args[:-3], "--out", str(tmp_path / "seq"), "--local", "--sequences", str(tsv)])
    assert r.exit_code == 0, r.output  # --local: the old spelling of --no-ray, for one release
    assert "--local is now --no-ray" in r.stderr
    assert "2 sequence pair(s)" in r.stdout and read_scores(tmp_path / "seq" / "variants").height == 4
    # a second run replaces the scores (no stale file from the first)
    r = CliRunner().invoke(app, [*args, "--vcf", str(write_vcf(tmp_path / "one.vcf", [fsnv]))])
    assert r.exit_code == 0, r.output
    assert read_scores(out).height == 1


def _features_dir(root, patterns: dict[str, tuple[str, np.ndarray, str | None]]):
    """A hand-made OUT/features: per regime one pattern (name, PPM, best match) of TF ALPHA."""
    from scanner.io import partition_dir, write_parquet_atomic
    from scanner.schemas import FEATURES

    for regime, (name, ppm, match) in patterns.items():
        row = {c: None for c in FEATURES.names}
        row |= dict(tf="ALPHA", regime=regime, method="deeplift", pattern=name, sign=1, rank=0, n_windows=10)
        row |= dict(n_seqlets=20, windows_with=10, share=1.0, length=len(ppm), consensus="", contribution=1.0)
        row |= dict(best_match=match, matches=[], distances=[], abs_distance_q25=0.0, abs_distance_median=0.0)
        row |= dict(abs_distance_q75=0.0, share_in_site=1.0, share_upstream=0.0, share_downstream=0.0, side="site")
        row |= dict(ppm=ppm.tolist(), cwm=ppm.tolist(), meme="x.meme", logo="x.png")
        d = partition_dir(root / "patterns", [("tf", "ALPHA"), ("regime", regime), ("method", "deeplift")])
        write_parquet_atomic(pa.Table.from_pylist([row], schema=FEATURES), d / "patterns.parquet")
    return root


def test_disagreeing_variants_name_the_learned_pattern_they_fall_in(sim, tmp_path):
    from scanner.simulate.rules import simulated_motif

    snv, _dele, fsnv, _c1, _c2, _far = _core_variants(sim)
    vcf = write_vcf(tmp_path / "v.vcf", [snv, fsnv])
    feats = _features_dir(
        tmp_path / "features",
        {
            "pvalue": ("pos_0", simulated_motif("ALPHA").probs, "ALPHA"),
            "open": ("pos_3", simulated_motif("PIONEER").probs, None),
        },
    )
    s = score_vcf(vcf, sim.root / "models", tmp_path / "out", VariantConfig(features=str(feats)), use_ray=False)
    cmp = pl.read_parquet(tmp_path / "out" / "comparison.parquet").filter(pl.col("sign_flip"))
    r = cmp.filter(pl.col("variant_id") == f"{snv[0]}:{snv[1]}:{snv[3]}:{snv[4]}").row(0, named=True)
    # the SNV sits in the planted ALPHA core, which the pvalue regime's pattern is; the open regime's is not there
    assert r["pattern_pvalue"] == "pos_0" and r["pattern_match_pvalue"] == "ALPHA"
    assert r["pattern_open"] is None and r["pattern_match_open"] is None
    assert any("in learned pattern pvalue: ALPHA" in line for line in s.comparison)
    with pytest.raises(InputError, match="--features"):
        VariantConfig(features=str(tmp_path / "nothing")).validate()
