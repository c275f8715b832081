"""Train/validation/test splits by chromosome (:func:`resolve_splits`)."""

from __future__ import annotations

from collections.abc import Sequence

from scanner.errors import InputError
from scanner.genome import chrom_mismatch_message

#: Default validation / test chromosomes (as in the reference).
DEFAULT_VAL = "chr8"
DEFAULT_TEST = "chr9"


# ---- splits ---------------------------------------------------------------------------------------
_ROMAN = {"8": "VIII", "9": "IX"}
_MITO = {"chrm", "m", "mt", "chrmt", "mito", "mitochondrion"}


def _norm(name: str) -> str:
    n = name.lower()
    return n[3:] if n.startswith("chr") else n


def _by_number(chroms: Sequence[str], number: str) -> str | None:
    want = {number, _ROMAN[number].lower()}
    hits = [c for c in chroms if _norm(c) in want]
    return hits[0] if hits else None


def resolve_splits(
    chroms: Sequence[str], val: Sequence[str] | None = None, test: Sequence[str] | None = None
) -> dict[str, str]:
    """Assign every chromosome to ``"train"``, ``"val"`` or ``"test"``.

    Rule when ``val`` / ``test`` are not given (deterministic, documented in ``docs/labels.md``):
    validation is the chromosome named ``chr8`` (else, ignoring a ``chr`` prefix and case, ``8`` or
    ``VIII``), test likewise ``chr9`` / ``9`` / ``IX``. When no such name exists, the chromosomes in
    genome order, without mitochondrial ones (``chrM``, ``MT``, ...) and without names containing
    ``_``, are the candidates: validation takes candidate number ``(n - 1) // 2`` (0-based), test the
    next one not already used.

    Parameters
    ----------
    chroms : sequence of str
        Chromosome names in genome (FASTA) order.
    val, test : sequence of str, optional
        Explicit validation / test chromosomes.

    Returns
    -------
    dict
        ``{chrom: split}`` for every chromosome in ``chroms``.

    Raises
    ------
    InputError
        A named chromosome is not in the genome, one is in both sets, or the default rule needs
        at least 3 candidate chromosomes and the genome has fewer.
    """
    chroms = list(chroms)
    lengths = dict.fromkeys(chroms, 0)
    for flag, names in (("--val-chroms", val), ("--test-chroms", test)):
        for c in names or ():
            if c not in lengths:
                raise InputError(chrom_mismatch_message(c, lengths), field=flag)
    candidates = [c for c in chroms if "_" not in c and c.lower() not in _MITO]

    def fallback(used: set[str]) -> str:
        if len(candidates) < 3:
            raise InputError(
                f"cannot choose validation/test chromosomes by default: the genome has {len(candidates)} "
                "usable chromosome(s); give --val-chroms and --test-chroms",
                field="--val-chroms",
            )
        rest = [c for c in candidates[(len(candidates) - 1) // 2 :] if c not in used]
        return rest[0]

    if val is None:
        v = DEFAULT_VAL if DEFAULT_VAL in lengths else _by_number(chroms, "8")
        val = [v or fallback(set(test or ()))]
    if test is None:
        t = DEFAULT_TEST if DEFAULT_TEST in lengths else _by_number(chroms, "9")
        if t is None or t in val:
            t = fallback(set(val))
        test = [t]
    both = sorted(set(val) & set(test))
    if both:
        raise InputError(f"chromosome(s) {', '.join(both)} given as both validation and test", field="--test-chroms")
    out = dict.fromkeys(chroms, "train")
    out.update(dict.fromkeys(val, "val"))
    out.update(dict.fromkeys(test, "test"))
    return out
