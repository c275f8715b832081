"""Typed model construction: a :class:`ModelSpec` maps straight onto layer hyper-parameters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

ARCHITECTURES = ("sitectx", "deepsea", "small")


@dataclass(frozen=True)
class ModelSpec:
    """Hyper-parameters of a model.

    Parameters
    ----------
    arch : {"sitectx", "deepsea", "small"}
        ``"sitectx"``: the site-and-context network (:mod:`scanner.models.sitectx`): 32 motif
        detectors of width 15 pooled over regions centred on the site, the site and its flanks read at
        a fixed position, and the window's k-mer composition (~20 k parameters; default).
        ``"deepsea"``: the reference network (conv 320/480/960, width 8, batch norm, ReLU, max-pool 4,
        dropout 0.2/0.2/0.5, dense 925, one logit; 52.0 M parameters at 1 kb). ``"small"``: three conv
        blocks (32/64/64 filters, widths 11/7/5, max-pool 4), dense 64, one logit (~0.1 M parameters).
        Default ``"small"`` (the dataclass default, kept for old checkpoints; training defaults to
        ``"sitectx"``).
    seq_len : int
        Input length L in bp. Default 1000.
    conv_channels, conv_widths, pool_sizes, dropouts : tuple of int / float, optional
        Override the convolution stack (same length each). For ``"sitectx"`` one entry each: the
        detectors, their width, the pooling bin and the dropout before the dense layer (defaults
        32, 15, 8, 0.2). Default: the architecture's.
    dense_units : int, optional
        Hidden dense layer width. Default: the architecture's (925, 64, or 32 for ``"sitectx"``).
    dense_dropout : float
        Dropout before the output layer (``"deepsea"``/``"small"``). Default 0.0.
    radii : tuple of int, optional
        ``"sitectx"``: radii (bp) of the regions centred on the site over which each detector's
        maximum is taken (the whole window is always added). Default (32, 96, 192, 320).
    site_len : int
        ``"sitectx"``: length of the motif site at the window centre (set from the data by training).
        Default 20.
    site_flank : int
        ``"sitectx"``: bases read on either side of the site by the site branch. Default 15.
    site_filters : int
        ``"sitectx"``: filters of the site branch. Default 4.
    site_shift : int
        ``"sitectx"``: largest offset of the site from the centre that the site branch searches (set to
        the shift augmentation's size by training). Default 0.
    kmer_max : int, optional
        ``"sitectx"``: longest k-mer of the composition branch (0 turns it off). Default 3.
    members : int
        Ensemble size: ``members`` networks of this shape whose logits are averaged
        (:class:`scanner.models.ensemble.Ensemble`). Default 1 (a single network).
    """

    arch: str = "small"
    seq_len: int = 1000
    conv_channels: tuple[int, ...] | None = None
    conv_widths: tuple[int, ...] | None = None
    pool_sizes: tuple[int, ...] | None = None
    dropouts: tuple[float, ...] | None = None
    dense_units: int | None = None
    dense_dropout: float = 0.0
    radii: tuple[int, ...] | None = None
    site_len: int = 20
    site_flank: int = 15
    site_filters: int = 4
    site_shift: int = 0
    kmer_max: int | None = None
    members: int = 1
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def resolved(self) -> ModelSpec:
        """A copy with every ``None`` replaced by the architecture's default."""
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if self.arch == "sitectx":
            d = dict(conv_channels=(32,), conv_widths=(15,), pool_sizes=(8,), dropouts=(0.2,), dense_units=32)
        elif self.arch == "deepsea":
            d = dict(
                conv_channels=(320, 480, 960),
                conv_widths=(8, 8, 8),
                pool_sizes=(4, 4, 1),
                dropouts=(0.2, 0.2, 0.5),
                dense_units=925,
            )
        else:
            d = dict(
                conv_channels=(32, 64, 64),
                conv_widths=(11, 7, 5),
                pool_sizes=(4, 4, 4),
                dropouts=(0.1, 0.1, 0.1),
                dense_units=64,
            )
        if self.arch == "sitectx":
            d.update(radii=(32, 96, 192, 320), kmer_max=3)
        else:
            d.update(radii=(), kmer_max=0)
        values = {k: (getattr(self, k) if getattr(self, k) is not None else v) for k, v in d.items()}
        spec = ModelSpec(
            arch=self.arch,
            seq_len=self.seq_len,
            dense_dropout=self.dense_dropout,
            site_len=self.site_len,
            site_flank=self.site_flank,
            site_filters=self.site_filters,
            site_shift=self.site_shift,
            members=self.members,
            extra=dict(self.extra),
            **values,
        )
        if spec.members < 1:
            raise ValueError(f"members must be >= 1, got {spec.members}")
        if spec.arch == "sitectx":
            spec._check_sitectx()
            return spec
        n = len(spec.conv_channels)
        if not (len(spec.conv_widths) == len(spec.pool_sizes) == len(spec.dropouts) == n):
            raise ValueError(
                "conv_channels, conv_widths, pool_sizes and dropouts must have the same length, got "
                f"{len(spec.conv_channels)}, {len(spec.conv_widths)}, {len(spec.pool_sizes)}, {len(spec.dropouts)}"
            )
        if spec.flat_length() <= 0:
            raise ValueError(f"seq_len {self.seq_len} is too short for the convolution stack of {self.arch!r}")
        return spec

    def _check_sitectx(self) -> None:
        from scanner.models.sitectx import site_crops

        if len(self.conv_channels) != 1 or not (
            len(self.conv_widths) == len(self.pool_sizes) == len(self.dropouts) == 1
        ):
            raise ValueError(
                "the sitectx network has one detector layer: give one value each for channels, widths, "
                "pool sizes and dropouts"
            )
        (c,), (w,), (b,) = self.conv_channels, self.conv_widths, self.pool_sizes
        if c < 1 or w < 1 or b < 1 or self.dense_units < 1 or self.site_filters < 1:
            raise ValueError("sitectx sizes (channels, width, pool bin, dense units, site filters) must be >= 1")
        if (self.seq_len - w + 1) // b < 1:
            raise ValueError(f"seq_len {self.seq_len} is too short for detectors of width {w} pooled in bins of {b}")
        if any(r < 1 for r in self.radii):
            raise ValueError(f"radii must be >= 1 bp, got {self.radii}")
        if self.site_len < 1 or self.site_flank < 0 or self.site_shift < 0:
            raise ValueError("site_len must be >= 1, site_flank and site_shift >= 0")
        if not 0 <= self.kmer_max <= 6:
            raise ValueError(f"kmer_max must be in 0..6, got {self.kmer_max}")
        site_crops(self.seq_len, self.site_len, self.site_flank, self.site_shift)

    def flat_length(self) -> int:
        """Sequence length left after the convolution stack (valid convolutions, floor pooling)."""
        length = self.seq_len
        for width, pool in zip(self.conv_widths or (), self.pool_sizes or (), strict=True):
            length = length - width + 1
            length = length // pool if pool > 1 else length
            if length <= 0:
                return 0
        return length

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model spec fields: {sorted(unknown)}")
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kw)


def build_model(spec: ModelSpec) -> torch.nn.Module:
    """Build the network described by ``spec`` (weights initialised by torch's defaults).

    Parameters
    ----------
    spec : ModelSpec
        Hyper-parameters; ``None`` fields take the architecture's defaults.

    Returns
    -------
    torch.nn.Module
        Input ``(N, 4, seq_len)`` float32, output ``(N, 1)`` logits: an ``nn.Sequential`` for
        ``"deepsea"``/``"small"``, a :class:`scanner.models.sitectx.SiteContextNet` for ``"sitectx"``,
        an :class:`scanner.models.ensemble.Ensemble` of those when ``spec.members > 1``.

    Raises
    ------
    ValueError
        For an unknown architecture or a stack that does not fit ``seq_len``.
    """
    spec = spec.resolved()
    if spec.members > 1:
        from scanner.models.ensemble import Ensemble

        return Ensemble([_build_one(spec) for _ in range(spec.members)])
    return _build_one(spec)


def _build_one(spec: ModelSpec) -> torch.nn.Module:
    import torch.nn as nn

    if spec.arch == "sitectx":
        from scanner.models.sitectx import SiteContextNet

        return SiteContextNet(spec)
    layers: list[nn.Module] = []
    in_ch = 4
    for out_ch, width, pool, drop in zip(
        spec.conv_channels, spec.conv_widths, spec.pool_sizes, spec.dropouts, strict=True
    ):
        layers += [nn.Conv1d(in_ch, out_ch, width), nn.BatchNorm1d(out_ch), nn.ReLU()]
        if pool > 1:
            layers.append(nn.MaxPool1d(pool))
        if drop > 0:
            layers.append(nn.Dropout(drop))
        in_ch = out_ch
    layers += [
        nn.Flatten(),
        nn.Linear(in_ch * spec.flat_length(), spec.dense_units),
        nn.BatchNorm1d(spec.dense_units),
        nn.ReLU(),
    ]
    if spec.dense_dropout > 0:
        layers.append(nn.Dropout(spec.dense_dropout))
    layers.append(nn.Linear(spec.dense_units, 1))
    return nn.Sequential(*layers)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
