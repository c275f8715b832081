"""The ``scanner variants`` stage for a VCF: every allele against every instance window that holds it.

Input: a VCF, ``OUT/instances`` (INSTANCES, ``tf=/chrom=``; its ``_scan.json`` gives the genome, the
motifs and the p-value settings) and ``OUT/models/tf=/regime=/`` checkpoints. Output under ``OUT/variants``::

    scores/tf=<tf>/chrom=<chrom>/part-<k>.parquet   VARIANTS: one row per (allele, instance, model)
    comparison.parquet, correlations.parquet         the regime comparison (scanner.variants.compare)
    _variants.json                                   settings, the VCF report, counts

Work is cut into items: up to ``chunk_variants`` alleles of one (TF, chromosome, window width) with
their (allele, instance) pairs, found on the driver (:func:`plan_vcf_items`). :func:`score_vcf_item`
is the pure kernel: it adds the sites the ALT allele creates, cuts the REF windows (once per site) and
the ALT windows (once per pair), computes site p-values, runs every model of the TF in
``batch_size`` batches and returns the rows. :class:`VariantScorer` is the callable class Ray Data
runs it in (models loaded once per actor, GPU actors when the cluster has GPUs, fractional-CPU actors
otherwise); ``use_ray=False`` runs the same class in this process. Files are written to a staging
directory that replaces ``scores/`` only when every item succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scanner.errors import InputError
from scanner.genome import open_genome
from scanner.io import parquet_files, partition_dir
from scanner.models.checkpoint import weights_path
from scanner.predict.apply import ModelRef, discover_models, resolve_genome
from scanner.store import RunDir, file_fingerprint, hash_json, tree_signature
from scanner.variants.alleles import (
    nearest_gap,
    pair_windows,
)
from scanner.variants.items import SCORES_DIR, VariantConfig, VariantItem, VariantSummary
from scanner.variants.runner import check_out, prepared_by_tf, run_items, staged_items
from scanner.variants.vcf_kernel import score_vcf_item  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from scanner.progress import ProgressFn

# ---- the kernel ------------------------------------------------------------------------------------


# ---- planning --------------------------------------------------------------------------------------


_SITES = pa.schema(
    [
        pa.field("start", pa.int64()),
        pa.field("end", pa.int64()),
        pa.field("strand", pa.string()),
        pa.field("motif_id", pa.string()),
    ]
)


def read_sites(instances_root: Path, tf: str, chrom: str) -> pa.Table:
    """``start, end, strand, motif_id`` of the TF's instances on ``chrom`` (empty when none).

    Raises
    ------
    InputError
        If a file lacks one of these columns or they do not cast to the INSTANCES types.
    """
    d = partition_dir(instances_root, [("tf", tf), ("chrom", chrom)])
    tables = []
    for f in parquet_files(d) if d.is_dir() else []:
        names = pq.ParquetFile(f).schema_arrow.names
        missing = [c for c in _SITES.names if c not in names]
        if missing:
            raise InputError(f"column(s) {', '.join(missing)} missing (expected the INSTANCES schema)", source=f)
        try:
            tables.append(pq.read_table(f, columns=_SITES.names).cast(_SITES))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"columns do not fit the INSTANCES schema: {exc}", source=f) from exc
    return pa.concat_tables(tables) if tables else _SITES.empty_table()


def plan_vcf_items(
    variants: pa.Table,
    instances_root: str | Path,
    models: Sequence[ModelRef],
    out_root: str | Path,
    config: VariantConfig,
) -> list[VariantItem]:
    """Pair alleles with the instance windows that hold them and cut the work into items.

    Parameters
    ----------
    variants : pyarrow.Table
        From :func:`scanner.variants.vcf.read_vcf` (sorted by chromosome and ``var_start``).
    instances_root : path
    models : sequence of ModelRef
    out_root : path
        Where the score files go (``out_root/tf=/chrom=/part-<k>.parquet``).
    config : VariantConfig

    Returns
    -------
    list of VariantItem
        For each TF, chromosome and window width: alleles in chunks of ``chunk_variants``.
    """
    root = Path(instances_root)
    chroms = variants.column("chrom").to_numpy(zero_copy_only=False)
    items: list[VariantItem] = []
    by_tf: dict[str, list[ModelRef]] = {}
    for ref in models:
        by_tf.setdefault(ref.tf, []).append(ref)
    for tf, refs in by_tf.items():
        widths = sorted({r.seq_len for r in refs})
        for chrom in dict.fromkeys(chroms.tolist()):
            idx = np.flatnonzero(chroms == chrom)
            sub = variants.take(pa.array(idx, pa.int64()))
            vs, ve = sub.column("var_start").to_numpy(), sub.column("var_end").to_numpy()
            sites = read_sites(root, tf, chrom)
            s, e = sites.column("start").to_numpy(), sites.column("end").to_numpy()
            sub = sub.append_column("nearest", pa.array(nearest_gap(vs, ve, s, e), pa.int64()))
            k = 0
            for width in widths:
                wrefs = tuple(r for r in refs if r.seq_len == width)
                ws = (s + e) // 2 - width // 2
                order = np.argsort(ws, kind="stable")
                vi, wi = pair_windows(vs, ve, ws[order], width)
                site_rows = sites.take(pa.array(order[wi], pa.int64()))
                for lo in range(0, len(idx), config.chunk_variants):
                    hi = min(len(idx), lo + config.chunk_variants)
                    a, b = np.searchsorted(vi, [lo, hi])
                    pairs = site_rows.slice(a, b - a)
                    pairs = pa.table(
                        {
                            "var": pa.array(vi[a:b] - lo, pa.int64()),
                            "inst_start": pairs.column("start"),
                            "inst_end": pairs.column("end"),
                            "inst_strand": pairs.column("strand"),
                            "motif_id": pairs.column("motif_id"),
                        }
                    )
                    out = partition_dir(out_root, [("tf", tf), ("chrom", chrom)]) / f"part-{k:05d}.parquet"
                    items.append(VariantItem("vcf", tf, chrom, width, wrefs, sub.slice(lo, hi - lo), pairs, str(out)))
                    k += 1
    return items


def score_vcf(
    vcf: str | Path,
    models_root: str | Path,
    out_root: str | Path,
    config: VariantConfig = VariantConfig(),
    *,
    instances: str | Path | None = None,
    genome: str | Path | None = None,
    tfs: Sequence[str] | None = None,
    regimes: Sequence[str] | None = None,
    use_ray: bool = True,
    address: str | None = None,
    log: Callable[[str], None] | None = None,
    progress: ProgressFn | None = None,
) -> VariantSummary:
    """Score every allele of a VCF against the instance windows that hold it, under every model.

    Parameters
    ----------
    vcf : path
        VCF, plain or gzip/bgzip.
    models_root : path
        ``OUT/models``.
    out_root : path
        ``OUT/variants``; must not overlap the inputs.
    config : VariantConfig, optional
    instances : path, optional
        ``OUT/instances``. Default: ``instances`` beside ``models_root``.
    genome : path, optional
        FASTA. Default: the genome recorded in ``instances/_scan.json``.
    tfs, regimes : sequence of str, optional
        Restrict to these model TFs / regimes.
    use_ray : bool, optional
        Ray Data actors (default), or this process (same results).
    address : str, optional
        Ray address; None starts a local Ray when none is running.
    log : callable, optional
        Receives progress and report lines.
    progress : callable, optional
        ``progress(done, total)`` in alleles (or sequence pairs) scored, as their work items end.

    Returns
    -------
    VariantSummary

    Raises
    ------
    InputError
        Bad VCF (see :mod:`scanner.variants.vcf`), missing models, instances, scan metadata or genome,
        a TF the scan has no motif for, alleles too long for the window.
    """
    from scanner.scan import load_scan_meta
    from scanner.variants.compare import write_comparison
    from scanner.variants.vcf import read_vcf

    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    config.validate()
    models_root, out_root = Path(models_root), Path(out_root)
    inst = (
        RunDir.of("instances", instances)
        if instances is not None
        else RunDir.of("models", models_root).run.dataset("instances")
    )
    instances_root = inst.root
    check_out(out_root, models_root, instances_root)
    models = discover_models(models_root, tfs, regimes)
    meta = load_scan_meta(instances_root)
    warnings = [] if meta.complete else [f"the scan in {instances_root} did not finish: instances may be missing"]
    genome_path = resolve_genome(instances_root, genome)
    for w in sorted({m.seq_len for m in models}):
        if 2 * config.margin >= w:
            raise InputError(
                f"--max-allele-length {config.max_allele_length} is too long for {w}-bp windows "
                f"(must be below {w // 2 - 1})",
                field="--max-allele-length",
            )
    model_tfs = list(dict.fromkeys(m.tf for m in models))
    prepared = prepared_by_tf(meta, model_tfs, inst.record_path)
    warnings += [
        f"no instances of TF {tf} under {instances_root}" for tf in model_tfs if not inst.partition(tf).is_dir()
    ]
    g = open_genome(genome_path)
    try:
        variants, report = read_vcf(
            vcf, g, on_ref_mismatch=config.on_ref_mismatch, max_allele_length=config.max_allele_length
        )
    finally:
        g.close()
    for line in report.summary_lines():
        say(line)
    for w in warnings:
        say(f"warning: {w}")
    items = plan_vcf_items(variants, instances_root, models, out_root / SCORES_DIR, config)
    say(f"{variants.num_rows} allele(s), {len(model_tfs)} TF(s), {len(models)} model(s), {len(items)} item(s)")
    fingerprint = hash_json(
        {
            "vcf": file_fingerprint(vcf),
            "instances": tree_signature(instances_root),
            "genome": str(Path(genome_path).resolve()),
            "models": [[m.tf, m.regime, file_fingerprint(weights_path(m.path))] for m in models],
            "config": {k: v for k, v in asdict(config).items() if k not in ("actors", "cpus_per_actor", "batch_size")},
        }
    )
    with RunDir.of("variants", out_root).run.lock(out_root.name) as _:
        staging, written = staged_items(
            out_root,
            items,
            lambda its, add: run_items(
                its, str(genome_path), prepared, config, use_ray=use_ray, address=address, say=say, on_alleles=add
            ),
            fingerprint,
            say,
            progress,
        )
        lines = write_comparison(staging.root, SCORES_DIR, config, features=config.features, genome=genome_path)
        summary, record = _vcf_summary(
            out_root,
            vcf,
            instances_root,
            genome_path,
            models,
            model_tfs,
            config,
            variants,
            report,
            written,
            lines,
            warnings,
            t0,
        )
        staging.write_record(record)
        staging.publish()
    return summary


def _vcf_summary(
    out_root: Path,
    vcf: str | Path,
    instances_root: Path,
    genome_path: Path,
    models: Sequence[ModelRef],
    model_tfs: list[str],
    config: VariantConfig,
    variants: pa.Table,
    report: Any,
    written: dict[str, int],
    lines: list[str],
    warnings: list[str],
    t0: float,
) -> tuple[VariantSummary, dict[str, Any]]:
    summary = VariantSummary(
        out=str(out_root),
        mode="vcf",
        alleles=variants.num_rows,
        rows=sum(written.values()),
        files=len(written),
        tfs=model_tfs,
        models=tuple(models),
        report=report.to_dict(),
        comparison=lines,
        warnings=warnings,
        seconds=time.perf_counter() - t0,
    )
    record = {
        "mode": "vcf",
        "vcf": str(Path(vcf).resolve()),
        "instances": str(instances_root.resolve()),
        "genome": str(Path(genome_path).resolve()),
        "models": [asdict(m) for m in models],
        "config": asdict(config),
        "report": summary.report,
        "alleles": summary.alleles,
        "rows": summary.rows,
        "files": summary.files,
        "warnings": warnings,
    }
    return summary, record
