"""``scanner export``: BED6/narrowPeak sorted with integer scores, predictions and variant effects read back
to the dataset's values, and FIMO q-values equal to Benjamini-Hochberg over every window the plain
reference scanner scores (no shared code with the export)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_query import run  # noqa: F401  (the hand-written run directory of the query tests)
from typer.testing import CliRunner

from scanner.cli import app
from scanner.io import parquet_files

runner = CliRunner()


def _read(root: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in parquet_files(root)], how="vertical")


def _export(path: Path, flag: str, tmp_path: Path) -> list[list[str]]:
    out = tmp_path / f"x{flag}.txt"
    res = runner.invoke(app, ["export", str(path), flag, "-o", str(out)])
    assert res.exit_code == 0, res.output
    return [line.split("\t") for line in out.read_text().splitlines()]


def _check_sorted_bed(lines: list[list[str]], path: Path) -> None:
    keys = [(f[0].encode(), int(f[1])) for f in lines]
    assert keys == sorted(keys), "not coordinate-sorted"
    for f in lines:
        assert f[4].isdigit() and 0 <= int(f[4]) <= 1000, f"score {f[4]!r} is not an integer in 0..1000"
        assert int(f[1]) < int(f[2]) and f[5] in "+-."
    if shutil.which("sort"):  # the check UCSC and bedtools users run
        text = "\n".join("\t".join(f) for f in lines) + "\n"
        done = subprocess.run(
            ["sort", "-c", "-k1,1", "-k2,2n"], input=text, text=True, env={"LC_ALL": "C"}, capture_output=True
        )
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("dataset", ["instances", "predictions", "variants/scores"])
def test_bed_is_sorted_bed6_with_integer_scores(run, tmp_path, dataset):  # noqa: F811
    lines = _export(run / dataset, "--bed", tmp_path)
    assert all(len(f) == 6 for f in lines)
    _check_sorted_bed(lines, run / dataset)
    df = _read(run / dataset)
    if dataset == "variants/scores":
        df = df.filter(pl.col("regime").is_not_null())
    assert len(lines) == df.height


def test_instance_score_mapping(run, tmp_path):  # noqa: F811
    lines = _export(run / "instances", "--narrowpeak", tmp_path)
    want = {
        (r["chrom"], r["start"], r["strand"], r["motif_id"]): (min(1000, round(-100 * math.log10(r["pvalue"]))), r)
        for r in _read(run / "instances").iter_rows(named=True)
    }
    assert len(lines) == len(want)
    for f in lines:
        motif_id, tf, bits = f[3].split("|")
        score, r = want[(f[0], int(f[1]), f[5], motif_id)]
        assert int(f[4]) == score and tf == r["tf"] and int(f[2]) == r["end"]
        assert abs(float(bits) - r["score"]) <= 0.005 + 1e-6 and np.float32(f[6]) == np.float32(r["score"])
        assert float(f[7]) == pytest.approx(-math.log10(r["pvalue"]), rel=1e-12)
        assert int(f[9]) == (r["end"] - r["start"]) // 2


def test_predictions_round_trip(run, tmp_path):  # noqa: F811
    lines = _export(run / "predictions", "--narrowpeak", tmp_path)
    _check_sorted_bed(lines, run / "predictions")
    rows = []
    for f in lines:
        tf, regime, model_tf, motif_id = f[3].split("|")
        rows.append((f[0], int(f[1]), int(f[2]), f[5], motif_id, tf, regime, model_tf, float(np.float32(f[6]))))
    cols = ["chrom", "start", "end", "strand", "motif_id", "tf", "regime", "model_tf", "prob_bound"]
    got = pl.DataFrame(rows, schema=cols, orient="row").with_columns(pl.col("prob_bound").cast(pl.Float32))
    want = _read(run / "predictions").select(cols)
    assert got.sort(cols).equals(want.sort(cols))
    bed = _export(run / "predictions", "--bed", tmp_path)
    assert [int(f[4]) for f in bed] == [round(1000 * float(np.float32(f[6]))) for f in lines]


def test_variant_effects_round_trip(run, tmp_path):  # noqa: F811
    lines = _export(run / "variants" / "scores", "--narrowpeak", tmp_path)
    rows = []
    for f in lines:
        vid, tf, regime, motif_id, s, e = f[3].split("|")
        rows.append((vid, tf, regime, motif_id, int(s), int(e), f[5], int(f[1]), float(np.float32(f[6]))))
    cols = ["variant_id", "tf", "regime", "motif_id", "inst_start", "inst_end", "inst_strand", "pos", "delta_logit"]
    got = pl.DataFrame(rows, schema=cols, orient="row").with_columns(pl.col("delta_logit").cast(pl.Float32))
    want = _read(run / "variants" / "scores").filter(pl.col("regime").is_not_null()).select(cols)
    assert got.sort(cols).equals(want.sort(cols))
    assert all(int(f[2]) - int(f[1]) == 1 for f in lines)  # the SNVs' REF base


def test_wrong_inputs_exit_2_with_the_fix(run, tmp_path):  # noqa: F811
    sim = run / "sim"
    sim.mkdir(exist_ok=True)
    (sim / "genome.fa").write_text(">chr1\nACGT\n")
    (sim / "motifs.meme").write_text("MEME version 4\n")
    cases = [
        ([str(run), "--bed"], f"scanner export {run / 'instances'} --bed"),
        ([str(sim), "--bed"], f"scanner export {run / 'instances'} --bed"),
        ([str(run / "predictions"), "--fimo"], f"scanner export {run / 'instances'} --fimo"),
        ([str(run / "labelled"), "--bed"], f"scanner export {run / 'instances'} --bed"),
        ([str(run / "variants"), "--bed"], f"scanner export {run / 'variants' / 'scores'} --bed"),
        ([str(tmp_path / "nope"), "--bed"], "no such file or directory"),
        ([str(run / "instances")], "give exactly one of --bed"),
        ([str(run / "instances"), "--bed", "--fimo"], "give exactly one of --bed"),
    ]
    for args, fix in cases:
        res = runner.invoke(app, ["export", *args])
        assert res.exit_code == 2, (args, res.output)
        assert fix in res.output and "Traceback" not in res.output, (args, res.output)


def test_predictions_bed_holds_each_prediction_once(run, tmp_path):  # noqa: F811
    lines = _export(run / "predictions", "--bed", tmp_path)
    assert len({tuple(f) for f in lines}) == len(lines) == _read(run / "predictions").height
    assert {f[3].split("|")[1] for f in lines} == {"pvalue", "gc"}


def _scan_record(instances: Path, complete: bool = True) -> None:
    instances.mkdir(parents=True)
    (instances / "_scan.json").write_text(
        json.dumps(
            {
                "genome": "g.fa",
                "motifs": [{"motif_id": "M1", "probs": [[0.25] * 4] * 6}],
                "pvalue": 1e-4,
                "complete": complete,
            }
        )
    )


def test_zero_hit_scan_exports_nothing_and_says_why(tmp_path):
    run_dir = tmp_path / "run"
    _scan_record(run_dir / "instances")
    res = runner.invoke(app, ["export", str(run_dir / "instances"), "--bed"])
    assert res.exit_code == 0 and "0 rows: the scan found 0 instances (1 motif(s), p < 0.0001)" in res.output
    res = runner.invoke(app, ["export", str(run_dir / "instances"), "--fimo-text"])
    assert res.exit_code == 0 and res.stdout.startswith("motif_id\tmotif_alt_id")
    res = runner.invoke(app, ["query", str(run_dir), "--counts"])
    assert res.exit_code == 0 and "0 rows: the scan found 0 instances" in res.output
    unfinished = tmp_path / "b" / "instances"
    _scan_record(unfinished, complete=False)
    res = runner.invoke(app, ["export", str(unfinished), "--bed"])
    assert res.exit_code == 2 and "has not finished" in res.output


# ---- FIMO q-values -------------------------------------------------------------------------------
def test_bh_qvalues_equal_the_definition():
    from scanner.scan.export import bh_qvalues

    rng = np.random.default_rng(3)
    p = np.round(rng.uniform(0, 1e-3, 200), 6)  # ties on purpose
    m = 50_000
    q = bh_qvalues(p, m)
    order = sorted(range(len(p)), key=lambda i: p[i])
    for rank, i in enumerate(order, start=1):  # q_(i) = min over j >= i of p_(j) m / j
        want = min(min(p[order[j - 1]] * m / j for j in range(rank, len(p) + 1)), 1.0)
        assert q[i] == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError):
        bh_qvalues(p, 10)


def _genome(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    records = []
    for name, n in (("chr1", 2500), ("chr2", 1300), ("chrM", 90)):
        seq = rng.choice(list("ACGT"), n)
        seq[300:340] = "N"
        seq[700:760] = np.char.lower(seq[700:760])
        seq[n - 3 :] = "N"
        text = "".join(seq)
        records.append(f">{name}\n" + "\n".join(text[i : i + 60] for i in range(0, n, 60)))
    path.write_text("\n".join(records) + "\n")
    return path


def test_count_windows_equals_a_loop_across_chunks(tmp_path, monkeypatch):
    import scanner.scan.export as ex
    from scanner.genome import open_genome

    fa = _genome(tmp_path / "g.fa")
    monkeypatch.setattr(ex, "_CHUNK", 37)  # runs cross many chunk boundaries
    g = open_genome(fa)
    for skip in (False, True):
        got = ex.count_windows(fa, [1, 6, 41], skip_masked=skip)
        for w in (1, 6, 41):
            n = 0
            for chrom in g.chroms:
                s = g.fetch(chrom, 0, g.lengths[chrom])
                ok = [c in "ACGT" or (c in "acgt" and not skip) for c in s]
                n += sum(all(ok[i : i + w]) for i in range(len(s) - w + 1))
            assert got[w] == n, (skip, w)
    g.close()


@pytest.mark.parametrize("skip_masked", [False, True])
def test_fimo_qvalues_are_bh_over_every_window(tmp_path, skip_masked):
    from scanner.genome import open_genome
    from scanner.motifs import Motif, write_meme
    from scanner.scan import ScanConfig, scan_genome
    from scanner.scan.export import fimo_qvalues, load_instances, scan_record
    from scanner.scan.genome_scan import load_scan_meta
    from scanner.scan.reference import reference_scan

    fa = _genome(tmp_path / "g.fa")
    rng = np.random.default_rng(5)
    motifs = [
        Motif("M1", "ONE", rng.dirichlet(np.ones(4) * 0.4, size=6), 20),
        Motif("M2", "TWO", rng.dirichlet(np.ones(4) * 0.4, size=5), 20),
    ]
    meme = write_meme(motifs, tmp_path / "m.meme")
    out = tmp_path / "run"
    cfg = ScanConfig(pvalue=2e-2, background="uniform", skip_masked=skip_masked)
    scan_genome(fa, [str(meme)], out, cfg, use_ray=False)
    table = load_instances(out / "instances")
    q = fimo_qvalues(table, scan_record(out / "instances"))
    meta = load_scan_meta(out / "instances")
    g = open_genome(fa)
    want: dict[tuple, float] = {}
    for pm in meta.prepared():
        windows = []  # every window of every chromosome, both strands, scored by the plain reference
        for chrom in g.chroms:
            codes, lower = g.read_codes(chrom, 0, g.lengths[chrom], lower=True)
            for start, strand, _score, p in reference_scan(codes, pm.w, meta.background.freqs, 2.0, lower, skip_masked):
                windows.append((p, chrom, start, strand))
        windows.sort()
        m = len(windows)
        full, best = [0.0] * m, 1.0  # BH over all m windows
        for i in range(m - 1, -1, -1):
            best = min(best, windows[i][0] * m / (i + 1))
            full[i] = best
        n = sum(1 for w in windows if w[0] < cfg.pvalue)  # the reported windows: ranks 1..n of all m
        kept, best = [0.0] * n, 1.0
        for i in range(n - 1, -1, -1):
            best = min(best, windows[i][0] * m / (i + 1))
            kept[i] = best
        for i in range(n):
            _p, chrom, start, strand = windows[i]
            want[(pm.motif_id, chrom, start, strand)] = (kept[i], full[i])
    g.close()
    rows = table.select(["motif_id", "chrom", "start", "strand"]).to_pylist()
    assert len(rows) == len(want) > 20
    for r, qv in zip(rows, q, strict=True):
        kept_q, full_q = want[(r["motif_id"], r["chrom"], r["start"], r["strand"])]
        assert qv == pytest.approx(kept_q, rel=1e-9) and qv >= full_q * (1 - 1e-12)
    res = runner.invoke(app, ["export", str(out / "instances"), "--fimo"])
    assert res.exit_code == 0, res.output
    body = [line.split("\t") for line in res.output.splitlines()[1:] if line and not line.startswith("#")]
    assert len(body) == len(rows)
    assert all(float(f[8]) == pytest.approx(want[(f[0], f[2], int(f[3]) - 1, f[5])][0], rel=5e-3) for f in body)
