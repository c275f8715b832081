"""Running variant work items: the Ray Data callable class, the in-process loop, staged output.

:class:`VariantScorer` turns a :class:`~scanner.variants.items.VariantItem` into a Parquet file with
the kernel of its kind (:func:`scanner.variants.score.score_vcf_item` or
:func:`scanner.variants.sequences.score_sequence_item`). :func:`run_items` runs it through Ray Data
``map_batches`` (one model load per actor; GPU actors with ``num_cpus=0`` when the cluster has GPUs,
``cpus_per_actor`` fractional CPUs otherwise) or in this process; :func:`stage_and_swap` writes every
file under a staging directory and replaces ``OUT/variants/scores`` only when all items succeeded.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scanner.errors import InputError
from scanner.genome import open_genome
from scanner.io import write_parquet_atomic
from scanner.progress import counter
from scanner.runtime import bind_constructor
from scanner.variants.items import VariantConfig, VariantItem
from scanner.variants.motif import MotifSet

if TYPE_CHECKING:
    from scanner.progress import ProgressFn


class VariantScorer:
    """Callable class for Ray Data ``map_batches``; each input row holds one pickled :class:`VariantItem`.

    Loads models lazily, once per actor, opens the genome once, writes each item's file atomically and
    returns ``{"out_file", "rows", "error"}`` per item; ``error`` is ``""`` or the JSON of an
    :class:`InputError` (the driver re-raises it).

    Parameters
    ----------
    genome_path : str, optional
        FASTA (None for ``--sequences`` items).
    prepared : list
        ``[dict tf -> list of PreparedMotif]``, or ``[ObjectRef]`` of that dict.
    config : dict
        :class:`VariantConfig` as a dict.
    threads : float
        Torch threads for this actor.
    """

    def __init__(self, genome_path: str | None, prepared: list, config: dict[str, Any], threads: float = 1) -> None:
        from scanner.predict.apply import ModelCache
        from scanner.runtime import set_torch_threads, torch_device

        set_torch_threads(threads)
        self.device = torch_device()
        self.genome = open_genome(genome_path) if genome_path else None
        by_tf = prepared[0]
        if not isinstance(by_tf, dict):
            import ray

            by_tf = ray.get(by_tf)
        self.motifs = {tf: MotifSet.build(pms) for tf, pms in by_tf.items() if pms}
        self.config = VariantConfig(**config)
        self.load = ModelCache(self.device)

    def score(self, item: VariantItem) -> pa.Table:
        """The rows of one item (not written)."""
        from scanner.variants.vcf_kernel import score_vcf_item

        motifs = self.motifs.get(item.tf)
        if item.kind == "seq":
            from scanner.variants.seq_kernel import score_sequence_item

            return score_sequence_item(item, self.load, motifs, self.config, self.device)
        if self.genome is None:
            raise ValueError("a VCF item needs a genome")
        return score_vcf_item(item, self.genome, self.load, motifs, self.config, self.device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs, counts, errors = [], [], []
        for payload in batch["item"]:
            item: VariantItem = pickle.loads(payload)
            outs.append(item.out_file)
            try:
                table = self.score(item)
            except InputError as exc:
                counts.append(0)
                errors.append(json.dumps([exc.message, exc.source, exc.line, exc.field]))
                continue
            write_parquet_atomic(table, item.out_file)
            counts.append(table.num_rows)
            errors.append("")
        return {
            "out_file": np.array(outs, dtype=object),
            "rows": np.array(counts, dtype=np.int64),
            "error": np.array(errors, dtype=object),
        }


# ---- running items ---------------------------------------------------------------------------------


def run_items(
    items: list[VariantItem],
    genome_path: str | None,
    prepared: dict[str, list],
    config: VariantConfig,
    *,
    use_ray: bool,
    address: str | None,
    say: Callable[[str], None],
    on_alleles: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Score and write every item (Ray Data actors, or in this process); return ``{out_file: rows}``.

    ``on_alleles(n)`` is called with the alleles (VCF) or sequence pairs of each item written (progress).

    Raises
    ------
    InputError
        The first input error an item met.
    """
    units = {it.out_file: it.variants.num_rows for it in items}
    count = on_alleles or (lambda _n: None)
    if not use_ray:
        scorer = VariantScorer(genome_path, [prepared], asdict(config), threads=_local_threads())
        written = {}
        for item in items:
            table = scorer.score(item)
            write_parquet_atomic(table, item.out_file)
            written[item.out_file] = table.num_rows
            count(units[item.out_file])
        return written
    import ray
    import ray.data

    from scanner.runtime import (
        ActorPlan,
        cluster_resources,
        describe_resources,
        ray_data_without_bars,
        ray_session,
        relay_item_errors,
    )

    ctx = nullcontext() if ray.is_initialized() else ray_session(address)
    with ctx:
        plan = ActorPlan.for_items(cluster_resources(), len(items), config.actors, config.cpus_per_actor)
        n, opts, threads = plan.actors, plan.resources, plan.threads
        say(f"Ray: {n} actor(s), {describe_resources(opts)}, {threads:g} torch thread(s) each, {len(items)} item(s)")
        ray_data_without_bars()
        prepared_ref = ray.put(prepared)
        ds = ray.data.from_items([{"item": pickle.dumps(it)} for it in items], override_num_blocks=len(items))
        out = ds.map_batches(
            bind_constructor(
                VariantScorer,
                **{
                    "genome_path": genome_path,
                    "prepared": [prepared_ref],
                    "config": asdict(config),
                    "threads": threads,
                },
            ),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=max(n, 1), max_tasks_in_flight_per_actor=1),
            **opts,
        )

        def counted(batches: Iterator[dict]) -> Iterator[dict]:
            for batch in batches:
                yield batch  # checked for errors first, then counted
                count(sum(units[str(f)] for f in batch["out_file"]))

        return relay_item_errors(counted(out.iter_batches(batch_size=None, batch_format="numpy")))


def _local_threads() -> int:
    import torch

    return torch.get_num_threads()


def check_out(out_root: Path, *inputs: Path) -> None:
    """Refuse an output directory that overlaps an input, or that cannot be written."""
    from scanner.store import RunDir

    ds = RunDir.of("variants", out_root)
    ds.run.check_no_overlap(out_root, {f"input {p}": p for p in inputs})
    ds.check_writable()


def prepared_by_tf(meta: Any, tfs: Sequence[str], source: Path, *, strict: bool = True) -> dict[str, list]:
    """The scan's prepared motifs of each TF (matched by motif name).

    Parameters
    ----------
    meta : ScanMeta
        From :func:`scanner.scan.load_scan_meta`.
    tfs : sequence of str
    source : Path
        The scan's ``_scan.json`` (named in errors).
    strict : bool, optional
        Raise for a TF without a motif (default); otherwise leave it out of the result.

    Raises
    ------
    InputError
        If ``strict`` and a TF has no motif in the scan.
    """
    prepared = meta.prepared()
    out = {tf: [p for p in prepared if p.name == tf] for tf in tfs}
    missing = [tf for tf, pms in out.items() if not pms]
    if missing and strict:
        have = sorted({p.name for p in prepared})
        raise InputError(
            f"no motif for TF(s) {', '.join(missing)} in the scan; it scanned: {', '.join(have)}",
            source=source,
        )
    return {tf: pms for tf, pms in out.items() if pms}


def staged_items(
    out_root: Path,
    items: list[VariantItem],
    run: Callable[[list[VariantItem], Callable[[int], None]], dict[str, int]],
    fingerprint: str,
    say: Callable[[str], None],
    progress: ProgressFn | None = None,
) -> tuple[Any, dict[str, int]]:
    """Write the items' files into the variants dataset's staging area (:mod:`scanner.store`).

    Item ``out_file`` names lie under ``out_root``; each is moved to the same place under the staging
    area named by ``fingerprint``. Items a previous, interrupted attempt with the same settings wrote
    are reused. The caller adds the comparison and the record, then publishes (a failure before that
    leaves the published output as it was). ``run(items, on_alleles)`` runs the items left (see
    :func:`run_items`); ``progress(done, total)`` counts alleles, those of reused items as done.

    Returns
    -------
    (Staging, {staged out_file: rows})
    """
    from scanner.store import RunDir

    staging = RunDir.of("variants", out_root).staging(fingerprint)
    moved = [
        VariantItem(**{**asdict_shallow(it), "out_file": str(staging.root / Path(it.out_file).relative_to(out_root))})
        for it in items
    ]
    todo = [it for it in moved if not staging.done(it.out_file)]
    if len(todo) < len(moved):
        say(f"{len(moved) - len(todo)} item(s) done by an earlier attempt")
    pending = {it.out_file for it in todo}
    written = {it.out_file: pq.ParquetFile(it.out_file).metadata.num_rows for it in moved if it.out_file not in pending}
    add = counter(
        progress,
        sum(it.variants.num_rows for it in moved),
        sum(it.variants.num_rows for it in moved if it.out_file not in pending),
    )
    add(0)
    if todo:
        written |= run(todo, add)
    missing = [it.out_file for it in moved if it.out_file not in written]
    if missing:
        raise RuntimeError(f"{len(missing)} work item(s) produced no output, e.g. {missing[0]}")
    staging.discard({Path(it.out_file) for it in moved})
    return staging, written


def asdict_shallow(item: VariantItem) -> dict[str, Any]:
    """Fields of an item without copying its tables."""
    return {f: getattr(item, f) for f in VariantItem.__dataclass_fields__}
