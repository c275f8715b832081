"""Checkpoints: a plain ``state_dict`` (``model.pt``) beside a JSON of hyper-parameters and metadata."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.errors import InputError
from scanner.io import write_bytes_atomic, write_text_atomic
from scanner.models.spec import ModelSpec, build_model

if TYPE_CHECKING:
    import torch

#: A checkpoint's files, inside one model's folder (``OUT/models/tf=<tf>/regime=<regime>/``).
WEIGHTS_FILE = "model.pt"
RECORD_FILE = "model.json"


def weights_path(directory: str | Path) -> Path:
    """``directory/model.pt``: the state_dict of a checkpoint."""
    return Path(directory) / WEIGHTS_FILE


def record_path(directory: str | Path) -> Path:
    """``directory/model.json``: the spec and metadata of a checkpoint."""
    return Path(directory) / RECORD_FILE


def save_checkpoint(model: torch.nn.Module, spec: ModelSpec, directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``directory/model.pt`` (state_dict) and ``directory/model.json`` atomically.

    Parameters
    ----------
    model : torch.nn.Module
        Network built by :func:`build_model` from ``spec`` (any device; saved on CPU).
    spec : ModelSpec
        Its hyper-parameters.
    directory : str or Path
        Output directory (created).
    meta : dict
        JSON-serialisable metadata (TF, regime, data hash, metrics, training settings).

    Returns
    -------
    Path
        ``directory``.
    """
    import torch

    directory = Path(directory)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    write_bytes_atomic(buf.getvalue(), weights_path(directory))
    payload = {"spec": spec.resolved().to_dict(), **meta}
    write_text_atomic(json.dumps(payload, indent=2, sort_keys=True, default=str), record_path(directory))
    return directory


def load_checkpoint(directory: str | Path, map_location: str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``).

    Returns
    -------
    (model, meta)
        The network in eval mode on ``map_location`` and the JSON metadata (with ``"spec"``).

    Raises
    ------
    InputError
        If a file is missing, the JSON is malformed, or the weights do not fit the spec (wrong shape).
    """
    import torch

    directory = Path(directory)
    js, pt = record_path(directory), weights_path(directory)
    for f in (js, pt):
        if not f.is_file():
            raise InputError("checkpoint file is missing", source=f)
    try:
        meta = json.loads(js.read_text())
        spec = ModelSpec.from_dict(meta["spec"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, ValueError, TypeError) as exc:
        raise InputError(f"malformed checkpoint metadata: {exc}", source=js) from exc
    model = build_model(spec)
    try:
        state = torch.load(pt, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:  # truncated or not a torch file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"unreadable weights ({first}); was the file cut short? retrain or restore it", source=pt
        ) from exc
    try:
        lengths = {int(v) for k, v in state.items() if k.endswith("input_length")}
        if lengths - {spec.seq_len}:
            raise RuntimeError(f"weights trained on {sorted(lengths)} bp windows, model.json says {spec.seq_len}")
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise InputError(
            f"weights do not fit the model described in model.json ({spec.arch}, seq_len={spec.seq_len}): "
            + " ".join(x.strip() for x in first[:3]),
            source=pt,
        ) from exc
    model.to(map_location).eval()
    meta["spec"] = spec.resolved()
    return model, meta
