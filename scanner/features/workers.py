"""The two callable classes of ``scanner features`` (Ray Data ``map_batches``, or called in-process).

:class:`WindowAttributor` turns a work item (a row range of the selection, one model) into hypothetical
contributions, saved as ``WORK/<model>/<method>/<index>.npz`` (``hyp`` float32 (n, 4, P), ``codes``
uint8 (n, P)); models are loaded once per actor, on first use. :class:`PatternFinder` (motif databases
read once in ``__init__``) turns one (model, method)'s saved parts into its pattern and seqlet Parquet
files, MEME files and logos. Both return one row per item with an ``error`` column: ``""`` or the JSON
of an :class:`InputError` (Ray Data keeps only the text of exceptions, so input errors travel as data).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from scanner.errors import InputError
from scanner.features.config import FeaturesConfig
from scanner.io import encode_partition_value, partition_dir, write_bytes_atomic, write_parquet_atomic
from scanner.store import part_name

PATTERNS_DIR = part_name("features", "patterns")
SEQLETS_DIR = part_name("features", "seqlets")


def track_span(width: int, flank: int) -> tuple[int, int]:
    """Window positions ``[a, b)`` attributed: the centre (the site, at ``W // 2``) +- ``flank``, clipped."""
    c = width // 2
    return max(0, c - flank), min(width, c + flank)


def model_key(tf: str, regime: str) -> str:
    """A file-name-safe key of one model."""
    return f"{encode_partition_value(tf)}--{encode_partition_value(regime)}"


def error_json(exc: InputError) -> str:
    return json.dumps([exc.message, exc.source, exc.line, exc.field])


def raise_errors(errors: Any) -> None:
    """Re-raise the first :class:`InputError` carried in an ``error`` column."""
    for e in errors:
        if e:
            message, source, line, fld = json.loads(str(e))
            raise InputError(message, source=source, line=line, field=fld)


def _read_ipc(path: str) -> pa.Table:
    with pa.memory_map(path) as source:
        return pa.ipc.open_file(source).read_all()


class WindowAttributor:
    """Hypothetical contributions of selection rows ``[lo, hi)`` under model ``model``.

    Windows go through the model ``batch_size`` at a time; the DeepLIFT shuffles of the batch starting
    at the model's row ``k * batch_size`` are seeded with ``seed + k`` (``offset`` is the item's first
    row within its model, a multiple of ``batch_size``), so the references, and the results, do not
    depend on how the rows are cut into items or where they run.

    Parameters
    ----------
    model_dirs : dict of str to str
        :func:`model_key` -> checkpoint directory.
    selected_path : str
        The selection (Arrow IPC file, schema :data:`scanner.features.select.SELECTED`).
    work_dir : str
        Where the ``.npz`` parts go.
    config : dict
        :class:`FeaturesConfig` as a dict.
    threads : float
        Torch threads for this actor.
    """

    def __init__(
        self, model_dirs: dict[str, str], selected_path: str, work_dir: str, config: dict[str, Any], threads: float = 1
    ) -> None:
        from scanner.runtime import set_torch_threads, torch_device

        set_torch_threads(threads)
        self.device = torch_device()
        self.model_dirs = model_dirs
        self.selected = _read_ipc(selected_path)
        self.work_dir = Path(work_dir)
        self.config = FeaturesConfig(**config)
        self.attributors: dict[str, Any] = {}

    def _attributor(self, key: str) -> Any:
        if key not in self.attributors:
            from scanner.interpret.methods import Attributor, MethodOptions
            from scanner.models import load_checkpoint

            model, _ = load_checkpoint(self.model_dirs[key], map_location=self.device)
            c = self.config
            options = MethodOptions(
                reference=c.reference, n_shuffles=c.n_shuffles, seed=c.seed, batch_size=c.batch_size
            )
            self.attributors[key] = Attributor(model, options)
        return self.attributors[key]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from scanner.data_loading import windows_to_codes
        from scanner.features.attribute import hypothetical_contributions
        from scanner.genome import one_hot

        idx, counts, errors = [], [], []
        bs = self.config.batch_size
        for key, lo, hi, index, offset in zip(
            batch["model"], batch["lo"], batch["hi"], batch["index"], batch["offset"], strict=True
        ):
            idx.append(int(index))
            rows = self.selected.slice(int(lo), int(hi) - int(lo))
            try:
                codes = windows_to_codes(rows.column("window"), source="selection")
                a, b = track_span(codes.shape[1], self.config.flank)
                att = self._attributor(str(key))
                for method in self.config.methods:
                    hyp = np.concatenate(
                        [
                            hypothetical_contributions(
                                att,
                                one_hot(codes[i : i + bs]),
                                method,
                                a,
                                b,
                                seed=self.config.seed + (offset + i) // bs,
                            )
                            for i in range(0, codes.shape[0], bs)
                        ]
                    )
                    buf = _npz_bytes(hyp=hyp.astype(np.float32), codes=codes[:, a:b])
                    write_bytes_atomic(buf, self.work_dir / str(key) / method / f"{int(index):05d}.npz")
            except InputError as exc:
                counts.append(0)
                errors.append(error_json(exc))
                continue
            counts.append(rows.num_rows)
            errors.append("")
        return {
            "index": np.array(idx, dtype=np.int64),
            "rows": np.array(counts, dtype=np.int64),
            "error": np.array(errors, dtype=object),
        }


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class PatternFinder:
    """Discovery, matching and files of one (model, method) per item.

    Parameters
    ----------
    databases : list of str
        Motif files (TomTom targets), read once here.
    selected_path, work_dir : str
        As for :class:`WindowAttributor`.
    out_dir : str
        The (staging) features directory.
    config : dict
        :class:`FeaturesConfig` as a dict.
    threads : int
        numba threads (TF-MoDISco, TomTom) for this actor.
    """

    def __init__(
        self,
        databases: list[str],
        selected_path: str,
        work_dir: str,
        out_dir: str,
        config: dict[str, Any],
        threads: int = 1,
    ) -> None:
        import numba

        from scanner.features.discover import prepare_modisco
        from scanner.features.match import MotifDatabase, load_databases

        prepare_modisco()  # before set_num_threads starts numba's thread pool
        self.threads = max(1, int(threads))
        numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
        self.database = load_databases(databases) if databases else MotifDatabase((), ())
        self.selected = _read_ipc(selected_path)
        self.work_dir = Path(work_dir)
        self.out_dir = Path(out_dir)
        self.config = FeaturesConfig(**config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from scanner.features.patterns import model_patterns
        from scanner.genome import one_hot

        out: dict[str, list] = {k: [] for k in ("model", "method", "windows", "patterns", "seqlets", "error")}
        for key, method, lo, hi in zip(batch["model"], batch["method"], batch["lo"], batch["hi"], strict=True):
            rows = self.selected.slice(int(lo), int(hi) - int(lo))
            parts = sorted((self.work_dir / str(key) / str(method)).glob("*.npz"))
            hyp, codes = [], []
            for p in parts:
                with np.load(p) as z:
                    hyp.append(z["hyp"])
                    codes.append(z["codes"])
            hyp_a, codes_a = np.concatenate(hyp), np.concatenate(codes)
            if hyp_a.shape[0] != rows.num_rows:
                raise RuntimeError(f"{key}/{method}: {hyp_a.shape[0]} attributed windows for {rows.num_rows} rows")
            a, _ = track_span(len(rows.column("window")[0].as_py()), self.config.flank)
            patterns, seqlets = model_patterns(
                one_hot(codes_a), hyp_a, rows, a, self.database, self.config, self.out_dir, str(method), self.threads
            )
            tf, regime = rows.column("tf")[0].as_py(), rows.column("regime")[0].as_py()
            parts_dir = [("tf", tf), ("regime", regime), ("method", str(method))]
            write_parquet_atomic(patterns, partition_dir(self.out_dir / PATTERNS_DIR, parts_dir) / "patterns.parquet")
            write_parquet_atomic(seqlets, partition_dir(self.out_dir / SEQLETS_DIR, parts_dir) / "seqlets.parquet")
            for k, v in (
                ("model", str(key)),
                ("method", str(method)),
                ("windows", rows.num_rows),
                ("patterns", patterns.num_rows),
                ("seqlets", seqlets.num_rows),
                ("error", ""),
            ):
                out[k].append(v)
        return {
            "model": np.array(out["model"], dtype=object),
            "method": np.array(out["method"], dtype=object),
            "windows": np.array(out["windows"], dtype=np.int64),
            "patterns": np.array(out["patterns"], dtype=np.int64),
            "seqlets": np.array(out["seqlets"], dtype=np.int64),
            "error": np.array(out["error"], dtype=object),
        }
