"""The run manifest (``OUT/manifest.json``): what each stage did, and whether it must run again.

One JSON document per run directory, rewritten atomically (temporary file + rename) by the driver
only. Per stage it records::

    status        pending | running | done | failed
    inputs_hash   SHA-256 of the stage's inputs: its settings, fingerprints of the input files, and
                  the output signatures of the stages it reads
    outputs       signature of the files the stage wrote (relative names and sizes), taken when it finished
    done, total   work units finished / planned (shards, models, work items), for progress and ETA
    rows          rows written to the stage's main dataset
    started, finished, seconds, attempts, error, note

Resume rule (:meth:`Manifest.is_complete`): a stage is skipped when its last run finished, its
inputs hash is unchanged and its output files still carry the recorded signature. Anything else
re-runs it; stages that resume internally (the scan's shard markers, per-model checkpoints) then
redo only their missing pieces.

Timestamps are Unix seconds (UTC); :func:`status_rows` turns a manifest dict into display rows with
elapsed time and an estimated time left (the running stage's rate times its remaining units).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from scanner.errors import InputError
from scanner.io import write_text_atomic
from scanner.store import MANIFEST_FILE

MANIFEST = MANIFEST_FILE  # the name is the run directory's (scanner.store)
FORMAT_VERSION = 1
STATUSES = ("pending", "running", "done", "failed")


@dataclass
class StageRecord:
    """What the manifest knows about one stage (see the module docstring)."""

    status: str = "pending"
    inputs_hash: str | None = None
    outputs: str | None = None
    unit: str = "steps"
    done: int = 0
    total: int | None = None
    rows: int | None = None
    started: float | None = None
    finished: float | None = None
    seconds: float | None = None
    attempts: int = 0
    error: str | None = None
    note: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Manifest:
    """The manifest of one run directory; methods update it and save it atomically.

    Use :meth:`open` to load (or start) the manifest of ``out``. Updates are thread-safe (a progress
    thread and the stage runner share it). ``on_save`` (optional) is called with the document after
    every save, e.g. to print it to a job's log.
    """

    path: Path
    stages: dict[str, StageRecord] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    run_started: float | None = None
    config_hash: str | None = None
    on_save: Any = None
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _last_save: float = 0.0

    # ---- reading and writing ------------------------------------------------------------------
    @classmethod
    def open(cls, out: str | Path) -> Manifest:
        """Load ``out/manifest.json``, or a fresh manifest when there is none.

        Raises
        ------
        InputError
            If the file exists but is not a scanner manifest.
        """
        path = Path(out) / MANIFEST
        if not path.exists():
            return cls(path=path)
        data = read_manifest(path)
        return cls(
            path=path,
            stages={k: StageRecord.from_dict(v) for k, v in data.get("stages", {}).items()},
            order=list(data.get("order", data.get("stages", {}).keys())),
            created=float(data.get("created", time.time())),
            updated=float(data.get("updated", time.time())),
            run_started=data.get("run_started"),
            config_hash=data.get("config_hash"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON document."""
        with self._lock:
            return {
                "format": "scanner-manifest",
                "version": FORMAT_VERSION,
                "created": self.created,
                "updated": self.updated,
                "run_started": self.run_started,
                "config_hash": self.config_hash,
                "order": list(self.order),
                "stages": {name: asdict(self.stages[name]) for name in self.order if name in self.stages},
            }

    def save(self, *, force: bool = True, min_interval: float = 1.0) -> None:
        """Write the manifest atomically (``force=False``: at most once per ``min_interval`` s)."""
        with self._lock:
            now = time.time()
            if not force and now - self._last_save < min_interval:
                return
            self.updated = now
            doc = self.to_dict()
            write_text_atomic(json.dumps(doc, indent=1, sort_keys=False) + "\n", self.path)
            self._last_save = now
        if self.on_save is not None:
            self.on_save(doc)

    # ---- stage life cycle ---------------------------------------------------------------------
    def plan(self, names: Sequence[str], config_hash: str) -> None:
        """Declare the stages of this run (in order); stages no longer planned are forgotten."""
        with self._lock:
            self.order = list(names)
            self.stages = {n: self.stages.get(n, StageRecord()) for n in names}
            self.config_hash = config_hash
            self.run_started = time.time()
            for rec in self.stages.values():
                if rec.status == "running":  # a driver died mid-stage
                    rec.status = "failed"
                    rec.error = rec.error or "interrupted (the driver stopped before the stage finished)"
        self.save()

    def is_complete(self, name: str, inputs_hash: str, outputs: str) -> bool:
        """True when ``name`` finished with these inputs and its outputs still carry the same signature."""
        rec = self.stages.get(name)
        return (
            rec is not None
            and rec.status == "done"
            and rec.inputs_hash == inputs_hash
            and rec.outputs is not None
            and rec.outputs == outputs
        )

    def start(self, name: str, inputs_hash: str, *, total: int | None = None, unit: str = "steps") -> None:
        """Mark ``name`` running (keeps ``done`` only when the inputs are unchanged)."""
        with self._lock:
            rec = self.stages.setdefault(name, StageRecord())
            rec.status = "running"
            rec.inputs_hash = inputs_hash
            rec.outputs = None
            rec.unit = unit
            rec.total = total
            rec.done = 0
            rec.rows = None
            rec.started = time.time()
            rec.finished = rec.seconds = None
            rec.attempts += 1
            rec.error = rec.note = None
        self.save()

    def progress(self, name: str, done: int, total: int | None = None, *, note: str | None = None) -> None:
        """Record ``done`` (and optionally ``total``) units of a running stage; saved at most once a second."""
        with self._lock:
            rec = self.stages[name]
            rec.done = int(done)
            if total is not None:
                rec.total = int(total)
            if note is not None:
                rec.note = note
        self.save(force=False)

    def finish(self, name: str, *, outputs: str, rows: int | None = None, note: str | None = None) -> None:
        """Mark ``name`` done with its output signature and row count."""
        with self._lock:
            rec = self.stages[name]
            rec.status = "done"
            rec.outputs = outputs
            rec.rows = rows
            rec.finished = time.time()
            rec.seconds = round(rec.finished - (rec.started or rec.finished), 3)
            if rec.total is not None:
                rec.done = rec.total
            if note is not None:
                rec.note = note
        self.save()

    def fail(self, name: str, error: str) -> None:
        """Mark ``name`` failed with a one-line reason."""
        with self._lock:
            rec = self.stages[name]
            rec.status = "failed"
            rec.error = error.strip().splitlines()[0][:500] if error.strip() else "failed"
            rec.finished = time.time()
            rec.seconds = round(rec.finished - (rec.started or rec.finished), 3)
        self.save()


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read a manifest JSON document (a file, or a run directory holding ``manifest.json``).

    Raises
    ------
    InputError
        If the file is missing or not a scanner manifest.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise InputError("no run manifest here (has `scanner run` started in this directory?)", source=path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"manifest is not valid JSON: {exc}", source=path) from exc
    if not isinstance(data, dict) or data.get("format") != "scanner-manifest":
        raise InputError("not a scanner run manifest (format field missing)", source=path)
    return data


# ---- fingerprints --------------------------------------------------------------------------------


def parquet_rows(files: Iterable[Path]) -> int:
    """Total rows of Parquet files, from their footers (no data read)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files if str(f).endswith(".parquet"))


# ---- display -------------------------------------------------------------------------------------


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    s = max(0.0, float(s))
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def stage_eta(rec: Mapping[str, Any], now: float) -> float | None:
    """Seconds left for a running stage: elapsed / done * (total - done); None when not estimable."""
    if rec.get("status") != "running":
        return 0.0 if rec.get("status") == "done" else None
    done, total, started = rec.get("done") or 0, rec.get("total"), rec.get("started")
    if not total or not started or done <= 0:
        return None
    return (now - started) / done * max(0, total - done)


def status_rows(doc: Mapping[str, Any], now: float | None = None) -> list[dict[str, str]]:
    """Display rows (all strings) for a manifest document: stage, status, done/total, rows, elapsed, left."""
    now = time.time() if now is None else now
    out = []
    for name in doc.get("order", []):
        rec = doc["stages"].get(name, {})
        status = rec.get("status", "pending")
        total = rec.get("total")
        done = rec.get("done") or 0
        progress = f"{done}/{total} {rec.get('unit', '')}".strip() if total is not None else "-"
        if status == "running" and rec.get("started"):
            elapsed = now - rec["started"]
        else:
            elapsed = rec.get("seconds")
        eta = stage_eta(rec, now)
        left = _fmt_seconds(eta) if status == "running" else ("0s" if status == "done" else "-")
        if status == "running" and eta is None:
            left = "?"
        rows = rec.get("rows")
        out.append(
            {
                "stage": name,
                "status": status,
                "progress": progress,
                "rows": f"{rows:,}" if isinstance(rows, int) else "-",
                "elapsed": _fmt_seconds(elapsed) if elapsed is not None else "-",
                "left": left,
                "note": rec.get("error") or rec.get("note") or "",
            }
        )
    return out


def format_status(doc: Mapping[str, Any], now: float | None = None) -> str:
    """A plain-text table of :func:`status_rows` plus the run's elapsed time and estimated time left."""
    now = time.time() if now is None else now
    rows = status_rows(doc, now)
    cols = ["stage", "status", "progress", "rows", "elapsed", "left", "note"]
    cells = [cols] + [[r[c] for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    stages = [doc["stages"].get(n, {}) for n in doc.get("order", [])]
    started = doc.get("run_started")
    active = any(s.get("status") == "running" for s in stages)
    pending = any(s.get("status") == "pending" for s in stages)
    summary = []
    if started:
        end = now if active else max([s.get("finished") or started for s in stages] + [started])
        summary.append(f"elapsed {_fmt_seconds(end - started)}")
    if active:
        etas = [stage_eta(s, now) for s in stages if s.get("status") == "running"]
        if any(e is None for e in etas):
            summary.append("time left: not yet estimable")
        else:
            more = " + stages not started" if pending else ""
            summary.append(f"time left: {_fmt_seconds(sum(etas))}{more}")
    elif all(s.get("status") == "done" for s in stages) and stages:
        summary.append("all stages done")
    return "\n".join(lines + ([", ".join(summary)] if summary else []))
