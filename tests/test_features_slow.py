"""Issue 16, point 4: on the simulated default, trained models recover the rules ``scanner simulate`` wrote.

Slow (trains 6 models): ``python -m pytest -q -m slow tests/test_features_slow.py``. It runs the demo chain
(simulate, scan, label, train under ``pvalue``, ``random`` and ``open``) in this process, then
:func:`scanner.features.run_features` with DeepLIFT over every split's bound windows of each model (the
test chromosome alone holds too few bound windows at the default size for TF-MoDISco), matching against
the run's own motif files (plus JASPAR 2024 fungi when the shared data is present, for more reliable
TomTom p-values), and checks:

* under ``pvalue`` and ``random`` the BETA model's top pattern (most seqlets) matches ``PIONEER``;
* under ``open`` the ALPHA model's patterns include ``ALPHA_P`` at the simulated partner distances
  (median |distance| in 40-150 bp);
* the PIONEER pattern's share of ALPHA windows is lower under ``open`` than under ``pvalue`` and ``random``.

Only models that learned the rules can pass; set ``SCANNER_FEATURES_RUN`` to an existing demo run
(with those three regimes) to skip the training.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REGIMES = ("pvalue", "random", "open")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    given = os.environ.get("SCANNER_FEATURES_RUN")
    if given:
        return Path(given)
    from scanner.demo import DemoConfig, run_demo

    out = tmp_path_factory.mktemp("features_demo") / "demo"
    run_demo(DemoConfig(out=out, regimes=REGIMES, use_ray=False))
    return out


def test_simulated_rules_are_recovered(run, shared_data_or_none):
    from scanner.features import FeaturesConfig, check_simulated_rules, run_features

    jaspar = []
    if shared_data_or_none is not None:
        f = shared_data_or_none / "motifs" / "JASPAR2024_CORE_fungi_nonredundant.meme"
        jaspar = [f] if f.is_file() else []
    res = run_features(run, jaspar, FeaturesConfig(splits=(), max_windows=3000), use_ray=False, log=print)
    print("\n".join(res.lines))
    checks = check_simulated_rules(res.patterns, res.comparison)
    print("\n".join(c.line() for c in checks))
    assert [c.passed for c in checks] == [True] * 4, [c.line() for c in checks]
