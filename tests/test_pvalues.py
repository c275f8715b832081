"""Exact p-values against brute force, the long-motif path, and FIMO's rounding pinned to FIMO's output."""

from __future__ import annotations

import numpy as np
import pytest

from scanner.errors import InputError
from scanner.genome import encode
from scanner.motifs import Background, Motif
from scanner.scan import PValueTable, build_lookup_plan, prepare_motifs, scan_chunk
from scanner.scan import _pvalue_kernels as kernels
from scanner.scan._kernels import sequential_scores


def _random_logodds(rng, length, bg):
    probs = rng.dirichlet(np.ones(4) * 0.5, size=length)
    return np.log2(((probs * 20 + 0.1 * bg) / 20.1) / bg)


def _brute_tail(w, bg):
    scores, probs = kernels.enumerate_all(w, bg)
    order = np.argsort(scores)
    s_sorted = scores[order]
    suffix = np.append(np.cumsum(probs[order][::-1])[::-1], 0.0)
    return scores, suffix[np.searchsorted(s_sorted, scores - 1e-9)]


@pytest.mark.parametrize(
    ("length", "bg", "threshold"),
    [
        (4, [0.25] * 4, 1e-3),
        (7, [0.3, 0.2, 0.2, 0.3], 1e-3),
        (7, [0.35, 0.15, 0.2, 0.3], 1e-4),
        (9, [0.25] * 4, 1e-4),
        (9, [0.35, 0.15, 0.2, 0.3], 1e-3),
        (10, [0.3, 0.2, 0.2, 0.3], 1e-4),
    ],
)
def test_exact_table_equals_brute_force_on_every_word(length, bg, threshold):
    rng = np.random.default_rng(length * 7 + int(bg[0] * 100))
    bg = np.array(bg)
    w = _random_logodds(rng, length, bg)
    scores, true_tail = _brute_tail(w, bg)
    table = PValueTable.build(w, bg, threshold)
    assert table.exact
    hit, pv = table.evaluate(scores)
    np.testing.assert_array_equal(hit, true_tail < threshold)
    np.testing.assert_allclose(pv[hit], true_tail[hit], rtol=1e-12)


@pytest.mark.parametrize("length", [9, 10])
def test_long_motif_path_decides_exactly_and_bounds_pvalues(length):
    """Forcing the grid path (tiny enumeration cap): hit calls stay exact, and every hit's p-value is
    within the recorded bound of the true one (the bound holds for each, not only the median)."""
    rng = np.random.default_rng(length)
    bg = np.array([0.3, 0.2, 0.2, 0.3])
    w = _random_logodds(rng, length, bg)
    scores, true_tail = _brute_tail(w, bg)
    table = PValueTable.build(w, bg, 1e-4, enumeration_cap=50)
    assert not table.exact and table.calls_exact
    assert table._miss_to < table._hit_from < np.inf  # the band was bisected when the table was built
    one_by_one = []
    exact_one = table._exact_tail_one
    table._exact_tail_one = lambda s: one_by_one.append(s) or exact_one(s)
    hit, pv, undecided = table.decide(scores)
    assert len(one_by_one) <= 2  # only windows inside the last bisection bracket are decided one by one
    assert not undecided.any()
    np.testing.assert_array_equal(hit, true_tail < 1e-4)
    rel = np.abs(pv[hit] - true_tail[hit]) / true_tail[hit]
    assert 0 < table.max_rel_error < 0.05
    assert rel.max() <= table.max_rel_error  # every reported p-value, not only the median
    top = scores - 1e-9 >= table._tail_from  # the enumerated top of the tail is exact
    np.testing.assert_allclose(pv[hit & top], true_tail[hit & top], rtol=1e-12)
    # p-values of any score (variants ask for non-hits too): the kept part of the fine grid above the
    # cut, the coarse grid below it
    common = true_tail > 1e-3
    np.testing.assert_allclose(table.pvalue(scores)[common], true_tail[common], rtol=0.02)


@pytest.mark.parametrize(("length", "seed", "threshold"), [(9, 1, 1e-3), (10, 2, 1e-4), (11, 5, 1e-4)])
def test_fine_band_path_never_calls_a_false_hit_and_bounds_every_pvalue(monkeypatch, length, seed, threshold):
    """The path of motifs too long for meet-in-the-middle, forced on motifs small enough to list every
    word: every window is a proven hit, a proven miss, or undecided (then inside the proven bracket,
    and not a hit); every hit's p-value is within the recorded bound."""
    import scanner.scan.pvalues as pvalues

    monkeypatch.setattr(pvalues, "MITM_HALF_CAP", 0)  # meet-in-the-middle is never feasible
    rng = np.random.default_rng(seed)
    bg = np.array([0.3, 0.2, 0.2, 0.3])
    w = _random_logodds(rng, length, bg)
    scores, true_tail = _brute_tail(w, bg)
    table = PValueTable.build(w, bg, threshold, enumeration_cap=50)
    assert table._band is not None and not table.calls_exact
    assert table._hit_from - table._miss_to < 1e-3  # the proven bracket is narrow
    hit, pv, undecided = table.decide(scores)
    truth = true_tail < threshold
    assert not (hit & ~truth).any()  # no false hit
    assert not (hit & undecided).any()
    assert (truth == (hit | (undecided & truth))).all()  # a true hit is reported or undecided
    inside = (scores > table._miss_to) & (scores < table._hit_from)
    assert (undecided <= inside).all()  # undecided only inside the bracket
    assert hit.sum() > 20
    rel = np.abs(pv[hit] - true_tail[hit]) / true_tail[hit]
    assert rel.max() <= table.max_rel_error


def test_resolve_band_when_the_whole_band_is_hits_terminates():
    """The branch where even the band's lowest score is a hit (it used to loop forever)."""
    import threading

    rng = np.random.default_rng(4)
    bg = np.full(4, 0.25)
    w = _random_logodds(rng, 10, bg)
    table = PValueTable.build(w, bg, 1e-4, enumeration_cap=50)
    table.cut = table._hit_from + 0.01  # pretend the grid's band starts above the true boundary
    table._definite = table.cut + 0.05
    runner = threading.Thread(target=table._resolve_band, daemon=True)
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert table._miss_to == -np.inf and table._hit_from <= table.cut
    scores, true_tail = _brute_tail(w, bg)
    band = (scores >= table.cut) & (scores < table._definite)
    hit, _, undecided = table.decide(scores[band])
    assert band.any() and hit.all() and not undecided.any() and (true_tail[band] < 1e-4).all()


def test_unreachable_motif_has_no_cut_below_its_best_score_and_reports_its_best_pvalue():
    bg = np.full(4, 0.25)
    w = np.log2(np.full((5, 4), 0.1) / 0.25)
    w[np.arange(5), [0, 1, 2, 3, 0]] = np.log2(0.7 / 0.25)
    table = PValueTable.build(w, bg, 1e-4)  # best word: 4**-5 ~ 1e-3
    assert table.best_pvalue == pytest.approx(4.0**-5)
    assert table.cut > w.max(axis=1).sum()
    hit, _ = table.evaluate(np.array([w.max(axis=1).sum()]))
    assert not hit.any()


def test_meet_in_the_middle_equals_brute_force():
    rng = np.random.default_rng(3)
    bg = np.array([0.35, 0.15, 0.2, 0.3])
    w = _random_logodds(rng, 9, bg)
    scores, true_tail = _brute_tail(w, bg)
    table = PValueTable.build(w, bg, 1e-3, enumeration_cap=10)
    for i in rng.choice(scores.size, 50, replace=False):
        assert table._exact_tail_one(float(scores[i])) == pytest.approx(true_tail[i], rel=1e-12)


def test_bad_tables_raise():
    with pytest.raises(InputError, match="threshold"):
        PValueTable.build(np.zeros((3, 4)), np.full(4, 0.25), 0.0)
    with pytest.raises(InputError, match="infinite"):
        PValueTable.build(np.array([[0.0, -np.inf, 0, 0]]), np.full(4, 0.25), 1e-3)
    with pytest.raises(InputError, match="mode"):
        PValueTable.build(np.zeros((3, 4)), np.full(4, 0.25), 1e-3, mode="moods")


# FIMO's own numbers (pymemesuite 0.1.0a4, MEME suite FIMO code), background A .3 C .2 G .2 T .3,
# motif frequencies as FIMO held them after its pseudocount: (site, strand, score, p-value).
PHO4 = np.array(
    [
        [9.4206794302820557e-02, 3.9377079050756036e-01, 5.0798803286667149e-01, 4.0343823229476083e-03],
        [9.7212493130593339e-02, 9.0173589220077754e-01, 2.2931173454354823e-05, 1.0286834951748391e-03],
        [9.6886915278393460e-01, 1.0241438789660245e-03, 2.8076120232666861e-02, 2.0305831044324287e-03],
        [2.8231032607166327e-05, 9.1367169622843003e-01, 1.0258306825215826e-03, 8.5274242056441241e-02],
        [8.5275689203131153e-02, 1.0251437787756625e-03, 9.1367238313217602e-01, 2.6783885917249704e-05],
        [2.0320302511223453e-03, 2.8075433328920939e-02, 1.0248307827119443e-03, 9.6886770563724456e-01],
        [1.0301306418647560e-03, 2.2244269708434832e-05, 9.0173657910452343e-01, 9.7211045983903427e-02],
        [4.0358294696375245e-03, 5.0798734596292561e-01, 3.9377147741130625e-01, 9.4205347156130645e-02],
    ]
)
PHO4_FIMO = [
    ("GCACGTGC", "+", 14.819672131147541, 5.7600000000000024e-06),
    ("GCACGTGG", "+", 14.459016393442624, 1.7280000000000007e-05),
    ("CCACGTGC", "-", 14.459016393442624, 1.7280000000000007e-05),
]
ABF1 = np.array(
    [
        [1.6162113882848325e-01, 1.6863050340809171e-01, 2.3467105137496582e-02, 6.4628125262592839e-01],
        [1.1773232015090640e-02, 9.8576913604681804e-01, 2.3950400473537613e-03, 6.2591890737548415e-05],
        [9.4317803644233481e-03, 5.1983155223574818e-05, 9.7874738610214174e-01, 1.1769850144074003e-02],
        [1.1773232015090640e-02, 5.1983155223574818e-05, 7.0779433486883427e-03, 9.8109784124686017e-01],
        [4.4024388759926297e-01, 1.5458279326995081e-01, 2.2248349708317675e-01, 1.8268982204760947e-01],
        [2.0376526900876893e-01, 2.1311708500490747e-01, 1.5224294686074638e-01, 4.3087469912557719e-01],
        [5.3389895432836632e-01, 8.9024146582992236e-02, 1.6863210864955461e-01, 2.0844479043908690e-01],
        [3.6297898242483073e-01, 1.1243766332380235e-01, 1.4990149521007909e-01, 3.7468185904128776e-01],
        [6.8140540949109152e-01, 1.1243766332380235e-01, 1.2648797846926899e-01, 7.9668948715837060e-02],
        [2.9507888408720490e-01, 2.3934348058908656e-03, 6.9544073426416464e-01, 7.0869468427394210e-03],
        [9.4317803644233481e-03, 9.6048501534994113e-02, 1.4102298300690217e-02, 8.8041841956575506e-01],
        [2.4074254124214762e-03, 4.7348864565581556e-03, 9.8343028940347632e-01, 9.4283984934067123e-03],
        [9.8110122311787684e-01, 7.0763381072254470e-03, 2.3950400473537613e-03, 9.4283984934067123e-03],
        [7.0903287137560585e-03, 3.9574431516177938e-01, 3.5174363390833040e-02, 5.6199199249949428e-01],
    ]
)
ABF1_FIMO = [
    ("TCGTGTACAATGAC", "+", 15.784615384615392, 3.006201600000001e-06),
    ("CCGTCTAATGTGAC", "+", 13.753846153846155, 1.3954757759999998e-05),
    ("TCGTTGTCGGTGAT", "-", 12.538461538461547, 2.675340576e-05),
    ("ACGTATGAGATGAT", "-", 12.292307692307702, 2.9941755840000004e-05),
]
BG = [0.3, 0.2, 0.2, 0.3]


def _rc(s: str) -> str:
    return s.translate(str.maketrans("ACGT", "TGCA"))[::-1]


@pytest.mark.parametrize(("freqs", "sites"), [(PHO4, PHO4_FIMO), (ABF1, ABF1_FIMO)])
def test_fimo_mode_reproduces_fimo_scores_and_pvalues(freqs, sites):
    motif = Motif("M", "M", freqs, 20)
    prepared = prepare_motifs([motif], Background(np.array(BG)), 1e-4, mode="fimo", pseudocount=1e-12)
    genome_strand = [s if st == "+" else _rc(s) for s, st, _, _ in sites]
    seq = "NNNNN".join(["", *genome_strand, ""])
    table = scan_chunk(encode(seq), None, prepared, build_lookup_plan(prepared), chrom="s")
    got = {(r["sequence"], r["strand"]): (r["score"], r["pvalue"]) for r in table.to_pylist()}
    for site, strand, score, pvalue in sites:
        s, p = got[(site, strand)]
        assert s == pytest.approx(score, abs=1e-6)  # stored as float32 bits
        assert p == pytest.approx(pvalue, rel=1e-6)


@pytest.mark.parametrize(("freqs", "sites"), [(PHO4, PHO4_FIMO), (ABF1, ABF1_FIMO)])
def test_exact_mode_differs_from_fimo_only_by_its_rounding(freqs, sites):
    motif = Motif("M", "M", freqs, 20)
    (pm,) = prepare_motifs([motif], Background(np.array(BG)), 1e-4, mode="exact", pseudocount=1e-12)
    scale = np.floor(1000 / (pm.w.max() - np.floor(pm.w.min())))
    for site, _strand, score, _pvalue in sites:
        exact = float(sequential_scores(encode(site)[None, :], pm.w)[0])
        assert abs(exact - score) <= pm.length / (2 * scale) + 1e-9  # FIMO's documented worst case
