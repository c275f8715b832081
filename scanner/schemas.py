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
        pa.field("motif_id", pa.string(), nullable=False, metadata={"doc": "motif identifier, e.g. MA0139.2"}),
        pa.field("tf", pa.string(), nullable=False, metadata={"doc": "motif name (the TF), e.g. CTCF"}),
        pa.field("score", pa.float32(), nullable=False, metadata={"doc": "log-odds score in bits"}),
        pa.field("pvalue", pa.float64(), nullable=False, metadata={"doc": "P(S >= score) under the background"}),
        pa.field("sequence", pa.string(), nullable=False, metadata={"doc": "matched site on the motif's strand"}),
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
        pa.field("in_open", pa.bool_(), nullable=False, metadata={"doc": "site inside an open-chromatin peak"}),
        pa.field("gc", pa.float32(), nullable=False, metadata={"doc": "GC fraction of the window's A/C/G/T bases"}),
        pa.field("split", pa.string(), nullable=False, metadata={"doc": "'train', 'val' or 'test' (by chromosome)"}),
        pa.field("window_start", pa.int64(), nullable=False, metadata={"doc": "0-based window start (may be < 0)"}),
        pa.field("window_padded", pa.bool_(), nullable=False, metadata={"doc": "window runs off the chromosome"}),
    ],
)

# ---- datasets (issue 3) -------------------------------------------------------------------------
#: Balanced training sets: ``OUT/datasets/regime=<r>/tf=<tf>/split=<s>/part-*.parquet``.
DATASETS = _extend(
    LABELLED,
    [
        pa.field("regime", pa.string(), nullable=False, metadata={"doc": "'pvalue', 'gc', 'open' or 'random'"}),
        pa.field("label", pa.int8(), nullable=False, metadata={"doc": "1 bound, 0 unbound"}),
        pa.field("match_bin", pa.int32(), nullable=False, metadata={"doc": "matching bin (-1: unmatched regime)"}),
        pa.field(
            "window",
            pa.string(),
            nullable=False,
            metadata={"doc": "W bases of the window on the + strand, upper case, N for padding/unknown/masked"},
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
        pa.field("score_auprc", pa.float64(), metadata={"doc": "auPRC of the motif score alone"}),
        pa.field(
            "kmer_auroc",
            pa.float64(),
            metadata={"doc": "auROC of a logistic regression on the window's k-mer spectrum (k 1-6; baseline)"},
        ),
        pa.field("kmer_auprc", pa.float64(), metadata={"doc": "auPRC of that k-mer regression"}),
        pa.field(
            "site_auroc",
            pa.float64(),
            metadata={"doc": "auROC of a logistic regression on the one-hot site +-15 bp and the score (baseline)"},
        ),
        pa.field("site_auprc", pa.float64(), metadata={"doc": "auPRC of that site regression"}),
        pa.field("best_baseline", pa.string(), metadata={"doc": "baseline of highest auROC here: score, kmer or site"}),
        pa.field(
            "beats_baselines",
            pa.bool_(),
            metadata={"doc": "model auROC above every baseline's on these rows (null: not comparable)"},
        ),
        pa.field("members", pa.int32(), metadata={"doc": "networks in the model's seed ensemble"}),
        pa.field("member_auroc_mean", pa.float64(), metadata={"doc": "mean auROC of the ensemble's networks alone"}),
        pa.field("member_auroc_std", pa.float64(), metadata={"doc": "their standard deviation (spread over seeds)"}),
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
#: The columns that identify one VCF allele (a multi-allelic record is split into one allele per row).
VARIANT_KEY = ("chrom", "pos", "ref", "alt", "variant_id")
#: The columns that identify one ref/alt pair of ``scanner variants --sequences``.
SEQUENCE_KEY = ("id",)

_VARIANT_FIELDS = [
    pa.field("chrom", pa.string(), nullable=False, metadata={"doc": "VCF CHROM (= the genome's name)"}),
    pa.field("pos", pa.int64(), nullable=False, metadata={"doc": "0-based position of the first REF base"}),
    pa.field("ref", pa.string(), nullable=False, metadata={"doc": "REF as in the VCF (upper case)"}),
    pa.field("alt", pa.string(), nullable=False, metadata={"doc": "this ALT allele (upper case)"}),
    pa.field("variant_id", pa.string(), nullable=False, metadata={"doc": "CHROM:POS:REF:ALT, POS 1-based"}),
    pa.field("vcf_id", pa.string(), metadata={"doc": "VCF ID column (null for '.')"}),
    pa.field("vcf_line", pa.int64(), nullable=False, metadata={"doc": "1-based line in the VCF"}),
    pa.field("kind", pa.string(), nullable=False, metadata={"doc": "snv, mnv, insertion, deletion or complex"}),
    pa.field(
        "var_start",
        pa.int64(),
        nullable=False,
        metadata={
            "doc": "0-based start of the changed REF bases (shared suffix, then prefix, trimmed; indels left-aligned)"
        },
    ),
    pa.field(
        "var_end",
        pa.int64(),
        nullable=False,
        metadata={"doc": "exclusive end; == var_start for an insertion (bases inserted before var_start)"},
    ),
]

_SCORE_FIELDS = [
    pa.field("regime", pa.string(), metadata={"doc": "training regime of the model (null: not scored)"}),
    pa.field("logit_ref", pa.float32(), metadata={"doc": "model logit of the REF window"}),
    pa.field("logit_alt", pa.float32(), metadata={"doc": "model logit of the ALT window"}),
    pa.field("prob_ref", pa.float32(), metadata={"doc": "sigmoid(logit_ref)"}),
    pa.field("prob_alt", pa.float32(), metadata={"doc": "sigmoid(logit_alt)"}),
    pa.field("delta_logit", pa.float32(), metadata={"doc": "logit_alt - logit_ref"}),
    pa.field("abs_delta", pa.float32(), metadata={"doc": "|delta_logit|"}),
]

#: ``OUT/variants/scores/tf=<tf>/chrom=<chrom>/part-*.parquet``: the effect of each VCF allele on each
#: motif instance of a TF whose model window contains it, under each (TF, regime) model. One row per
#: (allele, instance, model); an allele in no instance window of the TF gets one row with
#: ``in_window = false``, the distance to the nearest instance and null instance/model columns.
#: Windows are W = ``seq_len`` bp centred on the site (``window_start = (start + end) // 2 - W // 2``,
#: + strand). The ALT window keeps the site at its place: an indel wholly upstream of the site centre
#: shifts the upstream bases, any other the downstream bases, and the window is filled from the genome
#: to W (see ``docs/variants.md``). Sites are on ``inst_strand``; p-values as in the scan.
VARIANTS = pa.schema(
    [
        *_VARIANT_FIELDS,
        pa.field("tf", pa.string(), nullable=False, metadata={"doc": "TF of the instances and models"}),
        pa.field("seq_len", pa.int32(), nullable=False, metadata={"doc": "model window W (bp)"}),
        pa.field("in_window", pa.bool_(), nullable=False, metadata={"doc": "the allele is in this instance's window"}),
        pa.field(
            "distance",
            pa.int64(),
            metadata={
                "doc": "bases between the changed REF bases and the site (0: adjacent or overlapping); "
                "in_window false: to the nearest instance of the TF (null: none on the chromosome)"
            },
        ),
        pa.field("inst_start", pa.int64(), metadata={"doc": "0-based start of the site (REF coordinates)"}),
        pa.field("inst_end", pa.int64(), metadata={"doc": "0-based exclusive end of the site"}),
        pa.field("inst_strand", pa.string(), metadata={"doc": "'+' or '-'"}),
        pa.field("motif_id", pa.string(), metadata={"doc": "motif of the site"}),
        pa.field(
            "inst_source",
            pa.string(),
            metadata={"doc": "'scan': an instance of OUT/instances; 'created': a hit only the ALT allele has"},
        ),
        pa.field("window_start", pa.int64(), metadata={"doc": "0-based start of the REF window (may be < 0)"}),
        pa.field("var_in_site", pa.bool_(), metadata={"doc": "the allele changes a base of the site"}),
        pa.field("site_bases_deleted", pa.int32(), metadata={"doc": "site bases the allele deletes (indels)"}),
        pa.field("site_pvalue_ref", pa.float64(), metadata={"doc": "p-value of the site's REF bases"}),
        pa.field(
            "site_pvalue_alt",
            pa.float64(),
            metadata={"doc": "p-value of the bases at the site's window positions under ALT (null: N)"},
        ),
        pa.field("hit_ref", pa.bool_(), metadata={"doc": "site_pvalue_ref below the scan threshold"}),
        pa.field("hit_alt", pa.bool_(), metadata={"doc": "site_pvalue_alt below the scan threshold"}),
        *_SCORE_FIELDS,
    ]
)
VARIANT_PARTITIONS = ("tf", "chrom")

#: ``OUT/variants/scores/tf=<tf>/part-*.parquet`` of ``scanner variants --sequences``: one row per
#: (ref/alt pair, model). Each sequence is centred in the W-bp window on its own (cropped or N-padded
#: equally on both sides, the extra base on the right). The site columns describe the best site of
#: the TF's motifs (either strand) among windows touching the bases where REF and ALT differ.
VARIANT_SEQUENCES = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False, metadata={"doc": "the 'id' column of the TSV"}),
        pa.field("line", pa.int64(), nullable=False, metadata={"doc": "1-based line in the TSV"}),
        pa.field("tf", pa.string(), nullable=False, metadata={"doc": "TF of the model"}),
        pa.field("seq_len", pa.int32(), nullable=False, metadata={"doc": "model window W (bp)"}),
        pa.field("ref_length", pa.int32(), nullable=False),
        pa.field("alt_length", pa.int32(), nullable=False),
        pa.field("kind", pa.string(), nullable=False, metadata={"doc": "snv, mnv, insertion, deletion, complex, none"}),
        pa.field("var_start", pa.int64(), nullable=False, metadata={"doc": "0-based start in REF of the change"}),
        pa.field("var_end", pa.int64(), nullable=False, metadata={"doc": "exclusive end in REF of the change"}),
        pa.field("motif_id", pa.string(), metadata={"doc": "motif of the best site (null: no scan given)"}),
        pa.field("site_pvalue_ref", pa.float64(), metadata={"doc": "best site p-value in REF"}),
        pa.field("site_pvalue_alt", pa.float64(), metadata={"doc": "best site p-value in ALT"}),
        pa.field("hit_ref", pa.bool_()),
        pa.field("hit_alt", pa.bool_()),
        *_SCORE_FIELDS,
    ]
)


def variant_comparison_schema(
    regimes: tuple[str, ...] | list[str], key: tuple[str, ...] = VARIANT_KEY, *, patterns: bool = False
) -> pa.Schema:
    """Schema of ``OUT/variants/comparison.parquet``: one row per (allele, TF) scored under any regime.

    ``key`` columns (:data:`VARIANT_KEY`, or :data:`SEQUENCE_KEY` for ``--sequences``), then ``tf``,
    ``n_regimes`` (regimes that scored it), per regime ``r``: ``delta_<r>`` (the ``delta_logit`` of the
    allele's strongest instance under ``r``: largest ``abs_delta``, ties to the nearest site) and
    ``top_<r>`` (in the top ``top_fraction`` of ``abs_delta`` of the TF's alleles under ``r``); then
    ``delta_min``/``delta_max`` across regimes, ``sign_flip`` (some regime has ``delta >= m`` and another
    ``delta <= -m``, m = ``min_delta``) and ``rank_flip`` (top membership differs between regimes).
    """
    base = {f.name: f for f in (*_VARIANT_FIELDS, *VARIANT_SEQUENCES)}
    fields = [base[k] for k in key]
    fields += [
        pa.field("tf", pa.string(), nullable=False),
        pa.field("n_regimes", pa.int32(), nullable=False, metadata={"doc": "regimes that scored the allele"}),
    ]
    for r in regimes:
        fields += [
            pa.field(f"delta_{r}", pa.float32(), metadata={"doc": f"delta_logit under regime {r}"}),
            pa.field(f"top_{r}", pa.bool_(), metadata={"doc": f"in the top fraction of abs_delta under {r}"}),
        ]
    fields += [
        pa.field("delta_min", pa.float32()),
        pa.field("delta_max", pa.float32()),
        pa.field("sign_flip", pa.bool_(), nullable=False, metadata={"doc": "opposite signs between regimes"}),
        pa.field("rank_flip", pa.bool_(), nullable=False, metadata={"doc": "top membership differs"}),
    ]
    if patterns:
        for r in regimes:
            fields.append(
                pa.field(
                    f"pattern_{r}",
                    pa.string(),
                    metadata={"doc": f"learned pattern of regime {r} the allele falls in (null: none or no flip)"},
                )
            )
        for r in regimes:
            fields.append(
                pa.field(f"pattern_match_{r}", pa.string(), metadata={"doc": "that pattern's database match"})
            )
    return pa.schema(fields)


#: ``OUT/variants/correlations.parquet``: per TF and pair of regimes, across the alleles both scored.
VARIANT_CORRELATIONS = pa.schema(
    [
        pa.field("tf", pa.string(), nullable=False),
        pa.field("regime_a", pa.string(), nullable=False),
        pa.field("regime_b", pa.string(), nullable=False),
        pa.field("n", pa.int64(), nullable=False, metadata={"doc": "alleles scored under both regimes"}),
        pa.field("spearman", pa.float64(), metadata={"doc": "rank correlation of delta (null: n < 3 or ties)"}),
        pa.field("sign_flips", pa.int64(), nullable=False, metadata={"doc": "opposite signs, both >= min_delta"}),
        pa.field("rank_flips", pa.int64(), nullable=False, metadata={"doc": "top membership differs"}),
    ]
)


# ---- features (issue 16) ------------------------------------------------------------------------
_MATCH = pa.struct(
    [
        pa.field("motif_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("database", pa.string()),
        pa.field("pvalue", pa.float64()),
        pa.field("qvalue", pa.float64()),
        pa.field("offset", pa.int32()),
        pa.field("strand", pa.string()),
    ]
)
_MATRIX = pa.list_(pa.list_(pa.float32(), 4))

#: ``OUT/features/patterns/tf=<tf>/regime=<r>/method=<m>/patterns.parquet``: one row per TF-MoDISco
#: pattern discovered in the attributions of one (TF, regime) model, with its TomTom matches and where
#: its seqlets lie relative to the explained site. Distances are centre to centre (centre =
#: ``start + (end - start) // 2``), signed along the site's strand: positive = 3' (downstream) of the
#: site. Matrices are (length, 4), A C G T, of the pattern trimmed to the positions whose summed
#: |CWM| reaches ``trim_threshold`` of its maximum.
FEATURES = pa.schema(
    [
        pa.field("tf", pa.string(), nullable=False, metadata={"doc": "TF of the model and its instances"}),
        pa.field("regime", pa.string(), nullable=False, metadata={"doc": "training regime of the model"}),
        pa.field("method", pa.string(), nullable=False, metadata={"doc": "attribution method: deeplift or ism"}),
        pa.field("pattern", pa.string(), nullable=False, metadata={"doc": "pattern id: pos_<k> or neg_<k>"}),
        pa.field("sign", pa.int8(), nullable=False, metadata={"doc": "1: supports binding, -1: opposes it"}),
        pa.field("rank", pa.int32(), nullable=False, metadata={"doc": "k: order by seqlets within the sign"}),
        pa.field("n_windows", pa.int64(), nullable=False, metadata={"doc": "windows explained for this model"}),
        pa.field("n_seqlets", pa.int64(), nullable=False, metadata={"doc": "seqlets in the pattern"}),
        pa.field("windows_with", pa.int64(), nullable=False, metadata={"doc": "windows with >= 1 seqlet of it"}),
        pa.field("share", pa.float64(), nullable=False, metadata={"doc": "windows_with / n_windows"}),
        pa.field("length", pa.int32(), nullable=False, metadata={"doc": "trimmed pattern length (bp)"}),
        pa.field("consensus", pa.string(), nullable=False, metadata={"doc": "trimmed PPM argmax (lower case: p<0.5)"}),
        pa.field(
            "contribution", pa.float64(), nullable=False, metadata={"doc": "sum of the trimmed CWM (logit units)"}
        ),
        pa.field(
            "best_match", pa.string(), metadata={"doc": "name of the best match with q < max_qvalue (null: none)"}
        ),
        pa.field("best_match_id", pa.string(), metadata={"doc": "its motif id"}),
        pa.field("best_database", pa.string(), metadata={"doc": "its database (file stem)"}),
        pa.field("best_pvalue", pa.float64(), metadata={"doc": "its TomTom p-value"}),
        pa.field("best_qvalue", pa.float64(), metadata={"doc": "its TomTom q-value (BH over all targets)"}),
        pa.field(
            "matches",
            pa.list_(_MATCH),
            nullable=False,
            metadata={
                "doc": "top TomTom matches by p-value (motif_id, name, database, pvalue, qvalue, offset, strand)"
            },
        ),
        pa.field(
            "distances",
            pa.list_(pa.int32()),
            nullable=False,
            metadata={"doc": "signed seqlet-to-site distance of every seqlet (bp)"},
        ),
        pa.field("abs_distance_q25", pa.float64(), nullable=False, metadata={"doc": "25th percentile of |distance|"}),
        pa.field("abs_distance_median", pa.float64(), nullable=False, metadata={"doc": "median |distance|"}),
        pa.field("abs_distance_q75", pa.float64(), nullable=False, metadata={"doc": "75th percentile of |distance|"}),
        pa.field(
            "share_in_site", pa.float64(), nullable=False, metadata={"doc": "share of seqlets overlapping the site"}
        ),
        pa.field("share_upstream", pa.float64(), nullable=False, metadata={"doc": "share wholly 5' of the site"}),
        pa.field("share_downstream", pa.float64(), nullable=False, metadata={"doc": "share wholly 3' of the site"}),
        pa.field(
            "side",
            pa.string(),
            nullable=False,
            metadata={"doc": "site, upstream, downstream or both (where >= 2/3 of the seqlets lie)"},
        ),
        pa.field("ppm", _MATRIX, nullable=False, metadata={"doc": "position probability matrix of the seqlets"}),
        pa.field("cwm", _MATRIX, nullable=False, metadata={"doc": "contribution weight matrix (mean contributions)"}),
        pa.field(
            "meme", pa.string(), nullable=False, metadata={"doc": "MEME file of the PPM, relative to OUT/features"}
        ),
        pa.field("logo", pa.string(), nullable=False, metadata={"doc": "logo PNG (CWM and PPM), relative path"}),
    ]
)
FEATURE_PARTITIONS = ("tf", "regime", "method")

#: ``OUT/features/seqlets/tf=<tf>/regime=<r>/method=<m>/seqlets.parquet``: one row per seqlet of a pattern,
#: in genome coordinates (0-based half-open, the trimmed pattern's span), with the site it was found beside.
FEATURE_SEQLETS = pa.schema(
    [
        pa.field("tf", pa.string(), nullable=False),
        pa.field("regime", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("pattern", pa.string(), nullable=False),
        pa.field("chrom", pa.string(), nullable=False),
        pa.field("start", pa.int64(), nullable=False, metadata={"doc": "0-based start of the seqlet"}),
        pa.field("end", pa.int64(), nullable=False, metadata={"doc": "0-based exclusive end"}),
        pa.field("strand", pa.string(), nullable=False, metadata={"doc": "'+': the pattern reads on the + strand"}),
        pa.field("site_start", pa.int64(), nullable=False, metadata={"doc": "start of the explained site"}),
        pa.field("site_end", pa.int64(), nullable=False),
        pa.field("site_strand", pa.string(), nullable=False),
        pa.field("motif_id", pa.string(), nullable=False, metadata={"doc": "motif of the site"}),
        pa.field(
            "distance", pa.int32(), nullable=False, metadata={"doc": "signed distance to the site (see FEATURES)"}
        ),
        pa.field("contribution", pa.float32(), nullable=False, metadata={"doc": "summed contribution of its bases"}),
    ]
)

#: ``OUT/features/comparison.parquet``: patterns x regimes per TF and method, long format. A *feature* is
#: the database motif a pattern matches (q < max_qvalue), else a group of unmatched patterns of similar
#: PPMs across regimes (``novel:<consensus>``); one row per (tf, method, feature, sign, regime).
FEATURE_COMPARISON = pa.schema(
    [
        pa.field("tf", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("feature", pa.string(), nullable=False, metadata={"doc": "matched motif name, or novel:<consensus>"}),
        pa.field("motif_id", pa.string(), metadata={"doc": "matched motif id (null: novel)"}),
        pa.field("database", pa.string(), metadata={"doc": "database of the match (null: novel)"}),
        pa.field("sign", pa.int8(), nullable=False),
        pa.field("regime", pa.string(), nullable=False),
        pa.field("present", pa.bool_(), nullable=False, metadata={"doc": "some pattern of this regime is the feature"}),
        pa.field("patterns", pa.list_(pa.string()), nullable=False, metadata={"doc": "those patterns"}),
        pa.field("n_seqlets", pa.int64(), nullable=False, metadata={"doc": "their seqlets"}),
        pa.field("share", pa.float64(), nullable=False, metadata={"doc": "windows with any of them / n_windows"}),
        pa.field("n_windows", pa.int64(), nullable=False, metadata={"doc": "windows explained for the model"}),
        pa.field("best_qvalue", pa.float64(), metadata={"doc": "best TomTom q-value among them"}),
        pa.field("abs_distance_median", pa.float64(), metadata={"doc": "median |distance| of their seqlets"}),
        pa.field(
            "status",
            pa.string(),
            nullable=False,
            metadata={
                "doc": "across regimes: 'vanishes under <c>', 'only under <c>', 'all regimes' or 'some regimes' "
                "(c: the contrast regime, default open)"
            },
        ),
    ]
)


# ---- documentation ------------------------------------------------------------------------------
#: Dataset name -> (path pattern, schema), in pipeline order; rendered into the README.
DOCUMENTED = {
    "instances": ("OUT/instances/tf=/chrom=/part-*.parquet", "INSTANCES"),
    "labelled": ("OUT/labelled/tf=/chrom=/part-*.parquet", "LABELLED"),
    "datasets": ("OUT/datasets/regime=/tf=/split=/part-*.parquet", "DATASETS"),
    "metrics": ("OUT/metrics.parquet", "METRICS"),
    "predictions": ("OUT/predictions/tf=/chrom=/*.parquet", "PREDICTIONS"),
    "attributions": ("OUT/attributions/method=/tf=/chrom=/*.parquet", "ATTRIBUTIONS"),
    "variants": ("OUT/variants/scores/tf=/chrom=/*.parquet", "VARIANTS"),
    "variant correlations": ("OUT/variants/correlations.parquet", "VARIANT_CORRELATIONS"),
    "features": ("OUT/features/patterns/tf=/regime=/method=/patterns.parquet", "FEATURES"),
    "feature seqlets": ("OUT/features/seqlets/tf=/regime=/method=/seqlets.parquet", "FEATURE_SEQLETS"),
    "feature comparison": ("OUT/features/comparison.parquet", "FEATURE_COMPARISON"),
}


def schema_markdown() -> str:
    """Markdown tables of every documented dataset: column, type, nullability, meaning."""
    out = []
    seen: list[tuple[str, pa.Schema]] = []
    for name, (pattern, attr) in DOCUMENTED.items():
        schema = globals()[attr]
        out.append(f"### {name}: `{pattern}`\n")
        base = max(
            (b for b in seen if len(b[1]) < len(schema) and list(schema)[: len(b[1])] == list(b[1])),
            key=lambda b: len(b[1]),
            default=None,
        )
        fields = list(schema)[len(base[1]) :] if base else list(schema)
        if base:
            out.append(f"The columns of *{base[0]}*, then:\n")
        out.append("| column | type | null | meaning |\n| --- | --- | --- | --- |")
        seen.append((name, schema))
        for f in fields:
            doc = (f.metadata or {}).get(b"doc", b"").decode()
            out.append(f"| `{f.name}` | {f.type} | {'yes' if f.nullable else 'no'} | {doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(schema_markdown())
