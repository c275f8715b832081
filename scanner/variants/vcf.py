"""Read a VCF (plain or gzip/bgzip), split multi-allelic records, and check every REF against the genome.

What happens to each kind of line (``docs/variants.md`` has the table):

* **errors** (:class:`InputError` naming the file and line): a record before the ``#CHROM`` header, a
  header whose first columns are not ``CHROM POS ID REF ALT``, fewer than 5 tab-separated fields, a
  POS that is not an integer >= 1, a REF or ALT with letters other than A/C/G/T/N, an empty allele,
  a file holding no record; a chromosome the genome names with(out) a ``chr`` prefix (the message
  says which fix applies); records on chromosomes of which none is in the genome; and, with
  ``on_ref_mismatch="error"`` (the default), any REF that differs from the genome (all are counted
  first; the message gives the count and the first ones).
* **skipped and counted** (a warning with the first line numbers; each reason in
  :data:`SKIP_REASONS`): symbolic alleles (``<DEL>``, ``<NON_REF>``...), breakends, ``*``, a missing
  ALT (``.``), ALT equal to REF, alleles longer than ``max_allele_length``, records on a chromosome
  the genome lacks (e.g. ``chrM`` or unplaced contigs, when other chromosomes match), duplicates of
  an earlier (CHROM, POS, REF, ALT), and, with ``on_ref_mismatch="skip"``, REF mismatches.

REF matching is case-insensitive; a REF ``N`` matches any genome base, a genome ``N`` matches only
``N``. A REF running past the chromosome end is a mismatch. ``##contig`` lengths that differ from the
genome's are reported as a warning (a sign of another assembly).
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa

from scanner.errors import InputError
from scanner.genome import Genome, chrom_mismatch_message
from scanner.schemas import VARIANTS
from scanner.variants.alleles import left_align, trim_alleles

#: Why an allele was skipped, as reported.
SKIP_REASONS: dict[str, str] = {
    "symbolic": "symbolic ALT allele (<DEL>, <INS>, <NON_REF>, ...): not sequence-resolved",
    "breakend": "breakend ALT allele (structural variant)",
    "spanning_deletion": "'*' ALT (the allele is removed by an overlapping deletion)",
    "no_alt": "no ALT allele ('.')",
    "alt_equals_ref": "ALT equal to REF",
    "too_long": "REF or ALT longer than --max-allele-length",
    "unknown_chrom": "chromosome not in the genome",
    "ref_mismatch": "REF differs from the genome",
    "duplicate": "same CHROM, POS, REF and ALT as an earlier record",
}
#: ``on_ref_mismatch`` values.
REF_MISMATCH_POLICIES = ("error", "skip")
#: Examples kept per reason in the report.
MAX_EXAMPLES = 10
#: Largest genome span fetched at once when checking REF alleles (bp).
_SPAN = 1 << 20
_HEADER = ("CHROM", "POS", "ID", "REF", "ALT")
_BASES = re.compile(r"[ACGTNacgtn]+")
_CONTIG = re.compile(r"^##contig=<(.*)>\s*$")

#: Columns of the table :func:`read_vcf` returns (a prefix of :data:`scanner.schemas.VARIANTS`).
VCF_SCHEMA = pa.schema([VARIANTS.field(n) for n in VARIANTS.names[: VARIANTS.names.index("var_end") + 1]])


@dataclass
class VcfReport:
    """What reading one VCF found: counts, skipped alleles by reason, REF mismatches, warnings."""

    path: str
    records: int = 0
    alleles: int = 0
    kept: int = 0
    ref_mismatches: int = 0
    mismatch_examples: list[dict] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_lines: dict[str, list[int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def skip(self, reason: str, line: int, n: int = 1) -> None:
        """Count ``n`` alleles of ``line`` skipped for ``reason`` (a key of :data:`SKIP_REASONS`)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + n
        lines = self.skipped_lines.setdefault(reason, [])
        if len(lines) < MAX_EXAMPLES and (not lines or lines[-1] != line):
            lines.append(line)

    def summary_lines(self) -> list[str]:
        """Human-readable lines: totals, then one per skip reason and warning."""
        name = Path(self.path).name
        out = [
            f"{name}: {self.records} record(s), {self.alleles} ALT allele(s), {self.kept} kept for scoring, "
            f"{self.ref_mismatches} REF mismatch(es)"
        ]
        for reason, n in sorted(self.skipped.items()):
            lines = ", ".join(map(str, self.skipped_lines.get(reason, [])))
            out.append(
                f"  skipped {n} allele(s): {SKIP_REASONS[reason]} (line {lines}{', ...' if n > MAX_EXAMPLES else ''})"
            )
        for ex in self.mismatch_examples[:3]:
            out.append(
                f"  REF mismatch at line {ex['line']}: {ex['chrom']}:{ex['pos']} REF {ex['ref']}, genome {ex['genome']}"
            )
        out += [f"  warning: {w}" for w in self.warnings]
        return out

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class _Record:
    line: int
    chrom: str
    pos: int  # 0-based
    vcf_id: str | None
    ref: str
    alts: list[tuple[int, str]]  # (1-based allele index, upper-case ALT) still to score


def open_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its end) of a plain or gzip/bgzip text file."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    raw = gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")
    lineno = 0
    try:
        with io.TextIOWrapper(raw, encoding="utf-8", newline=None) as text:
            for lineno, line in enumerate(text, 1):
                yield lineno, line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(
            f"cannot read the compressed VCF (truncated or corrupt?): {exc}", source=path, line=lineno + 1
        ) from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"not a text VCF (undecodable bytes: {exc.reason})", source=path, line=lineno + 1) from exc


def _check_header(fields: list[str], path: Path, line: int) -> None:
    names = [fields[0].lstrip("#"), *fields[1:]]
    if tuple(names[:5]) == _HEADER:
        return
    if tuple(" ".join(fields).lstrip("#").split()[:5]) == _HEADER:
        raise InputError(
            "the #CHROM header line is not tab-separated (VCF columns are separated by tabs)",
            source=path,
            line=line,
        )
    raise InputError(
        f"the header line must start with #CHROM, POS, ID, REF, ALT (tab-separated); got {' '.join(names[:5])!r}",
        source=path,
        line=line,
    )


def _parse_record(fields: list[str], path: Path, line: int, report: VcfReport, max_len: int) -> _Record:
    if len(fields) < 5:
        hint = (
            " (is the file space-separated? VCF columns are separated by tabs)" if len(fields[0].split()) >= 5 else ""
        )
        raise InputError(
            f"expected at least 5 tab-separated fields (CHROM POS ID REF ALT), got {len(fields)}{hint}",
            source=path,
            line=line,
        )
    chrom, pos_text, vcf_id, ref, alt_text = fields[:5]
    if not chrom or any(c.isspace() for c in chrom):
        raise InputError(f"CHROM must be a name without spaces, got {chrom!r}", source=path, line=line, field="CHROM")
    try:
        pos = int(pos_text)
    except ValueError:
        raise InputError(
            f"POS must be an integer >= 1, got {pos_text!r}", source=path, line=line, field="POS"
        ) from None
    if pos < 1:
        raise InputError(f"POS must be an integer >= 1, got {pos}", source=path, line=line, field="POS")
    if not _BASES.fullmatch(ref):
        raise InputError(f"REF must be A/C/G/T/N letters, got {ref!r}", source=path, line=line, field="REF")
    ref = ref.upper()
    if not alt_text:
        raise InputError("ALT is empty (use '.' for no ALT allele)", source=path, line=line, field="ALT")
    alleles = alt_text.split(",")
    report.alleles += len(alleles)
    kept: list[tuple[int, str]] = []
    for k, alt in enumerate(alleles, 1):
        if alt == ".":
            if len(alleles) > 1:
                raise InputError(
                    f"'.' (no ALT) cannot be one of several alleles: {alt_text!r}",
                    source=path,
                    line=line,
                    field="ALT",
                )
            report.skip("no_alt", line)
        elif alt == "*":
            report.skip("spanning_deletion", line)
        elif alt.startswith("<") and alt.endswith(">"):
            report.skip("symbolic", line)
        elif "[" in alt or "]" in alt or (len(alt) > 1 and (alt.startswith(".") or alt.endswith("."))):
            report.skip("breakend", line)
        elif not alt:
            raise InputError(f"empty ALT allele in {alt_text!r}", source=path, line=line, field="ALT")
        elif not _BASES.fullmatch(alt):
            raise InputError(
                f"ALT allele {alt!r} is not A/C/G/T/N letters, a symbolic allele <...>, a breakend, '*' or '.'",
                source=path,
                line=line,
                field="ALT",
            )
        elif alt.upper() == ref:
            report.skip("alt_equals_ref", line)
        elif len(ref) > max_len or len(alt) > max_len:
            report.skip("too_long", line)
        else:
            kept.append((k, alt.upper()))
    return _Record(line, chrom, pos - 1, None if vcf_id in (".", "") else vcf_id, ref, kept)


def _contig_lengths(line: str) -> tuple[str, int] | None:
    m = _CONTIG.match(line)
    if not m:
        return None
    parts = dict(p.split("=", 1) for p in re.split(r",(?=[A-Za-z_]+=)", m.group(1)) if "=" in p)
    try:
        return parts["ID"], int(parts["length"])
    except (KeyError, ValueError):
        return None


def _check_chroms(records: list[_Record], genome: Genome, path: Path, report: VcfReport) -> list[_Record]:
    unknown: dict[str, int] = {}
    for r in records:
        if r.chrom not in genome.lengths and r.chrom not in unknown:
            unknown[r.chrom] = r.line
    if not unknown:
        return records
    for chrom, line in unknown.items():
        renamed = _renamed(chrom, genome.lengths)
        if renamed is not None:
            raise InputError(
                f"chromosome '{chrom}' is not in the genome, which names it '{renamed}'. The VCF and "
                "the genome name chromosomes differently; rename the VCF's chromosomes "
                "(e.g. `bcftools annotate --rename-chrs map.txt`, map lines 'OLD NEW') or use a genome "
                "with the VCF's names",
                source=path,
                line=line,
                field="CHROM",
            )
    if len(unknown) == len({r.chrom for r in records}):
        raise InputError(
            f"no chromosome of the VCF is in the genome: VCF has {', '.join(list(unknown)[:8])}; "
            f"{chrom_mismatch_message(next(iter(unknown)), genome.lengths)}. Is this the VCF's assembly?",
            source=path,
            line=next(iter(unknown.values())),
            field="CHROM",
        )
    kept = []
    for r in records:
        if r.chrom in unknown:
            if r.alts:
                report.skip("unknown_chrom", r.line, len(r.alts))
        else:
            kept.append(r)
    report.warnings.append(f"chromosome(s) not in the genome, their records skipped: {', '.join(sorted(unknown))}")
    return kept


def _renamed(chrom: str, names: dict[str, int]) -> str | None:
    """The genome's name for ``chrom`` under the usual conventions (``chr`` prefix, ``MT``/``chrM``)."""
    candidates = ["chr" + chrom]
    if chrom.startswith("chr"):
        candidates.append(chrom[3:])
    if chrom in ("MT", "M", "chrMT"):
        candidates += ["chrM", "MT"]
    if chrom == "chrM":
        candidates.append("MT")
    return next((c for c in candidates if c in names and c != chrom), None)


def _ref_matches(ref: str, seq: str) -> bool:
    if ref == seq:
        return True
    if len(ref) != len(seq):
        return False
    return all(r == "N" or r == g for r, g in zip(ref, seq, strict=True))


def _check_refs(records: list[_Record], genome: Genome, report: VcfReport) -> list[_Record]:
    """Mark REF mismatches (in the report); return the records whose REF matches."""
    bad: list[_Record] = []
    by_chrom: dict[str, list[_Record]] = {}
    for r in records:
        by_chrom.setdefault(r.chrom, []).append(r)
    ok_ids: set[int] = set()
    for chrom, recs in by_chrom.items():
        recs.sort(key=lambda r: r.pos)
        length = genome.lengths[chrom]
        i = 0
        while i < len(recs):
            lo = recs[i].pos
            j, hi = i, lo
            while j < len(recs) and recs[j].pos + len(recs[j].ref) - lo <= _SPAN:
                hi = max(hi, recs[j].pos + len(recs[j].ref))
                j += 1
            j = max(j, i + 1)
            hi = max(hi, recs[i].pos + len(recs[i].ref))
            span = genome.fetch(chrom, lo, hi).upper()
            for r in recs[i:j]:
                seq = span[r.pos - lo : r.pos - lo + len(r.ref)]
                if r.pos + len(r.ref) > length:
                    genome_text = f"(past the end of {chrom}, length {length})"
                elif _ref_matches(r.ref, seq):
                    ok_ids.add(id(r))
                    continue
                else:
                    genome_text = seq
                bad.append(r)
                if len(report.mismatch_examples) < MAX_EXAMPLES:
                    report.mismatch_examples.append(
                        {
                            "line": r.line,
                            "chrom": chrom,
                            "pos": r.pos + 1,
                            "ref": r.ref,
                            "genome": genome_text,
                        }
                    )
            i = j
    report.ref_mismatches = len(bad)
    for r in bad:
        if r.alts:
            report.skip("ref_mismatch", r.line, len(r.alts))
    report.mismatch_examples.sort(key=lambda d: d["line"])
    return [r for r in records if id(r) in ok_ids]


def read_vcf(
    path: str | Path,
    genome: Genome,
    *,
    on_ref_mismatch: str = "error",
    max_allele_length: int = 50,
) -> tuple[pa.Table, VcfReport]:
    """Read, split and validate a VCF against a genome.

    Parameters
    ----------
    path : str or Path
        VCF, plain text or gzip/bgzip (detected from the first bytes, not the name).
    genome : Genome
        The FASTA the REF alleles must match.
    on_ref_mismatch : {"error", "skip"}, optional
        Fail on REF mismatches (default), or skip them (counted in the report, never scored).
    max_allele_length : int, optional
        Alleles with a longer REF or ALT are skipped. Default 50.

    Returns
    -------
    (pyarrow.Table, VcfReport)
        One row per kept ALT allele in :data:`VCF_SCHEMA` (a prefix of ``VARIANTS``), sorted by
        chromosome (genome order), ``var_start``, ``pos``, ``ref``, ``alt``; and the report.

    Raises
    ------
    InputError
        See the module docstring for the cases; the message names the file and line.
    """
    path = Path(path)
    if on_ref_mismatch not in REF_MISMATCH_POLICIES:
        raise InputError(f"must be error or skip, got {on_ref_mismatch!r}", field="--on-ref-mismatch")
    if not path.is_file():
        raise InputError("VCF file not found", source=path)
    report = VcfReport(str(path))
    records: list[_Record] = []
    header_line = None
    contigs: dict[str, int] = {}
    first = True
    for lineno, line in open_lines(path):
        if first:
            first = False
            if not line.startswith("##fileformat=VCF"):
                report.warnings.append("the first line is not '##fileformat=VCFv4.x'")
        if not line.strip():
            continue
        if line.startswith("##"):
            c = _contig_lengths(line)
            if c:
                contigs[c[0]] = c[1]
            continue
        if line.startswith("#"):
            if header_line is None:
                _check_header(line.split("\t"), path, lineno)
                header_line = lineno
            continue
        if header_line is None:
            raise InputError(
                "a record comes before the '#CHROM POS ID REF ALT ...' header line (is this a VCF?)",
                source=path,
                line=lineno,
            )
        report.records += 1
        records.append(_parse_record(line.split("\t"), path, lineno, report, max_allele_length))
    if header_line is None:
        raise InputError("no '#CHROM POS ID REF ALT ...' header line (is this a VCF?)", source=path)
    if not records:
        raise InputError("the VCF holds no variant records", source=path)
    for name, n in contigs.items():
        if name in genome.lengths and genome.lengths[name] != n:
            report.warnings.append(
                f"##contig {name} has length {n} but the genome's {name} has {genome.lengths[name]} (another assembly?)"
            )
    records = _check_chroms(records, genome, path, report)
    records = _check_refs(records, genome, report)
    if report.ref_mismatches:
        total = report.records
        if on_ref_mismatch == "error":
            ex = "; ".join(
                f"line {e['line']}: {e['chrom']}:{e['pos']} REF {e['ref']}, genome {e['genome']}"
                for e in report.mismatch_examples[:3]
            )
            raise InputError(
                f"{report.ref_mismatches} of {total} record(s) have a REF allele that differs from "
                f"the genome {genome.path.name} ({ex}). Check that the VCF is on the genome's assembly; pass "
                "--on-ref-mismatch skip to drop these records (they are never scored)",
                source=path,
                line=report.mismatch_examples[0]["line"],
                field="REF",
            )
        if report.ref_mismatches > 0.1 * total:
            report.warnings.append(
                f"{report.ref_mismatches} of {total} records "
                f"({100 * report.ref_mismatches / total:.0f}%) do not match the genome "
                f"{genome.path.name}: is the VCF on another assembly?"
            )
    return _to_table(records, genome, report), report


def _to_table(records: list[_Record], genome: Genome, report: VcfReport) -> pa.Table:
    cols: dict[str, list] = {n: [] for n in VCF_SCHEMA.names}
    seen: set[tuple[str, int, str, str]] = set()
    for r in sorted(records, key=lambda r: r.line):
        for _k, alt in r.alts:
            key = (r.chrom, r.pos, r.ref, alt)
            if key in seen:
                report.skip("duplicate", r.line)
                continue
            seen.add(key)
            start, end, ins, kind = trim_alleles(r.pos, r.ref, alt)
            if kind in ("insertion", "deletion"):
                start, end, _ins = left_align(start, end, ins, partial(genome.fetch, r.chrom))
            cols["chrom"].append(r.chrom)
            cols["pos"].append(r.pos)
            cols["ref"].append(r.ref)
            cols["alt"].append(alt)
            cols["variant_id"].append(f"{r.chrom}:{r.pos + 1}:{r.ref}:{alt}")
            cols["vcf_id"].append(r.vcf_id)
            cols["vcf_line"].append(r.line)
            cols["kind"].append(kind)
            cols["var_start"].append(start)
            cols["var_end"].append(end)
    report.kept = len(cols["chrom"])
    table = pa.table(cols, schema=VCF_SCHEMA)
    if not table.num_rows:
        return table
    order_of = {c: i for i, c in enumerate(genome.chroms)}
    chrom_rank = np.array([order_of[c] for c in cols["chrom"]], dtype=np.int64)
    idx = np.lexsort(
        (
            np.array(cols["alt"], dtype=object).astype(str),
            np.array(cols["ref"], dtype=object).astype(str),
            np.array(cols["pos"], dtype=np.int64),
            np.array(cols["var_start"], dtype=np.int64),
            chrom_rank,
        )
    )
    return table.take(pa.array(idx, pa.int64()))
