"""``scanner simulate``: a genome whose TF binding follows documented sequence rules, with its truth.

:mod:`scanner.simulate.rules` holds the motifs and rules each simulated TF follows;
:mod:`scanner.simulate.genome` writes the genome, peaks, open chromatin and truth table.
"""

from scanner.simulate.genome import TRUTH, SimulationConfig, SimulationResult, causal_mask, read_truth, simulate

__all__ = ["TRUTH", "SimulationConfig", "SimulationResult", "causal_mask", "read_truth", "simulate"]
