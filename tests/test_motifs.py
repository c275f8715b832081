"""Motif readers, backgrounds and FIMO's pseudocount convention."""

from __future__ import annotations

import numpy as np
import pytest

from scanner.errors import InputError
from scanner.motifs import (
    Background,
    Motif,
    load_motifs,
    log_odds,
    motif_probabilities,
    read_motif_file,
    write_meme,
)
from scanner.motifs.background import background_from_codes, read_background

JASPAR = """>MA0001.1\tTOY
A  [ 10  0  0  5 ]
C  [  0 10  0  5 ]
G  [  0  0 10  0 ]
T  [  0  0  0  0 ]
>MA0002.1 TOY2
A [ 3 3 ]
C [ 3 3 ]
G [ 2 2 ]
T [ 2 2 ]
"""

MEME = """MEME version 4

ALPHABET= ACGT

strands: + -

Background letter frequencies
A 0.3 C 0.2 G 0.2 T 0.3

MOTIF M1 ONE
letter-probability matrix: alength= 4 w= 3 nsites= 50 E= 0
 1.0 0.0 0.0 0.0
 0.0 0.5 0.5 0.0
 0.25 0.25 0.25 0.25

MOTIF M2
letter-probability matrix: alength= 4 w= 2
 0.1 0.2 0.3 0.4
 0.4 0.3 0.2 0.1
"""

HOMER = """>ACGT\tACGT(bHLH)/Some-ChIP/Homer\t6.5\t-10\t0\tT:0
0.9\t0.05\t0.03\t0.02
0.01\t0.97\t0.01\t0.01
0.01\t0.01\t0.97\t0.01
0.02\t0.03\t0.05\t0.9
"""


def test_jaspar_counts_become_frequencies_with_rounded_mean_nsites(tmp_path):
    p = tmp_path / "m.jaspar"
    p.write_text(JASPAR)
    m1, m2 = read_motif_file(p)
    assert (m1.motif_id, m1.name, m1.length, m1.nsites) == ("MA0001.1", "TOY", 4, 10)
    np.testing.assert_allclose(m1.probs[3], [0.5, 0.5, 0, 0])
    assert m2.nsites == 10 and m2.name == "TOY2"


def test_meme_reads_nsites_default_and_background(tmp_path):
    from scanner.motifs.readers import read_meme

    p = tmp_path / "m.meme"
    p.write_text(MEME)
    motifs, bg = read_meme(p)
    assert [m.motif_id for m in motifs] == ["M1", "M2"]
    assert motifs[0].name == "ONE" and motifs[1].name == "M2"
    assert motifs[0].nsites == 50 and motifs[1].nsites == 20
    np.testing.assert_allclose(bg.freqs, [0.3, 0.2, 0.2, 0.3])


def test_homer_and_probability_matrix(tmp_path):
    p = tmp_path / "x.motif"
    p.write_text(HOMER)
    (m,) = read_motif_file(p)
    assert m.motif_id == "ACGT(bHLH)/Some-ChIP/Homer" and m.name == "ACGT(bHLH)" and m.length == 4
    q = tmp_path / "pho4_macisaac.pwm"
    q.write_text("ALPHABET= ACGT\n0 1 0 0\n1 0 0 0\n")
    (m2,) = read_motif_file(q)
    assert m2.name == "PHO4" and m2.length == 2


def test_write_meme_round_trips(tmp_path):
    m = Motif("X1", "XX", np.array([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]]), 33)
    p = write_meme([m], tmp_path / "o.meme", Background(np.array([0.3, 0.2, 0.2, 0.3])))
    (back,) = read_motif_file(p)
    assert (back.motif_id, back.name, back.nsites) == ("X1", "XX", 33)
    np.testing.assert_allclose(back.probs, m.probs, atol=1e-6)


def test_fimo_pseudocount_formula():
    bg = Background(np.array([0.3, 0.2, 0.2, 0.3]))
    m = Motif("a", "a", np.array([[1.0, 0.0, 0.0, 0.0]]), 10)
    p = motif_probabilities(m, bg, 0.1)
    expected = (np.array([1.0, 0, 0, 0]) * 10 + 0.1 * bg.freqs) / 10.1
    np.testing.assert_allclose(p[0], expected)
    np.testing.assert_allclose(log_odds(m, bg)[0], np.log2(expected / bg.freqs))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (">MA1\n", "lacks row"),
        (">MA1 X\nA [ ]\nC [ ]\nG [ ]\nT [ ]\n", "zero columns"),
        (">MA1 X\nA [ 1 nan ]\nC [ 1 1 ]\nG [ 1 1 ]\nT [ 1 1 ]\n", "NaN"),
        (">MA1 X\nA [ 1 2 ]\nC [ 1 ]\nG [ 1 1 ]\nT [ 1 1 ]\n", "different numbers of columns"),
        (">MA1 X\nA [ 0 1 ]\nC [ 0 1 ]\nG [ 0 1 ]\nT [ 0 1 ]\n", "column 1 has no counts"),
        (">MA1 X\nA [ 1 x ]\nC [ 1 1 ]\nG [ 1 1 ]\nT [ 1 1 ]\n", "expected a number"),
    ],
)
def test_malformed_jaspar_names_file_and_line(tmp_path, text, match):
    p = tmp_path / "bad.jaspar"
    p.write_text(text)
    with pytest.raises(InputError, match=match) as exc:
        read_motif_file(p)
    assert str(p) in str(exc.value)


def test_meme_row_not_summing_to_one_is_reported_with_its_line(tmp_path):
    p = tmp_path / "bad.meme"
    p.write_text(MEME.replace(" 0.0 0.5 0.5 0.0", " 0.0 0.5 0.2 0.0"))
    with pytest.raises(InputError, match=r"position 2 sums to 0.7") as exc:
        read_motif_file(p)
    assert exc.value.line == 13


def test_meme_width_mismatch_and_empty_file(tmp_path):
    p = tmp_path / "w.meme"
    p.write_text(MEME.replace("w= 3", "w= 4"))
    with pytest.raises(InputError, match="w= 4 but 3 rows"):
        read_motif_file(p)
    e = tmp_path / "e.meme"
    e.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_motif_file(e)


def test_jaspar_ids_resolve_offline_and_unknown_ids_fail():
    (ctcf,) = load_motifs(["MA0139.2"])
    assert ctcf.name == "CTCF" and ctcf.length == 15 and ctcf.nsites > 100
    (latest,) = load_motifs(["MA0357"])
    assert latest.motif_id.startswith("MA0357.")
    with pytest.raises(InputError, match=r"unknown JASPAR matrix ID 'MA9999\.1'"):
        load_motifs(["MA9999.1"])


def test_duplicate_motif_ids_are_rejected(tmp_path):
    p = tmp_path / "m.jaspar"
    p.write_text(JASPAR)
    with pytest.raises(InputError, match="appears twice"):
        load_motifs([str(p), str(p)])


def test_backgrounds(tmp_path):
    codes = np.array([0, 0, 0, 1, 4, 4, 3], dtype=np.uint8)  # A A A C N N T
    bg = background_from_codes(codes)
    np.testing.assert_allclose(bg.freqs, [0.4, 0.1, 0.1, 0.4])  # strand-symmetric
    assert bg.is_symmetric
    f = tmp_path / "bg.txt"
    f.write_text("# order-0\nA 0.3\nC 0.2\nG 0.2\nT 0.3\nAA 0.1\n")
    np.testing.assert_allclose(read_background(f).freqs, [0.3, 0.2, 0.2, 0.3])
    f.write_text("A 0.3\nC 0.2\nG zero\nT 0.3\n")
    with pytest.raises(InputError, match=r"bg.txt:3: frequency .zero. is not a number"):
        read_background(f)
    with pytest.raises(InputError, match="positive"):
        Background(np.array([0.5, 0.5, 0.0, 0.0]))
