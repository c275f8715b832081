"""The typed configuration of a whole run (``scanner run CONFIG.toml``) and its TOML form.

A run config is a tree of frozen dataclasses. Each stage's section *is* (or flattens) the settings
dataclass of that stage, whose fields are the stage command's flags, so a TOML key is a flag name
with ``_`` for ``-`` (``[scan] shard_size = 1000000`` is ``scanner scan --shard-size 1000000``)::

    out = "runs/sim"             # run directory (relative paths: relative to the TOML file)
    # address = "auto"           # Ray address; default: a private local Ray
    [simulate]                   # simulated inputs (SimulationConfig) ... or [inputs] (InputsSection)
    [scan]                       # ScanConfig                (scanner scan)
    [label]                      # LabelConfig               (scanner label)
    [train]                      # TrainConfig + tfs, regimes (scanner train)
    [evaluate]                   # EvaluateSection           (scanner evaluate)
    [predict]                    # PredictConfig + tfs, regimes (scanner predict)
    [interpret]                  # optional: InterpretConfig + bedgraph (scanner interpret)
    [features]                   # optional: FeaturesConfig + motifs, own_motifs (scanner features)
    [variants]                   # optional: vcf + VariantConfig + tfs, regimes (scanner variants)
    [interpret_benchmark]        # optional: BenchmarkConfig (scanner benchmark-interpret)

Loading is strict: an unknown key, a value of the wrong type or a missing required key raises
:class:`~scanner.errors.InputError` naming the file and the key (``train.epochs``). Values are checked
against the dataclass annotations only: nothing is built from strings, no tags, no code. TOML has no
null: leave a key out to keep its default (``None`` where the flag is optional).
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Union

from scanner.errors import InputError
from scanner.features.config import FeaturesConfig
from scanner.interpret.benchmark import BenchmarkConfig
from scanner.interpret.run import InterpretConfig
from scanner.labels.run import LabelConfig
from scanner.predict.run import PredictConfig
from scanner.scan.genome_scan import ScanConfig
from scanner.simulate.genome import SimulationConfig
from scanner.train import TrainConfig
from scanner.variants import VariantConfig

#: Field metadata marking a nested dataclass whose keys sit directly in the parent's TOML table.
FLATTEN = {"flatten": True}

_JASPAR_ID = re.compile(r"MA\d{4}(\.\d+)?")


@dataclass(frozen=True)
class InputsSection:
    """Real inputs (instead of ``[simulate]``).

    Parameters
    ----------
    genome : Path
        Genome FASTA (``scanner scan --genome``).
    motifs : tuple of str
        Motif files and/or JASPAR IDs (``scanner scan --motifs``).
    peaks : mapping of str to Path
        ChIP-seq peaks per TF (``scanner label --peaks TF=path``); TOML: ``peaks = { CTCF = "..." }``.
    open : Path, optional
        Open-chromatin peaks (``scanner label --open``). Default None.
    blacklist : Path, optional
        Regions whose instances are dropped (``scanner label --blacklist``). Default None.
    """

    genome: Path
    motifs: tuple[str, ...]
    peaks: Mapping[str, Path]
    open: Path | None = None
    blacklist: Path | None = None


@dataclass(frozen=True)
class TrainSection:
    """``scanner train``: the :class:`~scanner.train.TrainConfig` flags plus which models to train.

    ``tfs`` / ``regimes`` empty (default) = every TF / regime present in the datasets.
    """

    settings: TrainConfig = field(default_factory=TrainConfig, metadata=FLATTEN)
    tfs: tuple[str, ...] = ()
    regimes: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvaluateSection:
    """``scanner evaluate``: metrics of every trained model into ``OUT/metrics.parquet``.

    Parameters
    ----------
    cross_tf : bool
        Apply every TF's model to every TF's data (the reference's TF x TF matrix). Default False.
    splits : tuple of str
        Splits evaluated. Default ``("val", "test")``.
    batch_size : int
        Windows per forward pass. Default 256.
    rc_average : bool
        Average logits with the reverse complement's. Default False.
    """

    cross_tf: bool = False
    splits: tuple[str, ...] = ("val", "test")
    batch_size: int = 256
    rc_average: bool = False


@dataclass(frozen=True)
class PredictSection:
    """``scanner predict``: :class:`~scanner.predict.PredictConfig` flags plus TF / regime filters."""

    settings: PredictConfig = field(default_factory=PredictConfig, metadata=FLATTEN)
    tfs: tuple[str, ...] = ()
    regimes: tuple[str, ...] = ()


@dataclass(frozen=True)
class InterpretSection:
    """``scanner interpret``: :class:`~scanner.interpret.run.InterpretConfig` flags plus ``bedgraph``."""

    settings: InterpretConfig = field(default_factory=InterpretConfig, metadata=FLATTEN)
    bedgraph: bool = False


@dataclass(frozen=True)
class FeaturesSection:
    """``scanner features``: :class:`~scanner.features.FeaturesConfig` flags plus the motif databases.

    ``motifs``: motif files every pattern is matched against (e.g. JASPAR); ``own_motifs`` adds the
    simulation's ``OUT/sim/motifs.meme`` and ``context_motifs.meme``. TF-MoDISco settings go in a
    ``[features.modisco]`` table (:class:`~scanner.features.ModiscoSettings`).
    """

    settings: FeaturesConfig = field(default_factory=FeaturesConfig, metadata=FLATTEN)
    motifs: tuple[Path, ...] = ()
    own_motifs: bool = True


@dataclass(frozen=True)
class VariantsSection:
    """``scanner variants``: a VCF scored under every model (:class:`~scanner.variants.VariantConfig` flags).

    ``vcf`` is required; ``tfs`` / ``regimes`` empty (default) = every model.
    """

    vcf: Path
    settings: VariantConfig = field(default_factory=VariantConfig, metadata=FLATTEN)
    tfs: tuple[str, ...] = ()
    regimes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunConfig:
    """One run: where it writes, where Ray is, and the settings of every stage.

    Parameters
    ----------
    out : Path
        Run directory; every dataset and ``manifest.json`` go under it.
    address : str, optional
        Ray address (``auto``, ``host:6379``, ``ray://host:10001``). Default None: a private local
        Ray started in-process. A submitted job always uses the cluster it runs on.
    use_ray : bool
        Run the stages on Ray (default) or one after another in this process (same outputs).
    simulate : SimulationConfig, optional
        Simulated inputs, written to ``OUT/sim``. Exactly one of ``simulate`` and ``inputs``.
    inputs : InputsSection, optional
        Real inputs.
    scan, label, train, evaluate, predict
        Stage settings (defaults: each command's defaults).
    interpret : InterpretSection, optional
        Explain predictions (``OUT/attributions``). Default None: the stage is not run.
    features : FeaturesSection, optional
        Discover, match and compare what each model learned (``OUT/features``); a ``[variants]`` stage
        then names the learned pattern of each disagreeing allele. Default None: not run.
    variants : VariantsSection, optional
        Score a VCF's alleles under every model (``OUT/variants``). Default None: not run.
    interpret_benchmark : BenchmarkConfig, optional
        Run the simulated attribution benchmark into ``OUT/interpret_benchmark``. Default None.
    """

    out: Path
    address: str | None = None
    use_ray: bool = True
    simulate: SimulationConfig | None = None
    inputs: InputsSection | None = None
    scan: ScanConfig = field(default_factory=ScanConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    train: TrainSection = field(default_factory=TrainSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    predict: PredictSection = field(default_factory=PredictSection)
    interpret: InterpretSection | None = None
    features: FeaturesSection | None = None
    variants: VariantsSection | None = None
    interpret_benchmark: BenchmarkConfig | None = None

    def validate(self, source: str | Path | None = None) -> RunConfig:
        """Return self, or raise :class:`InputError` naming the bad key (checks across sections)."""
        if (self.simulate is None) == (self.inputs is None):
            raise InputError(
                "give exactly one of [simulate] (simulated inputs) and [inputs] (genome, motifs, peaks)",
                source=source,
            )
        if self.inputs is not None:
            if not self.inputs.motifs:
                raise InputError("at least one motif file or JASPAR ID is needed", source=source, field="inputs.motifs")
            if not self.inputs.peaks:
                raise InputError("peaks of at least one TF are needed", source=source, field="inputs.peaks")
        checks = [
            ("train", lambda: self.train.settings.validate()),
            ("predict", lambda: self.predict.settings.validate()),
        ]
        if self.interpret is not None:
            checks.append(("interpret", lambda: self.interpret.settings.validate()))
        if self.features is not None:
            checks.append(("features", lambda: self.features.settings.validate()))
        if self.variants is not None:
            checks.append(("variants", lambda: self.variants.settings.validate()))
        if self.interpret_benchmark is not None:
            checks.append(("interpret_benchmark", lambda: self.interpret_benchmark.resolved()))
        for section, check in checks:
            try:
                check()
            except InputError as exc:
                raise _in_section(exc, section, source) from None
        if self.evaluate.batch_size < 1:
            raise InputError("must be >= 1", source=source, field="evaluate.batch_size")
        if not self.evaluate.splits:
            raise InputError("at least one split is needed", source=source, field="evaluate.splits")
        return self


# ---- TOML -> dataclasses -------------------------------------------------------------------------


def _in_section(exc: InputError, section: str, source: str | Path | None) -> InputError:
    name = (exc.field or "").lstrip("-").replace("-", "_")
    return InputError(exc.message, source=source or exc.source, field=f"{section}.{name}" if name else section)


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            plural = {str: "strings", int: "integers", float: "numbers", Path: "paths", bool: "true/false values"}
            return f"a list of {plural.get(args[0], _type_name(args[0]))}"
        return f"a list of {len(args)} values"
    if origin in (dict, Mapping, typing.Mapping):
        return f"a table of {_type_name(args[1])}"
    if is_dataclass(tp):
        return "a table"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", Path: "a path"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value: Any, tp: Any, where: str, ctx: _Ctx) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)

    def bad() -> InputError:
        shown = repr(value) if not isinstance(value, dict) else "a table"
        return InputError(
            f"expected {_type_name(tp)}, got {shown} ({type(value).__name__})", source=ctx.source, field=where
        )

    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) != 1:
            raise TypeError(f"unsupported annotation {tp!r} at {where}")
        return _coerce(value, options[0], where, ctx)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise bad()
        return ctx.path(value)
    if origin is tuple:
        if not isinstance(value, list):
            raise bad()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]", ctx) for i, v in enumerate(value))
        if len(value) != len(args):
            raise bad()
        return tuple(_coerce(v, a, f"{where}[{i}]", ctx) for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin in (dict, Mapping, typing.Mapping):
        if not isinstance(value, dict):
            raise bad()
        return {str(k): _coerce(v, args[1], f"{where}.{k}", ctx) for k, v in value.items()}
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad()
        return _from_dict(tp, value, where, ctx)
    raise TypeError(f"unsupported annotation {tp!r} at {where}")


class _Ctx:
    """Where the TOML came from: relative paths resolve against its directory."""

    def __init__(self, source: Path | None, base: Path) -> None:
        self.source = source
        self.base = base

    def path(self, text: str) -> Path:
        p = Path(text).expanduser()
        return p if p.is_absolute() else (self.base / p).resolve()


def _keys(cls: type) -> set[str]:
    hints = typing.get_type_hints(cls)
    out: set[str] = set()
    for f in fields(cls):
        out |= _keys(hints[f.name]) if f.metadata.get("flatten") else {f.name}
    return out


def _from_dict(cls: type, data: Mapping[str, Any], where: str, ctx: _Ctx) -> Any:
    hints = typing.get_type_hints(cls)
    direct = {f.name: f for f in fields(cls) if not f.metadata.get("flatten")}
    flat = [f for f in fields(cls) if f.metadata.get("flatten")]
    flat_keys = {f.name: _keys(hints[f.name]) for f in flat}
    kwargs: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {f.name: {} for f in flat}
    prefix = f"{where}." if where else ""
    for key, value in data.items():
        if key in direct:
            kwargs[key] = _coerce(value, hints[key], prefix + key, ctx)
            continue
        owner = next((name for name, keys in flat_keys.items() if key in keys), None)
        if owner is None:
            known = sorted(set(direct) | set().union(*flat_keys.values()))
            raise InputError(
                f"unknown setting; known in {'[' + where + ']' if where else 'the top level'}: {', '.join(known)}",
                source=ctx.source,
                field=prefix + key,
            )
        nested[owner][key] = value
    for f in flat:
        kwargs[f.name] = _from_dict(hints[f.name], nested[f.name], where, ctx)
    for name, f in direct.items():
        if name not in kwargs and f.default is MISSING and f.default_factory is MISSING:
            raise InputError("required setting is missing", source=ctx.source, field=prefix + name)
    try:
        return cls(**kwargs)
    except InputError as exc:
        raise _in_section(exc, where or "run", ctx.source) from None


# ---- dataclasses -> TOML -------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if is_dataclass(value):
        return to_dict(value)
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """The TOML-ready dict of a config dataclass: ``None`` left out, paths and tuples as str / list."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        if f.metadata.get("flatten"):
            out.update(to_dict(value))
        else:
            out[f.name] = _plain(value)
    return out


def dumps(config: RunConfig) -> str:
    """TOML text of ``config`` (every setting written, defaults included)."""
    import tomli_w

    return tomli_w.dumps(to_dict(config))


def from_dict(data: Mapping[str, Any], *, source: str | Path | None = None, base: str | Path = ".") -> RunConfig:
    """Build and validate a :class:`RunConfig` from parsed TOML.

    Parameters
    ----------
    data : mapping
        The parsed document.
    source : str or Path, optional
        File name used in error messages.
    base : str or Path, optional
        Directory relative paths resolve against. Default: the current directory.

    Raises
    ------
    InputError
        Unknown key, wrong type, missing required key, or a setting a stage rejects.
    """
    ctx = _Ctx(None if source is None else Path(source), Path(base).resolve())
    config = _from_dict(RunConfig, data, "", ctx)
    config = _resolve_special_paths(config, ctx)
    return config.validate(ctx.source)


def load_config(path: str | Path) -> RunConfig:
    """Read a run config TOML file; relative paths in it resolve against the file's directory.

    Raises
    ------
    InputError
        If the file is missing or not valid TOML, or for any bad setting (see :func:`from_dict`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", source=path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", source=path) from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc}", source=path) from exc
    return from_dict(data, source=path, base=path.parent)


def _resolve_special_paths(config: RunConfig, ctx: _Ctx) -> RunConfig:
    """Strings that may be paths: motif entries that are not JASPAR IDs, a background file."""
    if config.inputs is not None:
        motifs = tuple(m if _JASPAR_ID.fullmatch(m) else str(ctx.path(m)) for m in config.inputs.motifs)
        config = replace(config, inputs=replace(config.inputs, motifs=motifs))
    bg = config.scan.background
    if bg not in ("genome", "uniform"):
        config = replace(config, scan=replace(config.scan, background=str(ctx.path(bg))))
    return config


def with_overrides(config: RunConfig, **changes: Any) -> RunConfig:
    """A copy with top-level settings replaced (``None`` values ignored), validated."""
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(config, **changes).validate() if changes else config
