"""``scanner scan``: every motif instance in a genome, sharded over Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scanner.commands._common import reports_input_errors, split_list


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)


@reports_input_errors
def scan(
    genome: Annotated[Path, typer.Option("--genome", "-g", help="Genome FASTA (a .fai is built if missing).")],
    motifs: Annotated[
        list[str],
        typer.Option("--motifs", "-m", help="MEME/JASPAR/HOMER file or JASPAR ID (MA0139.2); repeatable."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory; writes OUT/instances.")],
    pvalue: Annotated[float, typer.Option(help="Report sites with p-value below this.")] = 1e-4,
    chroms: Annotated[list[str] | None, typer.Option(help="Chromosomes to scan (comma-separated).")] = None,
    background: Annotated[
        str, typer.Option(help="'genome' (composition of the scanned chromosomes), 'uniform' or a MEME bg file.")
    ] = "genome",
    pvalue_mode: Annotated[str, typer.Option(help="'exact' (default) or 'fimo' (FIMO's integer rounding).")] = "exact",
    pseudocount: Annotated[float, typer.Option(help="FIMO's motif pseudocount.")] = 0.1,
    max_strand: Annotated[bool, typer.Option(help="Keep only the better strand where both are hits.")] = False,
    skip_masked: Annotated[bool, typer.Option(help="Skip windows touching lower-case (soft-masked) bases.")] = False,
    shard_size: Annotated[int, typer.Option(help="Site starts per shard (bp).")] = 4_000_000,
    kernel: Annotated[str, typer.Option(help="'auto'/'numba': numba on CPUs; 'torch': also conv1d per GPU.")] = "auto",
    jaspar_release: Annotated[str | None, typer.Option(help="JASPAR release for IDs (default: latest).")] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray address (ray://host:10001 or 'auto'); default: local Ray in-process.")
    ] = None,
    local: Annotated[bool, typer.Option("--local", help="Shards in this process, a thread per core; no Ray.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing scan made with other settings.")] = False,
) -> None:
    """Scan a genome for motif instances (exact p-values, both strands) into OUT/instances (Parquet).

    A scan that is interrupted and started again with the same settings reuses finished shards.
    """
    from scanner.scan.genome_scan import ScanConfig, progress_printer, scan_genome

    config = ScanConfig(
        pvalue=pvalue,
        background=background,
        pvalue_mode=pvalue_mode,
        pseudocount=pseudocount,
        max_strand=max_strand,
        skip_masked=skip_masked,
        shard_size=shard_size,
        kernel=kernel,
        chroms=tuple(split_list(chroms)) or None,
        jaspar_release=jaspar_release,
    )
    summary = scan_genome(
        genome,
        motifs,
        out,
        config,
        executor="local" if local else "ray",
        address=address,
        overwrite=overwrite,
        progress=progress_printer("scan"),
    )
    total = sum(summary.hits.values())
    typer.echo(f"{total} instances of {len(summary.hits)} TFs in {summary.out_dir} ({summary.seconds:.1f} s)")
    for tf, n in summary.hits.items():
        typer.echo(f"  {tf}\t{n}")
    if summary.inexact_motifs:
        typer.echo(
            "note: p-values of long motifs are grid estimates within a bound (hit calls are exact): "
            + ", ".join(summary.inexact_motifs),
            err=True,
        )
    note = ray_start_note(summary.timings, summary.seconds) if address is None and not local else None
    if note:
        typer.echo(note, err=True)
    typer.echo(f'query: polars.scan_parquet("{summary.out_dir}/**/*.parquet", hive_partitioning=True)')


def ray_start_note(timings: dict[str, float], seconds: float) -> str | None:
    """A hint when starting local Ray took most of a scan (one machine: ``--local`` skips it)."""
    start = timings.get("setup_s", 0.0)
    if seconds <= 0 or start < 0.5 * seconds:
        return None
    return (
        f"note: starting local Ray took {start:.1f} s of this {seconds:.1f} s scan; on one machine "
        "`--local` runs the same shards without Ray (same output)"
    )
