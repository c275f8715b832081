"""Shared pieces of the variants stage: its settings, the unit of work, the summary, model columns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from scanner.errors import InputError
from scanner.predict.apply import ModelRef, sigmoid
from scanner.store import part_name

SCORES_DIR = part_name("variants", "scores")


@dataclass(frozen=True)
class VariantConfig:
    """Settings of ``scanner variants``; each field is a flag.

    Parameters
    ----------
    batch_size : int
        Windows per forward pass. Default 256.
    rc_average : bool
        Average each window's logit with its reverse complement's. Default False.
    on_ref_mismatch : {"error", "skip"}
        What a REF allele that differs from the genome does. Default ``"error"``.
    max_allele_length : int
        Longer REF/ALT alleles are skipped (counted). Default 50; must stay below ``W / 2 - 1``.
    created_hits : bool
        Also score sites that only the ALT allele has (``inst_source == "created"``). Default True.
    chunk_variants : int
        Alleles per work item (the unit Ray schedules and retries). Default 2048.
    actors : int, optional
        Actor-pool size. Default: GPUs in the cluster when it has any, else its CPUs.
    cpus_per_actor : float
        CPUs reserved per CPU actor. Default 0.5.
    top_fraction : float
        Share of alleles (by ``abs_delta``) that counts as "top" in the regime comparison. Default 0.1.
    min_delta : float
        A sign flip needs ``|delta_logit| >= min_delta`` under both regimes. Default 0.1.
    features : str, optional
        ``OUT/features`` of ``scanner features``: the comparison then names, for each disagreeing
        allele, the learned pattern it falls in under each regime (VCF mode). Default None.
    """

    batch_size: int = 256
    rc_average: bool = False
    on_ref_mismatch: str = "error"
    max_allele_length: int = 50
    created_hits: bool = True
    chunk_variants: int = 2048
    actors: int | None = None
    cpus_per_actor: float = 0.5
    top_fraction: float = 0.1
    min_delta: float = 0.1
    features: str | None = None

    def validate(self) -> VariantConfig:
        """Return self, or raise :class:`InputError` naming the bad flag."""
        for name in ("batch_size", "chunk_variants", "max_allele_length"):
            if getattr(self, name) < 1:
                raise InputError(f"must be >= 1, got {getattr(self, name)}", field="--" + name.replace("_", "-"))
        if self.on_ref_mismatch not in ("error", "skip"):
            raise InputError(f"must be error or skip, got {self.on_ref_mismatch!r}", field="--on-ref-mismatch")
        if self.actors is not None and self.actors < 1:
            raise InputError(f"must be >= 1, got {self.actors}", field="--actors")
        if not self.cpus_per_actor > 0:
            raise InputError(f"must be > 0, got {self.cpus_per_actor}", field="--cpus-per-actor")
        if not 0 < self.top_fraction < 1:
            raise InputError(f"must be in (0, 1), got {self.top_fraction}", field="--top-fraction")
        if self.min_delta < 0:
            raise InputError(f"must be >= 0, got {self.min_delta}", field="--min-delta")
        if self.features is not None:
            from scanner.features.variants import check_features_dir

            check_features_dir(self.features)
        return self

    @property
    def margin(self) -> int:
        """Bases fetched beyond each window side to build ALT windows."""
        return self.max_allele_length + 1


@dataclass(frozen=True)
class VariantItem:
    """One unit of work.

    ``kind == "vcf"``: ``variants`` holds alleles of one chromosome (:data:`~scanner.variants.vcf.VCF_SCHEMA`
    plus ``nearest``, the gap to the nearest instance, -1 for none) and ``pairs`` their instance pairs
    (``var`` index into ``variants``, ``inst_start``, ``inst_end``, ``inst_strand``, ``motif_id``).
    ``kind == "seq"``: ``variants`` holds TSV rows (``id``, ``line``, ``ref``, ``alt``).
    """

    kind: str
    tf: str
    chrom: str
    seq_len: int
    models: tuple[ModelRef, ...]
    variants: pa.Table
    pairs: pa.Table | None
    out_file: str


@dataclass
class VariantSummary:
    """What a run wrote."""

    out: str
    mode: str
    alleles: int
    rows: int
    files: int
    tfs: list[str]
    models: tuple[ModelRef, ...]
    report: dict | None = None
    comparison: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def model_columns(z_ref: np.ndarray, z_alt: np.ndarray, regime: str) -> dict[str, pa.Array]:
    """The model columns of the output (``regime`` .. ``abs_delta``) from REF and ALT logits."""
    n = len(z_ref)
    d = (z_alt.astype(np.float32) - z_ref.astype(np.float32)).astype(np.float32)
    return {
        "regime": pa.array([regime] * n, pa.string()),
        "logit_ref": pa.array(z_ref.astype(np.float32), pa.float32()),
        "logit_alt": pa.array(z_alt.astype(np.float32), pa.float32()),
        "prob_ref": pa.array(sigmoid(z_ref), pa.float32()),
        "prob_alt": pa.array(sigmoid(z_alt), pa.float32()),
        "delta_logit": pa.array(d, pa.float32()),
        "abs_delta": pa.array(np.abs(d), pa.float32()),
    }
