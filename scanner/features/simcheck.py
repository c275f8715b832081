"""Did the models learn the rules ``scanner simulate`` wrote? Issue 16's checks on a features result.

On the simulated default (``scanner.simulate.rules``: ALPHA is bound in open chromatin AND with an ALPHA_P
partner 40-150 bp away; BETA in open chromatin, which is encoded as clusters of PIONEER motifs with
raised GC), :func:`check_simulated_rules` evaluates, from the features tables alone:

1. under each of ``pvalue`` and ``random``, the BETA model's top positive pattern (most seqlets)
   matches ``PIONEER``;
2. under ``open``, the ALPHA model's positive patterns include ``ALPHA_P`` with a median |distance| to
   the site inside the simulated partner distances;
3. the share of ALPHA windows with the PIONEER pattern is lower under ``open`` than under each of
   ``pvalue`` and ``random``.

A check whose regime or TF was not explained is reported as skipped. ``scanner demo`` prints these
lines under the comparison; ``tests/test_features_slow.py`` asserts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    """One check: ``passed`` is None when skipped (its models were not explained)."""

    name: str
    passed: bool | None
    detail: str

    def line(self) -> str:
        mark = {True: "yes", False: "NO", None: "skipped"}[self.passed]
        return f"  [{mark}] {self.name}: {self.detail}"


def check_simulated_rules(
    patterns: Any,
    comparison: Any,
    *,
    partner_distance: tuple[int, int] = (40, 150),
    method: str = "deeplift",
) -> list[Check]:
    """The three checks of the module docstring.

    Parameters
    ----------
    patterns, comparison : pyarrow.Table or polars.DataFrame
        ``FeaturesResult.patterns`` and ``.comparison`` (or the files of ``OUT/features``).
    partner_distance : (int, int), optional
        The simulation's near-partner distances (``SimulationConfig.partner_distance``). Default (40, 150).
    method : str, optional
        Attribution method whose patterns are checked. Default ``"deeplift"``.

    Returns
    -------
    list of Check
    """
    import polars as pl

    pats = patterns if isinstance(patterns, pl.DataFrame) else pl.from_arrow(patterns)
    cmp = comparison if isinstance(comparison, pl.DataFrame) else pl.from_arrow(comparison)
    pats = pats.filter((pl.col("method") == method) & (pl.col("sign") == 1))
    cmp = cmp.filter((pl.col("method") == method) & (pl.col("sign") == 1))
    out = []
    for regime in ("pvalue", "random"):
        top = pats.filter((pl.col("tf") == "BETA") & (pl.col("regime") == regime)).sort("rank")
        name = f"BETA's top pattern under {regime} is PIONEER"
        if top.height == 0:
            explained = cmp.filter((pl.col("tf") == "BETA") & (pl.col("regime") == regime)).height > 0
            out.append(Check(name, False if explained else None, "no pattern" if explained else "not explained"))
            continue
        r = top.row(0, named=True)
        out.append(
            Check(
                name,
                r["best_match"] == "PIONEER",
                f"{r['pattern']} ({r['n_seqlets']} seqlets, share {r['share']:.2f}) "
                f"matches {r['best_match'] or 'nothing'}",
            )
        )
    lo, hi = partner_distance
    name = f"ALPHA's patterns under open include ALPHA_P at {lo}-{hi} bp"
    alpha_open = pats.filter((pl.col("tf") == "ALPHA") & (pl.col("regime") == "open"))
    if alpha_open.height == 0 and cmp.filter((pl.col("tf") == "ALPHA") & (pl.col("regime") == "open")).height == 0:
        out.append(Check(name, None, "not explained"))
    else:
        p = alpha_open.filter(pl.col("best_match") == "ALPHA_P").sort("rank")
        if p.height == 0:
            out.append(Check(name, False, f"no ALPHA_P among {alpha_open.height} pattern(s)"))
        else:
            r = p.row(0, named=True)
            d = r["abs_distance_median"]
            out.append(
                Check(name, lo <= d <= hi, f"{r['pattern']}: share {r['share']:.2f}, median |distance| {d:.0f} bp")
            )
    name = "the PIONEER pattern's share of ALPHA windows drops under open"
    share = {
        r["regime"]: r["share"]
        for r in cmp.filter((pl.col("tf") == "ALPHA") & (pl.col("feature") == "PIONEER")).iter_rows(named=True)
    }
    regimes = set(cmp.filter(pl.col("tf") == "ALPHA").get_column("regime").to_list())
    others = [g for g in ("pvalue", "random") if g in regimes]
    if "open" not in regimes or not others:
        out.append(Check(name, None, "needs open and pvalue or random"))
    else:
        s = {g: share.get(g, 0.0) for g in ("open", *others)}
        out.append(
            Check(
                name,
                all(s["open"] < s[g] for g in others),
                ", ".join(f"{g} {v:.2f}" for g, v in s.items()),
            )
        )
    return out
