"""Exact fast ISM for the site-and-context network (:mod:`scanner.models.sitectx`).

The network's only layer that slides over the whole window is its first convolution (width ``w``), so
a substitution at position ``q`` changes that layer's output only at the ``w`` positions
``q - w + 1 .. q``. For every mutant this path therefore

* recomputes those ``w`` activations from the stored pre-activations plus the change of one input
  column (one small matrix product for all mutants),
* re-pools the (at most ``ceil(w / bin) + 1``) bins they fall in, against the stored activations of
  the rest of each bin, and takes the region maxima of the pooled vector with the network's own
  modules; the window mean moves by the change of those activations,
* updates the k-mer composition the same way (``kmax`` positions),
* runs the site branch again only for mutants inside its crops (on either strand),
* and runs the small dense head on the resulting feature vectors.

Nothing is approximated: the result equals one forward pass per mutant up to float rounding (tested
against :func:`scanner.interpret.ism.ism` with ``fast=False``). ``out[n, b, p] = f(x with b at p) - f(x)``,
0 at the reference base; at an N column every base is a substitution.
"""

from __future__ import annotations

from typing import Any

import torch


class SiteContextISM:
    """Fast-ISM plan of one :class:`~scanner.models.sitectx.SiteContextNet` (eval mode) and window length.

    Parameters
    ----------
    model : SiteContextNet
        Evaluated as it is (the caller sets eval mode and no-grad).
    length : int
        Window length the network takes.
    target : int, optional
        Output column (the network has one). Default 0.

    Raises
    ------
    ValueError
        If ``length`` is not the network's input length or ``target`` is not 0.
    """

    def __init__(self, model: Any, length: int, target: int = 0) -> None:
        if length != model.seq_len:
            raise ValueError(f"the network takes {model.seq_len} bp windows, got {length}")
        if target != 0:
            raise ValueError(f"the site-and-context network has one output, got target {target}")
        self.model = model
        self.length = length

    def __call__(self, x: torch.Tensor, start: int, end: int, chunk: int = 2048) -> torch.Tensor:
        """ISM of ``x`` (N, 4, L) at positions ``[start, end)``: (N, 4, end - start)."""
        out = torch.zeros((x.shape[0], 4, end - start), dtype=x.dtype, device=x.device)
        for i in range(x.shape[0]):
            out[i] = self._one(x[i : i + 1], start, end, chunk)
        return out

    def _one(self, x: torch.Tensor, start: int, end: int, chunk: int) -> torch.Tensor:
        m = self.model
        w = m.conv.weight  # (C, 4, kw)
        kw = w.shape[2]
        n = x.shape[2] - kw + 1
        nb = n // m.pool_bin
        covered = nb * m.pool_bin  # conv positions inside a bin (the rest are pooled away)
        z = m.conv(x)[0]  # (C, n) pre-activation
        act = torch.relu(z)
        pooled = m.pool(act[None])[0]  # (C, nb)
        mean = act[:, :covered].mean(1)
        site = m.site_features(x)[0]
        kz = m.kmer_conv(x)[0] if m.kmax else None
        kmer = torch.relu(kz).mean(1) if m.kmax else None
        comp = m.composition(torch.relu(kz)[None]) if m.kmax else None
        ref = m.head(m.context_from_pooled(pooled[None], mean[None]), site[None], comp)[0, 0]

        cols = x[0, :, start:end]  # (4, P)
        pos, base = [], []
        for b in range(4):
            p = torch.nonzero(cols[b] != 1.0, as_tuple=True)[0]
            pos.append(p + start)
            base.append(torch.full_like(p, b))
        pos, base = torch.cat(pos), torch.cat(base)
        result = torch.zeros((4, end - start), dtype=x.dtype, device=x.device)
        (a, b), (ar, br) = m.crop, m.crop_rc
        rc_lo, rc_hi = x.shape[2] - br, x.shape[2] - ar  # the reverse-complement crop in window coordinates
        for lo in range(0, pos.numel(), chunk):
            q, bs = pos[lo : lo + chunk], base[lo : lo + chunk]
            dx = -x[0, :, q].T.clone()  # (M, 4): new column minus old column
            dx[torch.arange(q.numel()), bs] += 1.0
            feats = self._context(m, z, act, pooled, mean, q, dx, kw, n, nb, covered)
            sites = site.expand(q.numel(), -1).clone()
            inside = ((q >= a) & (q < b)) | ((q >= rc_lo) & (q < rc_hi))
            if inside.any():
                idx = torch.nonzero(inside, as_tuple=True)[0]
                xm = x.expand(idx.numel(), -1, -1).clone()
                xm[torch.arange(idx.numel()), :, q[idx]] += dx[idx]
                sites[idx] = m.site_features(xm)
            comps = m.kmer_merge(self._kmers(m, kz, kmer, q, dx)) if m.kmax else None
            y = m.head(feats, sites, comps)[:, 0]
            result[bs, q - start] = y - ref
        return result

    @staticmethod
    def _context(
        m: Any,
        z: torch.Tensor,
        act: torch.Tensor,
        pooled: torch.Tensor,
        mean: torch.Tensor,
        q: torch.Tensor,
        dx: torch.Tensor,
        kw: int,
        n: int,
        nb: int,
        covered: int,
    ) -> torch.Tensor:
        """Context features of each mutant: its ``kw`` changed activations re-pooled into its bins."""
        n_mut = q.numel()
        bin_ = m.pool_bin
        taps = torch.arange(kw, device=q.device)
        t = q[:, None] - taps[None, :]  # (M, kw) conv positions whose window holds q
        ok = (t >= 0) & (t < n)
        tc = t.clamp(0, n - 1)
        delta = torch.einsum("cjk,mj->mck", m.conv.weight, dx)  # (M, C, kw): change at position q - k
        new = torch.relu(z[:, tc].permute(1, 0, 2) + delta)  # (M, C, kw)
        old = act[:, tc].permute(1, 0, 2)
        use = (ok & (t < covered))[:, None, :]
        mean_new = mean[None] + ((new - old) * use).sum(2) / covered
        # bins that the changed positions fall in: b0 .. b0 + span - 1
        span = (kw - 1) // bin_ + 2
        b0 = (q - kw + 1).clamp(min=0) // bin_
        b0 = b0.clamp(max=max(nb - span, 0))
        nspan = min(span, nb)
        slab_pos = b0[:, None] * bin_ + torch.arange(nspan * bin_, device=q.device)[None, :]  # (M, S)
        slab = act[:, slab_pos.clamp(max=n - 1)].permute(1, 0, 2).clone()  # (M, C, S)
        rel = t - b0[:, None] * bin_  # (M, kw) position within the slab
        inside = use[:, 0, :] & (rel >= 0) & (rel < nspan * bin_)
        mi, ki = torch.nonzero(inside, as_tuple=True)
        slab[mi, :, rel[mi, ki]] = new[mi, :, ki]
        new_bins = slab.view(n_mut, -1, nspan, bin_).amax(3)  # (M, C, nspan)
        pooled_new = pooled[None].expand(n_mut, -1, -1).clone()
        bins = b0[:, None] + torch.arange(nspan, device=q.device)[None, :]
        rows = torch.arange(n_mut, device=q.device)[:, None].expand(-1, nspan)
        pooled_new[rows, :, bins] = new_bins.permute(0, 2, 1)
        return m.context_from_pooled(pooled_new, mean_new)

    @staticmethod
    def _kmers(m: Any, kz: torch.Tensor, kmer: torch.Tensor, q: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
        """Mean k-mer indicators of each mutant: those of the ``kmax`` positions whose k-mer holds q, updated."""
        k = m.kmax
        nk = kz.shape[1]
        taps = torch.arange(k, device=q.device)
        t = q[:, None] - taps[None, :]
        ok = ((t >= 0) & (t < nk))[:, None, :]
        tc = t.clamp(0, nk - 1)
        delta = torch.einsum("cjk,mj->mck", m.kmer_conv.weight, dx)
        old = torch.relu(kz[:, tc].permute(1, 0, 2))
        new = torch.relu(kz[:, tc].permute(1, 0, 2) + delta)
        return kmer[None] + ((new - old) * ok).sum(2) / nk
