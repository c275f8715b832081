"""The site-and-context network: motif detectors pooled by distance to the site, the site read at a
fixed position, and the window's k-mer composition.

The window is centred on the motif instance (``window_start = (start + end) // 2 - W // 2``), so the
site always sits at the same place; the network reads it three ways (all in one module, input
``(N, 4, W)`` one-hot float32 in A, C, G, T order, N = 0.25; output ``(N, 1)`` logits):

* **context**: ``Conv1d(4, C, w)`` motif detectors (the first layer; :mod:`scanner.models.motif_init`
  can set them to known motifs) -> ReLU -> max-pool in bins of ``pool_sizes[0]`` positions -> the maximum
  of each detector over nested regions centred on the site (radius ``r`` bp for each ``r`` in
  ``radii``, rounded out to whole bins, then the whole window) and its mean over the window. A
  partner 40-150 bp away and one 250 bp away land in different regions.
* **site**: ``Conv1d(4, K, site_len + 2 * site_flank)`` over the central crop of the window and of its
  reverse complement (shifted so that a motif read on either strand is aligned), max-pooled over
  both orientations and the ``2 * site_shift + 1`` offsets a shift augmentation can cause: the site
  and its flanks as a position-specific pattern, which a PWM does not model.
* **composition** (``kmer_max > 0``): a frozen ``Conv1d`` whose filters are the indicator of every
  k-mer, k = 1..``kmax`` (ReLU(2 * matches + 1 - 2k) is 1 exactly where the k-mer occurs), averaged
  over the window and summed with the reverse complement's (a frozen 0/1 ``Linear``) -> standardised
  with fixed training-set statistics -> a linear term added to the logit: the k-mer spectrum a
  gkm-SVM-style baseline reads, inside the network.

The context and site features go through batch norm, dropout, ``Linear(F, H)``, ReLU,
``Linear(H, 1)``; the first site filter's score and the composition term are added to that. Every
non-linearity is a module used once per forward pass (captum's DeepLIFT rules apply), and the first
convolution is the only layer that slides over the whole window, which is what makes exact fast ISM
cheap (:mod:`scanner.interpret.ism_sitectx`).
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

if TYPE_CHECKING:
    from scanner.models.spec import ModelSpec


def kmer_filters(kmax: int) -> tuple[list[tuple[int, ...]], torch.Tensor, torch.Tensor]:
    """Indicator filters of every k-mer, k = 1..kmax, as ``(kmers, weight (F, 4, kmax), bias (F,))``.

    A k-mer's filter has a 2 at (base, offset) for each of its letters in its first k columns and bias
    ``1 - 2k``, so on one-hot input ``ReLU(conv)`` is 1 where the k-mer starts and 0 elsewhere: one
    mismatch gives -1, and an N column (0.25 in every row) in place of a matching base gives -0.5.
    """
    kmers = [km for k in range(1, kmax + 1) for km in itertools.product(range(4), repeat=k)]
    weight = torch.zeros((len(kmers), 4, kmax))
    bias = torch.zeros(len(kmers))
    for i, km in enumerate(kmers):
        for j, b in enumerate(km):
            weight[i, b, j] = 2.0
        bias[i] = 1.0 - 2 * len(km)
    return kmers, weight, bias


def region_bins(seq_len: int, width: int, pool_bin: int, radius: int) -> tuple[int, int]:
    """Half-open range of pooled bins whose conv positions centre within ``radius`` bp of the window centre."""
    n = seq_len - width + 1
    nb = n // pool_bin
    centre = seq_len / 2 - (width - 1) / 2  # conv position whose filter is centred on the window centre
    lo = max(0, math.floor((centre - radius) / pool_bin))
    hi = min(nb, math.ceil((centre + radius) / pool_bin))
    return lo, max(hi, lo + 1)


def site_crops(seq_len: int, site_len: int, flank: int, shift: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``[a, b)`` of the central crop in the window and in its reverse complement.

    The site of length ``L`` starts at ``W // 2 - L // 2`` in the window and at ``W - W // 2 - (L - L // 2)``
    in its reverse complement; each crop holds it with ``flank + shift`` bases on either side.
    """
    span = site_len + 2 * flank + 2 * shift
    a = seq_len // 2 - site_len // 2 - flank - shift
    ar = seq_len - seq_len // 2 - (site_len - site_len // 2) - flank - shift
    if a < 0 or ar < 0 or a + span > seq_len or ar + span > seq_len:
        raise ValueError(
            f"the site crop ({site_len} bp site + {flank} bp flanks + {shift} bp shift each side) "
            f"does not fit a {seq_len} bp window"
        )
    return (a, a + span), (ar, ar + span)


class Standardize(nn.Module):
    """``(x - mean) * scale`` with fixed buffers (set from training rows; no batch statistics)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.scale


def canonical_kmer_matrix(kmers: list[tuple[int, ...]]) -> torch.Tensor:
    """0/1 matrix (classes, kmers) summing each k-mer with its reverse complement into one class."""
    index = {km: i for i, km in enumerate(kmers)}
    classes: dict[tuple[int, ...], int] = {}
    rows = []
    for km in kmers:
        rc = tuple(3 - b for b in reversed(km))
        key = min(km, rc)
        if key not in classes:
            classes[key] = len(classes)
            rows.append(sorted({index[km], index[rc]}))
    out = torch.zeros((len(rows), len(kmers)))
    for i, cols in enumerate(rows):
        out[i, cols] = 1.0
    return out


class SiteContextNet(nn.Module):
    """See the module docstring. Build it with :func:`scanner.models.build_model` from a ModelSpec.

    The logit is ``deep + site_0 + wide``: the dense head on the context and site features, plus the
    first site filter's best match (a linear score of the site and its flanks) and a linear term on
    the standardised k-mer composition. Training can fit those two linear terms first by regularised
    logistic regression (:mod:`scanner.train.prefit`) and start the dense head at zero, so that the
    network begins as that regression and learns what it misses.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.seq_len = spec.seq_len
        (channels,), (width,), (pool_bin,) = spec.conv_channels, spec.conv_widths, spec.pool_sizes
        self.conv = nn.Conv1d(4, channels, width)
        self.relu = nn.ReLU()
        self.pool_bin = pool_bin
        self.pool = nn.MaxPool1d(pool_bin)
        self.regions = [region_bins(spec.seq_len, width, pool_bin, r) for r in spec.radii]
        nb = (spec.seq_len - width + 1) // pool_bin
        self.regions.append((0, nb))
        self.region_pools = nn.ModuleList(nn.MaxPool1d(b - a) for a, b in self.regions)
        n_feat = channels * (len(self.regions) + 1)
        self.site_len, self.site_flank = spec.site_len, spec.site_flank
        self.register_buffer("input_length", torch.tensor(spec.seq_len))  # checked when a checkpoint loads
        self.crop, self.crop_rc = site_crops(spec.seq_len, spec.site_len, spec.site_flank, spec.site_shift)
        self.site_conv = nn.Conv1d(4, spec.site_filters, spec.site_len + 2 * spec.site_flank)
        self.site_pool = nn.MaxPool1d(2 * (2 * spec.site_shift + 1))
        n_feat += spec.site_filters
        self.feat_norm = nn.BatchNorm1d(n_feat)
        self.dropout = nn.Dropout(spec.dropouts[0])
        self.fc1 = nn.Linear(n_feat, spec.dense_units)
        self.fc_relu = nn.ReLU()
        self.fc2 = nn.Linear(spec.dense_units, 1)
        self.kmax = spec.kmer_max
        if self.kmax:
            kmers, weight, bias = kmer_filters(self.kmax)
            self.kmer_conv = nn.Conv1d(4, weight.shape[0], self.kmax)
            merge = canonical_kmer_matrix(kmers)
            self.kmer_merge = nn.Linear(len(kmers), merge.shape[0], bias=False)
            with torch.no_grad():
                self.kmer_conv.weight.copy_(weight)
                self.kmer_conv.bias.copy_(bias)
                self.kmer_merge.weight.copy_(merge)
            self.kmer_conv.requires_grad_(False)
            self.kmer_merge.requires_grad_(False)
            self.kmer_relu = nn.ReLU()
            self.kmer_scale = Standardize(merge.shape[0])
            self.wide = nn.Linear(merge.shape[0], 1)

    # The pieces below are also what fast ISM and Grad-CAM reuse.
    def detectors(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(conv(x)): (N, C, W - w + 1)."""
        return self.relu(self.conv(x))

    def context_features(self, act: torch.Tensor) -> torch.Tensor:
        """Region maxima and window mean of detector activations: (N, C * (regions + 1))."""
        pooled = self.pool(act.clone())  # clone: ReLU and max-pool each get their own tensor (DeepLIFT)
        covered = pooled.shape[2] * self.pool_bin  # the positions the bins hold (the rest are pooled away)
        return self.context_from_pooled(pooled, act[:, :, :covered].mean(2))

    def context_from_pooled(self, pooled: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """Region maxima of binned maxima ``pooled`` (N, C, bins), then ``mean`` (N, C)."""
        feats = [
            p(pooled[:, :, a:b].clone()).flatten(1) for p, (a, b) in zip(self.region_pools, self.regions, strict=True)
        ]
        feats.append(mean)
        return torch.cat(feats, 1)

    def site_features(self, x: torch.Tensor) -> torch.Tensor:
        """Best match of each site filter over both orientations and allowed offsets: (N, K)."""
        (a, b), (ar, br) = self.crop, self.crop_rc
        fwd = self.site_conv(x[:, :, a:b])
        rev = self.site_conv(x.flip((1, 2))[:, :, ar:br])
        return self.site_pool(torch.cat([fwd, rev], 2)).flatten(1)

    def kmer_indicators(self, x: torch.Tensor) -> torch.Tensor:
        """1 where each k-mer (k = 1..kmax) starts: (N, n_kmers, W - kmax + 1)."""
        return self.kmer_relu(self.kmer_conv(x))

    def composition(self, indicators: torch.Tensor) -> torch.Tensor:
        """Frequency of each k-mer class (a k-mer and its reverse complement) over the window: (N, F)."""
        return self.kmer_merge(indicators.mean(2))

    def kmer_frequencies(self, x: torch.Tensor) -> torch.Tensor:
        """``composition(kmer_indicators(x))`` by counting integer k-mer codes: the same numbers, a fraction of
        the work, no gradient (used when ``x`` needs none: training and prediction)."""
        n, _, w = x.shape
        m = w - self.kmax + 1
        # the base index of a one-hot column as a weighted sum: argmax over 4 channels cost a fifth of a
        # training step on CPU (benchmarks/RESULTS.md, "Models"); N columns get a code but are masked
        codes = (x[:, 1] + 2 * x[:, 2] + 3 * x[:, 3]).long()
        valid = torch.maximum(torch.maximum(x[:, 0], x[:, 1]), torch.maximum(x[:, 2], x[:, 3])) == 1.0
        counts = []
        for k in range(1, self.kmax + 1):
            key = torch.zeros((n, m), dtype=torch.long, device=x.device)
            ok = torch.ones((n, m), dtype=torch.bool, device=x.device)
            for j in range(k):
                key = key * 4 + codes[:, j : j + m]
                ok &= valid[:, j : j + m]
            c = torch.zeros((n, 4**k + 1), dtype=x.dtype, device=x.device)
            c.scatter_add_(1, torch.where(ok, key, 4**k), torch.ones_like(key, dtype=x.dtype))
            counts.append(c[:, : 4**k])
        return self.kmer_merge(torch.cat(counts, 1) / m)

    def head(self, context: torch.Tensor, site: torch.Tensor, composition: torch.Tensor | None) -> torch.Tensor:
        """Logit from the context and site features and the composition: (N, 1)."""
        out = self.fc2(self.fc_relu(self.fc1(self.dropout(self.feat_norm(torch.cat([context, site], 1))))))
        out = out + site[:, :1]
        if composition is not None:
            out = out + self.wide(self.kmer_scale(composition))
        return out

    def forward_from_detectors(self, act: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logit given the detector activations (Grad-CAM's split) and the input."""
        comp = None
        if self.kmax:
            comp = self.kmer_frequencies(x) if not x.requires_grad else self.composition(self.kmer_indicators(x))
        return self.head(self.context_features(act), self.site_features(x), comp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from_detectors(self.detectors(x), x)
