"""VCF reading: headers, gzip, multi-allelic splitting, skips, REF checks, chromosome names, bad lines."""

from __future__ import annotations

import gzip

import pytest

from scanner.errors import InputError
from scanner.genome import open_genome
from scanner.toydata import write_toy_genome
from scanner.variants.alleles import trim_alleles
from scanner.variants.vcf import SKIP_REASONS, read_vcf

HEAD = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    root = tmp_path_factory.mktemp("vcfgenome")
    g = open_genome(write_toy_genome(root / "g.fa", {"chr1": 3000, "chr2": 800}, seed=11))
    yield g
    g.close()


def _base(genome, chrom, pos1, n=1):
    return genome.fetch(chrom, pos1 - 1, pos1 - 1 + n).upper()


def _other(b):
    return "A" if b != "A" else "C"


def _write(tmp_path, body, name="v.vcf", head=HEAD):
    p = tmp_path / name
    p.write_text(head + body)
    return p


def _rec(chrom, pos, ref, alt, vid="."):
    return f"{chrom}\t{pos}\t{vid}\t{ref}\t{alt}\t.\tPASS\t.\n"


def test_plain_and_gzip_equal_and_split_multiallelic(genome, tmp_path):
    r1 = _base(genome, "chr1", 100)
    r2 = _base(genome, "chr1", 200, 3)
    body = (
        _rec("chr2", 50, _base(genome, "chr2", 50), _other(_base(genome, "chr2", 50)), "rsB")
        + _rec("chr1", 100, r1, ",".join(b for b in "ACGT" if b != r1), "rsA")
        + _rec("chr1", 200, r2, r2[0])  # deletion of 2 bases
        + _rec("chr1", 300, _base(genome, "chr1", 300).lower(), "tTT")  # insertion, lower case
    )
    plain = _write(tmp_path, body)
    gz = tmp_path / "v.vcf.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(HEAD + body)
    t1, rep1 = read_vcf(plain, genome)
    t2, _ = read_vcf(gz, genome)
    assert t1.equals(t2)
    assert rep1.records == 4 and rep1.alleles == 6 and rep1.kept == 6 and not rep1.skipped
    rows = t1.to_pylist()
    # sorted by chromosome (genome order), then position; three alleles from the multi-allelic record
    assert [r["chrom"] for r in rows] == ["chr1"] * 5 + ["chr2"]
    multi = [r for r in rows if r["pos"] == 99]
    assert len(multi) == 3 and {r["vcf_id"] for r in multi} == {"rsA"} and all(r["kind"] == "snv" for r in multi)
    dele = next(r for r in rows if r["pos"] == 199)
    # two bases deleted after the padding base, moved to the leftmost place that leaves the same ALT
    # sequence (brute force over every start)
    seq = genome.fetch("chr1", 0, 400).upper()
    s0, e0, _, _ = trim_alleles(199, r2, r2[0])
    want = next((s, s + 2) for s in range(s0 + 1) if seq[:s] + seq[s + 2 :] == seq[:s0] + seq[e0:])
    assert (dele["kind"], dele["var_start"], dele["var_end"]) == ("deletion", *want)
    ins = next(r for r in rows if r["pos"] == 299)
    assert ins["ref"] == ins["ref"].upper() and ins["alt"] == "TTT"
    assert ins["kind"] in ("insertion", "complex")
    assert dele["variant_id"] == f"chr1:200:{r2}:{r2[0]}" and dele["vcf_line"] == 5


def test_skipped_alleles_are_counted_with_lines(genome, tmp_path):
    b = _base(genome, "chr1", 10)
    body = (
        _rec("chr1", 10, b, f"<DEL>,{_other(b)},*")
        + _rec("chr1", 11, _base(genome, "chr1", 11), ".")
        + _rec("chr1", 12, _base(genome, "chr1", 12), "A[chr2:5[")
        + _rec("chr1", 13, _base(genome, "chr1", 13), _base(genome, "chr1", 13))
        + _rec("chr1", 14, _base(genome, "chr1", 14, 8), "A")  # longer than max_allele_length=5
        + _rec("chr1", 10, b, _other(b))  # duplicate of an allele of line 3
    )
    table, rep = read_vcf(_write(tmp_path, body), genome, max_allele_length=5)
    assert table.num_rows == 1
    assert rep.skipped == {
        "symbolic": 1,
        "spanning_deletion": 1,
        "no_alt": 1,
        "breakend": 1,
        "alt_equals_ref": 1,
        "too_long": 1,
        "duplicate": 1,
    }
    assert rep.skipped_lines["symbolic"] == [3] and rep.skipped_lines["duplicate"] == [8]
    text = "\n".join(rep.summary_lines())
    assert SKIP_REASONS["symbolic"] in text and "line 3" in text


@pytest.mark.parametrize(
    ("body", "match", "line"),
    [
        ("chr1\t10\t.\tA\n", "at least 5 tab-separated fields", 3),
        ("chr1 10 . A C\n", "space-separated", 3),
        ("chr1\tten\t.\tA\tC\n", "POS must be an integer", 3),
        ("chr1\t0\t.\tA\tC\n", "POS must be an integer >= 1, got 0", 3),
        ("chr1\t10\t.\tAR\tC\n", "REF must be A/C/G/T/N", 3),
        ("chr1\t10\t.\tA\tY\n", "ALT allele 'Y' is not", 3),
        ("chr1\t10\t.\tA\tC,,G\n", "empty ALT allele", 3),
        ("chr1\t10\t.\tA\t.,C\n", "cannot be one of several", 3),
        ("chr1\t10\t.\tA\t\n", "ALT is empty", 3),
    ],
)
def test_malformed_lines_raise_with_line_numbers(genome, tmp_path, body, match, line):
    with pytest.raises(InputError, match=match) as err:
        read_vcf(_write(tmp_path, body), genome)
    assert err.value.line == line and err.value.source.endswith("v.vcf")


def test_header_checks(genome, tmp_path):
    rec = _rec("chr1", 10, _base(genome, "chr1", 10), "A")
    with pytest.raises(InputError, match="before the '#CHROM") as err:
        read_vcf(_write(tmp_path, rec, head="##fileformat=VCFv4.2\n"), genome)
    assert err.value.line == 2
    with pytest.raises(InputError, match="no '#CHROM"):
        read_vcf(_write(tmp_path, "", head="##fileformat=VCFv4.2\n"), genome)
    with pytest.raises(InputError, match="not tab-separated"):
        read_vcf(_write(tmp_path, rec, head="#CHROM POS ID REF ALT\n"), genome)
    with pytest.raises(InputError, match="must start with #CHROM, POS, ID, REF, ALT"):
        read_vcf(_write(tmp_path, rec, head="#CHR\tSTART\tID\tREF\tALT\n"), genome)
    with pytest.raises(InputError, match="no variant records"):
        read_vcf(_write(tmp_path, ""), genome)
    # a missing ##fileformat line and a ##contig length that disagrees are warnings
    table, rep = read_vcf(
        _write(tmp_path, rec, head="##contig=<ID=chr1,length=999>\n#CHROM\tPOS\tID\tREF\tALT\n"), genome
    )
    assert table.num_rows == 1
    assert any("fileformat" in w for w in rep.warnings) and any("length 999" in w for w in rep.warnings)
    gz = tmp_path / "bad.vcf.gz"
    gz.write_bytes(gzip.compress((HEAD + rec * 50).encode())[:-30])
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_vcf(gz, genome)
    with pytest.raises(InputError, match="not found"):
        read_vcf(tmp_path / "missing.vcf", genome)


def test_ref_mismatch_error_and_skip(genome, tmp_path):
    good = _base(genome, "chr1", 500)
    bad = _other(_base(genome, "chr1", 600))
    body = (
        _rec("chr1", 500, good, _other(good))
        + _rec("chr1", 600, bad, _other(bad) if _other(bad) != bad else "G")
        + _rec("chr2", 799, _base(genome, "chr2", 799) + "AAA", "A")  # runs past the end (800 bp)
        + _rec("chr1", 700, "N" + _base(genome, "chr1", 701), "T")  # REF N matches any base
    )
    path = _write(tmp_path, body)
    with pytest.raises(InputError, match="2 of 4 record") as err:
        read_vcf(path, genome)
    assert err.value.line == 4 and err.value.field == "REF" and "--on-ref-mismatch skip" in str(err.value)
    table, rep = read_vcf(path, genome, on_ref_mismatch="skip")
    assert sorted(table.column("pos").to_pylist()) == [499, 699]
    assert rep.ref_mismatches == 2 and rep.skipped["ref_mismatch"] == 2
    assert [e["line"] for e in rep.mismatch_examples] == [4, 5]
    assert "past the end of chr2" in rep.mismatch_examples[1]["genome"]
    assert any("another assembly" in w for w in rep.warnings)  # 50% mismatched
    with pytest.raises(InputError, match="must be error or skip"):
        read_vcf(path, genome, on_ref_mismatch="ignore")


def test_chromosome_names(genome, tmp_path):
    b = _base(genome, "chr1", 10)
    with pytest.raises(InputError, match=r"which names it 'chr1'.*rename-chrs") as err:
        read_vcf(_write(tmp_path, _rec("1", 10, b, _other(b))), genome)
    assert err.value.line == 3 and err.value.field == "CHROM"
    with pytest.raises(InputError, match="no chromosome of the VCF is in the genome"):
        read_vcf(_write(tmp_path, _rec("scaffold_9", 10, "A", "C")), genome)
    # other chromosomes match: unknown ones are skipped with a warning
    body = _rec("chr1", 10, b, _other(b)) + _rec("chrUn_x", 10, "A", "C,G")
    table, rep = read_vcf(_write(tmp_path, body), genome)
    assert table.num_rows == 1 and rep.skipped == {"unknown_chrom": 2}
    assert any("chrUn_x" in w for w in rep.warnings)
