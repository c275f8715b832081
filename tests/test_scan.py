"""The fast scan against a plain-Python reference: identical hit sets and p-values."""

from __future__ import annotations

import numpy as np
import pytest

import scanner.scan.prepare as prepare_module
from scanner.motifs import Background, Motif
from scanner.scan import build_lookup_plan, prepare_motifs, scan_chunk
from scanner.scan.reference import reference_scan


def _genome(seed: int, n: int = 6000):
    rng = np.random.default_rng(seed)
    codes = rng.choice(4, n, p=[0.3, 0.2, 0.2, 0.3]).astype(np.uint8)
    codes[300:340] = 4  # an N gap
    codes[n // 2 + 17] = 4  # a lone N
    codes[-2:] = 4  # N at the end
    lower = np.zeros(n, dtype=bool)
    lower[n // 3 : n // 3 + 600] = True  # a soft-masked run
    return rng, codes, lower


def _motifs(rng, lengths):
    return [
        Motif(f"M{i}", f"TF{i % 2}", rng.dirichlet(np.ones(4) * 0.4, size=length), 20)
        for i, length in enumerate(lengths)
    ]


BACKGROUNDS = ([0.25] * 4, [0.35, 0.15, 0.2, 0.3])


@pytest.fixture(scope="module")
def reference_hits():
    """Plain-Python hits per background and skip_masked setting (computed once: the reference is slow)."""
    rng, codes, lower = _genome(11, 2000)
    motifs = _motifs(rng, [4, 6, 8, 9])
    out = {}
    for bg in BACKGROUNDS:
        background = Background(np.array(bg))
        prepared = prepare_motifs(motifs, background, 1e-3)
        for skip_masked in (False, True):
            hits = {}
            for m, pm in zip(motifs, prepared, strict=True):
                for start, strand, score, p in reference_scan(codes, pm.w, background.freqs, 1e-3, lower, skip_masked):
                    hits[(m.motif_id, start, strand)] = (score, p)
            out[(tuple(bg), skip_masked)] = hits
    return codes, lower, motifs, out


@pytest.mark.parametrize("method", ["bucket", "sweep"])
@pytest.mark.parametrize("kernel", ["numba", "torch"])
@pytest.mark.parametrize("bg", BACKGROUNDS)
def test_fast_scan_equals_plain_reference(monkeypatch, reference_hits, method, kernel, bg):
    monkeypatch.setattr(prepare_module, "SWEEP_ABOVE", 1.1 if method == "bucket" else 0.0)
    monkeypatch.setattr(prepare_module, "SWEEP_ALL_UP_TO", -1)  # no switch to sweeping for few matrices
    codes, lower, motifs, refs = reference_hits
    prepared = prepare_motifs(motifs, Background(np.array(bg)), 1e-3)
    plan = build_lookup_plan(prepared)
    assert (plan.method == (0 if method == "bucket" else 1)).all()
    for skip_masked in (False, True):
        for core_end in (codes.size, 1234):  # sites starting before core_end only
            ref = {k: v for k, v in refs[(tuple(bg), skip_masked)].items() if k[1] < core_end}
            table = scan_chunk(
                codes,
                lower,
                prepared,
                plan,
                chrom="c",
                skip_masked=skip_masked,
                core_end=core_end,
                kernel=kernel,
            )
            got = {(r["motif_id"], r["start"], r["strand"]): (r["score"], r["pvalue"]) for r in table.to_pylist()}
            assert ref and set(got) == set(ref)
            for key, (score, p) in ref.items():
                assert got[key][1] == pytest.approx(p, rel=1e-12)
                assert got[key][0] == pytest.approx(score, abs=1e-5)  # float32 column


def test_rows_are_complete_and_sequences_on_motif_strand():
    _, codes, lower = _genome(5)
    # a strong 8-mer planted on the minus strand at 4000
    probs = np.full((8, 4), 0.01)
    site = [0, 0, 1, 2, 3, 3, 1, 2]  # AACGTTCG on the motif strand
    probs[np.arange(8), site] = 0.97
    motif = Motif("P1", "PLANT", probs, 50)
    rc = np.array([3 - b for b in site[::-1]], dtype=np.uint8)  # the genome holds the reverse complement
    codes[4000:4008] = rc
    prepared = prepare_motifs([motif], Background.uniform(), 1e-4)
    table = scan_chunk(codes, lower, prepared, build_lookup_plan(prepared), chrom="chrZ", offset=1_000_000)
    rows = [r for r in table.to_pylist() if r["start"] == 1_004_000]
    assert len(rows) == 1
    r = rows[0]
    assert r["strand"] == "-" and r["end"] == 1_004_008 and r["sequence"] == "AACGTTCG"
    assert r["chrom"] == "chrZ" and r["tf"] == "PLANT" and r["motif_id"] == "P1"
    assert table.schema.names == [
        "chrom",
        "start",
        "end",
        "strand",
        "motif_id",
        "tf",
        "score",
        "pvalue",
        "sequence",
    ]


def test_max_strand_keeps_the_better_strand_per_position():
    # A palindrome-like motif matches both strands at the same start.
    probs = np.full((6, 4), 0.02)
    probs[np.arange(6), [0, 2, 1, 2, 1, 3]] = 0.94  # AGCGCT; its reverse complement is AGCGCT too
    motif = Motif("PAL", "PAL", probs, 50)
    codes = np.full(40, 0, dtype=np.uint8)
    codes[10:16] = [0, 2, 1, 2, 1, 3]
    prepared = prepare_motifs([motif], Background.uniform(), 1e-3)
    plan = build_lookup_plan(prepared)
    both = scan_chunk(codes, None, prepared, plan, chrom="c").to_pylist()
    assert {(r["start"], r["strand"]) for r in both} >= {(10, "+"), (10, "-")}
    best = scan_chunk(codes, None, prepared, plan, chrom="c", max_strand=True).to_pylist()
    starts = [r["start"] for r in best]
    assert len(starts) == len(set(starts))
    at10 = [r for r in best if r["start"] == 10]
    assert len(at10) == 1 and at10[0]["strand"] == "+"  # equal scores: '+' wins


def test_windows_with_n_never_hit_and_lowercase_is_scanned_unless_skipped():
    probs = np.full((5, 4), 0.01)
    probs[np.arange(5), [1, 1, 1, 1, 1]] = 0.97
    motif = Motif("C5", "C5", probs, 50)
    seq = np.array([1, 1, 1, 1, 1, 0, 1, 1, 4, 1, 1, 0, 1, 1, 1, 1, 1], dtype=np.uint8)
    lower = np.zeros(seq.size, dtype=bool)
    lower[12:17] = True
    prepared = prepare_motifs([motif], Background.uniform(), 1e-3)
    plan = build_lookup_plan(prepared)
    plus = [r["start"] for r in scan_chunk(seq, lower, prepared, plan, chrom="c").to_pylist() if r["strand"] == "+"]
    assert plus == [0, 12]
    skipped = scan_chunk(seq, lower, prepared, plan, chrom="c", skip_masked=True).to_pylist()
    assert [r["start"] for r in skipped if r["strand"] == "+"] == [0]


def test_more_candidates_than_the_first_buffer_holds():
    """At p < 1 nearly every window is a hit: the kernel's output buffer must grow, losing nothing."""
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 4, 40_000).astype(np.uint8)
    motif = Motif("W", "W", rng.dirichlet(np.ones(4), size=5), 20)
    prepared = prepare_motifs([motif], Background.uniform(), 1.0)
    table = scan_chunk(codes, None, prepared, build_lookup_plan(prepared), chrom="c")
    scores = table.column("pvalue").to_numpy()
    assert table.num_rows > 40_000 // 8 and (scores < 1.0).all()
    w = prepared[0].w
    lowest = w.min(axis=1).sum()
    windows = np.lib.stride_tricks.sliding_window_view(codes, 5)
    fwd = w[np.arange(5), windows].sum(axis=1)
    rev = w[np.arange(5), 3 - windows[:, ::-1]].sum(axis=1)
    expected = int((fwd > lowest + 1e-9).sum() + (rev > lowest + 1e-9).sum())
    assert table.num_rows == expected


def test_few_matrices_are_all_swept_and_match_the_bucket_scan(reference_hits):
    codes, lower, motifs, _ = reference_hits
    all_prepared = prepare_motifs(motifs, Background.uniform(), 1e-3)
    many = build_lookup_plan(all_prepared)
    assert (many.method == 0).any()
    want = scan_chunk(codes, lower, all_prepared, many, chrom="c")
    ids = want.column("motif_id").to_numpy(zero_copy_only=False)
    top = max(set(ids.tolist()), key=lambda m: int((ids == m).sum()))
    prepared = [p for p in all_prepared if p.motif_id == top]
    few = build_lookup_plan(prepared)
    assert (few.method == 1).all()  # 2 matrices: sorting positions would cost more than it saves
    got = scan_chunk(codes, lower, prepared, few, chrom="c")
    assert got.num_rows > 0 and got.to_pylist() == want.filter(np.asarray(ids == top)).to_pylist()


def test_torch_kernel_over_several_conv_steps_equals_numba(monkeypatch, reference_hits):
    """A stretch longer than one ``conv1d`` step: candidates of every step stay grouped by matrix, so no
    hit is lost (a 10 Mb chunk once lost two thirds of its hits this way)."""
    import scanner.scan.chunk as chunk_module

    codes, lower, motifs, _ = reference_hits
    prepared = prepare_motifs(motifs, Background.uniform(), 1e-2)
    plan = build_lookup_plan(prepared)
    want = scan_chunk(codes, lower, prepared, plan, chrom="c", kernel="numba")
    monkeypatch.setattr(chunk_module, "TORCH_STEP", 333)  # 2000 bp in 7 steps, boundaries inside sites
    got = scan_chunk(codes, lower, prepared, plan, chrom="c", kernel="torch")
    assert want.num_rows > 50 and got.equals(want)
