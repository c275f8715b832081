"""The motif scan: exact p-values, a vectorised kernel, and a sharded genome-wide stage on Ray."""

from scanner.scan.chunk import scan_chunk
from scanner.scan.genome_scan import ScanConfig, ScanMeta, ScanSummary, load_scan_meta, run_shard, scan_genome
from scanner.scan.prepare import PreparedMotif, build_lookup_plan, prepare_motifs
from scanner.scan.pvalues import PValueTable

__all__ = [
    "PValueTable",
    "PreparedMotif",
    "ScanConfig",
    "ScanMeta",
    "ScanSummary",
    "build_lookup_plan",
    "load_scan_meta",
    "prepare_motifs",
    "run_shard",
    "scan_chunk",
    "scan_genome",
]
