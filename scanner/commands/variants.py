"""``scanner variants``: effects of VCF alleles (or ref/alt sequence pairs) on TF binding, per regime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import (
    empty_scan,
    input_dataset,
    no_ray_alias,
    reports_input_errors,
    run_out,
    split_list,
    stage_progress,
)
from scanner.errors import InputError


def register(app: typer.Typer) -> None:
    """Add the ``variants`` command to ``app``."""

    @app.command("variants")
    @reports_input_errors
    def variants(
        out: Annotated[
            Path, typer.Option(help="Run directory: reads OUT/models and OUT/instances, writes OUT/variants.")
        ],
        vcf: Annotated[Optional[Path], typer.Option(help="VCF, plain or gzip/bgzip.")] = None,
        sequences: Annotated[
            Optional[Path], typer.Option(help="TSV with columns id, ref, alt (instead of --vcf).")
        ] = None,
        models: Annotated[
            Optional[Path], typer.Option(help="Models of another run (a run directory or its models).")
        ] = None,
        instances: Annotated[
            Optional[Path],
            typer.Option(help="Instances (a run directory or its instances). Default: those of the models' run."),
        ] = None,
        genome: Annotated[Optional[Path], typer.Option(help="FASTA. Default: the genome the scan recorded.")] = None,
        tf: Annotated[Optional[list[str]], typer.Option(help="Model TF(s). Default: all.")] = None,
        regime: Annotated[Optional[list[str]], typer.Option(help="Model regime(s). Default: all.")] = None,
        rc_average: Annotated[bool, typer.Option(help="Average logits with the reverse complement's.")] = False,
        on_ref_mismatch: Annotated[
            str, typer.Option(help="REF differs from the genome: 'error' (stop) or 'skip' (count, drop).")
        ] = "error",
        max_allele_length: Annotated[
            int, typer.Option(help="Skip (and count) alleles whose REF or ALT is longer.")
        ] = 50,
        created_hits: Annotated[bool, typer.Option(help="Also score motif hits that only the ALT allele has.")] = True,
        batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 256,
        chunk_variants: Annotated[int, typer.Option(help="Alleles per work item.")] = 2048,
        top_fraction: Annotated[
            float, typer.Option(help="Comparison: share of alleles (by |delta|) counted as top.")
        ] = 0.1,
        min_delta: Annotated[
            float, typer.Option(help="Comparison: |delta_logit| both regimes need for a sign flip.")
        ] = 0.1,
        features: Annotated[
            Optional[Path],
            typer.Option(
                help="Features (a run directory or its features): name the learned pattern each disagreeing "
                "allele falls in (VCF)."
            ),
        ] = None,
        actors: Annotated[Optional[int], typer.Option(help="Actor-pool size. Default: GPUs, else CPUs.")] = None,
        address: Annotated[Optional[str], typer.Option(help="Ray address. Default: start local Ray.")] = None,
        ray: Annotated[
            Optional[bool], typer.Option("--ray/--no-ray", help="Use Ray (default; --no-ray: in this process).")
        ] = None,
        old_local: Annotated[bool, typer.Option("--local", hidden=True)] = False,
    ) -> None:
        """Write OUT/variants: scores/ (one row per allele, instance and model), comparison.parquet and
        correlations.parquet (regimes side by side)."""
        from scanner.store import RunDir
        from scanner.variants import VariantConfig, score_sequences, score_vcf

        ray = no_ray_alias(ray, old_local) is not False
        out = run_out(out, "variants")
        why = empty_scan(out) if models is None and instances is None else None
        if why:  # a finished scan with no hit: no instance window to score, a valid empty result
            typer.echo(f"note: nothing to score: {why}", err=True)
            return
        models = input_dataset(models, out, "models", "--models")
        instances = None if instances is None else input_dataset(instances, out, "instances", "--instances")
        features = None if features is None else input_dataset(features, out, "features", "--features")
        if (vcf is None) == (sequences is None):
            raise InputError("give exactly one of --vcf and --sequences", field="--vcf")
        config = VariantConfig(
            batch_size=batch_size,
            rc_average=rc_average,
            on_ref_mismatch=on_ref_mismatch,
            max_allele_length=max_allele_length,
            created_hits=created_hits,
            chunk_variants=chunk_variants,
            actors=actors,
            top_fraction=top_fraction,
            min_delta=min_delta,
            features=None if features is None else str(features),
        ).validate()
        if sequences is not None and genome is not None:
            raise InputError("--genome is not used with --sequences", field="--genome")
        target = RunDir(out).dataset("variants").root
        with stage_progress("variants", "alleles" if vcf is not None else "sequence pairs") as bar:
            common = dict(
                tfs=split_list(tf) or None,
                regimes=split_list(regime) or None,
                use_ray=ray,
                address=address,
                log=bar.write,
                progress=bar,
            )
            if vcf is not None:
                s = score_vcf(vcf, models, target, config, instances=instances, genome=genome, **common)
                what = f"{s.alleles:,} allele(s)"
            else:
                s = score_sequences(sequences, models, target, config, instances=instances, **common)
                what = f"{s.alleles:,} sequence pair(s)"
        typer.echo(
            f"{s.rows:,} rows ({what} x instances x {len(s.models)} model(s)) in {s.files} file(s) "
            f"under {s.out}/scores ({s.seconds:.1f} s)"
        )
        for line in s.comparison:
            typer.echo(line)
        typer.echo(
            f"query: polars.scan_parquet('{s.out}/scores/**/*.parquet', hive_partitioning=True)"
            ".filter(pl.col('abs_delta') > 1).collect(); regimes side by side: "
            f"{s.out}/comparison.parquet"
        )
