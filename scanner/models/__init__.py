"""Bound/unbound classifiers: the reference DeepSEA-style CNN and a small fast variant.

Both are plain ``torch.nn.Sequential`` stacks of Conv1d, BatchNorm1d, ReLU, MaxPool1d, Dropout,
Flatten and Linear layers, taking one-hot input ``(N, 4, L)`` (A, C, G, T; float32) and returning one
logit per sequence ``(N, 1)`` (log-odds of "bound"). Build them from a :class:`ModelSpec`.
"""

from scanner.models.checkpoint import load_checkpoint, save_checkpoint
from scanner.models.ema import WeightEMA
from scanner.models.fuse import fuse_for_inference
from scanner.models.rc import predict_logits, reverse_complement_one_hot
from scanner.models.spec import ARCHITECTURES, ModelSpec, build_model, count_parameters

__all__ = [
    "ARCHITECTURES",
    "ModelSpec",
    "WeightEMA",
    "build_model",
    "count_parameters",
    "fuse_for_inference",
    "load_checkpoint",
    "predict_logits",
    "reverse_complement_one_hot",
    "save_checkpoint",
]
