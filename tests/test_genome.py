"""Genome access: the positional-read fast path against pyfaidx + encode."""

from __future__ import annotations

import numpy as np
import pytest

from scanner.errors import InputError
from scanner.genome import Genome, encode, open_genome


def _write_fasta(path, seqs: dict[str, str], width: int) -> None:
    with open(path, "w") as fh:
        for name, seq in seqs.items():
            fh.write(f">{name} description\n")
            for i in range(0, len(seq), width):
                fh.write(seq[i : i + width] + "\n")


@pytest.mark.parametrize("width", [1, 7, 60, 1000])
def test_read_codes_equals_fetch_and_encode(tmp_path, width):
    rng = np.random.default_rng(width)
    letters = np.array(list("ACGTacgtNnRy"))
    seqs = {f"c{i}": "".join(rng.choice(letters, int(rng.integers(1, 700)))) for i in range(4)}
    path = tmp_path / "g.fa"
    _write_fasta(path, seqs, width)
    g = open_genome(path)
    for name, seq in seqs.items():
        n = len(seq)
        for start, end in [(0, n), (0, 1), (n - 1, n), (3, 3), (-5, n + 5)] + [
            tuple(sorted(rng.integers(0, n + 1, 2))) for _ in range(20)
        ]:
            codes, lower = g.read_codes(name, start, end, lower=True)
            want, want_lower = encode(seq[max(0, start) : min(n, end)], return_lower=True)
            np.testing.assert_array_equal(codes, want)
            np.testing.assert_array_equal(lower, want_lower)
            assert g.read_codes(name, start, end)[1] is None


def test_read_codes_crlf_and_truncated_file(tmp_path):
    path = tmp_path / "g.fa"
    path.write_bytes(b">a\r\nACGTA\r\nCGTAC\r\nGG\r\n")
    g = open_genome(path)
    assert g.read_codes("a", 0, 12)[0].tolist() == encode("ACGTACGTACGG").tolist()
    g.close()
    path.write_bytes(b">a\r\nACGTA\r\n")  # the file shrank after its index was built
    with pytest.warns(RuntimeWarning, match="older than FASTA"):
        stale = Genome(path)  # opened without open_genome's index check, as a worker would
    with pytest.raises(InputError, match=r"shorter than its \.fai"):
        stale.read_codes("a", 0, 12)
    with pytest.raises(InputError, match="not in the genome"):
        stale.read_codes("b", 0, 1)
