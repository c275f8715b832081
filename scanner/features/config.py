"""Settings of ``scanner features``: instance selection, attribution, TF-MoDISco, TomTom, comparison."""

from __future__ import annotations

from dataclasses import dataclass

from scanner.errors import InputError

#: Attribution methods whose per-base values become TF-MoDISco's hypothetical contributions.
FEATURE_METHODS = ("deeplift", "ism")
#: Where the explained windows come from.
SOURCES = ("datasets", "predictions")


@dataclass(frozen=True)
class ModiscoSettings:
    """TF-MoDISco (modisco-lite 3.0.0) settings; names follow ``modisco motifs`` flags.

    Parameters
    ----------
    max_seqlets : int
        Most seqlets per metacluster (``-n``). Default 2000.
    n_leiden : int
        Leiden clusterings with different seeds (``-l``). Default 2.
    size : int
        Seqlet core width, ``sliding_window_size`` (``-z``). Default 15 (the simulated motifs are
        11-14 bp; ``modisco motifs`` defaults to 20).
    trim_size : int
        Patterns are trimmed to this width (``-t``). Default 20.
    seqlet_flank : int
        Flank added to each seqlet (``-f``). Default 5.
    initial_flank : int
        Flank added to each pattern before merging (``-g``). Default 5.
    final_flank : int
        Flank added to each final pattern (``-j``). Default 0.
    target_fdr : float
        Seqlet FDR target (``modisco motifs`` uses 0.05). Default 0.05.
    min_seqlets : int
        A metacluster (sign) with fewer seqlets is skipped (``min_metacluster_size``; modisco-lite's
        default 100 would skip every model with fewer bound test windows). Default 30.
    min_cluster_size : int
        Smallest final pattern (``final_min_cluster_size``). Default 20.
    """

    max_seqlets: int = 2000
    n_leiden: int = 2
    size: int = 15
    trim_size: int = 20
    seqlet_flank: int = 5
    initial_flank: int = 5
    final_flank: int = 0
    target_fdr: float = 0.05
    min_seqlets: int = 30
    min_cluster_size: int = 20

    def validate(self) -> ModiscoSettings:
        """Return self, or raise :class:`InputError` naming the bad setting."""
        for name in ("max_seqlets", "n_leiden", "size", "trim_size", "min_seqlets", "min_cluster_size"):
            if getattr(self, name) < 1:
                raise InputError(f"must be >= 1, got {getattr(self, name)}", field="--" + name.replace("_", "-"))
        for name in ("seqlet_flank", "initial_flank", "final_flank"):
            if getattr(self, name) < 0:
                raise InputError(f"must be >= 0, got {getattr(self, name)}", field="--" + name.replace("_", "-"))
        if not 0 < self.target_fdr < 1:
            raise InputError(f"must be in (0, 1), got {self.target_fdr}", field="--target-fdr")
        return self


@dataclass(frozen=True)
class FeaturesConfig:
    """Settings of ``scanner features``; each field is a flag.

    Parameters
    ----------
    methods : tuple of str
        From :data:`FEATURE_METHODS`: ``deeplift`` (dinucleotide-shuffled references, hypothetical
        contributions from the multipliers) and/or ``ism`` (fast exact ISM, centred per position).
        Default ``("deeplift",)``.
    source : {"datasets", "predictions"}
        ``datasets``: rows of ``OUT/datasets`` (``splits``, ``label``); ``predictions``: rows of
        ``OUT/predictions`` of each TF's own model, windows read from the genome. Default
        ``"datasets"``.
    tfs, regimes : tuple of str
        Restrict to these model TFs / regimes. Default: all.
    splits : tuple of str
        Dataset splits to explain (``source="datasets"``). Default ``("test",)``; empty: all.
    label : int, optional
        Dataset label to keep: 1 bound (default), 0 unbound, None both.
    where : str, optional
        SQL filter over the source's columns (polars ``sql_expr``). Default None.
    top : int, optional
        ``source="predictions"``: the ``top`` rows by ``prob_bound`` per model. Default: all.
    max_windows : int, optional
        At most this many windows per model, a seeded random subset. Default 2000.
    flank : int
        Attributions over the window centre +- ``flank`` bp (the site is at the centre). Default 200.
    batch_size : int
        Sequences per forward/backward pass. Default 64.
    chunk_rows : int
        Windows per attribution work item, rounded up to a multiple of ``batch_size``. Default 256.
    reference, n_shuffles, seed
        DeepLIFT reference, shuffles per sequence and seed (also of the window subset). Defaults
        ``"shuffle"``, 10, 0. The same seed and ``batch_size`` give the same references whatever
        ``chunk_rows``, actors or Ray.
    modisco : ModiscoSettings
    top_matches : int
        TomTom matches kept per pattern. Default 3.
    max_qvalue : float
        A pattern *is* a database motif when its best q-value is below this. Default 0.05.
    trim_threshold : float
        Patterns are trimmed to the positions whose summed |CWM| reaches this share of the maximum
        before matching (as modisco-lite's report does). Default 0.3.
    similarity : float
        Unmatched patterns of different regimes with PPM similarity at least this are one feature in
        the comparison. Default 0.75.
    contrast : str
        The regime the comparison's ``status`` contrasts with the others. Default ``"open"``.
    actors : int, optional
        Attribution actors. Default: GPUs in the cluster if any, else its CPUs.
    cpus_per_actor : float
        CPUs reserved per attribution CPU actor. Default 1.
    """

    methods: tuple[str, ...] = ("deeplift",)
    source: str = "datasets"
    tfs: tuple[str, ...] = ()
    regimes: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("test",)
    label: int | None = 1
    where: str | None = None
    top: int | None = None
    max_windows: int | None = 2000
    flank: int = 200
    batch_size: int = 64
    chunk_rows: int = 256
    reference: str = "shuffle"
    n_shuffles: int = 10
    seed: int = 0
    modisco: ModiscoSettings = ModiscoSettings()
    top_matches: int = 3
    max_qvalue: float = 0.05
    trim_threshold: float = 0.3
    similarity: float = 0.75
    contrast: str = "open"
    actors: int | None = None
    cpus_per_actor: float = 1.0

    def __post_init__(self) -> None:
        for name in ("methods", "tfs", "regimes", "splits"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.modisco, dict):
            object.__setattr__(self, "modisco", ModiscoSettings(**self.modisco))

    def validate(self) -> FeaturesConfig:
        """Return self, or raise :class:`InputError` naming the bad flag."""
        from scanner.interpret.deeplift import REFERENCES

        bad = [m for m in self.methods if m not in FEATURE_METHODS]
        if bad or not self.methods:
            raise InputError(
                f"method(s) must be from {', '.join(FEATURE_METHODS)}, got {', '.join(self.methods) or 'none'}",
                field="--method",
            )
        if self.source not in SOURCES:
            raise InputError(f"must be one of {', '.join(SOURCES)}, got {self.source!r}", field="--source")
        if self.label not in (None, 0, 1):
            raise InputError(f"must be 0, 1 or unset, got {self.label}", field="--label")
        for name in ("top", "max_windows", "actors"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise InputError(f"must be >= 1, got {v}", field="--" + name.replace("_", "-"))
        for name in ("flank", "batch_size", "chunk_rows", "n_shuffles", "top_matches"):
            if getattr(self, name) < 1:
                raise InputError(f"must be >= 1, got {getattr(self, name)}", field="--" + name.replace("_", "-"))
        if self.reference not in REFERENCES:
            raise InputError(f"must be one of {', '.join(REFERENCES)}, got {self.reference!r}", field="--reference")
        for name in ("max_qvalue", "trim_threshold", "similarity"):
            if not 0 < getattr(self, name) <= 1:
                raise InputError(f"must be in (0, 1], got {getattr(self, name)}", field="--" + name.replace("_", "-"))
        if not self.cpus_per_actor > 0:
            raise InputError(f"must be > 0, got {self.cpus_per_actor}", field="--cpus-per-actor")
        self.modisco.validate()
        return self
