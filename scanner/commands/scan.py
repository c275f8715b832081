"""``scanner scan``: every motif instance in a genome, sharded over Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import no_ray_alias, reports_input_errors, split_list, take_alias
from scanner.errors import InputError


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)


@reports_input_errors
def scan(
    genome: Annotated[Path, typer.Option("--genome", "-g", help="Genome FASTA (a .fai is built if missing).")],
    motifs: Annotated[
        list[str],
        typer.Option("--motifs", "-m", help="MEME/JASPAR/HOMER file or JASPAR ID (MA0139.2); repeatable."),
    ],
    out: Annotated[Optional[Path], typer.Option("--out", help="Run directory; writes OUT/instances.")] = None,
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
        str | None, typer.Option(help="Ray address (ray://host:10001 or 'auto'): scan on that cluster.")
    ] = None,
    ray: Annotated[
        Optional[bool],
        typer.Option(
            "--ray/--no-ray",
            help="Force Ray (a local one if none is running) or threads of this process. Default: by size.",
        ),
    ] = None,
    table_cache: Annotated[
        str | None,
        typer.Option(
            help="Motif table cache directory, or 'off' "
            "(default: $SCANNER_CACHE_DIR or ~/.cache/scanner/motif-tables; safe to delete)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing scan made with other settings.")] = False,
    old_out: Annotated[Optional[Path], typer.Option("-o", hidden=True)] = None,
    old_local: Annotated[bool, typer.Option("--local", hidden=True)] = False,
) -> None:
    """Scan a genome for motif instances (exact p-values, both strands) into OUT/instances (Parquet).

    A scan that is interrupted and started again with the same settings reuses finished shards.
    Without --address, RAY_ADDRESS or a running local cluster, the shards run on threads of this
    process unless the work is large enough that starting Ray costs under 10% of it (--no-ray / --ray
    force either way); the console says which and why.
    """
    out = take_alias(out, old_out, "-o", "--out")
    if out is None:
        raise InputError("missing --out (the run directory)", field="--out")
    ray = no_ray_alias(ray, old_local)
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
        table_cache=table_cache,
    )
    summary = scan_genome(
        genome,
        motifs,
        out,
        config,
        use_ray=ray,
        address=address,
        overwrite=overwrite,
        progress=progress_printer("scan"),
    )
    total = sum(summary.hits.values())
    typer.echo(f"{total} instances of {len(summary.hits)} TFs in {summary.out_dir} ({summary.seconds:.1f} s)")
    for tf, n in summary.hits.items():
        typer.echo(f"  {tf}\t{n}")
    for line in scan_notes(summary):
        typer.echo(line, err=True)
    note = ray_start_note(summary.timings, summary.seconds) if summary.executor == "ray" and address is None else None
    if note:
        typer.echo(note, err=True)
    typer.echo(f'query: polars.scan_parquet("{summary.out_dir}/**/*.parquet", hive_partitioning=True)')


def scan_notes(summary) -> list[str]:
    """Console lines for what a finished scan must not leave silent: where it ran and why, input
    warnings, motifs that cannot reach the threshold, undecided windows, estimated p-values."""
    lines = [f"ran on: {summary.executor} ({summary.reason})"]
    lines += [f"warning: {w}" for w in summary.warnings]
    if summary.unreachable:
        lines.append(
            f"note: {len(summary.unreachable)} motif(s) cannot reach the threshold, so have no hit "
            "(best p-value of their best word): "
            + ", ".join(f"{k} ({v:.3g})" for k, v in sorted(summary.unreachable.items()))
        )
    if summary.undecided:
        lines.append(
            "note: windows whose p-value could not be separated from the threshold (not reported, hit calls "
            "of these motifs are NOT exact): " + ", ".join(f"{k} ({n})" for k, n in sorted(summary.undecided.items()))
        )
    estimated = [m for m in summary.inexact_motifs if m not in summary.undecided]
    if estimated:
        lines.append(
            "note: p-values of long motifs are estimates within a recorded bound (max_rel_pvalue_error in "
            "_scan.json); their hit calls are proven: " + ", ".join(estimated)
        )
    if not summary.hits:
        lines.append("note: the scan finished with no hit: a complete, empty result")
    return lines


def ray_start_note(timings: dict[str, float], seconds: float) -> str | None:
    """A hint when starting local Ray took most of a scan (one machine: ``--no-ray`` skips it)."""
    start = timings.get("setup_s", 0.0)
    if seconds <= 0 or start < 0.5 * seconds:
        return None
    return (
        f"note: starting local Ray took {start:.1f} s of this {seconds:.1f} s scan; on one machine "
        "`--no-ray` runs the same shards without Ray (same output)"
    )
