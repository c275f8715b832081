"""The run directory: staging, one-step publishing, resume, carried partitions, locks, path checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pytest

from scanner.errors import InputError
from scanner.io import write_parquet_atomic
from scanner.store import DATASETS, PUBLISHED, LockedError, RunDir


def _write(path, n=3):
    write_parquet_atomic(pa.table({"x": list(range(n))}), path)


def test_every_dataset_names_a_schema_that_exists():
    import scanner.schemas as schemas

    for spec in DATASETS.values():
        assert spec.schema is None or hasattr(schemas, spec.schema), spec
        # every Parquet dataset has row keys; the others (plain files) have none
        assert all(k.isidentifier() for k in spec.keys)
        assert spec.keys or spec.schema is None, spec


def test_staging_is_invisible_until_published_then_replaces_in_one_step(tmp_path):
    run = RunDir(tmp_path / "out")
    ds = run.dataset("predictions")
    first = ds.staging("fp-one")
    _write(first.path("A", "chr1") / "part-0.parquet")
    assert ds.files() == []  # nothing visible while staged
    first.write_record({"genome": "g.fa"})
    first.publish()
    assert [f.name for f in ds.files()] == ["part-0.parquet"]
    assert ds.record() == {"genome": "g.fa"} and ds.published()["fingerprint"] == "fp-one"
    assert ds.published()["files"] == ["tf=A/chrom=chr1/part-0.parquet"]
    # a second run with other settings replaces the whole state: the old file does not linger
    second = ds.staging("fp-two")
    _write(second.path("A", "chr1") / "part-X.parquet")
    second.publish()
    assert [f.name for f in ds.files()] == ["part-X.parquet"]
    assert not (tmp_path / "out" / ".staging").exists() or not any((tmp_path / "out" / ".staging").iterdir())


def test_resume_reuses_units_and_settings_never_mix(tmp_path):
    run = RunDir(tmp_path)
    ds = run.dataset("instances")
    a = ds.staging("settings-a")
    unit = a.path("CTCF", "chr1") / "shard-0000.parquet"
    _write(unit)
    # interrupted; a rerun with the same settings finds the unit, one with other settings does not
    assert ds.staging("settings-a").done(unit)
    b = ds.staging("settings-b")
    assert not b.done(b.path("CTCF", "chr1") / "shard-0000.parquet")
    assert a.root != b.root


def test_carry_keeps_other_partitions_and_discard_drops_unplanned_units(tmp_path):
    run = RunDir(tmp_path)
    ds = run.dataset("predictions")
    s = ds.staging("one")
    _write(s.path("A", "chr1") / "a.parquet")
    _write(s.path("B", "chr1") / "b.parquet")
    s.publish()
    # re-score TF B only: A's files are carried, B's old file is not
    s2 = ds.staging("two", carry=[("A",)])
    new = s2.path("B", "chr1") / "b2.parquet"
    _write(new)
    stray = s2.path("B", "chr2") / "old-attempt.parquet"
    _write(stray)
    s2.discard({new, *s2.path("A").rglob("*.parquet")})
    s2.publish()
    assert sorted(f.name for f in ds.files()) == ["a.parquet", "b2.parquet"]


def test_recover_finishes_an_interrupted_publish(tmp_path):
    run = RunDir(tmp_path)
    ds = run.dataset("labelled")
    s = ds.staging("x")
    _write(s.path("A", "chr1") / "p.parquet")
    (s.root / PUBLISHED).write_text(json.dumps({"fingerprint": "x", "files": []}))
    assert not ds.root.exists()  # crash after renaming the old dataset away
    run.recover()
    assert [f.name for f in ds.files()] == ["p.parquet"]


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nfrom scanner.store import RunDir\n"
            f"with RunDir({str(tmp_path)!r}).lock('predictions'):\n    print('held', flush=True)\n    time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    run = RunDir(tmp_path)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=rf"pid {holder.pid} on .*wait for it") as e:
            with run.lock("predictions"):
                pass
        assert e.value.source is not None
        with run.lock("attributions"):  # another dataset is another lock
            pass
    finally:
        holder.kill()
        holder.wait()
    with run.lock("predictions"):  # the dead holder's lock is taken over
        with run.lock("predictions"):  # re-entrant within one process
            pass
        assert (tmp_path / ".locks" / "predictions.lock").is_file()  # the inner hold did not release it
    assert not (tmp_path / ".locks").exists()


def test_a_dead_process_lock_is_taken_over(tmp_path):
    run = RunDir(tmp_path)
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)
    lock = tmp_path / ".locks" / "predictions.lock"
    lock.parent.mkdir()
    import socket

    lock.write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "started": 0, "command": "scanner x"}))
    with run.lock("predictions") as me:
        assert me["pid"] == os.getpid()
    assert not lock.parent.exists()  # released, and the empty lock directory tidied away
    # another host's lock is reported with the file to remove
    lock.parent.mkdir()
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": 0, "command": "scanner y"}))
    with pytest.raises(LockedError, match=r"remove .*predictions\.lock"):
        with run.lock("predictions"):
            pass


def test_output_path_checks_name_the_path(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    with pytest.raises(InputError, match="not a directory") as e:
        RunDir(f).check_writable()
    assert str(f) in str(e.value)
    with pytest.raises(InputError, match="cannot write the output"):
        RunDir(f / "below").check_writable()
    RunDir(tmp_path / "new" / "deep").check_writable()
    run = RunDir(tmp_path)
    with pytest.raises(InputError, match="overlaps the instances"):
        run.check_no_overlap(tmp_path / "inst" / "pred", {"instances": tmp_path / "inst"})
    run.check_no_overlap(tmp_path / "pred", {"instances": tmp_path / "inst", "genome": None})
