"""The command line as a user meets it: -h, --version and completion everywhere; nothing silent (small or
one-class splits, empty query results say why); plausible mistakes exit 2 with the fix, no traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import polars as pl
import pytest
import typer
from test_labels import instances_from_truth, write_instances
from test_query import run  # noqa: F401  (the hand-written run directory of the query tests)
from typer.testing import CliRunner

from scanner import __version__
from scanner.cli import app
from scanner.labels.run import split_warnings
from scanner.simulate.genome import SimulationConfig, simulate

runner = CliRunner()


def _commands() -> list[str]:
    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_help_and_version_on_the_app_and_every_command():
    for args in (["-h"], ["--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "Usage" in res.output and "--install-completion" in res.output
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"scanner {__version__}"
    names = _commands()
    assert {"scan", "label", "train", "predict", "export", "query", "report"} <= set(names)
    for name in names:
        res = runner.invoke(app, [name, "-h"])
        assert res.exit_code == 0 and "Usage" in res.output and "--version" in res.output, name
        res = runner.invoke(app, [name, "--version"])
        assert res.exit_code == 0 and res.output.strip() == f"scanner {__version__}", name


def test_shell_completion_script():
    res = runner.invoke(app, ["--show-completion", "bash"])
    assert res.exit_code == 0 and "complete" in res.output


def test_split_warnings_name_tf_regime_split_and_counts():
    sizes = pl.DataFrame(
        {
            "regime": ["open", "open", "open", "all", "gc"],
            "tf": ["A", "A", "A", "A", "B"],
            "split": ["train", "val", "test", "train", "train"],
            "n": [4000, 60, 3, 10, 0],
            "n_pos": [2000, 60, 3, 5, 0],
            "n_neg": [2000, 0, 0, 5, 0],
        }
    )
    lines = split_warnings(sizes, min_rows=50)
    assert lines == [
        "TF A, regime open, val split: 60 rows (60 bound, 0 unbound): one class only; its auROC is undefined; "
        "choose other --val-chroms?",
        "TF A, regime open, test split: 3 rows (3 bound, 0 unbound): one class only, fewer than 50 rows; its "
        "auROC is undefined; choose other --test-chroms?",
        "TF B, regime gc, train split: 0 rows (0 bound, 0 unbound): no rows; no model can learn from it; label "
        "more instances (a larger genome or more peaks) or use another regime",
    ]


def test_label_warns_about_a_tiny_test_split(tmp_path):
    sim = simulate(tmp_path / "sim", SimulationConfig(size_mb=1.0, seed=11))
    inst = instances_from_truth(sim, 200)
    test_rows = inst.filter((pl.col("chrom") == "chr9") & (pl.col("tf") == "ALPHA")).sort("pvalue").head(12)
    inst = pl.concat([inst.filter(pl.col("chrom") != "chr9"), test_rows])
    write_instances(tmp_path / "instances", inst, sim.genome)
    args = ["label", "--instances", str(tmp_path / "instances"), "--out", str(tmp_path / "run"), "--no-ray"]
    res = runner.invoke(app, [*args, "--peaks", f"ALPHA={sim.peaks['ALPHA']}", "--regime", "pvalue"])
    assert res.exit_code == 0, res.output
    warned = [line for line in res.output.splitlines() if line.startswith("warning: TF ALPHA, regime pvalue, test")]
    assert len(warned) == 1 and "fewer than 50 rows" in warned[0] and "--test-chroms" in warned[0], res.output
    assert "train split" not in res.output  # the large splits pass silently


def test_query_mistakes_exit_2_with_the_fix(run, tmp_path):  # noqa: F811
    cases = [
        ([str(tmp_path / "nonexistent"), "--tables"], f"{tmp_path / 'nonexistent'}: run directory not found"),
        ([str(run), "--counts", "--table", "metrics"], "--sql"),
        ([str(run), "--near", "chr1:5", "--table", "metrics"], "--sql"),
        ([str(run / "instances"), "--tables"], f"give the run directory: scanner query {run}"),
        ([str(tmp_path), "--tables"], "no run datasets here"),
        ([str(run), "--counts", "--table", "nope"], "unknown table 'nope'"),
        ([str(run), "--tables", "--counts"], "ask exactly one of"),
    ]
    for args, fix in cases:
        res = runner.invoke(app, ["query", *args])
        assert res.exit_code == 2, (args, res.output)
        assert fix in res.output and "Traceback" not in res.output, (args, res.output)


@pytest.mark.parametrize(
    "args, why",
    [
        (["--counts", "--tf", "NOPE"], "0 rows: the instances table has no rows of TF(s) NOPE (it has: ALPHA, BETA"),
        (["--near", "chr1:999999999"], "0 rows: no row of the instances table"),
        (["--top-bound", "3", "--regime", "nope"], "0 rows: no row of the predictions table"),
        (["--sql", "SELECT * FROM instances WHERE start < 0"], "0 rows: no row matches the question"),
    ],
)
def test_empty_query_results_say_why(run, args, why):  # noqa: F811
    res = runner.invoke(app, ["query", str(run), *args])
    assert res.exit_code == 0 and why in res.output, res.output


# ---- the console of a Ray run ----------------------------------------------------------------------
_RAY_NOISE = re.compile(
    r"\bWARNING\b|\bERROR\b|^\[\d{4}-\d\d-\d\d [\d:,]+ [EWF] \d+ \d+\]|core_worker|raylet|Traceback|"
    r"Progress bars disabled|will hang",
    re.MULTILINE,
)


@pytest.mark.ray
def test_ray_run_console_has_no_ray_warnings_or_errors(tmp_path):
    """simulate -> scan -> label -> train -> evaluate -> predict on a fresh local Ray, as a user runs it."""
    import tomli_w

    doc = {
        "out": str(tmp_path / "run"),
        "use_ray": True,
        "simulate": {"size_mb": 1.0, "n_chroms": 4, "tfs": ["ALPHA"]},
        "scan": {"shard_size": 100_000},
        "label": {"regimes": ["pvalue"], "val_chroms": ["chr3"], "test_chroms": ["chr4"]},
        "train": {"epochs": 1, "batch_size": 32, "ensemble": 1},
        "predict": {"chunk_rows": 256},
    }
    config = tmp_path / "run.toml"
    config.write_bytes(tomli_w.dumps(doc).encode())
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run(
        [sys.executable, "-m", "scanner.cli", "run", str(config), "--until", "predict"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    noise = [m.group(0) for m in _RAY_NOISE.finditer(done.stderr)]
    assert not noise, done.stderr
    for stage, unit in (("label", "windows"), ("train", "models"), ("predict", "items")):
        assert re.search(rf"^{stage}: [\d,]+/[\d,]+ {unit} \(100%\)", done.stderr, re.MULTILINE), stage
    assert "{'" not in done.stderr  # no dict reprs


def test_progress_lines_off_a_terminal_and_on_one():
    import io

    from scanner.progress import Progress

    out = io.StringIO()
    bar = Progress("predict", "rows", 1000, stream=out, tty=False)
    for k in range(1, 101):
        bar(10 * k, 1000)
    bar.write("a message")
    bar.close("summary")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("predict: 10/1,000 rows (1%)")  # the first unit done, then every tenth
    assert [int(line.split("(")[1].split("%")[0]) for line in lines[1:11]] == list(range(10, 101, 10))
    assert re.fullmatch(r"predict: 1,000/1,000 rows \(100%\), [\d,.]+ rows/s, 0:\d\d", lines[10])
    assert lines[11:] == ["a message", "summary"]  # the final state is not printed twice
    out = io.StringIO()
    bar = Progress("train", "models", 4, stream=out, tty=True)
    bar.set_detail("ALPHA/gc epoch 3")
    bar(1, 4)
    bar.write("trained ALPHA/gc")
    bar.close()
    text = out.getvalue()
    assert "\r\x1b[Ktrained ALPHA/gc\ntrain: 1/4 models (25%)" in text
    assert text.endswith("; ALPHA/gc epoch 3\n") and text.count("\n") == 2


FLAT_MEME = """MEME version 4

ALPHABET= ACGT

strands: + -

Background letter frequencies
A 0.25 C 0.25 G 0.25 T 0.25

MOTIF FLAT1 ALPHA
letter-probability matrix: alength= 4 w= 4 nsites= 20 E= 0
0.25 0.25 0.25 0.25
0.25 0.25 0.25 0.25
0.25 0.25 0.25 0.25
0.25 0.25 0.25 0.25
"""


def test_a_scan_with_no_hit_is_an_empty_result_for_every_later_command(tmp_path):
    """A motif that cannot reach p < 1e-4 scans to nothing: every later command ends with exit 0 and says
    why, by hand and in `scanner run`, and query/export return empty tables."""
    from scanner.toydata import write_toy_genome

    genome = write_toy_genome(tmp_path / "g.fa", {"chr1": 20_000, "chr2": 8_000, "chr3": 8_000}, seed=4)
    motifs = tmp_path / "flat.meme"
    motifs.write_text(FLAT_MEME)
    peaks = tmp_path / "p.bed"
    peaks.write_text("chr1\t100\t400\n")
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    rd = str(tmp_path / "run")
    why = "the scan found 0 instances"
    steps = [
        (["scan", "-g", str(genome), "-m", str(motifs), "--out", rd, "--no-ray"], "cannot reach the threshold"),
        (
            [
                "label",
                "--out",
                rd,
                "--peaks",
                f"ALPHA={peaks}",
                "--val-chroms",
                "chr2",
                "--test-chroms",
                "chr3",
                "--no-ray",
            ],
            why,
        ),
        (["train", "--out", rd, "--no-ray"], "nothing to train"),
        (["predict", "--out", rd, "--no-ray"], why),
        (["interpret", "--out", rd, "--no-ray"], why),
        (["features", "--out", rd, "--no-ray"], why),
        (["variants", "--out", rd, "--vcf", str(vcf), "--no-ray"], why),
        (["query", rd, "--top-bound", "5"], why),
        (["query", rd, "--counts", "--table", "labelled"], why),
        (["export", f"{rd}/instances", "--bed"], why),
        (["export", f"{rd}/predictions", "--bed"], why),
    ]
    runner = CliRunner()
    for args, says in steps:
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.output)
        assert says in res.output and "Traceback" not in res.output, (args, res.output)
    from scanner.results import query

    for table in ("instances", "labelled", "predictions"):  # empty tables with their schemas
        df = query.dataset(rd, table).collect()
        assert df.height == 0 and "chrom" in df.columns, table

    # the same through the pipeline: every stage done, the ones with nothing to do say so
    from scanner.run.config import from_dict
    from scanner.run.pipeline import run_pipeline

    cfg = from_dict(
        {
            "out": str(tmp_path / "piped"),
            "use_ray": False,
            "inputs": {"genome": str(genome), "motifs": [str(motifs)], "peaks": {"ALPHA": str(peaks)}},
            "label": {"val_chroms": ["chr2"], "test_chroms": ["chr3"]},
            "interpret": {"top": 5},
        }
    )
    result = run_pipeline(cfg, log=lambda _m: None)
    stages = result.manifest["stages"]
    assert all(s["status"] == "done" for s in stages.values()), stages
    assert why in stages["evaluate"]["note"] and why in stages["interpret"]["note"]
