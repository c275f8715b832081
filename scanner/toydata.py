"""Seeded toy data with a planted binding rule, for tests and benchmarks of training and prediction.

The rule: every window carries the core motif at its centre; it is *bound* (label 1) iff a partner
k-mer (default ``TGACTCA``, AP-1-like) also occurs in the window on the + strand. Negatives never
contain the partner. The motif ``score`` is weakly informative (a shift of ``score_shift`` bits for
positives), so the motif-score-alone auROC is well below what a model that learns the partner reaches.

Nothing here is used by the pipeline itself; ``scanner simulate`` is the documented simulator.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from scanner.genome import decode
from scanner.io import partition_dir, write_parquet_atomic, write_text_atomic
from scanner.schemas import DATASETS, INSTANCES
from scanner.store import RunDir

CORE = "CACGTG"
PARTNER = "TGACTCA"


def _random_codes(rng: np.random.Generator, n: int, w: int) -> np.ndarray:
    return rng.integers(0, 4, size=(n, w), dtype=np.uint8)


def _contains(row: str, kmer: str) -> bool:
    return kmer in row


def toy_windows(
    n: int,
    width: int = 200,
    *,
    seed: int = 0,
    core: str = CORE,
    partner: str = PARTNER,
    pos_fraction: float = 0.5,
    partner_range: tuple[int, int] | None = (-60, -20),
) -> tuple[list[str], np.ndarray]:
    """Random windows with the core at the centre; positives also hold ``partner``.

    Parameters
    ----------
    partner_range : (int, int) or None, optional
        Where the partner starts, relative to the core's start (half-open range). None: anywhere in the
        window outside the core. Default ``(-60, -20)``.

    Returns
    -------
    (windows, labels)
        ``n`` strings of ``width`` letters (ACGT) and int8 labels (1 iff ``partner`` is present).
    """
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < pos_fraction).astype(np.int8)
    c0 = width // 2 - len(core) // 2
    out = []
    for i in range(n):
        while True:
            s = list(decode(_random_codes(rng, 1, width)[0]))
            s[c0 : c0 + len(core)] = core
            if labels[i]:
                while True:
                    if partner_range is None:
                        p = int(rng.integers(0, width - len(partner)))
                    else:
                        p = c0 + int(rng.integers(*partner_range))
                    if 0 <= p <= width - len(partner) and (p + len(partner) <= c0 or p >= c0 + len(core)):
                        break
                s[p : p + len(partner)] = partner
            text = "".join(s)
            if labels[i] or not _contains(text, partner):
                break
        out.append(text)
    return out, labels


def toy_dataset_table(
    n: int,
    width: int = 200,
    *,
    seed: int = 0,
    tf: str = "TOY",
    regime: str = "pvalue",
    split: str = "train",
    chrom: str = "chr1",
    score_shift: float = 0.3,
) -> pa.Table:
    """A DATASETS-schema table of ``n`` toy rows (see module docstring)."""
    windows, labels = toy_windows(n, width, seed=seed)
    rng = np.random.default_rng(seed + 7919)
    starts = np.sort(rng.choice(10_000_000, size=n, replace=False)).astype(np.int64) + width
    score = (rng.normal(8.0, 1.0, n) + score_shift * labels).astype(np.float32)
    cols = {
        "chrom": [chrom] * n,
        "start": starts,
        "end": starts + len(CORE),
        "strand": ["+"] * n,
        "motif_id": ["MA0000.1"] * n,
        "tf": [tf] * n,
        "score": score,
        "pvalue": np.power(2.0, -score.astype(np.float64)),
        "sequence": [CORE] * n,
        "bound": labels.astype(bool),
        "in_open": np.ones(n, dtype=bool),
        "gc": np.array([(w.count("G") + w.count("C")) / width for w in windows], dtype=np.float32),
        "split": [split] * n,
        "window_start": starts + len(CORE) // 2 - width // 2,
        "window_padded": np.zeros(n, dtype=bool),
        "regime": [regime] * n,
        "label": labels,
        "match_bin": np.zeros(n, dtype=np.int32),
        "window": windows,
    }
    return pa.table(cols, schema=DATASETS)


def write_toy_datasets(
    root: str | Path,
    *,
    tfs: tuple[str, ...] = ("TOY",),
    regimes: tuple[str, ...] = ("pvalue",),
    sizes: dict[str, int] | None = None,
    width: int = 200,
    seed: int = 0,
    row_group_size: int | None = None,
) -> Path:
    """Write toy DATASETS partitions ``root/regime=/tf=/split=/part-00000.parquet``.

    Parameters
    ----------
    sizes : dict, optional
        Rows per split. Default ``{"train": 600, "val": 200, "test": 200}``.
    """
    sizes = sizes or {"train": 600, "val": 200, "test": 200}
    for i, regime in enumerate(regimes):
        for j, tf in enumerate(tfs):
            for k, (split, n) in enumerate(sizes.items()):
                t = toy_dataset_table(
                    n,
                    width,
                    seed=seed + 1000 * i + 100 * j + k,
                    tf=tf,
                    regime=regime,
                    split=split,
                    chrom={"train": "chr1", "val": "chr8", "test": "chr9"}.get(split, "chr1"),
                )
                d = partition_dir(root, [("regime", regime), ("tf", tf), ("split", split)])
                write_parquet_atomic(t, d / "part-00000.parquet", row_group_size=row_group_size)
    return Path(root)


def write_toy_genome(path: str | Path, chrom_sizes: dict[str, int], *, seed: int = 0, line_width: int = 60) -> Path:
    """Write a random FASTA (ACGT, seeded) and return its path (the index is built on open)."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    lines = []
    for chrom, size in chrom_sizes.items():
        seq = decode(_random_codes(rng, 1, size)[0])
        lines.append(f">{chrom}")
        lines += [seq[i : i + line_width] for i in range(0, size, line_width)]
    write_text_atomic("\n".join(lines) + "\n", path)
    return path


def toy_instances(
    genome_path: str | Path,
    *,
    tf: str = "TOY",
    n_per_chrom: int | None = None,
    seed: int = 0,
    site_len: int = 6,
) -> pa.Table:
    """Pseudo motif instances (INSTANCES schema) at seeded random positions of a toy genome.

    Positions include both chromosome ends (so windows get N padding) and both strands.
    """
    from scanner.genome import open_genome

    rng = np.random.default_rng(seed)
    g = open_genome(genome_path)
    rows: dict[str, list] = {k: [] for k in INSTANCES.names}
    for chrom, length in g.lengths.items():
        n = n_per_chrom or max(3, length // 200)
        starts = np.unique(np.concatenate([[0, length - site_len], rng.integers(0, length - site_len, n)]))
        strands = rng.choice(["+", "-"], size=len(starts))
        scores = rng.normal(8.0, 1.0, len(starts)).astype(np.float32)
        for s, st, sc in zip(starts.tolist(), strands.tolist(), scores.tolist(), strict=True):
            rows["chrom"].append(chrom)
            rows["start"].append(s)
            rows["end"].append(s + site_len)
            rows["strand"].append(st)
            rows["motif_id"].append("MA0000.1")
            rows["tf"].append(tf)
            rows["score"].append(sc)
            rows["pvalue"].append(float(2.0**-sc))
            rows["sequence"].append(g.fetch(chrom, s, s + site_len))
    g.close()
    return pa.table(rows, schema=INSTANCES)


def write_toy_instances(
    root: str | Path,
    genome_path: str | Path,
    *,
    tfs: tuple[str, ...] = ("TOY",),
    files_per_chrom: int = 1,
    n_per_chrom: int | None = None,
    seed: int = 0,
) -> Path:
    """Write toy instances as ``root/tf=/chrom=/part-NNNNN.parquet`` plus ``root/_scan.json``."""
    import pyarrow.compute as pc

    root = Path(root)
    for j, tf in enumerate(tfs):
        table = toy_instances(genome_path, tf=tf, n_per_chrom=n_per_chrom, seed=seed + j)
        for chrom in sorted(set(table.column("chrom").to_pylist())):
            sub = table.filter(pc.equal(table.column("chrom"), chrom))
            bounds = np.linspace(0, sub.num_rows, files_per_chrom + 1).astype(int)
            for k in range(files_per_chrom):
                d = partition_dir(root, [("tf", tf), ("chrom", chrom)])
                write_parquet_atomic(sub.slice(bounds[k], bounds[k + 1] - bounds[k]), d / f"part-{k:05d}.parquet")
    record = RunDir.of("instances", root).record_path  # a scan's record, naming the genome
    write_text_atomic(json.dumps({"genome": str(Path(genome_path).resolve())}), record)
    return root
