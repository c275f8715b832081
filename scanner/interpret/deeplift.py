"""DeepLIFT (captum, rescale rule) against all-zero, GC-matched or dinucleotide-shuffled references.

``attributions[n, b, p]`` is the contribution of base ``b`` at position ``p`` to
``f(x) - f(reference)`` in logit units (``(x - reference) * multiplier``). With several references
per sequence (``reference="shuffle"``, DeepSHAP-style) the attributions are averaged over them, so they
sum to ``f(x) - mean_k f(reference_k)``. Completeness is checked by the convergence delta
``sum(attributions) - (f(x) - mean_k f(reference_k))``, reported per sequence (captum's delta averaged
over the references); values far from 0 mean the rescale rule met a layer it does not model exactly.

captum 0.9's rules for ``MaxPool1d`` and for an activation whose input does not change break
completeness whenever a reference differs from the input only in places (a shuffled reference, a
pair of alleles): the zero-change fallback takes the gradient of the first batch element
(captum issue #1276) or a different gradient for the input and reference halves of the batch, so the
two halves stop carrying the same multipliers and a later max-pool mixes them. :func:`deeplift`
therefore runs captum's ``DeepLift`` with those two rules replaced (subclass, no global change):
the observed half's gradient at exact zero changes, shared by both halves, and a scatter-add unpool
(overlapping windows). Where captum's rules are exact the results are identical to captum's (tested).
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from scanner.interpret._model_state import check_onehot, model_device_dtype, preserved_model, scalar_output

if TYPE_CHECKING:
    import torch

REFERENCES = ("shuffle", "gc", "zero")


class DeepLiftResult(NamedTuple):
    """Return type of :func:`deeplift`."""

    #: (N, 4, L) contributions in logit units, averaged over references.
    attributions: torch.Tensor
    #: (N,) convergence delta: ``sum(attributions) - (f(x) - mean_k f(ref_k))``.
    delta: torch.Tensor
    #: (N, 4, L) hypothetical contributions (``hypothetical=True``), else None: for every base ``b`` at
    #: position ``p``, ``mean_k sum_j (e_b[j] - ref_k[j, p]) * m_k[j, p]`` with ``m_k`` the DeepLIFT
    #: multipliers against reference ``k``: the contribution ``b`` would make there. At the observed
    #: base it sums (over bases, with ``x``) to the position's attribution.
    hypothetical: torch.Tensor | None = None


def deeplift(
    model: torch.nn.Module,
    x: Any,
    *,
    reference: str = "shuffle",
    n_shuffles: int = 10,
    seed: int = 0,
    target: int = 0,
    batch_size: int = 64,
    hypothetical: bool = False,
) -> DeepLiftResult:
    """DeepLIFT attributions of the model's logit (captum ``DeepLift``, rescale rule).

    Parameters
    ----------
    model : torch.nn.Module
        The network (each ReLU a separate module, as in :mod:`scanner.models`). Evaluated in eval
        mode on its own device; left unchanged (captum's hooks are removed even on error).
    x : torch.Tensor or numpy.ndarray, shape (N, 4, L)
        One-hot sequences (A, C, G, T rows; N columns 0.25 each).
    reference : {"shuffle", "gc", "zero"}, optional
        ``"shuffle"`` (default): ``n_shuffles`` dinucleotide shuffles of each sequence, attributions
        averaged (DeepSHAP-style). ``"gc"``: one reference per sequence, every column
        ``[(1-g)/2, g/2, g/2, (1-g)/2]`` with ``g`` the GC fraction of its A/C/G/T bases.
        ``"zero"``: the all-zero input.
    n_shuffles : int, optional
        References per sequence for ``"shuffle"``. Default 10.
    seed : int, optional
        Seed of the shuffles (per call; the same seed gives the same references). Default 0.
    target : int, optional
        Output column to explain. Default 0.
    batch_size : int, optional
        Sequence-reference pairs per captum call. Default 64.
    hypothetical : bool, optional
        Also return hypothetical contributions (the input TF-MoDISco needs; see
        :class:`DeepLiftResult`). The pass then asks captum for the multipliers and forms both outputs
        from them (same numbers for ``attributions``, up to float rounding). Default False.

    Returns
    -------
    DeepLiftResult
        ``attributions`` (N, 4, L), ``delta`` (N,) and ``hypothetical`` (N, 4, L) or None, on the CPU
        in the model's dtype.

    Raises
    ------
    ValueError
        For a bad ``x``, an unknown ``reference`` or ``n_shuffles < 1``.
    """
    import torch

    x = check_onehot(x)
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if n_shuffles < 1:
        raise ValueError(f"n_shuffles must be at least 1, got {n_shuffles}")
    device, dtype = model_device_dtype(model)
    x = x.to(dtype=dtype)
    refs = make_references(x, reference, n_shuffles=n_shuffles, seed=seed)  # (N, K, 4, L)
    n, k = refs.shape[:2]
    inputs = x.unsqueeze(1).expand_as(refs).reshape(n * k, *x.shape[1:])
    baselines = refs.reshape(n * k, *x.shape[1:])
    attr = torch.empty_like(inputs)
    hyp = torch.empty_like(inputs) if hypothetical else None
    delta = torch.empty(n * k, dtype=dtype)
    with preserved_model(model), warnings.catch_warnings():
        # captum announces its (temporary) hooks and that it sets requires_grad on the input copy
        warnings.filterwarnings("ignore", message=r"(?s).*Setting forward, backward hooks", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"Input Tensor \d+ did not already require gradients")
        wrapper, recorder = _separated(model)
        explainer = _deeplift_class()(wrapper, multiply_by_inputs=not hypothetical)
        for lo in range(0, n * k, batch_size):
            xi = inputs[lo : lo + batch_size].to(device).contiguous()
            bi = baselines[lo : lo + batch_size].to(device).contiguous()
            a = explainer.attribute(xi, baselines=bi, target=target).detach()
            if hyp is not None:  # ``a`` holds the multipliers m: contributions (x - ref) * m
                hyp[lo : lo + batch_size] = (a - (bi * a).sum(dim=1, keepdim=True)).cpu()
                a = (xi - bi) * a
            # the recorded forward pass ran on cat(inputs, baselines): f(x) - f(ref) per pair
            fx, fref = scalar_output(recorder.value, target).chunk(2)
            attr[lo : lo + batch_size] = a.cpu()
            delta[lo : lo + batch_size] = (a.flatten(1).sum(1) - (fx - fref)).cpu()
    return DeepLiftResult(
        attr.view(n, k, *x.shape[1:]).mean(1),
        delta.view(n, k).mean(1),
        None if hyp is None else hyp.view(n, k, *x.shape[1:]).mean(1),
    )


def make_references(x: torch.Tensor, reference: str, *, n_shuffles: int = 10, seed: int = 0) -> torch.Tensor:
    """References for each sequence, shape (N, K, 4, L) (K = ``n_shuffles`` for ``"shuffle"``, else 1).

    See :func:`deeplift` for the kinds. Shuffles keep N columns as N (a fifth symbol whose
    dinucleotides are preserved too).
    """
    import torch

    from scanner.genome import one_hot

    if reference == "zero":
        return torch.zeros_like(x).unsqueeze(1)
    if reference == "gc":
        is_base = (x == 1).any(dim=1)  # (N, L) A/C/G/T columns
        gc = (x[:, 1] + x[:, 2]).mul(is_base).sum(1) / is_base.sum(1).clamp(min=1)
        gc = torch.where(is_base.any(1), gc, torch.full_like(gc, 0.5))
        col = torch.stack([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2], dim=1)  # (N, 4)
        return col[:, None, :, None].expand(-1, 1, -1, x.shape[2]).clone()
    if reference != "shuffle":
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    codes = onehot_to_codes(x)
    rng = np.random.default_rng(seed)
    shuffled = np.stack([dinucleotide_shuffle(c, n_shuffles, rng) for c in codes])  # (N, K, L)
    return torch.from_numpy(one_hot(shuffled, dtype="float64")).to(x.dtype)


def onehot_to_codes(x: torch.Tensor) -> np.ndarray:
    """Codes (A=0, C=1, G=2, T=3, other=4) of a one-hot batch (N, 4, L) -> (N, L) uint8."""
    xn = x.detach().cpu().numpy()
    codes = xn.argmax(axis=1).astype(np.uint8)
    codes[xn.max(axis=1) < 1] = 4
    return codes


def dinucleotide_shuffle(codes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random sequences with exactly the dinucleotide counts of ``codes``.

    The walk is an Eulerian path through the graph of observed dinucleotides: each symbol's outgoing
    edges are permuted at random except its last one, which keeps the path connected (the last-exit
    edges of the original sequence form a tree). First and last symbols are kept. The permutations
    come from ``rng`` (numpy); the walk runs in a numba kernel.

    Parameters
    ----------
    codes : numpy.ndarray of uint8, shape (L,)
        Base codes (any small alphabet; N = 4 is a symbol like the others).
    n : int
        Number of shuffles.
    rng : numpy.random.Generator
        Source of randomness (seed it for reproducible shuffles).

    Returns
    -------
    numpy.ndarray of uint8, shape (n, L)
    """
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    length = codes.shape[0]
    out = np.empty((n, length), dtype=np.uint8)
    if length < 3 or n == 0:
        out[:] = codes
        return out
    sym = codes[:-1].astype(np.int64)  # edge i: codes[i] -> codes[i + 1]
    last = np.zeros(length - 1, dtype=np.int64)
    for s in np.unique(sym):
        last[np.flatnonzero(sym == s)[-1]] = 1
    keys = rng.random((n, length - 1))
    # per shuffle: edges grouped by symbol, in random order, each symbol's last edge kept last
    order = np.argsort(sym * 4.0 + last * 2.0 + keys, axis=-1)  # sort key: (symbol, last, random)
    offsets = np.zeros(int(codes.max()) + 2, dtype=np.int64)
    np.cumsum(np.bincount(sym, minlength=len(offsets) - 1), out=offsets[1:])
    _walk_kernel()(codes, order + 1, offsets, out)
    return out


@functools.cache
def _walk_kernel() -> Any:
    """The numba kernel of the Eulerian walk (compiled on first use)."""
    import numba

    @numba.njit(cache=False, nogil=True)
    def walk(codes: Any, successors: Any, offsets: Any, out: Any) -> None:  # pragma: no cover - jitted
        n, length = out.shape
        for i in range(n):
            counters = offsets[:-1].copy()
            pos = 0
            out[i, 0] = codes[0]
            for j in range(1, length):
                s = codes[pos]
                pos = successors[i, counters[s]]
                counters[s] += 1
                out[i, j] = codes[pos]

    return walk


def _separated(model: torch.nn.Module) -> tuple[torch.nn.Module, Any]:
    """A new Sequential sharing ``model``'s modules, a copy step between consecutive non-linear ones,
    and a last module that records the output (for the convergence delta without extra passes).

    captum records a module's output gradient with a hook on its output tensor, registered when the
    module runs; when the next module is non-linear too (ReLU then MaxPool1d) its input hook sits on
    the same tensor, runs later and replaces the gradient, so the first module's rule reads the plain
    gradient instead of the next rule's multipliers. A copy step in between gives each rule its own
    tensor. No module, parameter or buffer is copied; the caller's model is not modified. A model
    that is not a Sequential is wrapped as it is.

    Returns
    -------
    (wrapper, recorder)
        ``recorder.value`` holds the detached output of the last forward pass.
    """
    import torch.nn as nn
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    copy_step, record = _helper_modules()
    recorder = record()
    if not isinstance(model, nn.Sequential):
        return nn.Sequential(model, recorder), recorder
    mods = list(model)
    layers: list[nn.Module] = []
    for i, m in enumerate(mods):
        layers.append(m)
        if type(m) in SUPPORTED_NON_LINEAR and i + 1 < len(mods) and type(mods[i + 1]) in SUPPORTED_NON_LINEAR:
            layers.append(copy_step())
    return nn.Sequential(*layers, recorder), recorder


@functools.cache
def _helper_modules() -> tuple[type, type]:
    """The copy-step and output-recorder module classes (created on first use: torch is imported late)."""
    import torch.nn as nn

    class CopyStep(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.clone()

    class Record(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.value: torch.Tensor | None = None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.value = x.detach()
            return x

    return CopyStep, Record


def _deeplift_class() -> type:
    """captum's ``DeepLift`` with the rescale and max-pool rules that keep completeness (see above)."""
    import torch.nn as nn
    from captum.attr import DeepLift
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR, nonlinear

    class _DeepLift(DeepLift):
        def _backward_hook(self, module: nn.Module, grad_input: Any, grad_output: Any) -> Any:
            if not self.satisfies_attribute_criteria(module):
                return super()._backward_hook(module, grad_input, grad_output)  # raises captum's error
            if isinstance(module, nn.MaxPool1d):
                mult = _maxpool_rule(module, grad_input, grad_output)
            elif SUPPORTED_NON_LINEAR.get(type(module)) is nonlinear:
                mult = _rescale_rule(module, grad_input, grad_output, self.eps)
            else:
                return super()._backward_hook(module, grad_input, grad_output)
            del module.input
            del module.output
            return mult

    return _DeepLift


def _rescale_rule(module: Any, grad_input: torch.Tensor, grad_output: torch.Tensor, eps: float) -> torch.Tensor:
    """Rescale rule; where the input does not change, the observed half's gradient for both halves."""
    import torch

    x, ref = module.input.chunk(2)
    y, y_ref = module.output.chunk(2)
    d_in, d_out = x - ref, y - y_ref
    g_out = grad_output.chunk(2)[0]
    half = torch.where(d_in.abs() < eps, grad_input.chunk(2)[0], g_out * d_out / d_in)
    return torch.cat([half, half])


def _maxpool_rule(module: Any, grad_input: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """Max-pool rule: route the pooled change to each half's argmax (accumulating), divide by the change."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        x, ref = module.input.chunk(2)
        y, y_ref = module.output.chunk(2)
        ymax = torch.maximum(y, y_ref)
        routed = torch.cat([ymax - y_ref, y - ymax]) * grad_output
        _, idx = F.max_pool1d(
            module.input,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            module.ceil_mode,
            True,
        )
        unpooled = torch.zeros_like(module.input).scatter_add_(2, idx, routed)
        up_x, up_ref = unpooled.chunk(2)
        d_in = x - ref
        zero = d_in == 0
        half = torch.where(zero, grad_input.chunk(2)[0], (up_x + up_ref) / d_in.masked_fill(zero, 1))
    return torch.cat([half, half])
