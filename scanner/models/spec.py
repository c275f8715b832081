"""Typed model construction: a :class:`ModelSpec` maps straight onto layer hyper-parameters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

ARCHITECTURES = ("deepsea", "small")


@dataclass(frozen=True)
class ModelSpec:
    """Hyper-parameters of a model.

    Parameters
    ----------
    arch : {"deepsea", "small"}
        ``"deepsea"``: the reference network (conv 320/480/960, width 8, batch norm, ReLU, max-pool 4,
        dropout 0.2/0.2/0.5, dense 925, one logit; 52.0 M parameters at 1 kb). ``"small"``: three conv
        blocks (32/64/64 filters, widths 11/7/5, max-pool 4), dense 64, one logit (~0.1 M parameters),
        for CPUs and tests. Default ``"small"``.
    seq_len : int
        Input length L in bp. Default 1000.
    conv_channels, conv_widths, pool_sizes, dropouts : tuple of int / float, optional
        Override the convolution stack (same length each). Default: the architecture's.
    dense_units : int, optional
        Hidden dense layer width. Default: the architecture's (925 or 64).
    dense_dropout : float
        Dropout before the output layer. Default 0.0.
    """

    arch: str = "small"
    seq_len: int = 1000
    conv_channels: tuple[int, ...] | None = None
    conv_widths: tuple[int, ...] | None = None
    pool_sizes: tuple[int, ...] | None = None
    dropouts: tuple[float, ...] | None = None
    dense_units: int | None = None
    dense_dropout: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def resolved(self) -> ModelSpec:
        """A copy with every ``None`` replaced by the architecture's default."""
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if self.arch == "deepsea":
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
        values = {k: (getattr(self, k) if getattr(self, k) is not None else v) for k, v in d.items()}
        spec = ModelSpec(
            arch=self.arch,
            seq_len=self.seq_len,
            dense_dropout=self.dense_dropout,
            extra=dict(self.extra),
            **values,
        )
        n = len(spec.conv_channels)
        if not (len(spec.conv_widths) == len(spec.pool_sizes) == len(spec.dropouts) == n):
            raise ValueError(
                "conv_channels, conv_widths, pool_sizes and dropouts must have the same length, got "
                f"{len(spec.conv_channels)}, {len(spec.conv_widths)}, {len(spec.pool_sizes)}, {len(spec.dropouts)}"
            )
        if spec.flat_length() <= 0:
            raise ValueError(f"seq_len {self.seq_len} is too short for the convolution stack of {self.arch!r}")
        return spec

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


def build_model(spec: ModelSpec) -> torch.nn.Sequential:
    """Build the network described by ``spec`` (weights initialised by torch's defaults).

    Parameters
    ----------
    spec : ModelSpec
        Hyper-parameters; ``None`` fields take the architecture's defaults.

    Returns
    -------
    torch.nn.Sequential
        Input ``(N, 4, seq_len)`` float32, output ``(N, 1)`` logits.

    Raises
    ------
    ValueError
        For an unknown architecture or a stack that does not fit ``seq_len``.
    """
    import torch.nn as nn

    spec = spec.resolved()
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
