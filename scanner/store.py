"""The run directory: where each dataset lives, how its files are named, staged, published and locked.

One module owns the layout ``OUT/<dataset>/<key>=<value>/.../<file>.parquet`` and the sidecar record of
each dataset; every stage reads and writes through a :class:`Dataset` handle from a :class:`RunDir`,
and no other module spells a dataset's path or parses another stage's record.

Publishing (exactly-once outputs)
---------------------------------
A stage never writes into a published dataset. It opens a :class:`Staging` area
(``OUT/.staging/<dataset>-<fingerprint>/``, outside every dataset glob) named by the fingerprint of the
settings that produce the output, writes its work units there under names that depend only on the
unit (never on how many workers ran), and :meth:`Staging.publish` makes the new state visible in one
step: a record of the files that belong to it (``_published.json``) is written into the staging area,
the old dataset directory is renamed away and the staging area renamed into its place. A reader
therefore sees the old complete dataset or the new complete one (or, between the two renames of a
crash, none, which the next :meth:`RunDir.recover` completes). A stage that stops before publishing
leaves its staging area behind; a rerun with the same settings finds it and reuses every finished
unit, whatever the number of workers; a rerun with other settings gets another staging area, so two
configurations never mix. Units of the published dataset a rerun does not redo (other TFs) are
carried into the staging area as hard links (copies where links are not possible) when it opens.

One writer at a time
--------------------
:meth:`RunDir.lock` holds ``OUT/.locks/<dataset>.lock`` (pid, host, start time, command) for the whole
write; a second writer gets :class:`LockedError` (exit code 2) naming the holder. A lock left by a
dead process on this host is taken over; one of another host is reported, with the file to remove
once that host's process is known to be gone.

Paths are checked before any work (:meth:`RunDir.check_writable`): an output that cannot be created,
is a file, is read-only or is on a full disk is an :class:`InputError` naming it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner import schemas
from scanner.errors import InputError
from scanner.io import parquet_files, partition_dir, write_text_atomic

#: Checkpoint directories ``models/tf=<tf>/regime=<regime>/``.
MODEL_PARTITIONS = ("tf", "regime")
#: Name of the file that lists a published dataset's files (inside the dataset directory).
PUBLISHED = "_published.json"
STAGING_DIR = ".staging"
UNITS_DIR = "_units"
LOCK_DIR = ".locks"
METRICS_FILE = "metrics.parquet"
MANIFEST_FILE = "manifest.json"
TRASH_DIR = ".trash"


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is: its directory under the run, partition keys, schema name and sidecar record.

    Attributes
    ----------
    name : str
        The dataset's name (also its directory under ``OUT``).
    keys : tuple of str
        Hive partition keys, outermost first.
    schema : str or None
        Name of its pyarrow schema in :mod:`scanner.schemas` (None: not a Parquet dataset).
    record : str or None
        File name of its sidecar record inside the directory.
    markers : str or None
        Directory of per-unit markers kept after publishing (the scan's shards: reused by a later scan
        with the same settings, and their timings read by benchmarks). Default None: a dataset's unit
        markers (``_units``) are dropped when it is published.
    parts : tuple of (str, str)
        Named files or sub-directories inside the dataset (``("comparison", "comparison.parquet")``);
        read and written through :meth:`Dataset.part`. Default none.
    """

    name: str
    keys: tuple[str, ...]
    schema: str | None
    record: str | None
    markers: str | None = None
    parts: tuple[tuple[str, str], ...] = ()


#: Every dataset of a run (their schemas and partition keys are defined in :mod:`scanner.schemas`).
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("instances", schemas.INSTANCE_PARTITIONS, "INSTANCES", "_scan.json", "_shards"),
        DatasetSpec("labelled", schemas.INSTANCE_PARTITIONS, "LABELLED", "_label.json"),
        DatasetSpec("datasets", schemas.DATASET_PARTITIONS, "DATASETS", "_datasets.json"),
        DatasetSpec(
            "models",
            MODEL_PARTITIONS,
            None,
            None,
            # per model (tf=/regime=/): the curves of scanner train/evaluate; per regime: the TF x TF matrix
            parts=(("roc", "roc.png"), ("pr", "pr.png"), ("cross_tf", "cross_tf_{regime}.png")),
        ),
        DatasetSpec("predictions", schemas.INSTANCE_PARTITIONS, "PREDICTIONS", "_predict.json"),
        DatasetSpec("attributions", schemas.ATTRIBUTION_PARTITIONS, "ATTRIBUTIONS", "_interpret.json"),
        DatasetSpec(
            "variants",
            schemas.VARIANT_PARTITIONS,
            "VARIANTS",
            "_variants.json",
            parts=(
                ("scores", "scores"),
                ("comparison", "comparison.parquet"),
                ("correlations", "correlations.parquet"),
            ),
        ),
        DatasetSpec(
            "features",
            schemas.FEATURE_PARTITIONS,
            "FEATURES",
            "_features.json",
            parts=(
                ("patterns", "patterns"),
                ("seqlets", "seqlets"),
                ("comparison", "comparison.parquet"),
                ("comparison_plot", "comparison.png"),
            ),
        ),
        DatasetSpec("sim", (), None, "simulation.json"),  # scanner simulate's genome, motifs, peaks, truth
        DatasetSpec(
            "interpret_benchmark",
            (),
            None,
            "benchmark.json",
            parts=(("table", "benchmark.parquet"), ("text", "benchmark.md"), ("plot", "benchmark.png")),
        ),
        DatasetSpec("tune", (), None, None),  # Ray Tune's experiments (scanner tune)
        DatasetSpec("report", (), None, None, parts=(("page", "index.html"),)),  # scanner report's page, images
    )
}


class LockedError(InputError):
    """Another writer holds the output (exit code 2, like every input error)."""


# ---- locks ------------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@contextlib.contextmanager
def hold_lock(path: Path, what: str) -> Iterator[dict[str, Any]]:
    """Hold the lock file ``path`` for the block (see the module docstring). Re-entrant within a process
    (an inner hold of a lock this process holds neither takes nor releases it).

    Raises
    ------
    LockedError
        When a live process (or one on another host) holds it.
    InputError
        When the lock file cannot be created (the directory is not writable).
    """
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": " ".join(sys.argv)[:300]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the lock directory: {exc.strerror or exc}", source=path.parent) from exc
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            if holder is None:  # written half-way or gone meanwhile: try again
                time.sleep(0.05)
                if path.exists() and _read_lock(path) is None:
                    path.unlink(missing_ok=True)
                continue
            same_host = holder.get("host") == me["host"]
            if same_host and holder.get("pid") == me["pid"]:  # this process holds it already: re-entrant
                yield holder
                return
            if same_host and not _alive(int(holder.get("pid", -1))):
                path.unlink(missing_ok=True)  # a dead process's lock: take it over
                continue
            where = f"pid {holder.get('pid')} on {holder.get('host')}"
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("started", 0))))
            hint = "" if same_host else f"; if that process is gone, remove {path}"
            raise LockedError(
                f"{what} is being written by another scanner ({where}, since {since}: {holder.get('command', '?')}); "
                f"wait for it to finish{hint}",
                source=path,
            ) from None
        except OSError as exc:
            raise InputError(f"cannot create the lock file: {exc.strerror or exc}", source=path) from exc
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:  # pragma: no cover - three races in a row
        raise LockedError(f"could not take the lock of {what}", source=path)
    try:
        yield me
    finally:
        holder = _read_lock(path)
        if holder is not None and holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
            path.unlink(missing_ok=True)
            _remove_if_empty(path.parent)


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, ValueError):
        return None


def part_name(dataset: str, part: str) -> str:
    """The file or folder name of part ``part`` of dataset ``dataset`` (for modules that build the part
    inside a staging area or a worker's output folder)."""
    return dict(DATASETS[dataset].parts)[part]


# ---- fingerprints (of inputs and settings: what a published output was made from) ------------------
#: Files up to this size are fingerprinted by content (SHA-256); larger ones by size and mtime.
CONTENT_HASH_LIMIT = 256 << 20


def file_fingerprint(path: str | Path, cache: dict[str, str] | None = None) -> str:
    """``sha256:<hex>`` of a file's bytes, or ``stat:<size>:<mtime_ns>`` above :data:`CONTENT_HASH_LIMIT`.

    Raises
    ------
    InputError
        If the file does not exist.
    """
    path = Path(path)
    key = str(path.resolve())
    if cache is not None and key in cache:
        return cache[key]
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError("input file not found", source=path) from None
    if st.st_size > CONTENT_HASH_LIMIT:
        value = f"stat:{st.st_size}:{st.st_mtime_ns}"
    else:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        value = "sha256:" + h.hexdigest()
    if cache is not None:
        cache[key] = value
    return value


def hash_json(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (sorted keys; paths and tuples as str / list)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# ---- the run directory --------------------------------------------------------------------------------


class RunDir:
    """A run directory ``OUT`` and its datasets.

    Parameters
    ----------
    root : str or Path
        ``OUT`` (need not exist yet).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def dataset(self, name: str, root: str | Path | None = None) -> Dataset:
        """The handle of dataset ``name`` (one of :data:`DATASETS`) at ``OUT/<name>``, or at ``root``.

        Raises
        ------
        KeyError
            For an unknown name.
        """
        return Dataset(self, DATASETS[name], None if root is None else Path(root))

    @classmethod
    def of(cls, name: str, root: str | Path) -> Dataset:
        """The dataset ``name`` stored at ``root``, in the run directory that holds it (``root``'s parent)."""
        root = Path(root)
        return cls(root.parent).dataset(name, root)

    def path(self, name: str) -> Path:
        """``OUT/<name>``: the directory of dataset ``name``."""
        return self.dataset(name).root

    @property
    def metrics_path(self) -> Path:
        """``OUT/metrics.parquet``."""
        return self.root / METRICS_FILE

    @property
    def manifest_path(self) -> Path:
        """``OUT/manifest.json``: what ``scanner run`` did, stage by stage."""
        return self.root / MANIFEST_FILE

    def lock(self, what: str) -> contextlib.AbstractContextManager[dict[str, Any]]:
        """Hold the writer lock of ``what`` (a dataset name, or ``"run"`` for a whole pipeline)."""
        return hold_lock(self.root / LOCK_DIR / f"{what}.lock", f"{self.root / what}")

    def check_writable(self, path: str | Path | None = None) -> None:
        """Create ``path`` (default ``OUT``) as a directory and write a probe file in it.

        Raises
        ------
        InputError
            Naming the path, when it is a file, cannot be created, is read-only or the disk is full.
        """
        p = Path(path) if path is not None else self.root
        if p.exists() and not p.is_dir():
            raise InputError("the output path exists and is not a directory", source=p)
        try:
            p.mkdir(parents=True, exist_ok=True)
            probe = p / f".probe-{uuid.uuid4().hex[:8]}"
            with open(probe, "wb") as fh:
                fh.write(b"x" * 4096)
                fh.flush()
                os.fsync(fh.fileno())
            probe.unlink()
        except OSError as exc:
            raise InputError(f"cannot write the output: {_why(exc)}", source=p) from exc

    def check_no_overlap(self, output: str | Path, inputs: Mapping[str, str | Path | None]) -> None:
        """Refuse an output directory that is, contains or lies inside one of the inputs.

        Raises
        ------
        InputError
            Naming the output and the input it overlaps.
        """
        out = Path(output).resolve()
        for name, other in inputs.items():
            if other is None:
                continue
            o = Path(other).resolve()
            if out == o or o in out.parents or out in o.parents:
                raise InputError(f"the output directory overlaps the {name} {o}", source=output)

    def recover(self) -> None:
        """Finish a publish a crash interrupted between its two renames (a dataset missing, its staged
        replacement complete), and delete the trash of finished ones."""
        staging = self.root / STAGING_DIR
        for d in sorted(staging.glob("*")) if staging.is_dir() else []:
            name = d.name.rsplit("-", 1)[0]
            if (d / PUBLISHED).is_file() and not (self.root / name).exists():
                os.replace(d, self.root / name)
        trash = self.root / TRASH_DIR
        if trash.is_dir():
            shutil.rmtree(trash, ignore_errors=True)


def tree_signature(root: str | Path) -> str:
    """A cheap signature of a dataset's state: its publish fingerprint when it has one, else a hash of
    every visible file's relative path, size and modification time."""
    import hashlib

    root = Path(root)
    pub = root / PUBLISHED
    if pub.is_file():  # its fingerprint, publish time and file list: unique to this published state
        with contextlib.suppress(OSError):
            return "published:" + hashlib.sha256(pub.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for f in visible_files(root) if root.is_dir() else []:
        st = f.stat()
        h.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "tree:" + h.hexdigest()


def _remove_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not empty, gone, or another process's: leave it
        directory.rmdir()


def unit_marker(staging_root: str | Path, key: str) -> Path:
    """The file that marks work unit ``key`` of a staging area finished."""
    from scanner.io import encode_partition_value

    return Path(staging_root) / UNITS_DIR / f"{encode_partition_value(key)}.json"


def finish_unit(staging_root: str | Path, key: str, info: Mapping[str, Any]) -> None:
    """Mark a unit whose files are all written (by the worker that wrote them): a resumed run skips it."""
    write_text_atomic(json.dumps(dict(info)), unit_marker(staging_root, key))


def visible_files(root: str | Path) -> list[Path]:
    """Every file under ``root`` whose name and directories start with neither ``.`` nor ``_`` (sorted)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        out.extend(Path(dirpath) / f for f in filenames if not f.startswith((".", "_")))
    return sorted(out)


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.ENOTDIR:
        return "a path component is a file, not a directory"
    return exc.strerror or str(exc)


class Dataset:
    """One dataset of a run: its directory, partition paths, record, published files and staging."""

    def __init__(self, run: RunDir, spec: DatasetSpec, root: Path | None = None) -> None:
        self.run = run
        self.spec = spec
        self.root = root if root is not None else run.root / spec.name

    def __repr__(self) -> str:
        return f"Dataset({self.spec.name!r}, {str(self.root)!r})"

    def check_writable(self) -> None:
        """Before any work: the dataset's folder can be created or replaced here.

        Raises
        ------
        InputError
            When the path exists and is not a directory, or its parent cannot be written (naming it).
        """
        if self.root.exists() and not self.root.is_dir():
            raise InputError("the output path exists and is not a directory", source=self.root)
        self.run.check_writable(self.root.parent)

    def partition(self, *values: object, root: Path | None = None) -> Path:
        """``<root>/<k1>=<v1>/...`` for the leading partition keys (root: the dataset directory)."""
        if len(values) > len(self.spec.keys):
            raise ValueError(f"{self.spec.name} has {len(self.spec.keys)} partition keys, got {len(values)} values")
        return partition_dir(root or self.root, list(zip(self.spec.keys, values, strict=False)))

    def part(self, name: str, *, root: Path | None = None, **fields: object) -> Path:
        """The named file or folder ``name`` of this dataset (see :attr:`DatasetSpec.parts`) under ``root``
        (default the dataset directory; e.g. a staging area or one model's folder), its ``{field}``
        placeholders filled from ``fields``.

        Raises
        ------
        KeyError
            For a name the dataset does not have.
        """
        parts = dict(self.spec.parts)
        if name not in parts:
            raise KeyError(f"{self.spec.name} has no part {name!r}; it has {sorted(parts)}")
        return (root or self.root) / parts[name].format(**fields)

    @property
    def record_path(self) -> Path:
        if self.spec.record is None:
            raise ValueError(f"{self.spec.name} has no sidecar record")
        return self.root / self.spec.record

    def record(self) -> dict[str, Any] | None:
        """The published sidecar record, or None when there is none.

        Raises
        ------
        InputError
            For a record that is not JSON (naming the file).
        """
        path = self.record_path
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(
                f"unreadable record: {exc}; remove the dataset or choose another --out", source=path
            ) from exc

    def genome(self, given: str | Path | None = None) -> Path:
        """The FASTA this dataset was made from: ``given`` if any, else its record's ``genome`` (relative
        paths from the dataset's folder), else the genome of the instances its record names.

        Raises
        ------
        InputError
            When neither names a file, naming the record read.
        """
        if given is not None:
            path = Path(given)
        else:
            rec = self.record()
            if rec is None:
                raise InputError(
                    f"no --genome given and no {self.spec.record} in {self.root} to read it from; pass --genome",
                    source=self.record_path,
                )
            if rec.get("genome"):
                path = Path(rec["genome"])
                path = path if path.is_absolute() or path.exists() else self.root / path
            elif rec.get("instances") and self.spec.name != "instances":
                path = RunDir.of("instances", rec["instances"]).genome()
            else:
                raise InputError("the record names no genome; pass --genome", source=self.record_path)
        if not path.is_file():
            raise InputError("genome FASTA not found", source=path, field="--genome")
        return path

    def published(self) -> dict[str, Any] | None:
        """The publish record (fingerprint, files), or None for a dataset that was never published."""
        path = self.root / PUBLISHED
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"unreadable publish record: {exc}", source=path) from exc

    def files(self) -> list[Path]:
        """The visible Parquet files of the dataset (sorted)."""
        return parquet_files(self.root) if self.root.is_dir() else []

    def staged(self) -> list[Path]:
        """The staging areas of this dataset left by unfinished writes (resumable, never visible)."""
        d = self.run.root / STAGING_DIR
        return sorted(p for p in d.glob(f"{self.root.name}-*") if p.is_dir()) if d.is_dir() else []

    def staging(self, fingerprint: str, *, carry: Sequence[Sequence[object]] = ()) -> Staging:
        """Open (or reopen, to resume) the staging area of an output made with settings ``fingerprint``.

        Parameters
        ----------
        fingerprint : str
            Hash of everything that decides the output (settings, input signatures).
        carry : sequence of partition prefixes, optional
            Partitions of the published dataset to carry over unchanged (e.g. ``[("CTCF",)]`` keeps TF
            CTCF's files); the rest of the dataset is what this run writes.
        """
        self.check_writable()
        return Staging(self, fingerprint, carry)


class Staging:
    """A dataset being written: the directory work units go to, resumable, published in one step."""

    def __init__(self, dataset: Dataset, fingerprint: str, carry: Sequence[Sequence[object]]) -> None:
        self.dataset = dataset
        self.fingerprint = fingerprint
        self.root = dataset.run.root / STAGING_DIR / f"{dataset.root.name}-{fingerprint[:16]}"
        self.root.mkdir(parents=True, exist_ok=True)
        for prefix in carry:
            self._carry(dataset.partition(*prefix))

    def _carry(self, src: Path) -> None:
        if not src.is_dir():
            return
        for f in visible_files(src):
            dst = self.root / f.relative_to(self.dataset.root)
            if dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, dst)
            except OSError:
                shutil.copy2(f, dst)

    def path(self, *values: object) -> Path:
        """The staged partition directory for these partition values."""
        return self.dataset.partition(*values, root=self.root)

    def done(self, path: str | Path) -> bool:
        """Whether a unit's file is already there (written by an earlier, interrupted attempt)."""
        return Path(path).is_file()

    def unit(self, key: str) -> dict[str, Any] | None:
        """What a finished unit of several files recorded (:func:`finish_unit`), or None if unfinished."""
        try:
            return json.loads(unit_marker(self.root, key).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def files(self) -> list[Path]:
        """Every staged file of the dataset (hidden and ``_``-prefixed names left out)."""
        return visible_files(self.root)

    def write_record(self, record: Mapping[str, Any]) -> None:
        """Write the dataset's sidecar record into the staged state (published with it)."""
        write_text_atomic(
            json.dumps(record, indent=2, sort_keys=True, default=str) + "\n", self.root / self.dataset.spec.record
        )

    def discard(self, keep: set[Path]) -> None:
        """Delete staged files not in ``keep`` (units of an earlier attempt this run did not plan)."""
        keep_r = {Path(k).resolve() for k in keep}
        for f in self.files():
            if f.resolve() not in keep_r:
                f.unlink()

    def publish(self, extra: Mapping[str, Any] | None = None) -> Path:
        """Make the staged state the dataset, in one step (see the module docstring).

        Returns
        -------
        Path
            The dataset directory.
        """
        shutil.rmtree(self.root / UNITS_DIR, ignore_errors=True)
        files = [str(f.relative_to(self.root)) for f in self.files()]
        doc = {"fingerprint": self.fingerprint, "published": time.time(), "files": files, **(extra or {})}
        write_text_atomic(json.dumps(doc, indent=1) + "\n", self.root / PUBLISHED)
        target = self.dataset.root
        trash = None
        if target.exists():
            trash = self.dataset.run.root / TRASH_DIR / f"{target.name}-{uuid.uuid4().hex[:12]}"
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.replace(target, trash)
        os.replace(self.root, target)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        for d in (self.root.parent, self.dataset.run.root / TRASH_DIR):
            _remove_if_empty(d)
        return target
