"""Motifs: readers (JASPAR, MEME, HOMER, probability matrices, JASPAR IDs), backgrounds, log-odds."""

from scanner.motifs.background import Background, background_from_codes, read_background
from scanner.motifs.model import Motif, log_odds, motif_probabilities
from scanner.motifs.readers import load_motifs, read_motif_file, write_meme

__all__ = [
    "Background",
    "Motif",
    "background_from_codes",
    "load_motifs",
    "log_odds",
    "motif_probabilities",
    "read_background",
    "read_motif_file",
    "write_meme",
]
