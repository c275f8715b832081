"""Variant effects on TF binding under every training regime (``scanner variants``).

* :func:`score_vcf`: each allele of a VCF against every motif instance whose model window holds it,
  under every (TF, regime) model: REF/ALT logits and probabilities, ``delta_logit``, and whether the
  allele makes or breaks the motif hit itself; :mod:`scanner.variants.vcf` reads and checks the VCF.
* :func:`score_sequences`: the same for ref/alt sequence pairs from a TSV.
* :func:`compare_regimes`: the effects side by side per regime, rank correlations, sign/rank flips.

See ``docs/variants.md``.
"""

from scanner.variants.compare import compare_regimes, spearman
from scanner.variants.items import VariantConfig, VariantSummary
from scanner.variants.score import score_vcf
from scanner.variants.sequences import read_sequences, score_sequences
from scanner.variants.vcf import VcfReport, read_vcf

__all__ = [
    "VariantConfig",
    "VariantSummary",
    "VcfReport",
    "compare_regimes",
    "read_sequences",
    "read_vcf",
    "score_sequences",
    "score_vcf",
    "spearman",
]
