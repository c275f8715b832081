"""One CLI vocabulary, checked on every command's parameters through Typer's app, so a new flag cannot
break it: ``--out`` is the run directory, ``--output/-o`` a file, one no-Ray switch, one name per noun,
every list flag takes commas and repeats, errors name the flag, old spellings hidden and announced."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from scanner.cli import app
from scanner.commands._common import NO_COMMA_SPLIT, flag_for

#: Flags one letter apart from another flag on purpose: ``plot-site --chrom`` is the chromosome of one
#: coordinate (with ``--start``), ``--chroms`` a list of chromosomes; ``query --tables`` asks for the
#: list of tables, ``--table NAME`` picks one.
SINGULAR_OK = {"--chrom", "--table"}


def _commands() -> dict[str, object]:
    group = get_command(app)
    return dict(group.commands)


def _options(cmd, *, hidden: bool = False) -> list:
    return [p for p in cmd.params if p.param_type_name == "option" and bool(p.hidden) == hidden]


def _long(p) -> str:
    return next(o for o in p.opts if o.startswith("--")) if any(o.startswith("--") for o in p.opts) else p.opts[0]


def _takes_text(p) -> bool:
    """Whether option ``p`` takes strings (Click's type, or the annotation in Typer's own Click)."""
    import typing

    if hasattr(p, "type"):
        return p.type.name in ("text", "string")
    ann = p.type_descriptor.annotation
    return ann is str or str in typing.get_args(ann)


def test_every_command_is_walked():
    names = set(_commands())
    assert {"scan", "simulate", "label", "train", "tune", "evaluate", "predict", "interpret", "features"} <= names
    assert {"variants", "demo", "run", "report", "query", "export", "plot-site", "benchmark-interpret"} <= names


def test_out_is_always_the_run_directory_and_files_are_output():
    for name, cmd in _commands().items():
        for p in _options(cmd):
            if "--out" in p.opts:
                assert p.help and p.help.startswith("Run directory"), (name, p.help)
                assert "-o" not in p.opts, f"{name}: -o is --output's short form"
            if "-o" in p.opts:
                assert "--output" in p.opts, (name, p.opts)
            if "--output" in p.opts:
                assert "-o" in p.opts, f"{name}: --output without -o"


def test_one_no_ray_switch():
    for name, cmd in _commands().items():
        for p in _options(cmd):
            assert "--local" not in p.opts, name
            if p.name == "ray":
                assert p.opts == ["--ray"] and p.secondary_opts == ["--no-ray"], (name, p.opts, p.secondary_opts)


def test_one_name_per_noun():
    flags = {o for cmd in _commands().values() for p in _options(cmd) for o in p.opts if o.startswith("--")}
    for f in flags:
        assert not (f + "s" in flags and f not in SINGULAR_OK), f"both {f} and {f}s are flags"
    assert not flags & {"--tfs", "--regimes", "--model-tf", "--local", "--metrics"}
    for name, cmd in _commands().items():
        for p in _options(cmd):
            if _long(p).endswith("chroms") and not _long(p).startswith("--n-"):  # names; counts are --n-*
                assert _takes_text(p), (name, _long(p))


def test_every_option_says_what_it_is():
    for name, cmd in _commands().items():
        for p in _options(cmd):
            assert p.help, f"{name} {_long(p)} has no help"


def test_every_list_flag_takes_commas_and_repeats():
    seen = 0
    for name, cmd in _commands().items():
        ctx = typer.Context(cmd)
        for p in _options(cmd) + _options(cmd, hidden=True):
            if not p.multiple or p.name in NO_COMMA_SPLIT:
                continue
            got = p.process_value(ctx, ("a,b", "c"))
            assert [str(v) for v in got] == ["a", "b", "c"], (name, _long(p), got)
            seen += 1
    assert seen >= 20  # --tf, --regime, --motifs, --peaks, --method, --split, --chroms, ...


def test_hidden_spellings_are_old_names_of_visible_flags():
    # every hidden option of a command is an old spelling; its new name is a visible flag of the command
    renamed = {
        "-o": "--out",
        "--local": "--ray",
        "--chroms": "--n-chroms",
        "--tfs": "--tf",
        "--regimes": "--regime",
        "--model-tf": "--tf",
        "--metrics": "--output",
        "--out": "--output",
    }
    for name, cmd in _commands().items():
        visible = {o for p in _options(cmd) for o in p.opts}
        for p in _options(cmd, hidden=True):
            old = p.opts[0]
            if name == "train" and old == "--metrics":  # no new flag: metrics go to OUT/metrics.parquet
                continue
            assert old in renamed and renamed[old] in visible, (name, old)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["simulate", "--out", "{tmp}", "--size-mb", "-1"], ["--size-mb:"]),
        (["simulate", "--out", "{tmp}", "--n-chroms", "0"], ["--n-chroms:"]),
        (["simulate", "--out", "{tmp}", "--tfs", "NOPE"], ["--tfs is now --tf", "--tf:"]),
        (["train", "--out", "{tmp}", "--no-ray"], ["--data:", "scanner label --out"]),
        (["predict", "--out", "{tmp}", "--no-ray"], ["--instances:", "scanner scan --out"]),
        (["interpret", "--out", "{tmp}", "--no-ray"], ["--predictions:", "scanner predict --out"]),
        (["evaluate", "--out", "{tmp}", "--no-ray"], ["--data:"]),
        (["variants", "--out", "{tmp}", "--vcf", "x.vcf", "--no-ray"], ["--models:", "scanner train --out"]),
        (["features", "--out", "{tmp}", "--no-ray"], ["--datasets:", "scanner label --out"]),
        (["features", "--out", "{tmp}", "--source", "nope"], ["--source:"]),
        (["label", "--out", "{tmp}", "--peaks", "A=x.bed", "--no-ray"], ["--instances:", "scanner scan --out"]),
        (["scan", "-g", "x.fa", "-m", "x.meme", "--local", "--ray", "--out", "{tmp}"], ["--ray:"]),
        (["scan", "-g", "x.fa", "-m", "x.meme"], ["missing --out"]),
    ],
)
def test_errors_name_the_flag(tmp_path, args, needles):
    res = CliRunner().invoke(app, [a.replace("{tmp}", str(tmp_path / "run")) for a in args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    for n in needles:
        assert n in res.output, res.output


def test_flag_for_maps_python_fields_and_old_spellings():
    def cmd(
        out: Annotated[Path, typer.Option(help="Run directory.")],
        tf: Annotated[Optional[list[str]], typer.Option(help="TF(s).")] = None,
        n_chroms: Annotated[int, typer.Option(help="Count.")] = 1,
        size_mb: Annotated[float, typer.Option("--size-mb", help="Mb.")] = 1.0,
    ) -> None: ...

    assert flag_for(cmd, "size_mb") == "--size-mb"
    assert flag_for(cmd, "tfs") == "--tf" and flag_for(cmd, "--tfs") == "--tf"
    assert flag_for(cmd, "n_chroms") == "--n-chroms" and flag_for(cmd, "--out") == "--out"
    assert flag_for(cmd, "partner_distance") is None
