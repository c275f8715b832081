"""The pyarrow schema of every dataset this project writes: the one place a column is defined.

Conventions shared by every dataset
-----------------------------------
* Coordinates are 0-based, half-open (like BED): a site covers ``[start, end)`` on ``chrom``.
* ``strand`` is ``"+"`` or ``"-"``: the genome strand the motif matched on. ``sequence`` and windows of
  a ``-`` instance are given on the genome's ``+`` strand unless a column says otherwise (``sequence``
  of the instances dataset is the exception: it is the matched site read on the motif's strand).
* Datasets are hive-partitioned directories (``tf=CTCF/chrom=chr1/part-00000.parquet``). The partition
  columns are also stored inside every file, so a single file is self-describing; partition values in
  directory names are percent-encoded (``tf=FOS%3A%3AJUN``), which polars and pyarrow decode.
* Read any of them with
  ``polars.scan_parquet("OUT/<dataset>/**/*.parquet", hive_partitioning=True)``.
"""

from __future__ import annotations

import pyarrow as pa

#: Motif instances found by ``scanner scan``: ``OUT/instances/tf=<tf>/chrom=<chrom>/part-<shard>.parquet``.
#: One row per hit (window of A/C/G/T only, tail p-value below the threshold), sorted by start then strand.
INSTANCES = pa.schema(
    [
        pa.field("chrom", pa.string(), nullable=False, metadata={"doc": "chromosome name as in the FASTA"}),
        pa.field("start", pa.int64(), nullable=False, metadata={"doc": "0-based start of the site"}),
        pa.field("end", pa.int64(), nullable=False, metadata={"doc": "0-based exclusive end of the site"}),
        pa.field("strand", pa.string(), nullable=False, metadata={"doc": "'+' or '-'"}),
        pa.field(
            "motif_id", pa.string(), nullable=False, metadata={"doc": "motif identifier, e.g. MA0139.2"}
        ),
        pa.field("tf", pa.string(), nullable=False, metadata={"doc": "motif name (the TF), e.g. CTCF"}),
        pa.field("score", pa.float32(), nullable=False, metadata={"doc": "log-odds score in bits"}),
        pa.field(
            "pvalue", pa.float64(), nullable=False, metadata={"doc": "P(S >= score) under the background"}
        ),
        pa.field(
            "sequence", pa.string(), nullable=False, metadata={"doc": "matched site on the motif's strand"}
        ),
    ]
)

#: Columns that identify one motif instance across every downstream dataset.
INSTANCE_KEY = ("chrom", "start", "end", "strand", "motif_id")

#: Partition columns of the instances dataset (and of labelled/predictions), outermost first.
INSTANCE_PARTITIONS = ("tf", "chrom")


def _extend(base: pa.Schema, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(list(base) + fields)


# ---- labelled (issue 3) -------------------------------------------------------------------------
#: Every instance with its labels: ``OUT/labelled/tf=<tf>/chrom=<chrom>/part-*.parquet``.
#: The window of an instance is the ``W``-bp interval centred on the site:
#: ``window_start = (start + end) // 2 - W // 2``, ``window_end = window_start + W``.
LABELLED = _extend(
    INSTANCES,
    [
        pa.field("bound", pa.bool_(), nullable=False, metadata={"doc": "site inside a peak of this TF"}),
        pa.field(
            "in_open", pa.bool_(), nullable=False, metadata={"doc": "site inside an open-chromatin peak"}
        ),
        pa.field(
            "gc", pa.float32(), nullable=False, metadata={"doc": "GC fraction of the window's A/C/G/T bases"}
        ),
        pa.field(
            "split", pa.string(), nullable=False, metadata={"doc": "'train', 'val' or 'test' (by chromosome)"}
        ),
        pa.field(
            "window_start", pa.int64(), nullable=False, metadata={"doc": "0-based window start (may be < 0)"}
        ),
        pa.field(
            "window_padded", pa.bool_(), nullable=False, metadata={"doc": "window runs off the chromosome"}
        ),
    ],
)

# ---- datasets (issue 3) -------------------------------------------------------------------------
#: Balanced training sets: ``OUT/datasets/regime=<r>/tf=<tf>/split=<s>/part-*.parquet``.
DATASETS = _extend(
    LABELLED,
    [
        pa.field(
            "regime", pa.string(), nullable=False, metadata={"doc": "'pvalue', 'gc', 'open' or 'random'"}
        ),
        pa.field("label", pa.int8(), nullable=False, metadata={"doc": "1 bound, 0 unbound"}),
        pa.field(
            "match_bin", pa.int32(), nullable=False, metadata={"doc": "matching bin (-1: unmatched regime)"}
        ),
        pa.field(
            "window",
            pa.string(),
            nullable=False,
            metadata={
                "doc": "W bases of the window on the + strand, upper case, N for padding/unknown/masked"
            },
        ),
    ],
)
DATASET_PARTITIONS = ("regime", "tf", "split")

# ---- predictions and metrics (issue 4) ----------------------------------------------------------
#: ``OUT/predictions/tf=<tf>/chrom=<chrom>/part-*.parquet``: one row per instance and model.
PREDICTIONS = _extend(
    INSTANCES,
    [
        pa.field("regime", pa.string(), nullable=False, metadata={"doc": "training regime of the model"}),
        pa.field("model_tf", pa.string(), nullable=False, metadata={"doc": "TF whose model scored the row"}),
        pa.field("logit", pa.float32(), nullable=False, metadata={"doc": "model output (log-odds of bound)"}),
        pa.field("prob_bound", pa.float32(), nullable=False, metadata={"doc": "sigmoid(logit)"}),
    ],
)

#: ``OUT/metrics.parquet``: one row per (model TF, data TF, regime, split).
METRICS = pa.schema(
    [
        pa.field("tf", pa.string(), nullable=False, metadata={"doc": "TF of the evaluated instances"}),
        pa.field("model_tf", pa.string(), nullable=False, metadata={"doc": "TF whose model was applied"}),
        pa.field("regime", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("n", pa.int64(), nullable=False),
        pa.field("n_pos", pa.int64(), nullable=False),
        pa.field("n_neg", pa.int64(), nullable=False),
        pa.field("auroc", pa.float64(), metadata={"doc": "null when one class is absent"}),
        pa.field("auprc", pa.float64(), metadata={"doc": "average precision; null when no positives"}),
        pa.field("score_auroc", pa.float64(), metadata={"doc": "auROC of the motif score alone (baseline)"}),
        pa.field("loss", pa.float64(), metadata={"doc": "mean binary cross-entropy"}),
    ]
)

# ---- attributions (issue 5) ---------------------------------------------------------------------
#: ``OUT/attributions/method=<m>/tf=<tf>/chrom=<chrom>/part-*.parquet``: long format, one row per
#: (instance, model, method, genome position) of the explained window (positions off the chromosome
#: are not written). Values are in logit units; see ``scanner.interpret.methods`` for each method's
#: per-base values and per-position ``score``. Top positions around a site:
#: ``pl.scan_parquet("OUT/attributions/**/*.parquet").filter(pl.col("method") == "ism",
#: pl.col("chrom") == "chr1", pl.col("start") == 1234).sort(pl.col("score").abs(), descending=True)``.
ATTRIBUTIONS = pa.schema(
    [
        *(INSTANCES.field(name) for name in ("chrom", "start", "end", "strand", "motif_id", "tf")),
        pa.field("regime", pa.string(), nullable=False, metadata={"doc": "training regime of the model"}),
        pa.field("model_tf", pa.string(), nullable=False, metadata={"doc": "TF whose model is explained"}),
        pa.field(
            "method",
            pa.string(),
            nullable=False,
            metadata={"doc": "ism, ism-naive, deeplift, saliency, grad-x-input, gradcam or guided-gradcam"},
        ),
        pa.field("pos", pa.int64(), nullable=False, metadata={"doc": "0-based genome position (+ strand)"}),
        pa.field(
            "offset",
            pa.int32(),
            nullable=False,
            metadata={"doc": "pos - start (0 .. end-start-1 in the site)"},
        ),
        pa.field("base", pa.string(), nullable=False, metadata={"doc": "genome base at pos (A/C/G/T/N)"}),
        pa.field("score", pa.float32(), nullable=False, metadata={"doc": "per-position score, logit units"}),
        pa.field("a", pa.float32(), metadata={"doc": "per-base value for A (null: gradcam)"}),
        pa.field("c", pa.float32(), metadata={"doc": "per-base value for C"}),
        pa.field("g", pa.float32(), metadata={"doc": "per-base value for G"}),
        pa.field("t", pa.float32(), metadata={"doc": "per-base value for T"}),
        pa.field(
            "delta",
            pa.float32(),
            metadata={"doc": "DeepLIFT convergence delta of the instance (null for other methods)"},
        ),
    ]
)
ATTRIBUTION_PARTITIONS = ("method", "tf", "chrom")

# ---- variants (issue 6) -------------------------------------------------------------------------
