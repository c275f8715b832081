"""``scanner variants --sequences``: score ref/alt sequence pairs a user already has.

Input: a TSV (plain or gzip) with a header naming at least the columns ``id``, ``ref`` and ``alt``
(other columns are ignored; lines starting with ``#`` before the header are comments). Sequences are
A/C/G/T/N letters, any case. Each sequence is fitted to the model's window W on its own: a longer one
is cropped and a shorter one N-padded, equally on both sides, the odd base going to the right end (so
sequences of length W are used as given, and a pair centred on the variant stays centred).

Errors (an :class:`InputError` with the line): no header or a missing column, a row with another
number of fields than the header, an empty or repeated id, an empty sequence, a letter other than
A/C/G/T/N (its position is given), a file without rows.

Each pair is scored by every model of each TF: ``logit_ref``, ``logit_alt`` ... as for a VCF. When
the scan metadata is available (``--instances``, or ``instances`` beside ``--models``) the site columns
give, in REF and in ALT, the best site of the TF's motifs (lowest p-value, either strand) among the
windows touching the bases where the two sequences differ (shared prefix and suffix trimmed; all
windows when they are identical); otherwise they are null.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from scanner.errors import InputError
from scanner.io import partition_dir
from scanner.models.checkpoint import weights_path
from scanner.predict.apply import ModelRef, discover_models
from scanner.store import RunDir, file_fingerprint, hash_json, tree_signature
from scanner.variants.items import SCORES_DIR, VariantConfig, VariantItem, VariantSummary
from scanner.variants.runner import check_out, prepared_by_tf, run_items, staged_items
from scanner.variants.seq_kernel import fit_to_window, score_sequence_item  # noqa: F401  (re-exported)
from scanner.variants.vcf import open_lines

if TYPE_CHECKING:
    from scanner.progress import ProgressFn

_BASES = re.compile(r"[ACGTNacgtn]+")
_ROWS = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("ref", pa.string()),
        pa.field("alt", pa.string()),
    ]
)


def read_sequences(path: str | Path) -> pa.Table:
    """Read and check a ref/alt TSV.

    Returns
    -------
    pyarrow.Table
        Columns ``id``, ``line`` (1-based), ``ref``, ``alt`` (upper case), in file order.

    Raises
    ------
    InputError
        See the module docstring.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("sequences file not found", source=path)
    header: list[str] | None = None
    cols: dict[str, list] = {"id": [], "line": [], "ref": [], "alt": []}
    seen: dict[str, int] = {}
    for lineno, line in open_lines(path):
        if not line.strip() or (header is None and line.startswith("#")):
            continue
        fields = line.split("\t")
        if header is None:
            header = [f.strip() for f in fields]
            missing = [c for c in ("id", "ref", "alt") if c not in header]
            if missing:
                raise InputError(
                    "the header must name the columns id, ref and alt (tab-separated); "
                    f"missing {', '.join(missing)}, got {header[:6]}",
                    source=path,
                    line=lineno,
                )
            at = {c: header.index(c) for c in ("id", "ref", "alt")}
            continue
        if len(fields) != len(header):
            raise InputError(
                f"expected {len(header)} tab-separated fields (as the header), got {len(fields)}",
                source=path,
                line=lineno,
            )
        rid = fields[at["id"]].strip()
        if not rid:
            raise InputError("empty id", source=path, line=lineno, field="id")
        if rid in seen:
            raise InputError(f"id {rid!r} repeats line {seen[rid]}", source=path, line=lineno, field="id")
        seen[rid] = lineno
        for c in ("ref", "alt"):
            seq = fields[at[c]].strip()
            if not seq:
                raise InputError("empty sequence", source=path, line=lineno, field=c)
            if not _BASES.fullmatch(seq):
                at_bad = next(i for i, ch in enumerate(seq) if ch not in "ACGTNacgtn")
                raise InputError(
                    f"letter {seq[at_bad]!r} at position {at_bad + 1} is not A/C/G/T/N",
                    source=path,
                    line=lineno,
                    field=c,
                )
            cols[c].append(seq.upper())
        cols["id"].append(rid)
        cols["line"].append(lineno)
    if header is None:
        raise InputError("no header line (expected columns id, ref, alt)", source=path)
    if not cols["id"]:
        raise InputError("no sequence pairs below the header", source=path)
    return pa.table(cols, schema=_ROWS)


def score_sequences(
    sequences: str | Path,
    models_root: str | Path,
    out_root: str | Path,
    config: VariantConfig = VariantConfig(),
    *,
    instances: str | Path | None = None,
    tfs: Sequence[str] | None = None,
    regimes: Sequence[str] | None = None,
    use_ray: bool = True,
    address: str | None = None,
    log: Callable[[str], None] | None = None,
    progress: ProgressFn | None = None,
) -> VariantSummary:
    """Score every ref/alt pair of a TSV under every model; write ``out_root/scores/tf=<tf>/`` and the
    regime comparison (keyed by ``id``).

    Parameters
    ----------
    sequences : path
        The TSV (see the module docstring).
    models_root, out_root, config, tfs, regimes, use_ray, address, log, progress
        As :func:`scanner.variants.score.score_vcf`.
    instances : path, optional
        ``OUT/instances`` whose ``_scan.json`` gives the motifs for the site columns. Default:
        ``instances`` beside ``models_root`` when it exists (else the site columns are null).

    Raises
    ------
    InputError
        Bad TSV, missing models, a TF the scan has no motif for (when a scan is used).
    """
    from scanner.scan import load_scan_meta
    from scanner.variants.compare import write_comparison

    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    config.validate()
    models_root, out_root = Path(models_root), Path(out_root)
    check_out(out_root, models_root)
    models = discover_models(models_root, tfs, regimes)
    rows = read_sequences(sequences)
    model_tfs = list(dict.fromkeys(m.tf for m in models))
    inst = (
        RunDir.of("instances", instances)
        if instances is not None
        else RunDir.of("models", models_root).run.dataset("instances")
    )
    warnings = []
    if instances is not None or inst.record_path.is_file():
        prepared = prepared_by_tf(load_scan_meta(inst.root), model_tfs, inst.record_path, strict=False)
        lacking = [tf for tf in model_tfs if tf not in prepared]
        if lacking:
            warnings.append(f"no motif for {', '.join(lacking)} in the scan: their site columns are null")
    else:
        prepared = {}
        warnings.append(f"no scan metadata at {inst.record_path}: the site p-value columns are null")
    lengths = [len(s) for c in ("ref", "alt") for s in rows.column(c).to_pylist()]
    for w in sorted({m.seq_len for m in models}):
        cropped = sum(n > w for n in lengths)
        padded = sum(n < w for n in lengths)
        if cropped or padded:
            warnings.append(f"W={w}: {cropped} sequence(s) cropped, {padded} N-padded to the window (centred)")
    for w in warnings:
        say(f"warning: {w}")
    items = []
    for tf in model_tfs:
        refs = [m for m in models if m.tf == tf]
        k = 0
        for width in sorted({m.seq_len for m in refs}):
            wrefs = tuple(m for m in refs if m.seq_len == width)
            for lo in range(0, rows.num_rows, config.chunk_variants):
                sub = rows.slice(lo, config.chunk_variants)
                out = partition_dir(out_root / SCORES_DIR, [("tf", tf)]) / f"part-{k:05d}.parquet"
                items.append(VariantItem("seq", tf, "", width, wrefs, sub, None, str(out)))
                k += 1
    say(f"{rows.num_rows} sequence pair(s), {len(models)} model(s), {len(items)} item(s)")
    fingerprint = hash_json(
        {
            "sequences": file_fingerprint(sequences),
            "scan": tree_signature(inst.root) if prepared else None,
            "models": [[m.tf, m.regime, file_fingerprint(weights_path(m.path))] for m in models],
            "config": {k: v for k, v in asdict(config).items() if k not in ("actors", "cpus_per_actor", "batch_size")},
        }
    )
    lock = RunDir.of("variants", out_root).run.lock(out_root.name)
    with lock:
        staging, written = staged_items(
            out_root,
            items,
            lambda its, add: run_items(
                its, None, prepared, config, use_ray=use_ray, address=address, say=say, on_alleles=add
            ),
            fingerprint,
            say,
            progress,
        )
        lines = write_comparison(staging.root, SCORES_DIR, config)
        summary, record = _seq_summary(
            out_root, sequences, inst.root, prepared, models, model_tfs, config, rows, written, lines, warnings, t0
        )
        staging.write_record(record)
        staging.publish()
    return summary


def _seq_summary(
    out_root: Path,
    sequences: str | Path,
    root: Path,
    prepared: dict[str, list],
    models: Sequence[ModelRef],
    model_tfs: list[str],
    config: VariantConfig,
    rows: pa.Table,
    written: dict[str, int],
    lines: list[str],
    warnings: list[str],
    t0: float,
) -> tuple[VariantSummary, dict[str, Any]]:
    summary = VariantSummary(
        out=str(out_root),
        mode="sequences",
        alleles=rows.num_rows,
        rows=sum(written.values()),
        files=len(written),
        tfs=model_tfs,
        models=tuple(models),
        comparison=lines,
        warnings=warnings,
        seconds=time.perf_counter() - t0,
    )
    record = {
        "mode": "sequences",
        "sequences": str(Path(sequences).resolve()),
        "scan": str(root.resolve()) if prepared else None,
        "models": [asdict(m) for m in models],
        "config": asdict(config),
        "pairs": rows.num_rows,
        "rows": summary.rows,
        "files": summary.files,
        "warnings": warnings,
    }
    return summary, record
