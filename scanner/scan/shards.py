"""Cutting a genome into overlapping shards so that no site is lost or reported twice."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Shard:
    """One unit of scanning work.

    Sites starting in ``[start, end)`` belong to this shard; the sequence read is ``[start, read_end)``
    with ``read_end = min(end + overlap, chrom_length)``, ``overlap = longest motif - 1``, so a site
    that starts near ``end`` is still read whole. 0-based half-open coordinates.
    """

    chrom: str
    chrom_index: int
    index: int
    start: int
    end: int
    read_end: int

    @property
    def key(self) -> str:
        """Stable identifier, also the part-file stem: ``<chrom_index>-<index>``."""
        return f"{self.chrom_index:05d}-{self.index:05d}"

    def to_dict(self) -> dict:
        return asdict(self)


def plan_shards(lengths: dict[str, int], shard_size: int, overlap: int) -> list[Shard]:
    """Shards of at most ``shard_size`` sites each, per chromosome, in genome order.

    Parameters
    ----------
    lengths : dict
        Chromosome name -> length, in the order to scan.
    shard_size : int
        Site starts per shard (> 0).
    overlap : int
        Extra bases read past each shard's end: the longest motif length minus 1 (>= 0).

    Raises
    ------
    ValueError
        If ``shard_size`` <= 0 or ``overlap`` < 0.
    """
    if shard_size <= 0:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    shards = []
    for ci, (chrom, length) in enumerate(lengths.items()):
        for k, s in enumerate(range(0, length, shard_size)):
            e = min(length, s + shard_size)
            shards.append(Shard(chrom, ci, k, s, e, min(length, e + overlap)))
    return shards
