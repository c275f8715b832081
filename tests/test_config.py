"""The run config: TOML <-> dataclasses, strict typing, paths, and the example configs."""

from __future__ import annotations

import tomllib
import typing
from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scanner.config import (
    InputsSection,
    RunConfig,
    dumps,
    from_dict,
    load_config,
    to_dict,
    with_overrides,
)
from scanner.errors import InputError
from scanner.interpret.benchmark import BenchmarkConfig
from scanner.labels import LabelConfig
from scanner.predict import PredictConfig
from scanner.scan import ScanConfig
from scanner.simulate import SimulationConfig
from scanner.train import TrainConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _full(tmp_path: Path) -> dict:
    return {
        "out": "run",
        "address": "auto",
        "use_ray": False,
        "inputs": {
            "genome": "data/hg38.fa",
            "motifs": ["motifs/ctcf.meme", "MA0139.2"],
            "peaks": {"CTCF": "peaks/ctcf.narrowPeak", "FOS::JUN": "/abs/fosjun.bed"},
            "open": "dnase.bed",
        },
        "scan": {"pvalue": 1e-5, "chroms": ["chr1", "chr2"], "shard_size": 1_000_000, "background": "bg.txt"},
        "label": {"regimes": ["pvalue", "gc"], "val_chroms": ["chr8"], "window": 500},
        "train": {"epochs": 2, "arch": "small", "ema": 0.999, "tfs": ["CTCF"], "regimes": ["pvalue"]},
        "evaluate": {"cross_tf": True, "splits": ["test"]},
        "predict": {"chunk_rows": 1000, "actors": 2, "regimes": ["pvalue"]},
        "interpret": {"methods": ["ism", "saliency"], "top": 5, "flank": 100, "bedgraph": True},
        "interpret_benchmark": {"n_sequences": 20, "methods": ["ism"]},
    }


def test_full_config_builds_the_stage_dataclasses(tmp_path):
    cfg = from_dict(_full(tmp_path), base=tmp_path)
    assert cfg.out == (tmp_path / "run").resolve()
    assert cfg.address == "auto" and cfg.use_ray is False
    assert cfg.inputs.genome == (tmp_path / "data/hg38.fa").resolve()
    assert cfg.inputs.motifs == (str((tmp_path / "motifs/ctcf.meme").resolve()), "MA0139.2")
    assert cfg.inputs.peaks == {"CTCF": (tmp_path / "peaks/ctcf.narrowPeak").resolve(), "FOS::JUN": Path("/abs/fosjun.bed")}
    assert cfg.inputs.blacklist is None
    assert cfg.scan == ScanConfig(pvalue=1e-5, chroms=("chr1", "chr2"), shard_size=1_000_000, background=str((tmp_path / "bg.txt").resolve()))
    assert cfg.label == LabelConfig(regimes=("pvalue", "gc"), val_chroms=("chr8",), window=500)
    assert cfg.train.settings == TrainConfig(epochs=2, ema=0.999)
    assert cfg.train.tfs == ("CTCF",) and cfg.train.regimes == ("pvalue",)
    assert cfg.evaluate.cross_tf is True and cfg.evaluate.splits == ("test",)
    assert cfg.predict.settings == PredictConfig(chunk_rows=1000, actors=2)
    assert cfg.interpret.settings.methods == ("ism", "saliency") and cfg.interpret.bedgraph is True
    assert cfg.interpret_benchmark == BenchmarkConfig(n_sequences=20, methods=("ism",))


def test_toml_round_trip(tmp_path):
    cfg = from_dict(_full(tmp_path), base=tmp_path)
    text = dumps(cfg)
    again = from_dict(tomllib.loads(text), base=tmp_path / "elsewhere")  # every path is absolute now
    assert again == cfg
    sim = from_dict({"out": "x", "simulate": {"size_mb": 2.0, "gc_range": [0.4, 0.5]}}, base=tmp_path)
    assert sim.simulate == SimulationConfig(size_mb=2.0, gc_range=(0.4, 0.5))
    assert from_dict(tomllib.loads(dumps(sim))) == sim
    assert "address" not in to_dict(sim)  # None is left out (TOML has no null)


def test_defaults_are_each_commands_defaults(tmp_path):
    cfg = from_dict({"out": "x", "simulate": {}}, base=tmp_path)
    assert cfg.simulate == SimulationConfig()
    assert cfg.scan == ScanConfig() and cfg.label == LabelConfig()
    assert cfg.train.settings == TrainConfig() and cfg.predict.settings == PredictConfig()
    assert cfg.interpret is None and cfg.interpret_benchmark is None and cfg.address is None


def test_flattened_sections_do_not_shadow_keys():
    hints = typing.get_type_hints(RunConfig)
    for f in fields(RunConfig):
        section = hints[f.name]
        section = next((a for a in typing.get_args(section) if a is not type(None)), section)
        if not hasattr(section, "__dataclass_fields__"):
            continue
        sub = typing.get_type_hints(section)
        direct = {g.name for g in fields(section) if not g.metadata.get("flatten")}
        for g in fields(section):
            if g.metadata.get("flatten"):
                assert not direct & {h.name for h in fields(sub[g.name])}, f.name


@pytest.mark.parametrize(
    ("doc", "field", "match"),
    [
        ({"simulate": {}}, "out", "required"),
        ({"out": "x"}, None, "exactly one of"),
        ({"out": "x", "simulate": {}, "inputs": {"genome": "g", "motifs": ["m"], "peaks": {"A": "p"}}}, None, "exactly one"),
        ({"out": "x", "simulate": {"size_mb": "big"}}, "simulate.size_mb", "expected a number, got 'big'"),
        ({"out": "x", "simulate": {"n_chroms": 2.5}}, "simulate.n_chroms", "expected an integer"),
        ({"out": "x", "simulate": {"n_chroms": True}}, "simulate.n_chroms", "expected an integer"),
        ({"out": "x", "use_ray": "yes", "simulate": {}}, "use_ray", "true/false"),
        ({"out": "x", "simulate": {"gc_range": [0.3]}}, "simulate.gc_range", "list of 2 values"),
        ({"out": "x", "simulate": {"tfs": "ALPHA"}}, "simulate.tfs", "expected a list of strings"),
        ({"out": "x", "simulate": {}, "train": {"epoch": 3}}, "train.epoch", "unknown setting"),
        ({"out": "x", "simulate": {}, "bogus": {}}, "bogus", "unknown setting"),
        ({"out": "x", "simulate": {}, "scan": 3}, "scan", "expected a table"),
        ({"out": "x", "simulate": {}, "train": {"epochs": 0}}, "train.epochs", "must be >= 1"),
        ({"out": "x", "simulate": {}, "predict": {"chunk_rows": 0}}, "predict.chunk_rows", "must be >= 1"),
        ({"out": "x", "simulate": {}, "label": {"window": 0}}, "label.window", "window must be"),
        ({"out": "x", "simulate": {"tfs": ["OMEGA"]}}, "simulate.tfs", "unknown simulated TF"),
        ({"out": "x", "simulate": {}, "interpret": {"methods": ["magic"]}}, "interpret.method", "magic"),
        ({"out": "x", "inputs": {"genome": "g", "motifs": [], "peaks": {"A": "p"}}}, "inputs.motifs", "at least one"),
        ({"out": "x", "inputs": {"genome": "g", "motifs": ["m"]}}, "inputs.peaks", "required"),
    ],
)
def test_bad_settings_name_file_and_key(doc, field, match):
    with pytest.raises(InputError, match=match) as info:
        from_dict(doc, source="run.toml")
    assert info.value.source == "run.toml"
    assert info.value.field == field


def test_load_config_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('out = "x"\n[simulate\n')
    with pytest.raises(InputError, match="not valid TOML") as info:
        load_config(bad)
    assert info.value.source == str(bad)


def test_paths_resolve_against_the_config_file(tmp_path):
    d = tmp_path / "configs"
    d.mkdir()
    (d / "a.toml").write_text('out = "../runs/a"\n[inputs]\ngenome = "g.fa"\nmotifs = ["m.meme", "MA0139"]\npeaks = { X = "p.bed" }\n')
    cfg = load_config(d / "a.toml")
    assert cfg.out == (tmp_path / "runs" / "a").resolve()
    assert cfg.inputs == InputsSection(
        genome=(d / "g.fa").resolve(), motifs=(str((d / "m.meme").resolve()), "MA0139"), peaks={"X": (d / "p.bed").resolve()}
    )


def test_overrides(tmp_path):
    cfg = from_dict({"out": "x", "simulate": {}}, base=tmp_path)
    assert with_overrides(cfg, address=None, use_ray=None) is cfg
    assert with_overrides(cfg, use_ray=False, out=tmp_path / "y").out == tmp_path / "y"


@pytest.mark.parametrize("name", ["simulated.toml", "hg38.toml"])
def test_examples_load(name):
    cfg = load_config(EXAMPLES / name)
    assert cfg.out.is_absolute()
    if name == "hg38.toml":
        assert cfg.inputs is not None and cfg.simulate is None
        assert cfg.train.settings.arch == "deepsea"
    else:
        assert cfg.simulate is not None


def test_cli_print_config_round_trips(tmp_path):
    from scanner.cli import app

    src = tmp_path / "c.toml"
    src.write_text('out = "r"\n[simulate]\nsize_mb = 2.0\n[train]\nepochs = 2\n')
    res = CliRunner().invoke(app, ["run", str(src), "--print-config", "--no-ray", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    cfg = from_dict(tomllib.loads(res.output))
    assert cfg.out == tmp_path / "o" and cfg.use_ray is False and cfg.train.settings.epochs == 2
    res = CliRunner().invoke(app, ["run", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2 and "config file not found" in res.output
