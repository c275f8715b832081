"""Leave the caller's model as it was: a context manager, input validation, and layer lookup.

Every attribution method evaluates the network in eval mode (dropout off, batch norm on its running
statistics) with parameter gradients off, and must hand the model back exactly as it received it:
train/eval flag of every module, ``requires_grad`` and ``.grad`` of every parameter, its hooks, its
device and dtype, and no attribute left behind on a module (captum's DeepLift stores ``module.input`` /
``module.output`` during a pass). :func:`preserved_model` does that, on success and on error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from scanner.runtime import full_float32

if TYPE_CHECKING:
    import torch

#: Element-wise activation modules (by class name) that act on each position independently.
_POINTWISE_NAMES = (
    "ReLU",
    "LeakyReLU",
    "ELU",
    "CELU",
    "SELU",
    "GELU",
    "SiLU",
    "Mish",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Hardtanh",
    "ReLU6",
)

# Hook dictionaries a torch Module keeps; captum and user code register into these.
_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


@contextmanager
def preserved_model(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode with parameter gradients off; restore everything on exit.

    Restored on exit (normal or exceptional): each module's ``training`` flag, each parameter's
    ``requires_grad`` and ``.grad``, each module's hook dictionaries (hooks added inside are removed,
    hooks present before are kept), attributes added to a module's ``__dict__``, and the device and
    dtype of every parameter and buffer (should anything inside move them). Buffers' values
    (e.g. batch-norm running statistics) are not touched by eval-mode passes. Inside, CUDA runs in
    full float32 (:func:`scanner.runtime.full_float32`): attributions are differences of nearby
    outputs, which TF32 rounding would blur.

    Parameters
    ----------
    model : torch.nn.Module
        The caller's network.

    Yields
    ------
    torch.nn.Module
        The same object, in eval mode, parameters frozen.
    """
    modules = list(model.modules())
    training = [m.training for m in modules]
    params = list(model.parameters())
    requires = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    hooks = [{name: dict(getattr(m, name)) for name in _HOOK_DICTS if hasattr(m, name)} for m in modules]
    attrs = [set(vars(m)) for m in modules]
    tensors = [(t, t.device, t.dtype) for t in (*params, *model.buffers())]
    slots = [(dict(m._parameters), dict(m._buffers)) for m in modules]
    with full_float32():  # attributions are differences of nearby outputs: no TF32
        try:
            model.eval()
            for p in params:
                p.requires_grad_(False)
            yield model
        finally:
            for m, flag in zip(modules, training, strict=True):
                m.training = flag
            for p, req, g in zip(params, requires, grads, strict=True):
                p.requires_grad_(req)
                p.grad = g
            for m, saved in zip(modules, hooks, strict=True):
                for name, before in saved.items():
                    current = getattr(m, name)
                    for key in [k for k in current if k not in before]:
                        del current[key]
                    for key, value in before.items():
                        current.setdefault(key, value)
            for m, before in zip(modules, attrs, strict=True):
                for name in [k for k in vars(m) if k not in before]:
                    delattr(m, name)
            for m, (saved_params, saved_buffers) in zip(modules, slots, strict=True):
                for name, obj in saved_params.items():  # a conversion may have swapped the objects
                    if m._parameters.get(name) is not obj:
                        m._parameters[name] = obj
                for name, obj in saved_buffers.items():
                    if m._buffers.get(name) is not obj:
                        m._buffers[name] = obj
            for t, device, dtype in tensors:
                if t.device != device or t.dtype != dtype:
                    t.data = t.data.to(device=device, dtype=dtype)


def model_device_dtype(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter (CPU / float32 when it has none)."""
    import torch

    for p in model.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def check_onehot(x: Any, name: str = "x") -> torch.Tensor:
    """Validate a one-hot batch and return it as a tensor.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray, shape (N, 4, L)
        One-hot sequences (A, C, G, T rows); N columns are 0.25 each.
    name : str, optional
        Name used in error messages. Default ``"x"``.

    Returns
    -------
    torch.Tensor
        ``x`` as a floating tensor (not copied when already one).

    Raises
    ------
    ValueError
        If ``x`` is not 3-dimensional with 4 rows on axis 1, or is empty, or is not floating point.
    """
    import numpy as np
    import torch

    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array of shape (N, 4, L), got {type(x)}")
    if x.ndim != 3 or x.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4, L) with A, C, G, T rows, got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[2] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be floating point (one-hot float32), got {x.dtype}")
    return x


def as_sequential(model: torch.nn.Module, method: str) -> torch.nn.Sequential:
    """Return ``model`` if it is an ``nn.Sequential``; raise a clear error otherwise."""
    import torch.nn as nn

    if not isinstance(model, nn.Sequential):
        raise TypeError(
            f"{method} walks the layers of an nn.Sequential (the models of scanner.models); got {type(model).__name__}"
        )
    return model


def conv_indices(model: torch.nn.Sequential) -> list[int]:
    """Indices of the ``nn.Conv1d`` modules in a Sequential, in order."""
    import torch.nn as nn

    return [i for i, m in enumerate(model) if isinstance(m, nn.Conv1d)]


def scalar_output(out: torch.Tensor, target: int) -> torch.Tensor:
    """Select output column ``target`` of an ``(N, T)`` (or ``(N,)``) model output as ``(N,)``."""
    if out.ndim == 1:
        return out
    if out.ndim != 2:
        raise ValueError(f"the model must return (N, T) outputs, got shape {tuple(out.shape)}")
    if not 0 <= target < out.shape[1]:
        raise ValueError(f"target {target} is out of range for a model with {out.shape[1]} outputs")
    return out[:, target]
