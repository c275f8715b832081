"""One model's features: discover patterns, match them, place their seqlets, write their files.

:func:`model_patterns` turns one (TF, regime, method)'s windows and hypothetical contributions into its
rows of :data:`scanner.schemas.FEATURES` and :data:`scanner.schemas.FEATURE_SEQLETS`, and writes each
pattern's MEME file and logo under ``out_dir/motifs/tf=<tf>/regime=<r>/method=<m>/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from scanner.features.config import FeaturesConfig
from scanner.features.discover import Pattern, discover_patterns, trim_bounds
from scanner.features.export import plot_pattern, write_meme_file
from scanner.features.match import Match, MotifDatabase, match_patterns
from scanner.features.positions import distance_summary, seqlet_places
from scanner.io import partition_dir
from scanner.schemas import FEATURE_SEQLETS, FEATURES


def consensus(ppm: np.ndarray) -> str:
    """Argmax letter of each column, lower case where its probability is below 0.5."""
    p = np.asarray(ppm)
    if p.size == 0:
        return ""
    letters = np.array(list("ACGT"))[p.argmax(axis=1)]
    return "".join(b if m >= 0.5 else b.lower() for b, m in zip(letters, p.max(axis=1), strict=True))


def model_patterns(
    one_hot: np.ndarray,
    hypothetical: np.ndarray,
    rows: pa.Table,
    track_offset: int,
    database: MotifDatabase,
    config: FeaturesConfig,
    out_dir: str | Path,
    method: str,
    threads: int | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Patterns and seqlets of one model.

    Parameters
    ----------
    one_hot, hypothetical : numpy.ndarray, shape (N, 4, P)
        The attribution slice of each window (track position 0 = window position ``track_offset``).
    rows : pyarrow.Table
        The N windows' rows (:data:`scanner.features.select.SELECTED`), all of one (tf, regime).
    track_offset : int
    database : MotifDatabase
        TomTom targets (may be empty: no matches).
    config : FeaturesConfig
        ``modisco``, ``trim_threshold``, ``top_matches``, ``max_qvalue``.
    out_dir : path
        The features directory; MEME files and logos go under ``motifs/`` there and the tables
        record their paths relative to it.
    method : str
        Attribution method (a column).
    threads : int, optional
        numba threads for TomTom.

    Returns
    -------
    (patterns, seqlets) : (pyarrow.Table, pyarrow.Table)
        Schemas FEATURES and FEATURE_SEQLETS.
    """
    n = one_hot.shape[0]
    if n == 0:
        return FEATURES.empty_table(), FEATURE_SEQLETS.empty_table()
    tf, regime = rows.column("tf")[0].as_py(), rows.column("regime")[0].as_py()
    patterns = discover_patterns(one_hot, hypothetical, config.modisco)
    if not patterns:
        return FEATURES.empty_table(), FEATURE_SEQLETS.empty_table()
    bounds = [trim_bounds(p.cwm, config.trim_threshold) for p in patterns]
    matches = match_patterns(
        [p.ppm[lo:hi] for p, (lo, hi) in zip(patterns, bounds, strict=True)], database, config.top_matches, threads
    )
    # prefix sums of the actual contributions (one_hot * hypothetical) per window: a seqlet's total in O(1)
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum((one_hot * hypothetical).sum(axis=1), axis=1)], axis=1)
    wstart = rows.column("window_start").to_numpy()
    sstart, send = rows.column("start").to_numpy(), rows.column("end").to_numpy()
    minus = np.asarray(rows.column("strand").to_pylist()) == "-"
    chroms = np.asarray(rows.column("chrom").to_pylist(), dtype=object)
    motif_ids = np.asarray(rows.column("motif_id").to_pylist(), dtype=object)
    rel = Path("motifs") / partition_dir("", [("tf", tf), ("regime", regime), ("method", method)])
    pattern_rows, seqlet_tables = [], []
    for p, (lo, hi), found in zip(patterns, bounds, matches, strict=True):
        ex = p.example
        places = seqlet_places(
            p.start, p.end, p.revcomp, lo, hi, wstart[ex], track_offset, sstart[ex], send[ex], minus[ex]
        )
        t0 = places.start - wstart[ex] - track_offset
        seq_contrib = cum[ex, t0 + (hi - lo)] - cum[ex, t0]
        ppm, cwm = p.ppm[lo:hi], p.cwm[lo:hi]
        meme_rel, logo_rel = rel / f"{p.name}.meme", rel / f"{p.name}.png"
        title = f"{tf} / {regime} / {method}: {p.name} ({p.n_seqlets} seqlets)"
        ok = [m for m in found if m.qvalue < config.max_qvalue]
        if ok:
            title += f" ~ {ok[0].name} (q={ok[0].qvalue:.1e})"
        write_meme_file(Path(out_dir) / meme_rel, [(f"{tf}.{regime}.{method}.{p.name}", p.name, ppm, p.n_seqlets)])
        plot_pattern(cwm, ppm, title, Path(out_dir) / logo_rel)
        pattern_rows.append(_pattern_row(p, tf, regime, method, n, ppm, cwm, found, ok, places, meme_rel, logo_rel))
        seqlet_tables.append(
            pa.table(
                {
                    "tf": pa.array([tf] * ex.size, pa.string()),
                    "regime": pa.array([regime] * ex.size, pa.string()),
                    "method": pa.array([method] * ex.size, pa.string()),
                    "pattern": pa.array([p.name] * ex.size, pa.string()),
                    "chrom": pa.array(chroms[ex], pa.string()),
                    "start": pa.array(places.start, pa.int64()),
                    "end": pa.array(places.end, pa.int64()),
                    "strand": pa.array(np.where(places.minus, "-", "+"), pa.string()),
                    "site_start": pa.array(sstart[ex], pa.int64()),
                    "site_end": pa.array(send[ex], pa.int64()),
                    "site_strand": pa.array(np.where(minus[ex], "-", "+"), pa.string()),
                    "motif_id": pa.array(motif_ids[ex], pa.string()),
                    "distance": pa.array(places.distance, pa.int32()),
                    "contribution": pa.array(seq_contrib.astype(np.float32), pa.float32()),
                },
                schema=FEATURE_SEQLETS,
            )
        )
    return pa.Table.from_pylist(pattern_rows, schema=FEATURES), pa.concat_tables(seqlet_tables)


def _pattern_row(
    p: Pattern,
    tf: str,
    regime: str,
    method: str,
    n_windows: int,
    ppm: np.ndarray,
    cwm: np.ndarray,
    found: list[Match],
    ok: list[Match],
    places: object,
    meme_rel: Path,
    logo_rel: Path,
) -> dict[str, object]:
    best = ok[0] if ok else None
    windows_with = int(np.unique(p.example).size)
    return {
        "tf": tf,
        "regime": regime,
        "method": method,
        "pattern": p.name,
        "sign": p.sign,
        "rank": p.rank,
        "n_windows": n_windows,
        "n_seqlets": p.n_seqlets,
        "windows_with": windows_with,
        "share": windows_with / n_windows,
        "length": int(ppm.shape[0]),
        "consensus": consensus(ppm),
        "contribution": float(cwm.sum()),
        "best_match": best.name if best else None,
        "best_match_id": best.motif_id if best else None,
        "best_database": best.database if best else None,
        "best_pvalue": best.pvalue if best else None,
        "best_qvalue": best.qvalue if best else None,
        "matches": [vars(m) for m in found],
        "distances": places.distance.tolist(),
        **distance_summary(places.distance, places.side),
        "ppm": ppm.astype(np.float32).tolist(),
        "cwm": cwm.astype(np.float32).tolist(),
        "meme": meme_rel.as_posix(),
        "logo": logo_rel.as_posix(),
    }
