"""Which windows each (TF, regime) model explains: rows of ``OUT/datasets`` or of ``OUT/predictions``.

The result (:data:`SELECTED`) holds one row per (model, instance): the instance key, the model's ``tf``
and ``regime``, ``window_start`` (0-based, may be < 0) and ``window``, the W bases the model reads
(+ strand, upper case, N off the chromosome), with the site's centre at ``W // 2``. Rows are sorted
by ``tf``, ``regime``, then instance key, so each model's rows are contiguous.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from scanner.errors import InputError
from scanner.features.config import FeaturesConfig
from scanner.io import parquet_files, partition_dir
from scanner.models.checkpoint import record_path

#: Schema of the selection handed to the attribution workers.
SELECTED = pa.schema(
    [
        pa.field("tf", pa.string(), nullable=False),
        pa.field("regime", pa.string(), nullable=False),
        pa.field("chrom", pa.string(), nullable=False),
        pa.field("start", pa.int64(), nullable=False),
        pa.field("end", pa.int64(), nullable=False),
        pa.field("strand", pa.string(), nullable=False),
        pa.field("motif_id", pa.string(), nullable=False),
        pa.field("window_start", pa.int64(), nullable=False),
        pa.field("window", pa.string(), nullable=False),
    ]
)
_ORDER = ["tf", "regime", "chrom", "start", "end", "strand", "motif_id"]


def model_width(models_root: str | Path, tf: str, regime: str) -> int:
    """The window length W (``spec.seq_len``) of a model, read from its ``model.json``.

    Raises
    ------
    InputError
        If the model or its ``model.json`` is missing or malformed.
    """
    import json

    js = record_path(partition_dir(models_root, [("tf", tf), ("regime", regime)]))
    if not js.is_file():
        raise InputError(f"no model for tf '{tf}', regime '{regime}' (expected {js})", source=models_root)
    try:
        return int(json.loads(js.read_text())["spec"]["seq_len"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed checkpoint metadata: {exc}", source=js) from exc


def select_windows(
    source_root: str | Path,
    models_root: str | Path,
    config: FeaturesConfig,
    *,
    genome: str | Path | None = None,
) -> pa.Table:
    """The windows to explain, per model.

    Parameters
    ----------
    source_root : path
        ``OUT/datasets`` (``config.source == "datasets"``) or ``OUT/predictions``.
    models_root : path
        ``OUT/models``; only (TF, regime) pairs with a model are kept.
    config : FeaturesConfig
        ``tfs``, ``regimes``, ``splits``, ``label``, ``where``, ``top``, ``max_windows``, ``seed``.
    genome : path, optional
        FASTA for ``source="predictions"``. Default: the one recorded beside the predictions.

    Returns
    -------
    pyarrow.Table
        Schema :data:`SELECTED`.

    Raises
    ------
    InputError
        Missing or malformed source, a ``--where`` that does not parse, or windows shorter than the
        model's W.
    """

    if config.source == "datasets":
        df = _from_datasets(Path(source_root), Path(models_root), config)
    else:
        df = _from_predictions(Path(source_root), Path(models_root), config, genome)
    if config.max_windows is not None and df.height:
        rng = np.random.default_rng(config.seed)
        keep = []
        for (_tf, _regime), idx in df.with_row_index("_i").group_by(["tf", "regime"], maintain_order=True):
            rows = idx.get_column("_i").to_numpy()
            if rows.size > config.max_windows:
                rows = np.sort(rng.choice(rows, size=config.max_windows, replace=False))
            keep.append(rows)
        df = df[np.concatenate(keep)]
    return df.sort(_ORDER).select(SELECTED.names).to_arrow().cast(SELECTED) if df.height else SELECTED.empty_table()


def _apply_where(lf: object, where: str | None) -> object:
    import polars as pl

    if not where:
        return lf
    try:
        return lf.filter(pl.sql_expr(where))
    except Exception as exc:  # polars raises several types for bad SQL
        raise InputError(f"cannot parse {where!r}: {exc}", field="--where") from exc


def _collect(lf: object, where: str | None) -> object:
    try:
        return lf.collect()
    except Exception as exc:
        if where:
            raise InputError(f"cannot apply {where!r}: {exc}", field="--where") from exc
        raise


def _from_datasets(root: Path, models_root: Path, config: FeaturesConfig) -> object:
    import polars as pl

    from scanner.data_loading import available_partitions

    parts = available_partitions(root)
    frames = []
    for (regime, tf), splits in sorted(parts.items()):
        if (config.tfs and tf not in config.tfs) or (config.regimes and regime not in config.regimes):
            continue
        if not record_path(partition_dir(models_root, [("tf", tf), ("regime", regime)])).is_file():
            continue
        width = model_width(models_root, tf, regime)
        for split in sorted(splits):
            if config.splits and split not in config.splits:
                continue
            files = parquet_files(partition_dir(root, [("regime", regime), ("tf", tf), ("split", split)]))
            lf = pl.scan_parquet([str(f) for f in files], hive_partitioning=False)
            have = lf.collect_schema().names()
            missing = [c for c in ("window", "label", *_ORDER[2:]) if c not in have]
            if missing:
                raise InputError(f"dataset files lack column(s) {', '.join(missing)}", source=files[0])
            if config.label is not None:
                lf = lf.filter(pl.col("label") == config.label)
            lf = _apply_where(lf, config.where)
            df = _collect(lf.select([*_ORDER[2:], "window"]), config.where)
            if df.height == 0:
                continue
            lengths = df.get_column("window").str.len_bytes()
            if int(lengths.min()) < width:
                raise InputError(
                    f"windows of {int(lengths.min())} bp are shorter than the model's {width} bp",
                    source=files[0],
                    field="window",
                )
            # centre-crop longer windows to the model's W (the site stays at W // 2)
            cut = (lengths - width) // 2
            mid = (pl.col("start") + pl.col("end")) // 2
            df = df.with_columns(
                pl.lit(tf).alias("tf"),
                pl.lit(regime).alias("regime"),
                (mid - width // 2).alias("window_start"),
                pl.col("window").str.slice(cut, width),
            )
            frames.append(df)
    if not frames:
        return pl.DataFrame(schema={f.name: pl.from_arrow(pa.array([], f.type)).dtype for f in SELECTED})
    return pl.concat(frames, how="diagonal")


def _from_predictions(root: Path, models_root: Path, config: FeaturesConfig, genome: str | Path | None) -> object:
    import polars as pl

    from scanner.genome import decode, open_genome
    from scanner.interpret.run import InterpretConfig, resolve_genome, select_instances
    from scanner.predict.apply import fetch_windows

    sel = pl.from_arrow(
        select_instances(
            root, InterpretConfig(where=config.where, top=config.top, tfs=config.tfs, regimes=config.regimes)
        )
    )
    frames = []
    g = open_genome(resolve_genome(root, genome))
    try:
        for (tf, regime), part in sel.group_by(["tf", "regime"], maintain_order=True):
            if not record_path(partition_dir(models_root, [("tf", tf), ("regime", regime)])).is_file():
                continue
            width = model_width(models_root, tf, regime)
            starts = part.get_column("start").to_numpy().astype(np.int64)
            ends = part.get_column("end").to_numpy().astype(np.int64)
            chroms = np.asarray(part.get_column("chrom").to_list(), dtype=object)
            for c in sorted(set(chroms)):
                g.check_chrom(c, source="predictions")
            codes = fetch_windows(g, chroms, starts, ends, width)
            frames.append(
                part.select(_ORDER).with_columns(
                    pl.Series("window_start", (starts + ends) // 2 - width // 2),
                    pl.Series("window", [decode(row) for row in codes]),
                )
            )
    finally:
        g.close()
    if not frames:
        return pl.DataFrame(schema={f.name: pl.from_arrow(pa.array([], f.type)).dtype for f in SELECTED})
    return pl.concat(frames)
