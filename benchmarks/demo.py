"""The main job as a user runs it: ``scanner demo`` from process start to exit, its peak memory and results.

Runs ``scanner demo --out WORK/demo`` in a fresh process (the installed command, local Ray started by
it), samples the memory of the whole process tree (the command, the Ray processes it starts and their
workers; proportional set size, so libraries shared between workers count once) every 0.25 s, then
reads the run's ``metrics.parquet`` (test rows) and the simulated-rule checks the demo prints. Writes
``benchmarks/results/demo.json`` and rewrites the marked figures in README.md and benchmarks/RESULTS.md
(between ``<!-- demo:NAME -->`` and ``<!-- /demo:NAME -->``): the README shows this script's last run.

Run: ``python benchmarks/demo.py [--work DIR]`` (about 5-6 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from _marked import rewrite_marked

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _tree_pss(root: int) -> int:
    """Proportional set size of ``root`` and every descendant, in bytes (Linux ``/proc``; vanished: 0)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:  # proportional set size: shared pages (torch's libraries in every worker) counted once
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                total += next(int(ln.split()[1]) for ln in fh if ln.startswith("Pss:")) * 1024
        except (OSError, IndexError, ValueError, StopIteration):
            pass
    return total


def _run_measured(cmd: list[str], log: Path) -> tuple[float, int, int]:
    """Run ``cmd`` with stdout+stderr to ``log``; return (wall seconds, peak tree PSS bytes, exit code)."""
    peak = 0
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.25):
                peak = max(peak, _tree_pss(proc.pid))

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        rc = proc.wait()
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
    return wall, peak, rc


def _minutes(s: float) -> str:
    m, s = divmod(round(s), 60)
    return f"{m} min {s} s" if m else f"{s} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=HERE / "_work" / "demo")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "demo.json")
    parser.add_argument("--repeats", type=int, default=1, help="runs (this machine's speed drifts run to run)")
    args = parser.parse_args()
    import polars as pl

    run = args.work / "demo"
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "demo.log"
    exe = shutil.which("scanner") or str(Path(sys.executable).with_name("scanner"))
    runs = []
    for _ in range(args.repeats):
        shutil.rmtree(run, ignore_errors=True)
        for _ in range(60):  # let the previous run's load settle (up to 2 min)
            if os.getloadavg()[0] < 1:
                break
            time.sleep(2)
        load = os.getloadavg()[0]
        wall, peak, rc = _run_measured([exe, "demo", "--out", str(run)], log)
        text = log.read_text()
        if rc != 0:
            sys.exit(f"scanner demo exited {rc}; see {log}")
        stages = {m[0]: float(m[1]) for m in re.findall(r"^\[(.+?)\] done in ([\d.]+) s$", text, re.M)}
        runs.append({"load_before": round(load, 2), "wall_s": round(wall, 1), "peak_pss_gb": round(peak / 1e9, 2)})
        runs[-1]["stages_s"] = stages
        print(f"run {len(runs)}: {wall:.0f} s, load before {load:.2f}", flush=True)
    checks = re.findall(r"^\s+\[(yes|NO|skipped)\] (.+?):", text, re.M)
    test = pl.read_parquet(run / "metrics.parquet").filter(pl.col("split") == "test").sort("tf", "regime")
    cols = ("tf", "regime", "n", "n_pos", "auroc", "score_auroc", "kmer_auroc", "site_auroc", "beats_baselines")
    models = test.select(*cols)
    rows = models.to_dicts()
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count()},
        "runs": runs,
        "models": rows,
        "rule_checks": [{"passed": p, "name": n} for p, n in checks],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")

    au = [r["auroc"] for r in rows]
    beats = sum(bool(r["beats_baselines"]) for r in rows)
    passed = sum(p == "yes" for p, _ in checks)
    walls = sorted(r["wall_s"] for r in runs)
    idle = all(r["load_before"] < 1 for r in runs)
    when = (
        f"{_minutes(walls[0])}"
        if len(walls) == 1
        else f"{_minutes(walls[0])} to {_minutes(walls[-1])} ({len(walls)} runs)"
    )
    summary = (
        f"{when} from start to exit on {'an idle' if idle else 'a busy'} {os.cpu_count()}-core machine, "
        f"{max(r['peak_pss_gb'] for r in runs):.1f} GB peak memory of all its processes; {beats} of {len(rows)} "
        f"models beat every baseline, test auROC {min(au):.3f}-{max(au):.3f}; {passed} of {len(checks)} simulated "
        "rules recovered"
    )
    fastest = min(runs, key=lambda r: r["wall_s"])["stages_s"]
    stage_line = "; ".join(f"{k} {v:.0f} s" if v >= 10 else f"{k} {v:.1f} s" for k, v in fastest.items())
    print(summary)
    print("stages (fastest run):", stage_line)
    print(models)
    for p in (ROOT / "README.md", HERE / "RESULTS.md"):
        rewrite_marked(p, "demo:summary", summary, inline=True)
    rewrite_marked(HERE / "RESULTS.md", "demo:stages", stage_line, inline=True)


if __name__ == "__main__":
    main()
