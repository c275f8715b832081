"""In silico saturation mutagenesis (ISM): the change in logit for every single-base substitution.

Two paths compute the same numbers:

* ``fast=False`` (CLI ``--method ism-naive``), the reference: every mutant sequence is run through
  the whole network.
* ``fast=True`` (``--method ism``): one forward pass of the unedited sequence stores every layer's
  activations; each substitution then propagates only its *difference* from that pass, through the
  window of positions it can reach:

  - a convolution of a difference that is non-zero at ``w`` positions is a transposed convolution: one
    accumulating GEMM per tap over ``w`` rows (a re-computed output slice, as in fastISM, costs
    ``w + K - 1`` columns); the first convolution is one GEMM over all taps of the changed column;
  - batch norm (eval) is folded into the preceding convolution (it scales output channels);
  - an activation followed by max-pool is evaluated on the span of the fixed pooling windows that
    overlap the change, against the stored activations; window positions whose difference is exactly
    zero for every mutant of a chunk are trimmed. Mutants are grouped by position modulo the product
    of the pooling strides, so a chunk's windows share their alignment and trimming finds the exact
    width;
  - the first dense layer multiplies only the non-zero difference rows (one per changed position and
    mutant), collected over chunks and grouped by position so that each GEMM has hundreds of rows;
    everything after it runs on the dense hidden vector.

Both return the same tensor: for sequence ``n``, base ``b`` and position ``p``,
``out[n, b, p] = f(x with base b at p) - f(x)``, in logit units (alt minus ref; negative means the
substitution lowers the predicted log-odds of binding), and exactly 0 where ``b`` already is the base
at ``p``. At an N position (a 0.25 column) all four substitutions are computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scanner.interpret._model_state import (
    _POINTWISE_NAMES,
    as_sequential,
    check_onehot,
    model_device_dtype,
    preserved_model,
    scalar_output,
)

if TYPE_CHECKING:
    import torch

#: Mutants per GEMM chunk on the fast path (bounds memory: ~0.1 MB per mutant for the DeepSEA model).
FAST_CHUNK = 2048
#: Mutant sequences per forward batch on the naive path.
NAIVE_BATCH = 128


def ism(
    model: torch.nn.Module,
    x: Any,
    *,
    start: int = 0,
    end: int | None = None,
    fast: bool = True,
    target: int = 0,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Change in the model's logit for each of the substitutions at each position.

    Parameters
    ----------
    model : torch.nn.Module
        A network of :mod:`scanner.models` (for ``fast=True``: the site-and-context network, an
        ensemble, or any ``nn.Sequential`` of Conv1d, BatchNorm1d, element-wise activations, MaxPool1d,
        Dropout, Flatten and Linear layers; any module for ``fast=False``). Evaluated in eval mode on
        its own device and dtype; left unchanged.
    x : torch.Tensor or numpy.ndarray, shape (N, 4, L)
        One-hot sequences (A, C, G, T rows; N columns 0.25 each).
    start, end : int, optional
        Mutate positions ``[start, end)`` only (0-based, in window coordinates). Default: all.
    fast : bool, optional
        Difference propagation (True, default) or one full forward pass per mutant (False).
    target : int, optional
        Output column to explain when the model has several. Default 0.
    batch_size : int, optional
        Mutants per chunk. Default :data:`FAST_CHUNK` (fast) or :data:`NAIVE_BATCH` (naive).

    Returns
    -------
    torch.Tensor, shape (N, 4, end - start), dtype of the model, on the CPU
        ``f(mutant) - f(x)`` in logit units; 0 at the reference base.

    Raises
    ------
    ValueError
        If ``x`` is not an ``(N, 4, L)`` floating array, or ``start``/``end`` are out of range.
    TypeError
        If ``fast=True`` and the model is not an ``nn.Sequential`` or contains a layer the fast path
        cannot propagate (the message names it; use ``fast=False``).
    """
    import torch

    x = check_onehot(x)
    length = x.shape[2]
    end = length if end is None else int(end)
    start = int(start)
    if not 0 <= start < end <= length:
        raise ValueError(f"positions [start, end) = [{start}, {end}) must lie within [0, {length}]")
    device, dtype = model_device_dtype(model)
    x = x.to(device=device, dtype=dtype)
    with preserved_model(model), torch.inference_mode():
        if fast:
            plan = fast_plan(model, length, target=target)
            out = plan(x, start, end, chunk=batch_size or FAST_CHUNK)
        else:
            out = _naive(model, x, start, end, target, batch_size or NAIVE_BATCH)
    return out.cpu()


def fast_plan(model: torch.nn.Module, length: int, target: int = 0) -> Any:
    """The fast-ISM plan for ``model``: a callable ``plan(x, start, end, chunk=...)`` -> (N, 4, P).

    An ``nn.Sequential`` gets :class:`FastISM`; the site-and-context network gets
    :class:`scanner.interpret.ism_sitectx.SiteContextISM`; an ensemble gets the mean of its members'
    plans (ISM is linear in a mean of models).

    Raises
    ------
    TypeError
        For a model none of these paths can propagate (use ``fast=False``).
    """
    from scanner.models.ensemble import Ensemble
    from scanner.models.sitectx import SiteContextNet

    if isinstance(model, Ensemble):
        plans = [fast_plan(m, length, target) for m in model.members]

        def mean_plan(x: torch.Tensor, start: int, end: int, chunk: int = FAST_CHUNK) -> torch.Tensor:
            return sum(p(x, start, end, chunk=chunk) for p in plans) / len(plans)

        return mean_plan
    if isinstance(model, SiteContextNet):
        from scanner.interpret.ism_sitectx import SiteContextISM

        return SiteContextISM(model, length, target=target)
    return FastISM(as_sequential(model, "fast ISM"), length, target=target)


def _mutants(x: torch.Tensor, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All (sequence, position, base) triples to evaluate: every base that is not already at p."""
    import torch

    is_ref = x[:, :, start:end] == 1.0  # (N, 4, P)
    n_idx, b_idx, p_idx = torch.nonzero(~is_ref, as_tuple=True)
    return n_idx, p_idx + start, b_idx


def _naive(model: torch.nn.Module, x: torch.Tensor, start: int, end: int, target: int, batch: int) -> torch.Tensor:
    """Reference path: one full forward pass per mutant sequence."""
    import torch

    n, _, _ = x.shape
    out = torch.zeros((n, 4, end - start), dtype=x.dtype, device=x.device)
    ref = scalar_output(model(x), target)
    n_idx, p_idx, b_idx = _mutants(x, start, end)
    for lo in range(0, n_idx.numel(), batch):
        ni, pi, bi = n_idx[lo : lo + batch], p_idx[lo : lo + batch], b_idx[lo : lo + batch]
        xm = x[ni].clone()
        m = torch.arange(ni.numel(), device=x.device)
        xm[m, :, pi] = 0.0
        xm[m, bi, pi] = 1.0
        y = scalar_output(model(xm), target)
        out[ni, bi, pi - start] = y - ref[ni]
    return out


# ---- fast path --------------------------------------------------------------------------------
#
# Tensors of differences are position-major, ``d[j, m, c]``: window position j of mutant m, channel c;
# mutant m's window starts at absolute position ``lo[m]`` of the layer. Position-major rows make the
# rows of one window position a contiguous (M, C) block, so each tap of a transposed convolution is
# one GEMM that accumulates straight into its slice of the output.


@dataclass
class _Step:
    """One stage of difference propagation along the length axis."""

    kind: str  # "conv" | "scale" | "pointwise" | "maxpool" | "act_pool" | "identity"
    index: int  # module index in the Sequential
    in_len: int
    out_len: int
    module: Any = None
    weight: Any = None  # conv: (K, Cin, Cout), batch norm folded in; scale: (C,)
    kernel: int = 1
    dilation: int = 1
    padding: int = 0
    stride: int = 1
    pool_index: int = -1  # act_pool: index of the max-pool module


_POINTWISE = _POINTWISE_NAMES


class FastISM:
    """A difference-propagation plan for one ``nn.Sequential`` and one input length.

    Build it once and call it on many batches (the Ray actors do): it holds re-laid-out copies of the
    convolution and first dense weights. The model must not change while the plan is in use, and
    must be in eval mode when called.

    Parameters
    ----------
    model : torch.nn.Sequential
        In eval mode (the plan reads batch-norm running statistics).
    length : int
        Input length L.
    target : int, optional
        Output column to explain. Default 0.

    Raises
    ------
    TypeError
        For a layer the plan cannot propagate; the message names its index and type.
    ValueError
        If ``length`` does not fit the first dense layer.
    """

    def __init__(self, model: torch.nn.Sequential, length: int, target: int = 0) -> None:
        import torch.nn as nn

        self.model = model
        self.length = length
        self.target = target
        self.steps: list[_Step] = []
        #: Product of the pooling strides: mutants at positions equal modulo it reach windows of the
        #: same widths, so chunks are formed per class and trimmed to the exact widths.
        self.period = 1
        cur_len, cur_ch = length, 4
        flatten_at = None
        for i, m in enumerate(model):
            if isinstance(m, nn.Flatten):
                if m.start_dim != 1 or m.end_dim not in (-1, 2):
                    raise TypeError(f"fast ISM supports Flatten(start_dim=1) only (layer {i}: {m})")
                flatten_at = i
                break
            step, cur_len, cur_ch = _make_step(i, m, cur_len, cur_ch)
            if step.kind == "maxpool":
                self.period *= step.stride
            if step.kind == "maxpool" and self.steps and self.steps[-1].kind == "pointwise":
                act = self.steps.pop()  # activation then max-pool: evaluate f on the pooled span only
                step.module, step.kind, step.index = act.module, "act_pool", act.index
                step.pool_index = i
            if step.kind == "scale" and self.steps and self.steps[-1].kind == "conv":
                conv = self.steps[-1]
                conv.weight = conv.weight * step.weight  # batch norm (eval) scales output channels
                conv.index = i  # the conv+BN output is this module's output
                continue
            self.steps.append(step)
        if flatten_at is None:
            raise TypeError("fast ISM needs a Flatten followed by a Linear layer; the model has no Flatten")
        dense_at = flatten_at + 1
        while dense_at < len(model) and isinstance(model[dense_at], nn.Dropout | nn.Identity):
            dense_at += 1
        if dense_at >= len(model) or not isinstance(model[dense_at], nn.Linear):
            raise TypeError(
                f"fast ISM needs a Linear layer right after Flatten (layer {flatten_at}); "
                "use the naive path (fast=False / --method ism-naive)"
            )
        dense = model[dense_at]
        if dense.in_features != cur_ch * cur_len:
            raise ValueError(
                f"input length {length} gives {cur_ch} x {cur_len} features at the Flatten, but the "
                f"Linear layer {dense_at} expects {dense.in_features}"
            )
        self.flat_len, self.flat_ch = cur_len, cur_ch
        w = dense.weight.detach()  # (out, C * L_f), channel-major columns
        # (L_f, C, out): the weight rows of one flattened position, contiguous (two cheap copies).
        self.dense_weight = w.t().contiguous().view(cur_ch, cur_len, -1).transpose(0, 1).contiguous()
        self.conv_end = flatten_at
        self.dense_at = dense_at
        self.tail = model[dense_at + 1 :]

    def _reference(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Channels-last activations of every stack module, the first dense output and the target."""
        acts = []
        h = x
        for i in range(self.conv_end):
            h = self.model[i](h)
            acts.append(h.transpose(1, 2).contiguous())
        flat = h.flatten(1)
        for i in range(self.conv_end + 1, self.dense_at):
            flat = self.model[i](flat)
        hidden = self.model[self.dense_at](flat)
        out = scalar_output(self.tail(hidden), self.target)
        return acts, hidden, out

    def __call__(
        self, x: torch.Tensor, start: int = 0, end: int | None = None, chunk: int = FAST_CHUNK
    ) -> torch.Tensor:
        """ISM of ``x`` (N, 4, L) at positions ``[start, end)``; see :func:`ism` (call under no_grad)."""
        import torch

        end = self.length if end is None else end
        if x.shape[2] != self.length:
            raise ValueError(f"the plan was built for length {self.length}, got {x.shape[2]}")
        n = x.shape[0]
        out = torch.zeros((n, 4, end - start), dtype=x.dtype, device=x.device)
        # Sequences per reference pass: bound the stored activations to ~256 MB.
        per_seq = sum(s.out_len for s in self.steps) * max(self.flat_ch, 4) * x.element_size() * 2
        # ... and the per-mutant buffers (dense-layer differences) to ~32k mutants.
        group = max(1, min(n, (256 << 20) // max(per_seq, 1), 32768 // max(1, 3 * (end - start))))
        for g0 in range(0, n, group):
            xg = x[g0 : g0 + group]
            acts, hidden, ref_out = self._reference(xg)
            n_idx, p_idx, b_idx = _mutants(xg, start, end)
            order = torch.argsort(p_idx % self.period, stable=True)
            n_idx, p_idx, b_idx = n_idx[order], p_idx[order], b_idx[order]
            sizes = torch.unique_consecutive(p_idx % self.period, return_counts=True)[1].tolist()
            dense = _DenseAccumulator(self.dense_weight, n_idx.numel(), hidden.shape[1])
            c0 = 0
            for size in _pieces(sizes, chunk):
                sl = slice(c0, c0 + size)
                d, lo = self._stack(xg, acts, n_idx[sl], p_idx[sl], b_idx[sl])
                dense.add(d, lo, c0)
                c0 += size
            dh = dense.result()
            for t0 in range(0, n_idx.numel(), 8192):
                sl = slice(t0, t0 + 8192)
                y = scalar_output(self.tail(hidden[n_idx[sl]] + dh[sl]), self.target)
                out[g0 + n_idx[sl], b_idx[sl], p_idx[sl] - start] = y - ref_out[n_idx[sl]]
        return out

    def _stack(
        self, x: torch.Tensor, acts: list[torch.Tensor], ni: torch.Tensor, pi: torch.Tensor, bi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Differences at the Flatten for mutants ``(ni, pi, bi)``: ``(w, M, C)`` and window starts."""
        import torch

        m = ni.numel()
        d = -x[ni, :, pi].unsqueeze(0)  # (1, M, 4): e_b - x[:, :, p]
        d[0, torch.arange(m, device=x.device), bi] += 1.0
        lo = pi.clone()
        for step in self.steps:
            prev = acts[step.index - 1] if step.index > 0 else None
            if step.kind == "conv":
                d, lo = _conv(d, lo, step)
            elif step.kind == "scale":
                d = d * step.weight
            elif step.kind == "pointwise":
                if prev is None:
                    raise TypeError("fast ISM cannot start with an activation on the one-hot input")
                d = _pointwise(d, lo, prev, ni, step.module)
            elif step.kind in ("maxpool", "act_pool"):
                if prev is None:
                    raise TypeError("fast ISM cannot start with a max-pool on the one-hot input")
                out_index = step.pool_index if step.kind == "act_pool" else step.index
                d, lo = _maxpool(d, lo, prev, acts[out_index], ni, step)
                d, lo = _trim(d, lo)
                if d.shape[0] == 0:  # no pooled output moved: nothing reaches the dense layer
                    return d, lo
        return d, lo


def _make_step(i: int, m: Any, cur_len: int, cur_ch: int) -> tuple[_Step, int, int]:
    """The propagation step for module ``i``, and the length and channels after it."""
    import torch
    import torch.nn as nn

    name = type(m).__name__
    if isinstance(m, nn.Conv1d):
        if m.stride[0] != 1 or m.groups != 1 or m.padding_mode != "zeros":
            raise TypeError(
                f"fast ISM supports Conv1d with stride 1, groups 1 and zero padding; layer {i} "
                f"has stride {m.stride[0]}, groups {m.groups}, padding_mode {m.padding_mode!r}"
            )
        k, dil = m.kernel_size[0], m.dilation[0]
        if m.padding == "same":
            pad = dil * (k - 1) // 2
        elif m.padding == "valid":
            pad = 0
        else:
            pad = int(m.padding[0])
        out_len = cur_len + 2 * pad - dil * (k - 1)
        weight = m.weight.detach().permute(2, 1, 0).contiguous()  # (K, Cin, Cout)
        step = _Step("conv", i, cur_len, out_len, weight=weight, kernel=k, dilation=dil, padding=pad)
        return step, out_len, m.out_channels
    if isinstance(m, nn.BatchNorm1d):
        if m.running_var is None or m.running_mean is None:
            raise TypeError(f"fast ISM needs BatchNorm1d with running statistics (layer {i})")
        scale = torch.rsqrt(m.running_var.detach() + m.eps)
        if m.weight is not None:
            scale = scale * m.weight.detach()
        return _Step("scale", i, cur_len, cur_len, weight=scale), cur_len, cur_ch
    if name in _POINTWISE:
        return _Step("pointwise", i, cur_len, cur_len, module=m), cur_len, cur_ch
    if isinstance(m, nn.MaxPool1d):
        k = _single(m.kernel_size)
        s = _single(m.stride) if m.stride is not None else k
        if _single(m.padding) != 0 or _single(m.dilation) != 1 or m.ceil_mode or m.return_indices:
            raise TypeError(
                f"fast ISM supports MaxPool1d without padding, dilation, ceil_mode or indices (layer {i}: {m})"
            )
        out_len = (cur_len - k) // s + 1
        return _Step("maxpool", i, cur_len, out_len, kernel=k, stride=s), out_len, cur_ch
    if isinstance(m, nn.Dropout | nn.Identity):
        return _Step("identity", i, cur_len, cur_len), cur_len, cur_ch
    raise TypeError(
        f"fast ISM cannot propagate through layer {i} ({name}); supported: Conv1d, BatchNorm1d, "
        f"MaxPool1d, Dropout, Flatten, Linear and element-wise activations ({', '.join(_POINTWISE)}). "
        "Use the naive path (fast=False / --method ism-naive)."
    )


def _pieces(sizes: list[int], chunk: int) -> list[int]:
    """Split consecutive classes into chunks: a class never shares a chunk unless both are small."""
    out: list[int] = []
    acc = 0
    for size in sizes:
        if acc and acc + size > chunk:
            out.append(acc)
            acc = 0
        while size > chunk:
            out.append(chunk)
            size -= chunk
        acc += size
        if acc * 4 >= chunk:  # big enough for efficient GEMMs on its own
            out.append(acc)
            acc = 0
    if acc:
        out.append(acc)
    return out


def _single(v: Any) -> int:
    return int(v[0]) if isinstance(v, tuple | list) else int(v)


def _gather(act: torch.Tensor, ni: torch.Tensor, lo: torch.Tensor, width: int) -> torch.Tensor:
    """``act[ni, lo + j]`` as (width, M, C) for j < width; positions off the layer are clamped."""
    import torch

    g, length, c = act.shape
    pos = (lo.unsqueeze(0) + torch.arange(width, device=lo.device).unsqueeze(1)).clamp_(0, length - 1)
    rows = (ni * length).unsqueeze(0) + pos  # (width, M) row indices into act viewed as (G * L, C)
    return act.view(g * length, c).index_select(0, rows.view(-1)).view(width, -1, c)


def _mask_outside(d: torch.Tensor, lo: torch.Tensor, length: int) -> torch.Tensor:
    """Zero window positions outside ``[0, length)`` (only computed when a window crosses an edge)."""
    import torch

    w = d.shape[0]
    if bool(((lo < 0) | (lo + w > length)).any()):
        pos = lo.unsqueeze(0) + torch.arange(w, device=lo.device).unsqueeze(1)
        d = d * ((pos >= 0) & (pos < length)).unsqueeze(2)
    return d


def _trim(d: torch.Tensor, lo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop leading and trailing window positions that are zero for every mutant of the chunk."""
    import torch

    nz = torch.nonzero(d.abs().amax(dim=(1, 2)) > 0).squeeze(1)
    if nz.numel() == 0:
        return d[:0], lo
    first, last = int(nz[0]), int(nz[-1])
    if first == 0 and last == d.shape[0] - 1:
        return d, lo
    return d[first : last + 1], lo + first


def _conv(d: torch.Tensor, lo: torch.Tensor, step: _Step) -> tuple[torch.Tensor, torch.Tensor]:
    """Transposed convolution of a windowed difference: one accumulating GEMM per tap."""
    import torch

    w, m, cin = d.shape
    k, dil = step.kernel, step.dilation
    cout = step.weight.shape[2]
    w_out = w + dil * (k - 1)
    lo_out = lo + step.padding - dil * (k - 1)
    rows = d.reshape(w * m, cin)
    if w == 1:  # a single changed column (the one-hot input): one GEMM over all taps
        prod = rows @ step.weight.permute(1, 0, 2).reshape(cin, k * cout)  # (M, K * Cout)
        out = torch.zeros((w_out, m, cout), dtype=d.dtype, device=d.device)
        out[::dil] = prod.view(m, k, cout).flip(1).transpose(0, 1)
        return _mask_outside(out, lo_out, step.out_len), lo_out
    out = torch.zeros((w_out, m, cout), dtype=d.dtype, device=d.device)
    for tap in range(k):  # window row i, tap k feeds output row i + dil * (k - 1 - tap)
        off = dil * (k - 1 - tap)
        out[off : off + w].view(w * m, cout).addmm_(rows, step.weight[tap])
    return _mask_outside(out, lo_out, step.out_len), lo_out


def _pointwise(d: torch.Tensor, lo: torch.Tensor, ref_in: torch.Tensor, ni: torch.Tensor, module: Any):
    """``f(a + d) - f(a)`` over the window, with ``a`` the stored input of the activation."""
    import torch
    import torch.nn as nn

    a = _gather(ref_in, ni, lo, d.shape[0])
    if type(module) is nn.ReLU:
        new = torch.relu_(a + d)
        return new.sub_(a.relu_())
    return module(a + d) - module(a)


def _maxpool(
    d: torch.Tensor,
    lo: torch.Tensor,
    ref_in: torch.Tensor,
    ref_out: torch.Tensor,
    ni: torch.Tensor,
    step: _Step,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-evaluate the (fixed) pooling windows that overlap the changed positions.

    With ``step.kind == "act_pool"`` the activation before the pool is applied to the span first
    (``ref_in`` is then the activation's input).
    """
    import torch

    w, m, _ = d.shape
    k, s = step.kernel, step.stride
    lo_out = -torch.div(k - 1 - lo, s, rounding_mode="floor")  # first window reaching lo: ceil((lo-k+1)/s)
    w_out = math.ceil((w + k - 1) / s)
    span = max((w_out - 1) * s + k, (k - 1) + w)
    base = lo_out * s
    # The difference laid onto the span: span row r holds d[r - (lo - base)] (a gather, no scatter).
    src = torch.arange(span, device=d.device).unsqueeze(1) - (lo - base).unsqueeze(0)  # (span, M)
    inside = ((src >= 0) & (src < w)).unsqueeze(2)
    rows = src.clamp(0, w - 1) * m + torch.arange(m, device=d.device).unsqueeze(0)
    new_in = d.reshape(w * m, -1).index_select(0, rows.view(-1)).view(span, m, -1).mul_(inside)
    new_in += _gather(ref_in, ni, base, span)  # (span, M, C)
    if step.module is not None:  # fused activation: pool f(a + d)
        new_in = torch.relu_(new_in) if type(step.module) is torch.nn.ReLU else step.module(new_in)
    reach = (w_out - 1) * s + 1
    pooled = new_in[0:reach:s].clone()
    for r in range(1, k):
        torch.maximum(pooled, new_in[r : r + reach : s], out=pooled)
    pooled -= _gather(ref_out, ni, lo_out, w_out)
    return _mask_outside(pooled, lo_out, step.out_len), lo_out


class _DenseAccumulator:
    """First dense layer on the differences: rows at flattened position q times ``weight[q]``.

    Rows are collected over chunks and multiplied per position once enough have gathered, so each
    GEMM has hundreds of rows rather than the few a chunk of one pooling class contributes.
    """

    def __init__(self, weight: torch.Tensor, n_mutants: int, n_out: int, max_rows: int = 65536) -> None:
        import torch

        self.weight = weight  # (L_f, C, out)
        self.dh = torch.zeros((n_mutants, n_out), dtype=weight.dtype, device=weight.device)
        self.max_rows = max_rows
        self.parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.rows = 0

    def add(self, d: torch.Tensor, lo: torch.Tensor, offset: int) -> None:
        """Queue the non-zero rows of ``d`` (w, M, C) for mutants ``offset .. offset + M``."""
        import torch

        w, m, c = d.shape
        if w == 0:
            return
        rows = d.reshape(w * m, c)
        keep = torch.nonzero(rows.abs().amax(dim=1) > 0).squeeze(1)
        if keep.numel() == 0:
            return
        q = lo[keep % m] + keep // m  # absolute position; rows off the layer are zero, so never kept
        self.parts.append((rows[keep], q, keep % m + offset))
        self.rows += keep.numel()
        if self.rows >= self.max_rows:
            self._flush()

    def _flush(self) -> None:
        import torch

        if not self.parts:
            return
        rows = torch.cat([p[0] for p in self.parts])
        q = torch.cat([p[1] for p in self.parts])
        mid = torch.cat([p[2] for p in self.parts])
        self.parts, self.rows = [], 0
        q, order = torch.sort(q, stable=True)
        rows, mid = rows[order], mid[order]
        uniq, counts = torch.unique_consecutive(q, return_counts=True)
        buf = torch.empty((rows.shape[0], self.dh.shape[1]), dtype=rows.dtype, device=rows.device)
        c0 = 0
        for pos, cnt in zip(uniq.tolist(), counts.tolist(), strict=True):
            torch.matmul(rows[c0 : c0 + cnt], self.weight[pos], out=buf[c0 : c0 + cnt])
            c0 += cnt
        self.dh.index_add_(0, mid, buf)

    def result(self) -> torch.Tensor:
        """Change of the dense output per mutant, (n_mutants, out)."""
        self._flush()
        return self.dh
