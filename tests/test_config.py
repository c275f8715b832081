"""The run config: TOML <-> dataclasses, strict typing, paths, and the example configs."""

from __future__ import annotations

import tomllib
import typing
from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scanner.errors import InputError
from scanner.interpret.benchmark import BenchmarkConfig
from scanner.labels.run import LabelConfig
from scanner.predict.run import PredictConfig
from scanner.run.config import (
    InputsSection,
    RunConfig,
    dumps,
    from_dict,
    load_config,
    to_dict,
    with_overrides,
)
from scanner.scan import ScanConfig
from scanner.simulate.genome import SimulationConfig
from scanner.train import TrainConfig
from scanner.variants import VariantConfig

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
        "variants": {"vcf": "calls.vcf.gz", "rc_average": True, "regimes": ["pvalue"]},
        "interpret_benchmark": {"n_sequences": 20, "methods": ["ism"]},
    }


def test_full_config_builds_the_stage_dataclasses(tmp_path):
    cfg = from_dict(_full(tmp_path), base=tmp_path)
    assert cfg.out == (tmp_path / "run").resolve()
    assert cfg.address == "auto" and cfg.use_ray is False
    assert cfg.inputs.genome == (tmp_path / "data/hg38.fa").resolve()
    assert cfg.inputs.motifs == (str((tmp_path / "motifs/ctcf.meme").resolve()), "MA0139.2")
    assert cfg.inputs.peaks == {
        "CTCF": (tmp_path / "peaks/ctcf.narrowPeak").resolve(),
        "FOS::JUN": Path("/abs/fosjun.bed"),
    }
    assert cfg.inputs.blacklist is None
    assert cfg.scan == ScanConfig(
        pvalue=1e-5, chroms=("chr1", "chr2"), shard_size=1_000_000, background=str((tmp_path / "bg.txt").resolve())
    )
    assert cfg.label == LabelConfig(regimes=("pvalue", "gc"), val_chroms=("chr8",), window=500)
    assert cfg.train.settings == TrainConfig(epochs=2, arch="small", ema=0.999)
    assert cfg.train.tfs == ("CTCF",) and cfg.train.regimes == ("pvalue",)
    assert cfg.evaluate.cross_tf is True and cfg.evaluate.splits == ("test",)
    assert cfg.predict.settings == PredictConfig(chunk_rows=1000, actors=2)
    assert cfg.interpret.settings.methods == ("ism", "saliency") and cfg.interpret.bedgraph is True
    assert cfg.interpret_benchmark == BenchmarkConfig(n_sequences=20, methods=("ism",))
    assert cfg.variants.vcf == (tmp_path / "calls.vcf.gz").resolve()
    assert cfg.variants.settings == VariantConfig(rc_average=True) and cfg.variants.regimes == ("pvalue",)


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
        (
            {"out": "x", "simulate": {}, "inputs": {"genome": "g", "motifs": ["m"], "peaks": {"A": "p"}}},
            None,
            "exactly one",
        ),
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
        ({"out": "x", "simulate": {}, "variants": {"chunk_variants": 1}}, "variants.vcf", "required"),
        (
            {"out": "x", "simulate": {}, "variants": {"vcf": "v", "chunk_variants": 0}},
            "variants.chunk_variants",
            ">= 1",
        ),
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
    (d / "a.toml").write_text(
        'out = "../runs/a"\n[inputs]\ngenome = "g.fa"\nmotifs = ["m.meme", "MA0139"]\npeaks = { X = "p.bed" }\n'
    )
    cfg = load_config(d / "a.toml")
    assert cfg.out == (tmp_path / "runs" / "a").resolve()
    assert cfg.inputs == InputsSection(
        genome=(d / "g.fa").resolve(),
        motifs=(str((d / "m.meme").resolve()), "MA0139"),
        peaks={"X": (d / "p.bed").resolve()},
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


# ---- cluster configs ---------------------------------------------------------------------------

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


def _containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def _check_ray_cluster_spec(spec: dict) -> None:
    import ray

    assert spec["rayVersion"] == ray.__version__
    pods = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    images = {c["image"] for p in pods for c in _containers(p)}
    assert len(images) == 1, images  # the same image on head and workers
    for pod in pods:
        env = {e["name"]: e for e in _containers(pod)[0]["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "auth_token"
    assert any(
        c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        for g in spec["workerGroupSpecs"]
        for c in _containers(g["template"])
    )


def test_kuberay_manifests():
    import yaml

    docs = list(yaml.safe_load_all((CLUSTER / "kuberay-raycluster.yaml").read_text()))
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    _check_ray_cluster_spec(cluster["spec"])
    assert cluster["spec"]["headGroupSpec"]["serviceType"] == "ClusterIP"

    docs = list(yaml.safe_load_all((CLUSTER / "kuberay-rayjob.yaml").read_text()))
    job = next(d for d in docs if d["kind"] == "RayJob")
    _check_ray_cluster_spec(job["spec"]["rayClusterSpec"])
    submitter = {e["name"] for e in _containers(job["spec"]["submitterPodTemplate"])[0]["env"]}
    assert {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} <= submitter
    script = job["spec"]["entrypoint"].split()[1]
    assert Path(script).name == "run_pipeline.py" and (CLUSTER.parent / "jobs" / "run_pipeline.py").is_file()
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    cfg = from_dict(tomllib.loads(config_map["data"]["run.toml"]))
    assert str(cfg.out).startswith("/data/") and str(cfg.inputs.genome).startswith("/data/")


def test_cluster_launcher_config_validates_against_rays_schema():
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = yaml.safe_load((CLUSTER / "aws-gpu.yaml").read_text())
    validate_config(prepare_config(cfg))
    assert cfg["available_node_types"][cfg["head_node_type"]]["resources"] == {"CPU": 0}
    assert any(t.get("resources", {}).get("GPU") for t in cfg["available_node_types"].values())
    assert cfg["docker"]["image"].startswith("rayproject/ray:2.60.0")
    text = (CLUSTER / "aws-gpu.yaml").read_text()
    starts = " ".join(cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in starts and "--dashboard-host=127.0.0.1" in starts
    assert "ray stop" not in starts
    # every top-level key carries a comment line right above it
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line and not line[0].isspace() and not line.startswith("#") and ":" in line:
            assert lines[i - 1].startswith("#"), line


def test_local_head_script_binds_loopback():
    text = (CLUSTER / "local.sh").read_text()
    assert "HOST=${HOST:-127.0.0.1}" in text
    assert '--node-ip-address "$HOST" --dashboard-host "$HOST"' in text
    assert "ray stop" not in text.replace("`ray stop`", "")  # only mentioned, never run
