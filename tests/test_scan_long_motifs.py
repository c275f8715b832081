"""Long JASPAR motifs (24-33 columns, CTCF MA1929.2 and MA1930.2 among them) against an independent check.

The check shares no code with the scanner's p-value code: a plain numpy dynamic program over each
column's scores floored to a grid of width ``EPS_REF`` bits, giving rigorous bounds
``lo(s) <= P(S >= s) <= hi(s)``. Windows are drawn from a tilted background so that thousands land
within a few thousandths of a bit of the threshold; every one of them is also planted in a sequence
and scanned. Wherever the check decides a window, the scanner must agree (or, inside its own proven
bracket, leave it undecided and count it); the scanner never reports a hit the check refutes, and
every reported p-value is within the scanner's recorded bound of the check's interval.
"""

from __future__ import annotations

import numpy as np
import pytest

from scanner.motifs import Background, Motif, log_odds
from scanner.scan import build_lookup_plan, prepare_motifs, scan_chunk

THRESHOLD = 1e-4
TIE = 1e-9
#: Grid of the independent check (bits): its bounds are ~L * EPS_REF wide.
EPS_REF = 2e-5


def _jaspar(matrix_id: str) -> Motif:
    from pyjaspar import jaspardb

    m = jaspardb(release="JASPAR2024").fetch_motif_by_id(matrix_id)
    counts = np.array([m.counts[b] for b in "ACGT"], dtype=np.float64).T
    sums = counts.sum(axis=1)
    return Motif(m.matrix_id, m.name, counts / sums[:, None], max(1, round(float(sums.mean()))))


def _reference_bounds(w: np.ndarray, bg: np.ndarray, eps: float):
    """Functions lo(s), hi(s) bounding P(S >= s): numpy DP of the per-column floored scores."""
    shifted = w - w.min(axis=1, keepdims=True)
    q = np.floor(shifted / eps).astype(np.int64)
    resid = shifted - q * eps
    pmf = np.ones(1)
    for j in range(w.shape[0]):
        new = np.zeros(pmf.size + int(q[j].max()))
        for b in range(4):
            new[q[j, b] : q[j, b] + pmf.size] += pmf * bg[b]
        pmf = new
    tail = np.append(np.cumsum(pmf[::-1])[::-1], 0.0)
    base = float(w.min(axis=1).sum())
    rmin, rmax = float(resid.min(axis=1).sum()), float(resid.max(axis=1).sum())

    def at(x):
        return tail[np.clip(np.ceil(x / eps).astype(np.int64), 0, tail.size - 1)]

    return (lambda s: at(s - base - rmin + 1e-9)), (lambda s: at(s - base - rmax - 1e-9))


def _sequential_scores(w: np.ndarray, words: np.ndarray) -> np.ndarray:
    scores = np.zeros(words.shape[0])
    for j in range(w.shape[0]):  # float64, first column first, as the scanner sums
        scores = scores + w[j, words[:, j]]
    return scores


def _near_threshold_words(w, bg, target, n, rng):
    """Words drawn column by column from bg * 2**(theta * w) (theta centring scores on target), then
    moved by greedy one-base changes towards targets spread over target +- 2e-3 bits."""
    lo, hi = 0.0, 4.0
    for _ in range(60):
        theta = 0.5 * (lo + hi)
        q = bg[None, :] * np.exp2(theta * w)
        q /= q.sum(axis=1, keepdims=True)
        lo, hi = (theta, hi) if float((q * w).sum()) < target else (lo, theta)
    words = np.stack([rng.choice(4, n, p=q[j]) for j in range(w.shape[0])], axis=1).astype(np.uint8)
    goal = target + rng.uniform(-2e-3, 2e-3, n)
    cols = np.arange(w.shape[0])
    for step in range(4):  # the best change of one base, or (every other step) of two bases
        scores = _sequential_scores(w, words)
        for c0 in range(0, n, 256):
            c1 = min(n, c0 + 256)
            delta = (w[None, :, :] - w[cols, words[c0:c1]][:, :, None]).reshape(c1 - c0, -1)  # (m, 4L)
            if step % 2:
                delta = (delta[:, :, None] + delta[:, None, :]).reshape(c1 - c0, -1)
            best = np.abs(scores[c0:c1, None] + delta - goal[c0:c1, None]).argmin(axis=1)
            picks = [best] if step % 2 == 0 else [best // (4 * len(cols)), best % (4 * len(cols))]
            for pick in picks:  # a pair may touch one column twice: the second change wins, rescored below
                words[np.arange(c0, c1), pick // 4] = pick % 4
    return words, _sequential_scores(w, words)


@pytest.mark.parametrize(
    ("matrix_id", "bg"),
    [
        ("MA1930.2", [0.25] * 4),  # CTCF, 33 columns
        ("MA1929.2", [0.25] * 4),  # CTCF, 31 columns
        ("MA2335.1", [0.3, 0.2, 0.2, 0.3]),  # ZNF558, 29 columns
        ("MA1594.1", [0.3, 0.2, 0.2, 0.3]),  # ZNF382, 24 columns
    ],
)
def test_long_motif_hit_calls_against_an_independent_check(matrix_id, bg):
    motif = _jaspar(matrix_id)
    assert 23 <= motif.length <= 35
    background = Background(np.array(bg))
    (pm,) = prepare_motifs([motif], background, THRESHOLD)
    table = pm.tables["+"]
    w = log_odds(motif, background)
    ref_lo, ref_hi = _reference_bounds(w, background.freqs, EPS_REF)
    # the check's own boundary: the lowest score it proves to be a hit, found on its grid
    grid = np.arange(table.cut - 0.05, table.cut + 0.05, 1e-5)
    s_ref = grid[np.flatnonzero(ref_hi(grid - TIE) < THRESHOLD)[0]]
    rng = np.random.default_rng(int(matrix_id[2:6]))
    words, scores = _near_threshold_words(w, background.freqs, s_ref, 2000, rng)
    near = np.abs(scores - s_ref) < 3e-3
    words, scores = words[near], scores[near]
    assert scores.size > 300

    hit, pv, undecided = table.decide(scores)
    lo, hi = ref_lo(scores - TIE), ref_hi(scores - TIE)
    ref_hit, ref_miss = hi < THRESHOLD, lo >= THRESHOLD
    assert ref_hit.sum() > 100 and ref_miss.sum() > 100  # the check decides most windows
    close = np.abs(scores - s_ref) < 1e-3
    assert (close & (ref_hit | ref_miss)).sum() > 50  # including many within a thousandth of a bit
    assert not (hit & ref_miss).any()  # never a false hit
    assert not (hit & undecided).any()
    missed = ref_hit & ~hit
    assert (undecided[missed]).all()  # a proven hit is reported, or counted as undecided ...
    inside = (scores > max(table._miss_to, table.cut)) & (scores < table._hit_from)
    assert (undecided == inside).all()  # ... exactly the windows inside its own proven bracket
    assert inside.sum() > 5  # (windows there are undecidable at its precision: never called by an estimate)
    assert table._hit_from - table._miss_to < 5e-4
    m = table.max_rel_error
    assert m < 0.02
    assert (pv[hit] <= hi[hit] * (1 + m)).all() and (pv[hit] >= lo[hit] * (1 - m)).all()
    assert (pv[hit] < THRESHOLD).all()

    # the same windows planted in a sequence (N between them) and scanned: same calls, undecided counted
    length = motif.length
    seq = np.full(words.shape[0] * (length + 1), 4, dtype=np.uint8)
    starts = np.arange(words.shape[0]) * (length + 1)
    seq[starts[:, None] + np.arange(length)[None, :]] = words
    prepared = [pm]
    counted: dict[str, int] = {}
    out = scan_chunk(seq, None, prepared, build_lookup_plan(prepared), chrom="c", undecided=counted)
    plus = out.filter(np.asarray(out.column("strand").to_numpy(zero_copy_only=False) == "+"))
    got = set(plus.column("start").to_pylist())
    assert got == set(starts[hit].tolist())
    assert counted.get(matrix_id, 0) >= int(undecided.sum())  # '-' strand windows may add to it
