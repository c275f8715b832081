"""A simulated genome whose TF binding follows known sequence rules, with its ground truth.

``simulate(out_dir, SimulationConfig())`` writes, under ``out_dir``::

    genome.fa, genome.fa.fai     chr1..chrK, 60 bases a line; N gaps; soft-masked (lower-case) runs
    motifs.meme                  the core motif of every simulated TF (what a user scans)
    context_motifs.meme          the partner and pioneer motifs (the context the rules read)
    peaks/<TF>.narrowPeak        one peak per bound core site, with a summit (column 10)
    open.bed                     open-chromatin regions (BED4)
    blacklist.bed                regions a pipeline should drop (BED4)
    truth.parquet                one row per planted motif site (schema :data:`TRUTH`)
    simulation.json              the configuration and the counts

The binding rules (modelled on the reference's benchmark, see ``docs/labels.md``)
--------------------------------------------------------------------------------
The genome is cut into 1 kb slots; each used slot holds one *locus*: a core motif site near the slot
centre and its context, all within 400 bp of the slot centre, so the 1 kb window centred on a core
never contains another locus's motifs. Every locus follows one *design* (which context is planted):

* open chromatin is itself encoded in sequence: an *open region* (listed in ``open.bed``, 280-500 bp,
  GC raised by ``open_gc_boost``) holds a cluster of 2-3 ``PIONEER`` motif sites; a lone pioneer site
  does not open chromatin;
* a *partner* site is planted at a centre-to-centre distance in ``partner_distance`` (near, counts) or
  in ``far_distance`` (far, does not count) from the core, on either side and strand.

TF rules (``bound`` before noise is ``rule_bound``):

========  ====================================  ===========================================
TF        bound when                            designs (share of that TF's core loci)
========  ====================================  ===========================================
ALPHA     open AND ALPHA_P partner near         open+partner .35, open .20, partner .20,
                                                open+far_partner .10, none .15
BETA      open                                  open .40, single_pioneer .25, none .35
GAMMA     GAMMA_P partner near (open ignored)   partner .30, open+partner .10,
                                                far_partner .20, open .10, none .30
========  ====================================  ===========================================

Then ``bound = rule_bound XOR flip`` with ``P(flip) = flip_rate`` (label noise), and every bound core
gets a peak. Core sites are sampled from their motif and kept only when they score at
``p < 10**-min_core_log10p`` under a uniform background (so a scanner finds them at ``p < 1e-4``); the
random sequence also holds the usual chance (weak) matches of every motif, which get no peak unless
they fall inside one. ``open_only_per_mb`` open regions per Mb carry no core.

The TFs, their motifs, rules and designs are defined in :mod:`scanner.simulate.rules`. Coordinates are
0-based half-open everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from scanner.errors import InputError
from scanner.genome import open_genome
from scanner.io import write_parquet_atomic, write_text_atomic
from scanner.motifs import Motif, write_meme
from scanner.simulate.rules import SIMULATED_TFS, sample_sites, simulated_motif
from scanner.store import RunDir

#: Slot size: one locus per slot; its content stays within ``_REACH`` bp of the slot centre.
#: The simulation's motif files: the simulated TFs' core motifs, and the context (partner, pioneer) motifs.
MOTIF_FILES = ("motifs.meme", "context_motifs.meme")
GENOME_FILE = "genome.fa"

_SLOT = 1000
_REACH = 400
_CORE_JITTER = 40
_ISOCHORE = 100_000
_REPEAT_LEN = 300

_INTERVAL = pa.struct([pa.field("start", pa.int64()), pa.field("end", pa.int64())])

#: Schema of ``truth.parquet``: one row per planted motif site (core, partner or pioneer).
TRUTH = pa.schema(
    [
        pa.field("site_id", pa.int64(), nullable=False, metadata={"doc": "unique id of the planted site"}),
        pa.field("chrom", pa.string(), nullable=False),
        pa.field("start", pa.int64(), nullable=False, metadata={"doc": "0-based start"}),
        pa.field("end", pa.int64(), nullable=False, metadata={"doc": "0-based exclusive end"}),
        pa.field("strand", pa.string(), nullable=False, metadata={"doc": "strand the motif reads on"}),
        pa.field("tf", pa.string(), nullable=False, metadata={"doc": "motif name (TF, partner, PIONEER)"}),
        pa.field(
            "kind",
            pa.string(),
            nullable=False,
            metadata={"doc": "core design class: bound/decoy/background; context: partner/pioneer"},
        ),
        pa.field("design", pa.string(), nullable=False, metadata={"doc": "context planted with the core"}),
        pa.field("core_id", pa.int64(), nullable=False, metadata={"doc": "site_id of the locus's core (-1: none)"}),
        pa.field("rule_bound", pa.bool_(), nullable=False, metadata={"doc": "the TF's rule says bound"}),
        pa.field("bound", pa.bool_(), nullable=False, metadata={"doc": "truth after label noise; has a peak"}),
        pa.field("in_open", pa.bool_(), nullable=False, metadata={"doc": "site inside an open region"}),
        pa.field("sequence", pa.string(), nullable=False, metadata={"doc": "planted bases, motif strand"}),
        pa.field(
            "causal",
            pa.list_(_INTERVAL),
            nullable=False,
            metadata={"doc": "[start, end) of the context sites that make a core bound (rule_bound only)"},
        ),
        pa.field(
            "context",
            pa.list_(_INTERVAL),
            nullable=False,
            metadata={"doc": "[start, end) of every context site planted for this core"},
        ),
    ]
)


# ---- configuration and result ---------------------------------------------------------------------
@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of :func:`simulate` (each maps onto a ``scanner simulate`` flag).

    Parameters
    ----------
    size_mb : float
        Total genome size in Mb (10**6 bp). Default 10.
    n_chroms : int
        Number of chromosomes ``chr1..chrK`` (lengths fall linearly from 1.25x to 0.75x the mean).
        Default 10 (so chr8 and chr9, the default validation and test chromosomes, exist).
    tfs : tuple of str
        Simulated TFs, from ``ALPHA`` (open AND partner), ``BETA`` (open), ``GAMMA`` (partner).
        Default ``("ALPHA", "BETA")``.
    sites_per_mb : float
        Core loci planted per TF per Mb. Default 250.
    open_only_per_mb : float
        Open regions without a core, per Mb. Default 20.
    flip_rate : float
        Probability that a core's label is flipped (noise). Default 0.02.
    seed : int
        Seed of everything. Default 0.
    gc_range : tuple of float
        GC fraction of 100 kb isochores is uniform in this range. Default (0.36, 0.50).
    open_gc_boost : float
        Added to the GC fraction inside open regions. Default 0.12.
    partner_distance, far_distance : tuple of int
        Inclusive ranges of core-to-partner centre distances that count (near) and that do not (far).
        Defaults (40, 150) and (220, 380).
    gaps_per_mb : float
        Internal N gaps (1-20 kb) per Mb; chromosome ends also get 0-1500 N. Default 1.
    masked_fraction : float
        Share of the genome in soft-masked (lower-case) runs of 200-3000 bp, 30% of which start with a
        mutated copy of one 300 bp repeat. Default 0.1.
    blacklist_per_mb : float
        Random 1-5 kb blacklist regions per Mb (plus 1 kb flanking every internal gap). Default 1.
    min_core_log10p : float
        Planted core sites score at p < 10**-this (uniform background, FIMO pseudocounts). Default 5.
    """

    size_mb: float = 10.0
    n_chroms: int = 10
    tfs: tuple[str, ...] = ("ALPHA", "BETA")
    sites_per_mb: float = 250.0
    open_only_per_mb: float = 20.0
    flip_rate: float = 0.02
    seed: int = 0
    gc_range: tuple[float, float] = (0.36, 0.50)
    open_gc_boost: float = 0.12
    partner_distance: tuple[int, int] = (40, 150)
    far_distance: tuple[int, int] = (220, 380)
    gaps_per_mb: float = 1.0
    masked_fraction: float = 0.1
    blacklist_per_mb: float = 1.0
    min_core_log10p: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tfs", tuple(self.tfs))
        object.__setattr__(self, "gc_range", tuple(self.gc_range))
        object.__setattr__(self, "partner_distance", tuple(self.partner_distance))
        object.__setattr__(self, "far_distance", tuple(self.far_distance))
        if not self.size_mb > 0:
            raise InputError(f"size must be > 0 Mb, got {self.size_mb}", field="size_mb")
        if self.n_chroms < 1:
            raise InputError(f"need at least one chromosome, got {self.n_chroms}", field="n_chroms")
        if self.size_mb * 1e6 / self.n_chroms < 5 * _SLOT:
            raise InputError(
                f"chromosomes would be shorter than {5 * _SLOT} bp "
                f"({self.size_mb} Mb over {self.n_chroms}); use fewer chromosomes or a larger size",
                field="size_mb",
            )
        if not self.tfs:
            raise InputError("at least one TF is needed", field="tfs")
        unknown = [t for t in self.tfs if t not in SIMULATED_TFS]
        if unknown:
            raise InputError(
                f"unknown simulated TF(s) {', '.join(unknown)}; choose from {', '.join(SIMULATED_TFS)}",
                field="tfs",
            )
        if len(set(self.tfs)) != len(self.tfs):
            raise InputError(f"a TF is listed twice: {', '.join(self.tfs)}", field="tfs")
        if not 0 <= self.flip_rate <= 0.5:
            raise InputError(f"flip rate must be in [0, 0.5], got {self.flip_rate}", field="flip_rate")
        lo, hi = self.gc_range
        if not (0 < lo <= hi and hi + self.open_gc_boost < 1):
            raise InputError(f"bad GC range {self.gc_range} with boost {self.open_gc_boost}", field="gc_range")
        (a, b), (c, d) = self.partner_distance, self.far_distance
        if not (25 <= a <= b < c <= d <= _REACH - 20):
            raise InputError(
                f"need 25 <= near {self.partner_distance} < far {self.far_distance} <= {_REACH - 20}",
                field="partner_distance",
            )
        for name in ("sites_per_mb", "open_only_per_mb", "gaps_per_mb", "blacklist_per_mb"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0", field=name)
        if not 0 <= self.masked_fraction < 0.9:
            raise InputError("masked_fraction must be in [0, 0.9)", field="masked_fraction")
        if self.min_core_log10p < 4:
            raise InputError("min_core_log10p must be >= 4 so that a scan at p < 1e-4 finds every core")


@dataclass(frozen=True)
class SimulationResult:
    """Paths and counts written by :func:`simulate`."""

    out_dir: Path
    genome: Path
    motifs: Path
    context_motifs: Path
    peaks: dict[str, Path]
    open_bed: Path
    blacklist: Path
    truth: Path
    chrom_lengths: dict[str, int]
    counts: dict[str, int] = field(default_factory=dict)


# ---- genome helpers -------------------------------------------------------------------------------
_COMP = np.array([3, 2, 1, 0, 4], dtype=np.uint8)
_LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)
_BY_STEP = np.array([1, 2, 0, 3], dtype=np.uint8)


def _chrom_lengths(cfg: SimulationConfig) -> list[int]:
    rel = np.linspace(1.25, 0.75, cfg.n_chroms) if cfg.n_chroms > 1 else np.ones(1)
    lengths = np.floor(rel / rel.sum() * cfg.size_mb * 1e6).astype(np.int64)
    return [int(x) for x in lengths]


def _random_intervals(rng: np.random.Generator, length: int, n: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    sizes = rng.integers(lo, hi + 1, size=n)
    starts = rng.integers(0, max(1, length - hi), size=n)
    return starts.astype(np.int64), np.minimum(starts + sizes, length).astype(np.int64)


def _mask_from_intervals(length: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Boolean mask of the union of ``[starts, ends)`` (a loop over intervals, not over bases)."""
    mask = np.zeros(length, dtype=bool)
    for a, b in zip(np.clip(starts, 0, length).tolist(), np.clip(ends, 0, length).tolist(), strict=True):
        mask[a:b] = True
    return mask


def _fasta_bytes(name: str, letters: np.ndarray, width: int = 60) -> bytes:
    n = letters.size
    full = n // width
    body = np.empty((full, width + 1), dtype=np.uint8)
    body[:, :width] = letters[: full * width].reshape(full, width)
    body[:, width] = ord("\n")
    tail = letters[full * width :].tobytes()
    return f">{name}\n".encode() + body.tobytes() + (tail + b"\n" if tail else b"")


# ---- the simulation -------------------------------------------------------------------------------
def _split_counts(n: int, fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64)
    counts = np.floor(f / f.sum() * n).astype(np.int64)
    counts[0] += n - counts.sum()
    return counts


def _intervals_struct(owner: np.ndarray, starts: np.ndarray, ends: np.ndarray, n_rows: int) -> pa.ListArray:
    """list<struct<start,end>> with one list per row ``0..n_rows-1``; ``owner`` gives each interval's row."""
    order = np.lexsort((starts, owner))
    counts = np.bincount(owner, minlength=n_rows)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    values = pa.StructArray.from_arrays(
        [pa.array(starts[order], pa.int64()), pa.array(ends[order], pa.int64())], fields=list(_INTERVAL)
    )
    return pa.ListArray.from_arrays(pa.array(offsets), values)


@dataclass
class _Chrom:
    """Per-chromosome layout: N mask, soft-masked runs, blacklist, free slot centres."""

    name: str
    length: int
    n_mask: np.ndarray
    masked: tuple[np.ndarray, np.ndarray]
    blacklist: tuple[np.ndarray, np.ndarray]
    slots: np.ndarray


def _layout(cfg: SimulationConfig, rng: np.random.Generator) -> list[_Chrom]:
    out = []
    for ci, length in enumerate(_chrom_lengths(cfg)):
        gs, ge = _random_intervals(rng, length, rng.poisson(cfg.gaps_per_mb * length / 1e6), 1000, 20_000)
        tel = rng.integers(0, 1501, size=2)
        n_mask = _mask_from_intervals(
            length, np.concatenate([gs, [0, length - tel[1]]]), np.concatenate([ge, [tel[0], length]])
        )
        masked = _random_intervals(rng, length, int(cfg.masked_fraction * length / 1600), 200, 3000)
        bs, be = _random_intervals(rng, length, rng.poisson(cfg.blacklist_per_mb * length / 1e6), 1000, 5000)
        blacklist = (
            np.concatenate([bs, np.maximum(gs - 1000, 0), ge]),
            np.concatenate([be, gs, np.minimum(ge + 1000, length)]),
        )
        n_slots = length // _SLOT
        centers = np.arange(n_slots, dtype=np.int64) * _SLOT + _SLOT // 2
        free = ~n_mask[: n_slots * _SLOT].reshape(n_slots, _SLOT).any(axis=1)
        out.append(_Chrom(f"chr{ci + 1}", length, n_mask, masked, blacklist, centers[free]))
    return out


@dataclass
class _Loci:
    """One entry per locus (a used slot): its TF (``len(tfs)`` = open-only), design and geometry."""

    chrom: np.ndarray
    tf: np.ndarray
    design: np.ndarray
    design_names: list[str]
    open: np.ndarray
    partner: np.ndarray  # 0 none, 1 near, 2 far
    single: np.ndarray
    center: np.ndarray  # core centre (virtual for open-only loci)
    side: np.ndarray  # partner side (+1/-1); pioneers go on the other side
    partner_center: np.ndarray
    n_pioneer: np.ndarray
    open_start: np.ndarray
    open_end: np.ndarray
    n_tfs: int  # number of TFs; ``tf == n_tfs`` marks an open-only locus (no core)


def _make_loci(cfg: SimulationConfig, chroms: list[_Chrom], rng: np.random.Generator) -> _Loci:
    slots = np.concatenate([np.stack([np.full(len(c.slots), i), c.slots], axis=1) for i, c in enumerate(chroms)])
    n_per_tf = round(cfg.sites_per_mb * cfg.size_mb)
    n_open_only = round(cfg.open_only_per_mb * cfg.size_mb)
    n = n_per_tf * len(cfg.tfs) + n_open_only
    if n > len(slots):
        raise InputError(
            f"{n} loci do not fit in {len(slots)} free 1 kb slots of a {cfg.size_mb} Mb genome; "
            "lower --sites-per-mb or raise --size-mb",
            field="sites_per_mb",
        )
    pick = slots[rng.permutation(len(slots))[:n]]
    tf = np.repeat(np.arange(len(cfg.tfs) + 1), [n_per_tf] * len(cfg.tfs) + [n_open_only])
    design = np.empty(n, dtype=np.int64)
    names: list[str] = []
    is_open = np.zeros(n, dtype=bool)
    partner = np.zeros(n, dtype=np.int8)
    single = np.zeros(n, dtype=bool)
    for ti, name in enumerate(cfg.tfs):
        spec = SIMULATED_TFS[name]
        idx = np.flatnonzero(tf == ti)
        counts = _split_counts(len(idx), [d.fraction for d in spec.designs])
        which = rng.permutation(np.repeat(np.arange(len(spec.designs)), counts))
        for di, d in enumerate(spec.designs):
            sel = idx[which == di]
            design[sel] = len(names)
            names.append(d.name)
            is_open[sel] = d.open
            partner[sel] = {"none": 0, "near": 1, "far": 2}[d.partner]
            single[sel] = d.single_pioneer
    open_only = tf == len(cfg.tfs)
    design[open_only] = len(names)
    names.append("open_only")
    is_open[open_only] = True

    center = pick[:, 1] + rng.integers(-_CORE_JITTER, _CORE_JITTER + 1, size=n)
    side = rng.choice(np.array([-1, 1]), size=n)
    near = rng.integers(cfg.partner_distance[0], cfg.partner_distance[1] + 1, size=n)
    far = rng.integers(cfg.far_distance[0], cfg.far_distance[1] + 1, size=n)
    return _Loci(
        chrom=pick[:, 0],
        tf=tf,
        design=design,
        design_names=names,
        open=is_open,
        partner=partner,
        single=single,
        center=center,
        side=side,
        partner_center=center + side * np.where(partner == 2, far, near),
        n_pioneer=np.where(is_open, rng.integers(2, 4, size=n), np.where(single, 1, 0)),
        open_start=center - rng.integers(140, 251, size=n),
        open_end=center + rng.integers(140, 251, size=n),
        n_tfs=len(cfg.tfs),
    )


@dataclass
class _Sites:
    """One entry per planted motif site."""

    locus: np.ndarray
    motif: np.ndarray  # index into motif_names
    kind: np.ndarray  # 0 core, 1 partner, 2 pioneer
    start: np.ndarray
    end: np.ndarray
    minus: np.ndarray  # bool: on the - strand
    sequence: np.ndarray  # object array of str (motif strand)
    plus_codes: list[tuple[np.ndarray, np.ndarray]]  # per motif: (site indices, (n, L) + strand codes)


def _motif_names(cfg: SimulationConfig) -> list[str]:
    names = list(cfg.tfs)
    for tf in cfg.tfs:
        p = SIMULATED_TFS[tf].partner
        if p and p not in names:
            names.append(p)
    return [*names, "PIONEER"]


def _make_sites(cfg: SimulationConfig, loci: _Loci, motifs: dict[str, Motif], rng: np.random.Generator) -> _Sites:
    names = list(motifs)
    core = np.flatnonzero(loci.tf < loci.n_tfs)
    part = np.flatnonzero(loci.partner > 0)
    partner_of = np.array([names.index(SIMULATED_TFS[t].partner or "PIONEER") for t in cfg.tfs] + [-1])
    parts = [
        (core, np.array([names.index(t) for t in cfg.tfs])[loci.tf[core]], loci.center[core], 0),
        (part, partner_of[loci.tf[part]], loci.partner_center[part], 1),
    ]
    for k in range(3):
        pio = np.flatnonzero(loci.n_pioneer > k)
        offset = 25 + 40 * k + rng.integers(0, 11, size=len(pio))
        parts.append((pio, np.full(len(pio), names.index("PIONEER")), loci.center[pio] - loci.side[pio] * offset, 2))
    locus = np.concatenate([p[0] for p in parts])
    motif = np.concatenate([p[1] for p in parts]).astype(np.int64)
    center = np.concatenate([p[2] for p in parts])
    kind = np.concatenate([np.full(len(p[0]), p[3], dtype=np.int8) for p in parts])
    mlen = np.array([motifs[m].length for m in names])
    start = center - mlen[motif] // 2
    minus = rng.integers(0, 2, size=len(locus)).astype(bool)
    sequence = np.empty(len(locus), dtype=object)
    plus_codes = []
    for mi, m in enumerate(names):
        idx = np.flatnonzero(motif == mi)
        codes = sample_sites(motifs[m], len(idx), cfg.min_core_log10p if m in cfg.tfs else 4.0, rng)
        sequence[idx] = _LETTERS[codes].view(f"S{motifs[m].length}").ravel().astype(str).astype(object)
        plus_codes.append((idx, np.where(minus[idx, None], _COMP[codes[:, ::-1]], codes)))
    return _Sites(locus, motif, kind, start, start + mlen[motif], minus, sequence, plus_codes)


def _write_genome(
    path: Path,
    chroms: list[_Chrom],
    loci: _Loci,
    sites: _Sites,
    cfg: SimulationConfig,
    rng: np.random.Generator,
) -> None:
    """Write the FASTA (60 bases a line) and its ``.fai``."""
    repeat = rng.integers(0, 4, size=_REPEAT_LEN).astype(np.uint8)
    tmp = path.parent / f".{path.name}.tmp"
    fai, offset = [], 0
    with open(tmp, "wb") as fh:
        for ci, ch in enumerate(chroms):
            n_blocks = -(-ch.length // _ISOCHORE)
            gc = np.repeat(rng.uniform(*cfg.gc_range, size=n_blocks).astype(np.float32), _ISOCHORE)
            gc = gc[: ch.length]
            osel = np.flatnonzero((loci.chrom == ci) & loci.open)
            gc = gc + np.float32(cfg.open_gc_boost) * _mask_from_intervals(
                ch.length, loci.open_start[osel], loci.open_end[osel]
            )
            u = rng.random(ch.length, dtype=np.float32)
            # [0, gc/2) -> C, [gc/2, gc) -> G, [gc, (1 + gc)/2) -> A, rest -> T
            step = (u >= gc / 2).view(np.uint8) + (u >= gc).view(np.uint8) + (u >= (1 + gc) / 2).view(np.uint8)
            codes = _BY_STEP[step]
            ms, me = ch.masked
            rep = rng.random(len(ms)) < 0.3
            copies = np.where(
                rng.random((int(rep.sum()), _REPEAT_LEN)) < 0.15,
                rng.integers(0, 4, size=(int(rep.sum()), _REPEAT_LEN)),
                repeat[None, :],
            ).astype(np.uint8)
            pos = ms[rep][:, None] + np.arange(_REPEAT_LEN)[None, :]
            inside = pos < me[rep][:, None]
            codes[pos[inside]] = copies[inside]
            for idx, plus in sites.plus_codes:
                here = loci.chrom[sites.locus[idx]] == ci
                pos = sites.start[idx[here]][:, None] + np.arange(plus.shape[1])[None, :]
                codes[pos] = plus[here]
            codes[ch.n_mask] = 4
            letters = _LETTERS[codes]
            letters[_mask_from_intervals(ch.length, ms, me) & ~ch.n_mask] += 32
            record = _fasta_bytes(ch.name, letters)
            fai.append(f"{ch.name}\t{ch.length}\t{offset + len(ch.name) + 2}\t60\t61\n")
            offset += len(record)
            fh.write(record)
    tmp.replace(path)
    write_text_atomic("".join(fai), str(path) + ".fai")


def _truth_table(
    cfg: SimulationConfig,
    chroms: list[_Chrom],
    loci: _Loci,
    sites: _Sites,
    names: list[str],
    rule: np.ndarray,
    bound: np.ndarray,
) -> pa.Table:
    n = len(sites.locus)
    loc = sites.locus
    order = np.lexsort((sites.start, loci.chrom[loc]))
    site_id = np.empty(n, dtype=np.int64)
    site_id[order] = np.arange(n)
    is_core = sites.kind == 0
    core_row = np.full(len(loci.tf), -1, dtype=np.int64)
    core_row[loc[is_core]] = np.flatnonzero(is_core)
    has_context = loci.open | (loci.partner > 0) | loci.single
    locus_kind = np.where(rule, "bound", np.where(has_context, "decoy", "background"))
    kind = np.array(["core", "partner", "pioneer"], dtype=object)[sites.kind]
    kind[is_core] = locus_kind[loc[is_core]]
    in_open = loci.open[loc] & (sites.start >= loci.open_start[loc]) & (sites.end <= loci.open_end[loc])
    ctx = ~is_core & (core_row[loc] >= 0)
    owner = core_row[loc[ctx]]
    specs = [SIMULATED_TFS[t] for t in cfg.tfs]
    needs_open = np.array([s.needs_open for s in specs] + [False])[loci.tf[loc[ctx]]]
    needs_partner = np.array([s.needs_partner for s in specs] + [False])[loci.tf[loc[ctx]]]
    causal = rule[loc[ctx]] & np.where(sites.kind[ctx] == 1, needs_partner, needs_open)
    s_ctx, e_ctx = sites.start[ctx], sites.end[ctx]
    core_id = np.where(core_row[loc] >= 0, site_id[np.maximum(core_row[loc], 0)], -1)
    table = pa.table(
        {
            "site_id": pa.array(site_id, pa.int64()),
            "chrom": pa.array(np.array([c.name for c in chroms], dtype=object)[loci.chrom[loc]], pa.string()),
            "start": pa.array(sites.start, pa.int64()),
            "end": pa.array(sites.end, pa.int64()),
            "strand": pa.array(np.where(sites.minus, "-", "+"), pa.string()),
            "tf": pa.array(np.array(names, dtype=object)[sites.motif], pa.string()),
            "kind": pa.array(kind, pa.string()),
            "design": pa.array(np.array(loci.design_names, dtype=object)[loci.design[loc]], pa.string()),
            "core_id": pa.array(core_id, pa.int64()),
            "rule_bound": pa.array(rule[loc] & is_core, pa.bool_()),
            "bound": pa.array(bound[loc] & is_core, pa.bool_()),
            "in_open": pa.array(in_open, pa.bool_()),
            "sequence": pa.array(sites.sequence, pa.string()),
            "causal": _intervals_struct(owner[causal], s_ctx[causal], e_ctx[causal], n),
            "context": _intervals_struct(owner, s_ctx, e_ctx, n),
        },
        schema=TRUTH,
    )
    return table.take(pa.array(order))


def _bed_text(df: pl.DataFrame, names: list[str], prefix: str) -> str:
    """Sort intervals by chromosome (genome order) and start, name them ``<prefix><i>``, as BED text."""
    rank = {n: i for i, n in enumerate(names)}
    df = (
        df.with_columns(pl.col("chrom").replace_strict(rank, return_dtype=pl.Int64).alias("_rank"))
        .sort("_rank", "start", "end")
        .drop("_rank")
    )
    if "name" in df.columns:
        df = df.with_columns(pl.format(prefix + "{}", pl.int_range(pl.len())).alias("name"))
    else:
        df = df.insert_column(3, pl.format(prefix + "{}", pl.int_range(pl.len())).alias("name"))
    return df.write_csv(separator="\t", include_header=False)


def _peaks_text(tf: str, sel: np.ndarray, loci: _Loci, names: list[str], rng: np.random.Generator) -> str:
    """narrowPeak text: one peak per bound core, 160-500 bp around it, summit within ~8 bp of it."""
    c = loci.center[sel]
    start = c - rng.integers(80, 251, size=len(sel))
    end = c + rng.integers(80, 251, size=len(sel))
    summit = np.clip(c + np.round(rng.normal(0, 8, size=len(sel))).astype(np.int64), start, end - 1)
    signal = rng.gamma(4.0, 5.0, size=len(sel))
    df = pl.DataFrame(
        {
            "chrom": np.array(names, dtype=object)[loci.chrom[sel]].astype(str),
            "start": start,
            "end": end,
            "name": "",
            "score": np.minimum(1000, (signal * 20).astype(np.int64)),
            "strand": ".",
            "signalValue": np.round(signal, 3),
            "pValue": np.round(signal * 1.5, 3),
            "qValue": np.round(signal * 1.2, 3),
            "peak": summit - start,
        }
    )
    return _bed_text(df, names, f"{tf}_peak")


def simulate(out_dir: str | Path, config: SimulationConfig | None = None) -> SimulationResult:
    """Simulate a genome with planted, rule-bound TF sites and write it with its ground truth.

    Parameters
    ----------
    out_dir : str or Path
        Output directory (created; the files listed in the module docstring are replaced).
    config : SimulationConfig, optional
        Parameters. Default ``SimulationConfig()`` (10 Mb, 10 chromosomes, ALPHA and BETA).

    Returns
    -------
    SimulationResult
        Paths of everything written, chromosome lengths and counts.

    Raises
    ------
    InputError
        If the configuration asks for more loci than the genome has free 1 kb slots.
    """
    cfg = config or SimulationConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    chroms = _layout(cfg, rng)
    chrom_names = [c.name for c in chroms]
    loci = _make_loci(cfg, chroms, rng)
    names = _motif_names(cfg)
    motifs = {m: simulated_motif(m) for m in names}
    sites = _make_sites(cfg, loci, motifs, rng)

    rule = np.zeros(len(loci.tf), dtype=bool)
    for ti, tf in enumerate(cfg.tfs):
        sel = loci.tf == ti
        rule[sel] = SIMULATED_TFS[tf].rule(loci.open[sel], loci.partner[sel] == 1)
    bound = (rule ^ (rng.random(len(rule)) < cfg.flip_rate)) & (loci.tf < loci.n_tfs)

    genome_path = out / GENOME_FILE
    _write_genome(genome_path, chroms, loci, sites, cfg, rng)
    truth_path = write_parquet_atomic(_truth_table(cfg, chroms, loci, sites, names, rule, bound), out / "truth.parquet")
    peaks: dict[str, Path] = {}
    for ti, tf in enumerate(cfg.tfs):
        sel = np.flatnonzero((loci.tf == ti) & bound)
        peaks[tf] = write_text_atomic(_peaks_text(tf, sel, loci, chrom_names, rng), out / "peaks" / f"{tf}.narrowPeak")
    osel = np.flatnonzero(loci.open)
    open_df = pl.DataFrame(
        {
            "chrom": np.array(chrom_names, dtype=object)[loci.chrom[osel]].astype(str),
            "start": loci.open_start[osel],
            "end": loci.open_end[osel],
        }
    )
    open_path = write_text_atomic(_bed_text(open_df, chrom_names, "open"), out / "open.bed")
    black = pl.DataFrame(
        {
            "chrom": np.concatenate([[c.name] * len(c.blacklist[0]) for c in chroms]).astype(str),
            "start": np.concatenate([c.blacklist[0] for c in chroms]),
            "end": np.concatenate([c.blacklist[1] for c in chroms]),
        }
    ).filter(pl.col("end") > pl.col("start"))
    black_path = write_text_atomic(_bed_text(black, chrom_names, "blacklist"), out / "blacklist.bed")
    motif_path = write_meme([motifs[t] for t in cfg.tfs], out / MOTIF_FILES[0])
    ctx_path = write_meme([motifs[m] for m in names if m not in cfg.tfs], out / MOTIF_FILES[1])

    counts = {
        "chromosomes": cfg.n_chroms,
        "bases": int(sum(c.length for c in chroms)),
        "loci": len(loci.tf),
        "open_regions": len(osel),
        "blacklist_regions": black.height,
    }
    for ti, tf in enumerate(cfg.tfs):
        sel = loci.tf == ti
        counts[f"{tf}.cores"] = int(sel.sum())
        counts[f"{tf}.rule_bound"] = int(rule[sel].sum())
        counts[f"{tf}.bound"] = int(bound[sel].sum())
    write_text_atomic(
        json.dumps({"config": asdict(cfg), "counts": counts}, indent=2) + "\n", RunDir.of("sim", out).record_path
    )
    open_genome(genome_path).close()  # validates the index just written
    return SimulationResult(
        out_dir=out,
        genome=genome_path,
        motifs=motif_path,
        context_motifs=ctx_path,
        peaks=peaks,
        open_bed=open_path,
        blacklist=black_path,
        truth=truth_path,
        chrom_lengths={c.name: c.length for c in chroms},
        counts=counts,
    )


def motif_files(sim_dir: str | Path) -> list[Path]:
    """The motif files a simulation in ``sim_dir`` wrote (core motifs, then context motifs), if any."""
    return [Path(sim_dir) / name for name in MOTIF_FILES if (Path(sim_dir) / name).is_file()]


def is_simulation(path: str | Path) -> bool:
    """Whether ``path`` holds a simulation's output (its genome and core motifs)."""
    return (Path(path) / GENOME_FILE).is_file() and (Path(path) / MOTIF_FILES[0]).is_file()


def read_truth(path: str | Path) -> pl.DataFrame:
    """Read ``truth.parquet`` (a file or a simulation directory) as a polars DataFrame."""
    path = Path(path)
    if path.is_dir():
        path = path / "truth.parquet"
    if not path.is_file():
        raise InputError("truth file not found", source=path)
    return pl.read_parquet(path)


def causal_mask(truth_row: Mapping[str, object], window_start: int, width: int) -> np.ndarray:
    """Per-position ground truth of a window: True where a causal context site lies.

    Parameters
    ----------
    truth_row : mapping
        A row of ``truth.parquet`` (e.g. ``df.row(i, named=True)``) with a ``causal`` entry: a list
        of ``{"start": s, "end": e}`` dicts or ``(s, e)`` pairs, genome coordinates, 0-based half-open.
    window_start : int
        0-based genome position of the window's first base (may be negative).
    width : int
        Window length W.

    Returns
    -------
    numpy.ndarray of bool, shape (W,)
        ``mask[i]`` is True when genome position ``window_start + i`` is in a causal interval.
    """
    mask = np.zeros(int(width), dtype=bool)
    for iv in truth_row.get("causal") or []:
        s, e = (iv["start"], iv["end"]) if isinstance(iv, Mapping) else iv
        lo, hi = max(int(s) - window_start, 0), min(int(e) - window_start, width)
        if hi > lo:
            mask[lo:hi] = True
    return mask
