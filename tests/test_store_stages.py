"""The stages through the run directory: every dataset round-trips through its handle, interrupted
interpret and variants runs resume to one row per key, and scans with other settings never mix."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

import scanner.schemas as schemas
from scanner.errors import InputError
from scanner.io import write_parquet_atomic
from scanner.store import DATASETS, RunDir


def _column(field: pa.Field, n: int, rng: np.random.Generator) -> pa.Array:
    t = field.type
    if pa.types.is_string(t):
        return pa.array([f"v{i % 3}" for i in range(n)], t)
    if pa.types.is_boolean(t):
        return pa.array(rng.random(n) < 0.5, t)
    if pa.types.is_integer(t):
        return pa.array(rng.integers(0, 100, n), t)
    if pa.types.is_floating(t):
        return pa.array(rng.random(n), t)
    return pa.nulls(n, t) if field.nullable else pa.array([[]] * n, t)


@pytest.mark.parametrize("name", [n for n, s in DATASETS.items() if s.schema and s.name != "features"])
def test_every_dataset_round_trips_through_its_handle(name, tmp_path):
    """Rows written under the handle's partitions, published, read back with polars' hive reader."""
    spec = DATASETS[name]
    schema = getattr(schemas, spec.schema)
    rng = np.random.default_rng(0)
    n = 12
    table = pa.table({f.name: _column(f, n, rng) for f in schema}, schema=schema)
    keys = [k for k in spec.keys if k in schema.names]
    table = table.set_column(schema.get_field_index(keys[0]), keys[0], pa.array(["A", "B"] * (n // 2)))
    ds = RunDir(tmp_path).dataset(name)
    staging = ds.staging("round-trip")
    df = pl.from_arrow(table)
    for values, part in df.group_by(keys, maintain_order=True):
        write_parquet_atomic(part.to_arrow().cast(schema), staging.path(*values) / "part-0.parquet")
    staging.publish()
    back = pl.scan_parquet(ds.root / "**" / "*.parquet", hive_partitioning=True).collect()
    assert_frame_equal(back.select(df.columns).sort(df.columns), df.sort(df.columns), check_dtypes=False)
    assert set(back.columns) >= set(df.columns)


def test_scans_with_other_settings_never_mix(tmp_path, monkeypatch):
    from scanner.scan import ScanConfig, scan_genome
    from scanner.scan import genome_scan as gs
    from scanner.toydata import write_toy_genome

    genome = write_toy_genome(tmp_path / "g.fa", {"chr1": 60_000, "chr2": 40_000}, seed=3)
    motifs = tmp_path / "m.meme"
    from scanner.motifs import Motif, write_meme

    probs = np.random.default_rng(2).dirichlet(np.ones(4) * 0.6, size=8)
    write_meme([Motif("M1", "TF1", probs, 20)], motifs)
    loose, tight = ScanConfig(pvalue=3e-3, shard_size=10_000), ScanConfig(pvalue=1e-3, shard_size=10_000)
    real, calls = gs.run_shard, {"n": 0}

    def dies(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt  # the loose scan is killed after three shards
        return real(*args, **kwargs)

    monkeypatch.setattr(gs, "run_shard", dies)
    with pytest.raises(KeyboardInterrupt):
        scan_genome(genome, [str(motifs)], tmp_path / "run", loose, use_ray=False)
    monkeypatch.setattr(gs, "run_shard", real)
    assert not (tmp_path / "run" / "instances").exists()
    scan_genome(genome, [str(motifs)], tmp_path / "run", tight, use_ray=False)
    rows = pl.scan_parquet(tmp_path / "run" / "instances" / "**" / "*.parquet", hive_partitioning=True).collect()
    assert rows.height > 0 and (rows["pvalue"] < 1e-3).all()  # no shard of the loose scan
    assert RunDir(tmp_path / "run").dataset("instances").record()["pvalue"] == 1e-3
    with pytest.raises(InputError, match="other settings"):
        scan_genome(genome, [str(motifs)], tmp_path / "run", loose, use_ray=False)
    # resuming the loose scan in its own staging area, then replacing: all rows at the loose threshold
    scan_genome(genome, [str(motifs)], tmp_path / "run", loose, use_ray=False, overwrite=True)
    again = pl.scan_parquet(tmp_path / "run" / "instances" / "**" / "*.parquet", hive_partitioning=True).collect()
    assert again.height > rows.height and again.select("chrom", "start", "strand", "motif_id").is_unique().all()


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    import torch

    from scanner.models import ModelSpec, build_model, save_checkpoint
    from scanner.predict.run import PredictConfig, predict
    from scanner.toydata import write_toy_genome, write_toy_instances

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("stages")
    genome = write_toy_genome(root / "g.fa", {"chr1": 5000, "chr2": 3000}, seed=1)
    write_toy_instances(root / "instances", genome, tfs=("A",), files_per_chrom=1, n_per_chrom=20)
    torch.manual_seed(0)
    spec = ModelSpec(arch="sitectx", seq_len=200, site_len=10, radii=(20, 60))
    save_checkpoint(
        build_model(spec).eval(), spec, root / "models" / "tf=A" / "regime=pvalue", {"tf": "A", "regime": "pvalue"}
    )
    predict(root / "instances", root / "models", root / "predictions", PredictConfig(), use_ray=False)
    return root


def test_interrupted_interpret_resumes_to_one_row_per_key(predicted, tmp_path, monkeypatch):
    import scanner.interpret.run as irun
    from scanner.interpret.run import InterpretConfig, interpret

    cfg = InterpretConfig(methods=("saliency",), flank=3, top=12, chunk_rows=3)
    ref = tmp_path / "ref"
    interpret(predicted / "predictions", predicted / "models", ref, cfg, use_ray=False)
    real, calls = irun.explain_rows, {"n": 0}

    def dies(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / "attr"
    monkeypatch.setattr(irun, "explain_rows", dies)
    with pytest.raises(KeyboardInterrupt):
        interpret(predicted / "predictions", predicted / "models", out, cfg, use_ray=False)
    assert not out.exists()
    monkeypatch.setattr(irun, "explain_rows", real)
    lines = []
    interpret(predicted / "predictions", predicted / "models", out, cfg, use_ray=False, log=lines.append)
    assert any("2 work item(s) done by an earlier attempt" in ln for ln in lines)
    got = pl.scan_parquet(out / "**" / "*.parquet", hive_partitioning=True).collect()
    want = pl.scan_parquet(ref / "**" / "*.parquet", hive_partitioning=True).collect()
    key = ["chrom", "start", "strand", "model_tf", "regime", "method", "pos"]
    assert got.select(key).is_unique().all()
    assert_frame_equal(got.sort(key), want.sort(key))


def test_interrupted_variants_resume_to_one_row_per_key(predicted, tmp_path, monkeypatch):
    import scanner.variants.runner as vrun
    from scanner.variants import VariantConfig, score_sequences

    seqs = tmp_path / "pairs.tsv"
    rng = np.random.default_rng(4)
    lines = ["id\tref\talt"]
    for i in range(30):
        ref = "".join(rng.choice(list("ACGT"), 60))
        alt = ref[:30] + ("A" if ref[30] != "A" else "C") + ref[31:]
        lines.append(f"p{i}\t{ref}\t{alt}")
    seqs.write_text("\n".join(lines) + "\n")
    import shutil

    models = tmp_path / "vm" / "models"  # no scan beside them: the site columns stay null
    shutil.copytree(predicted / "models", models)
    cfg = VariantConfig(chunk_variants=7)
    ref = score_sequences(seqs, models, tmp_path / "ref", cfg, use_ray=False)
    real, calls = vrun.VariantScorer.score, {"n": 0}

    def dies(self, item):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(self, item)

    monkeypatch.setattr(vrun.VariantScorer, "score", dies)
    with pytest.raises(KeyboardInterrupt):
        score_sequences(seqs, models, tmp_path / "v", cfg, use_ray=False)
    assert not (tmp_path / "v").exists()
    monkeypatch.setattr(vrun.VariantScorer, "score", real)
    said = []
    got = score_sequences(seqs, models, tmp_path / "v", cfg, use_ray=False, log=said.append)
    assert any("2 item(s) done by an earlier attempt" in s for s in said)
    assert got.rows == ref.rows
    a = pl.scan_parquet(tmp_path / "v" / "scores" / "**" / "*.parquet", hive_partitioning=True).collect()
    b = pl.scan_parquet(tmp_path / "ref" / "scores" / "**" / "*.parquet", hive_partitioning=True).collect()
    assert_frame_equal(a.sort(a.columns), b.sort(b.columns))
