"""One entry point for every attribution method, with a per-position summary score.

=================  =========================================  ============================================
method             per-base values ``(N, 4, P)``               per-position ``score`` ``(N, P)``
=================  =========================================  ============================================
``ism``            logit(alt) - logit(ref); 0 at the ref base  minus the mean over the substitutions: how
``ism-naive``      (same numbers, reference path)              much the observed base supports the logit
``deeplift``       contribution to f(x) - mean f(reference)    sum over bases (the position's contribution)
``saliency``       d logit / d x (every base)                  max over bases of |gradient| (Simonyan)
``grad-x-input``   gradient x input (observed base only)       sum over bases
``gradcam``        none                                        Grad-CAM of a conv layer, mapped to bases
``guided-gradcam`` first-conv Grad-CAM x gradient x input      sum over bases
=================  =========================================  ============================================

All values are in logit units (log-odds of "bound"), positions in window coordinates ``[start, end)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from scanner.interpret._model_state import check_onehot, model_device_dtype, preserved_model

if TYPE_CHECKING:
    import torch


METHODS = ("ism", "ism-naive", "deeplift", "saliency", "grad-x-input", "gradcam", "guided-gradcam")


@dataclass(frozen=True)
class MethodOptions:
    """Settings shared by the methods (each maps onto a ``scanner interpret`` flag).

    Parameters
    ----------
    reference : {"shuffle", "gc", "zero"}
        DeepLIFT reference (see :func:`scanner.interpret.deeplift.deeplift`). Default ``"shuffle"``.
    n_shuffles : int
        Dinucleotide shuffles per sequence for ``reference="shuffle"``. Default 10.
    seed : int
        Seed of the shuffles. Default 0.
    gradcam_layer : str
        Feature map for ``gradcam``: ``"first"``, ``"last"`` or ``"convK"``. Default ``"last"``.
    target : int
        Model output column. Default 0.
    batch_size : int
        Sequences per forward/backward pass (sequence-reference pairs for DeepLIFT). Default 64.
    ism_chunk : int, optional
        Mutants per chunk on the fast ISM path. Default: :data:`scanner.interpret.ism.FAST_CHUNK`.
    """

    reference: str = "shuffle"
    n_shuffles: int = 10
    seed: int = 0
    gradcam_layer: str = "last"
    target: int = 0
    batch_size: int = 64
    ism_chunk: int | None = None

    def validate(self) -> MethodOptions:
        """Return self, or raise ``ValueError`` naming the bad setting."""
        from scanner.interpret.deeplift import REFERENCES

        if self.reference not in REFERENCES:
            raise ValueError(f"reference must be one of {', '.join(REFERENCES)}, got {self.reference!r}")
        if self.n_shuffles < 1:
            raise ValueError(f"n_shuffles must be >= 1, got {self.n_shuffles}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.ism_chunk is not None and self.ism_chunk < 1:
            raise ValueError(f"ism_chunk must be >= 1, got {self.ism_chunk}")
        return self


class Attribution(NamedTuple):
    """Return type of :func:`attribute` (tensors on the CPU)."""

    #: (N, 4, P) per-base values, or None (``gradcam``).
    values: torch.Tensor | None
    #: (N, P) per-position score.
    score: torch.Tensor
    #: (N,) DeepLIFT convergence delta, or None.
    delta: torch.Tensor | None


def check_methods(methods: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Deduplicated methods in the given order; ``ValueError`` for an unknown name."""
    out = tuple(dict.fromkeys(methods))
    bad = [m for m in out if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
    if not out:
        raise ValueError(f"no method given; choose from {', '.join(METHODS)}")
    return out


class Attributor:
    """Runs the methods on one model, keeping a fast-ISM plan per input length between calls.

    Parameters
    ----------
    model : torch.nn.Module
        The network; left unchanged by every call (eval mode is used inside each call).
    options : MethodOptions, optional
    """

    def __init__(self, model: torch.nn.Module, options: MethodOptions | None = None) -> None:
        self.model = model
        self.options = (options or MethodOptions()).validate()
        self._plans: dict[int, Any] = {}

    def __call__(self, x: Any, method: str, start: int = 0, end: int | None = None) -> Attribution:
        """Attributions of ``method`` for one-hot ``x`` (N, 4, L) at window positions ``[start, end)``.

        Raises
        ------
        ValueError
            Unknown method, bad input or positions.
        TypeError
            ``ism`` on a model the fast path cannot propagate (use ``ism-naive``).
        """
        import torch

        from scanner.interpret.deeplift import deeplift
        from scanner.interpret.gradcam import gradcam, guided_gradcam
        from scanner.interpret.ism import ism
        from scanner.interpret.saliency import gradient_x_input, saliency

        check_methods([method])
        x = check_onehot(x)
        length = x.shape[2]
        end = length if end is None else int(end)
        if not 0 <= start < end <= length:
            raise ValueError(f"positions [start, end) = [{start}, {end}) must lie within [0, {length}]")
        o = self.options
        window = slice(start, end)
        xs = x[:, :, window].to(torch.float64)
        delta = None
        if method == "ism":
            values = self._fast_ism(x, start, end)
        elif method == "ism-naive":
            values = ism(self.model, x, start=start, end=end, fast=False, target=o.target)
        elif method == "deeplift":
            res = deeplift(
                self.model,
                x,
                reference=o.reference,
                n_shuffles=o.n_shuffles,
                seed=o.seed,
                target=o.target,
                batch_size=o.batch_size,
            )
            values, delta = res.attributions[:, :, window], res.delta
        elif method == "saliency":
            values = saliency(self.model, x, target=o.target, batch_size=o.batch_size)[:, :, window]
        elif method == "grad-x-input":
            values = gradient_x_input(self.model, x, target=o.target, batch_size=o.batch_size)
            values = values[:, :, window]
        elif method == "gradcam":
            cam = gradcam(self.model, x, layer=o.gradcam_layer, target=o.target, batch_size=o.batch_size)
            return Attribution(None, cam[:, window], None)
        else:  # guided-gradcam
            values = guided_gradcam(self.model, x, target=o.target, batch_size=o.batch_size)
            values = values[:, :, window]
        if method in ("ism", "ism-naive"):
            n_alt = (xs != 1).sum(dim=1).clamp(min=1)
            score = -values.to(torch.float64).sum(dim=1) / n_alt
        elif method == "saliency":
            score = values.abs().amax(dim=1)
        else:
            score = values.sum(dim=1)
        return Attribution(values, score.to(values.dtype), delta)

    def _fast_ism(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        import torch

        from scanner.interpret.ism import FAST_CHUNK, fast_plan

        device, dtype = model_device_dtype(self.model)
        x = x.to(device=device, dtype=dtype)
        with preserved_model(self.model), torch.inference_mode():
            plan = self._plans.get(x.shape[2])
            if plan is None:
                plan = fast_plan(self.model, x.shape[2], target=self.options.target)
                self._plans[x.shape[2]] = plan
            out = plan(x, start, end, chunk=self.options.ism_chunk or FAST_CHUNK)
        return out.cpu()


def attribute(
    model: torch.nn.Module,
    x: Any,
    method: str,
    *,
    start: int = 0,
    end: int | None = None,
    options: MethodOptions | None = None,
) -> Attribution:
    """Attributions of one method; see :class:`Attributor` (which also caches fast-ISM plans).

    Parameters
    ----------
    model : torch.nn.Module
    x : torch.Tensor or numpy.ndarray, shape (N, 4, L)
        One-hot sequences.
    method : str
        One of :data:`METHODS`.
    start, end : int, optional
        Window positions to report (ISM mutates only these). Default: all.
    options : MethodOptions, optional

    Returns
    -------
    Attribution
    """
    return Attributor(model, options)(x, method, start, end)
