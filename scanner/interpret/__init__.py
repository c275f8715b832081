"""Base-level explanations of a model's logit: ISM (fast and naive), DeepLIFT, saliency, Grad-CAM.

Every method takes a model and one-hot batches ``(N, 4, L)`` (A, C, G, T rows; N columns 0.25) and
returns scores in logit units; none leaves the model changed (train/eval mode, hooks,
``requires_grad``, device; see :func:`preserved_model`). :func:`attribute` / :class:`Attributor`
run any of :data:`METHODS` with a per-position summary; the genome-scale stage is
:func:`scanner.interpret.run.interpret`, the simulated benchmark :mod:`scanner.interpret.benchmark`.
Heavy libraries (torch, captum, ray) are imported inside the functions.
"""

from scanner.interpret._model_state import preserved_model
from scanner.interpret.deeplift import DeepLiftResult, deeplift, dinucleotide_shuffle, make_references
from scanner.interpret.gradcam import gradcam, guided_gradcam, receptive_field, resolve_layer
from scanner.interpret.ism import FastISM, ism
from scanner.interpret.methods import METHODS, Attribution, Attributor, MethodOptions, attribute
from scanner.interpret.saliency import gradient_x_input, saliency

__all__ = [
    "METHODS",
    "Attribution",
    "Attributor",
    "DeepLiftResult",
    "FastISM",
    "MethodOptions",
    "attribute",
    "deeplift",
    "dinucleotide_shuffle",
    "gradcam",
    "gradient_x_input",
    "guided_gradcam",
    "ism",
    "make_references",
    "preserved_model",
    "receptive_field",
    "resolve_layer",
    "saliency",
]
