"""What each regime taught: motifs discovered in the models' attributions, matched, compared (issue 16).

For each (TF, regime) model, :func:`features` explains its bound test windows (or any selection) with
DeepLIFT (hypothetical contributions) and/or fast ISM (:mod:`scanner.features.attribute`), runs
TF-MoDISco on them (:mod:`scanner.features.discover`), matches every pattern against motif databases
with TomTom (:mod:`scanner.features.match`), places its seqlets relative to the site
(:mod:`scanner.features.positions`), writes its MEME file and logo (:mod:`scanner.features.export`),
and puts the regimes side by side (:mod:`scanner.features.compare`). :func:`run_features` does it on
one run directory. Heavy libraries (torch, ray, modisco-lite, memelite) are imported inside functions.
"""

from scanner.features.compare import compare_features, format_comparison, plot_comparison, ppm_similarity
from scanner.features.config import FEATURE_METHODS, FeaturesConfig, ModiscoSettings
from scanner.features.run import FeaturesResult, default_databases, features, read_features, run_features
from scanner.features.simcheck import Check, check_simulated_rules

__all__ = [
    "FEATURE_METHODS",
    "Check",
    "FeaturesConfig",
    "FeaturesResult",
    "ModiscoSettings",
    "check_simulated_rules",
    "compare_features",
    "default_databases",
    "features",
    "format_comparison",
    "plot_comparison",
    "ppm_similarity",
    "read_features",
    "run_features",
]
