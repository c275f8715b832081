"""Applying trained models to sequence windows: the pieces every model stage shares.

:func:`discover_models` finds the checkpoints under ``OUT/models/tf=/regime=/``; :func:`resolve_genome`
finds the FASTA a scan was made on; :func:`fetch_windows` cuts the W-bp window centred on each site
(``window_start = (start + end) // 2 - W // 2``, N-padded off the chromosome ends; 0-based
half-open coordinates); :func:`predict_codes` runs a model over window codes in batches;
:class:`ModelCache` loads each checkpoint once per process with its batch normalisation folded.
Used by ``scanner predict`` (:mod:`scanner.predict.run`), ``scanner variants`` and ``scanner interpret``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scanner.errors import InputError
from scanner.genome import Genome, one_hot
from scanner.io import hive_children
from scanner.models.checkpoint import record_path

#: Largest genome span fetched at once when gathering windows (bp).
MAX_SPAN = 1 << 22


@dataclass(frozen=True)
class ModelRef:
    """One trained model on disk."""

    tf: str
    regime: str
    path: str
    seq_len: int


def discover_models(
    models_root: str | Path, tfs: Sequence[str] | None = None, regimes: Sequence[str] | None = None
) -> list[ModelRef]:
    """Models under ``models_root/tf=<tf>/regime=<regime>/model.json``, optionally filtered.

    Raises
    ------
    InputError
        If the directory is missing, holds no model, a ``model.json`` is unreadable, or a requested
        TF or regime has no model (the message lists those present).
    """
    root = Path(models_root)
    if not root.is_dir():
        raise InputError("models directory not found (expected tf=<tf>/regime=<regime>/model.json)", source=root)
    found = []
    for tf, tdir in hive_children(root, "tf"):
        for regime, rdir in hive_children(tdir, "regime"):
            js = record_path(rdir)
            if not js.is_file():
                continue
            try:
                seq_len = int(json.loads(js.read_text())["spec"]["seq_len"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise InputError(f"malformed model.json: {exc}", source=js) from exc
            found.append(ModelRef(tf, regime, str(rdir.resolve()), seq_len))
    if not found:
        raise InputError("no models found (expected tf=<tf>/regime=<regime>/model.json)", source=root)
    for wanted, attr in ((tfs, "tf"), (regimes, "regime")):
        have = sorted({getattr(m, attr) for m in found})
        for w in wanted or ():
            if w not in have:
                raise InputError(f"no model for {attr} '{w}'; models exist for: {', '.join(have)}", source=root)
    return [m for m in found if (not tfs or m.tf in tfs) and (not regimes or m.regime in regimes)]


def resolve_genome(instances_root: str | Path, genome: str | Path | None) -> Path:
    """The FASTA to fetch windows from: ``genome`` if given, else the one the scan recorded.

    Raises
    ------
    InputError
        If neither names an existing file.
    """
    from scanner.store import RunDir

    return RunDir.of("instances", instances_root).genome(genome)


def fetch_windows(genome: Genome, chroms: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """Codes of the ``width``-bp windows centred on each site, N-padded off the chromosome ends.

    ``window_start = (start + end) // 2 - width // 2``. Nearby windows are cut from one fetched span
    (at most :data:`MAX_SPAN` bp), so the cost is one FASTA read per cluster of sites, not per site.

    Parameters
    ----------
    genome : Genome
    chroms : array of str, shape (n,)
    starts, ends : array of int64, shape (n,)
        0-based half-open site coordinates.
    width : int
        W.

    Returns
    -------
    numpy.ndarray of uint8, shape (n, W)

    Raises
    ------
    InputError
        If a chromosome is not in the genome.
    """
    n = len(starts)
    out = np.empty((n, width), dtype=np.uint8)
    wstart = (np.asarray(starts, np.int64) + np.asarray(ends, np.int64)) // 2 - width // 2
    chroms = np.asarray(chroms, dtype=object)
    for chrom in dict.fromkeys(chroms.tolist()):
        genome.check_chrom(chrom)
        idx = np.flatnonzero(chroms == chrom)
        idx = idx[np.argsort(wstart[idx], kind="stable")]
        ws = wstart[idx]
        i = 0
        while i < len(idx):
            j = int(np.searchsorted(ws, ws[i] + MAX_SPAN - width, side="right"))
            j = max(j, i + 1)
            lo, hi = int(ws[i]), int(ws[j - 1]) + width
            span = genome.codes(chrom, lo, hi)
            # rows of a strided view: a copy of W bytes per site, no (n, W) index matrix
            out[idx[i:j]] = np.lib.stride_tricks.sliding_window_view(span, width)[ws[i:j] - lo]
            i = j
    return out


def predict_codes(
    model: Any, codes: np.ndarray, *, batch_size: int = 256, rc_average: bool = False, device: str = "cpu"
) -> np.ndarray:
    """Logits of ``model`` for window codes ``(n, W)``, in ``batch_size`` batches (eval, no grad).

    On an accelerator the codes travel once (1 byte per base, not 16 of one-hot float32), are one-hot
    encoded there, and the logits come back in one copy at the end, so the host queues every batch
    without waiting for the device between them. On the CPU the one-hot batch is built with numpy.

    Parameters
    ----------
    model : torch.nn.Module
        ``(B, 4, W)`` one-hot to ``(B, 1)`` logits, in eval mode, on ``device``.
    codes : numpy.ndarray of uint8, shape (n, W)
        Window codes (0-3 = A, C, G, T; 4 = N, encoded as 0.25 in every row).
    batch_size : int, optional
        Windows per forward pass. Default 256.
    rc_average : bool, optional
        Average each logit with its reverse complement's. Default False.
    device : str, optional
        Torch device of ``model``. Default ``"cpu"``.

    Returns
    -------
    numpy.ndarray of float32, shape (n,)
    """
    import torch

    if torch.device(device).type != "cpu":
        return _logits_on_device(model, codes, batch_size, rc_average, device)
    from scanner.models import predict_logits

    out = np.empty(len(codes), dtype=np.float32)
    with torch.inference_mode():
        for lo in range(0, len(codes), batch_size):
            x = torch.from_numpy(one_hot(codes[lo : lo + batch_size])).to(device)
            out[lo : lo + len(x)] = predict_logits(model, x, rc_average=rc_average).float().cpu().numpy()
    return out


def _logits_on_device(model: Any, codes: np.ndarray, batch_size: int, rc_average: bool, device: str) -> np.ndarray:
    """:func:`predict_codes` with the one-hot encoding on ``device`` and one copy back (any device)."""
    import torch

    from scanner.models import predict_logits

    if not len(codes):
        return np.empty(0, dtype=np.float32)
    table = torch.from_numpy(one_hot(np.arange(5, dtype=np.uint8)).T.copy()).to(device)  # (5, 4): code -> column
    parts = []
    with torch.inference_mode():
        dev_codes = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.uint8)).to(device)
        for lo in range(0, len(codes), batch_size):
            x = table[dev_codes[lo : lo + batch_size].long()].transpose(1, 2).contiguous()  # (B, 4, W)
            parts.append(predict_logits(model, x, rc_average=rc_average).float())
        return torch.cat(parts).cpu().numpy()


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function of float32 logits, computed in float64 (no overflow), returned as float32."""
    return (0.5 * (1.0 + np.tanh(0.5 * z.astype(np.float64)))).astype(np.float32)


class ModelCache:
    """Loads each checkpoint once (per process / actor), checks its input length, and folds its batch
    normalisation for inference (:func:`scanner.models.fuse_for_inference`)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._models: OrderedDict[str, Any] = OrderedDict()

    def __call__(self, ref: ModelRef) -> Any:
        from scanner.models import fuse_for_inference, load_checkpoint

        if ref.path not in self._models:
            model, meta = load_checkpoint(ref.path, map_location=self.device)
            if int(meta["spec"].seq_len) != ref.seq_len:
                raise InputError(
                    f"model.json changed while predicting (seq_len {meta['spec'].seq_len})", source=ref.path
                )
            self._models[ref.path] = fuse_for_inference(model).to(self.device)
        return self._models[ref.path]
