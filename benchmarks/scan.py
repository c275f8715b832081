"""Benchmark: `scanner scan` as users run it, against memelite's fimo, MOODS and FIMO (pymemesuite).

Every contender runs in its own fresh process and its time is that process's wall time, start to
exit: Python start, imports, reading the FASTA and the motifs, building its tables/thresholds, the
scan. The scanner's time also holds writing its Parquet output; the others keep their hits in memory,
and the time this script then spends writing their hit list for the comparison is subtracted.
JIT-compiled contenders (scanner, memelite: numba) run cold (empty numba cache) and warm; the scanner
also with its motif-table cache warm (a second scan with the same motifs). The parent samples the
resident memory of each process tree.

Motif sets: ``jaspar2024-50`` (50 JASPAR 2024 CORE vertebrate motifs, seeded, 6-21 columns: the
project's set), ``jaspar2026-50`` (50 JASPAR 2026 CORE vertebrate motifs of 5-22 columns, seeded;
this seed draws 5-17), ``ctcf`` (MA0139.2). Genome: seeded, 5 chromosomes, A/T 0.3, C/G 0.2, N gaps,
15% soft-masked. p < 1e-4, uniform background for every tool (memelite supports only that).

The exact hit set is computed by ``benchmarks/_truth.py`` (numpy only, no scanner code); each tool's
hits are compared with it and differences classified (windows containing N, motifs whose best word
cannot reach the threshold, windows near the threshold, other). ``scanner --pvalue-mode fimo`` is
compared with pymemesuite's FIMO on every hit (score and p-value).

    python benchmarks/scan.py                                   # both 50-motif sets, FIMO included
    python benchmarks/scan.py --sets jaspar2026-50 --skip fimo --repeats 1
    python benchmarks/scan.py --large --sets none               # 100 Mb x all JASPAR 2024 vertebrates

Prints tables and writes benchmarks/results/scan.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
RESULTS = HERE / "results"
THRESHOLD = 1e-4
SETS = ("jaspar2024-50", "jaspar2026-50", "ctcf")


# ---- data --------------------------------------------------------------------------------------


def make_genome(path: Path, size_mb: int, seed: int = 7, gaps: bool = True) -> Path:
    """Seeded genome: 5 chromosomes, A/T 0.3, C/G 0.2, N gaps (telomeres + 4 internal, unless not
    ``gaps``), 15% soft-masked."""
    rng = np.random.default_rng(seed)
    n_chrom = 5
    length = size_mb * 1_000_000 // n_chrom
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    with open(path, "wb") as fh:
        for c in range(n_chrom):
            seq = letters[rng.choice(4, length, p=[0.3, 0.2, 0.2, 0.3])]
            if gaps:
                seq[:10_000] = ord("N")
                seq[-10_000:] = ord("N")
                for _ in range(4):
                    s = int(rng.integers(20_000, length - 120_000))
                    seq[s : s + int(rng.integers(20_000, 100_000))] = ord("N")
            masked = 0
            while masked < 0.15 * length:
                s = int(rng.integers(0, length - 3000))
                w = int(rng.integers(300, 3000))
                run = seq[s : s + w]
                upper = (run >= ord("A")) & (run <= ord("Z")) & (run != ord("N"))
                run[upper] += 32
                masked += w
            fh.write(f">chr{c + 1}\n".encode())
            for i in range(0, length, 60):
                fh.write(seq[i : i + 60].tobytes() + b"\n")
    return path


def _to_motifs(ms) -> list:
    from scanner.motifs import Motif

    out = []
    for m in ms:
        counts = np.array([m.counts[b] for b in "ACGT"], dtype=np.float64).T
        sums = counts.sum(axis=1)
        out.append(Motif(m.matrix_id, m.name, counts / sums[:, None], max(1, round(float(sums.mean())))))
    return out


def pick_motifs(name: str, seed: int = 7) -> list:
    """A named motif set (see the module docstring), resolved offline through pyjaspar."""
    from pyjaspar import jaspardb

    if name == "ctcf":
        return _to_motifs([jaspardb(release="JASPAR2024").fetch_motif_by_id("MA0139.2")])
    release = {"jaspar2024": "JASPAR2024", "jaspar2026": "JASPAR2026"}[name.split("-")[0]]
    pool = jaspardb(release=release).fetch_motifs(collection="CORE", tax_group=["vertebrates"], all_versions=False)
    pool = sorted(pool, key=lambda m: m.matrix_id)
    if name.endswith("-all"):
        return _to_motifs(pool)
    if release == "JASPAR2026":
        pool = [m for m in pool if 5 <= m.length <= 22]
    idx = np.random.default_rng(seed).choice(len(pool), 50, replace=False)
    return _to_motifs([pool[i] for i in sorted(idx)])


# ---- children: one tool each -----------------------------------------------------------------------


def child(tool: str, genome: Path, meme: Path, out: Path, extra: str) -> None:
    """One contender, in its own process; writes out/info.json (and out/hits.parquet unless counting)."""
    info: dict = {}
    count_only = extra == "count"
    if tool == "memelite":
        import polars as pl
        from memelite import fimo

        res = fimo(str(meme), str(genome), threshold=THRESHOLD)
        t_export = time.perf_counter()
        info["hits"] = int(sum(len(d) for d in res))
        if not count_only:
            frames = [
                pl.from_pandas(d[["motif_name", "sequence_name", "start", "strand", "p-value"]]) for d in res if len(d)
            ]
            df = pl.concat(frames).select(
                pl.col("motif_name").str.split(" ").list.first().alias("motif_id"),
                pl.col("sequence_name").alias("chrom"),
                pl.col("start").cast(pl.Int64),
                pl.col("strand"),
                pl.col("p-value").alias("pvalue"),
            )
            df.write_parquet(out / "hits.parquet")
        info["export_s"] = time.perf_counter() - t_export
    elif tool == "moods":
        import MOODS.scan
        import MOODS.tools

        from scanner.motifs.readers import read_meme

        motifs, _ = read_meme(meme)
        bg = MOODS.tools.flat_bg(4)
        mats = []
        for m in motifs:  # counts with FIMO's pseudocount 0.1 spread by the background
            mats.append(MOODS.tools.log_odds((m.probs * m.nsites).T.tolist(), bg, 0.1))
        mats = mats + [MOODS.tools.reverse_complement(x) for x in mats]
        thresholds = [MOODS.tools.threshold_from_p(x, bg, THRESHOLD) for x in mats]
        rows = {"motif_id": [], "chrom": [], "start": [], "strand": []}
        export = [0.0, 0]

        def flush(name, seq):
            results = MOODS.scan.scan_dna("".join(seq).upper(), mats, bg, thresholds, 7)
            t = time.perf_counter()
            for i, hits in enumerate(results):
                export[1] += len(hits)
                if count_only:
                    continue
                m = motifs[i % len(motifs)]
                strand = "+" if i < len(motifs) else "-"
                for h in hits:
                    rows["motif_id"].append(m.motif_id)
                    rows["chrom"].append(name)
                    rows["start"].append(h.pos)
                    rows["strand"].append(strand)
            export[0] += time.perf_counter() - t

        name, seq = None, []
        with open(genome) as fh:
            for line in fh:
                if line.startswith(">"):
                    if name is not None:
                        flush(name, seq)
                    name, seq = line[1:].strip(), []
                else:
                    seq.append(line.strip())
        flush(name, seq)
        t = time.perf_counter()
        if not count_only:
            import polars as pl

            schema = {"motif_id": pl.Utf8, "chrom": pl.Utf8, "start": pl.Int64, "strand": pl.Utf8}
            pl.DataFrame(rows, schema=schema).write_parquet(out / "hits.parquet")
        info["export_s"] = export[0] + time.perf_counter() - t
        info["hits"] = export[1]
    elif tool == "fimo":
        import polars as pl
        from pymemesuite.common import Alphabet, Array, Background, MotifFile, Sequence
        from pymemesuite.fimo import FIMO

        with MotifFile(str(meme)) as mf:
            motifs = list(mf)
        bg = Background(Alphabet.dna(), Array([0.25] * 4))
        seqs, name, parts = [], None, []
        with open(genome) as fh:
            for line in fh:
                if line.startswith(">"):
                    if name:
                        seqs.append(Sequence("".join(parts), name=name.encode()))
                    name, parts = line[1:].strip(), []
                else:
                    parts.append(line.strip())
        seqs.append(Sequence("".join(parts), name=name.encode()))
        rows = {"motif_id": [], "chrom": [], "start": [], "strand": [], "score": [], "pvalue": []}
        fimo = FIMO(both_strands=True, threshold=THRESHOLD, max_stored_scores=50_000_000)
        export = 0.0
        for m in motifs:
            pat = fimo.score_motif(m, seqs, bg)
            t = time.perf_counter()
            for e in pat.matched_elements:
                rows["motif_id"].append(m.accession.decode())
                rows["chrom"].append(e.source.accession.decode())
                rows["start"].append(min(e.start, e.stop) - 1)
                rows["strand"].append(e.strand)
                rows["score"].append(e.score)
                rows["pvalue"].append(e.pvalue)
            export += time.perf_counter() - t
        t = time.perf_counter()
        pl.DataFrame(rows).write_parquet(out / "hits.parquet")
        info["export_s"] = export + time.perf_counter() - t
        info["hits"] = len(rows["start"])
    else:
        raise ValueError(tool)
    (out / "info.json").write_text(json.dumps(info))


# ---- parent: run, measure, compare --------------------------------------------------------------


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/statm") as fh:
                rss[int(d)] = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            children.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError, IndexError):
            continue
    total, stack = 0, [root]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def load() -> float:
    return os.getloadavg()[0]


def run_process(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; its wall time (start to exit), peak tree RSS and the load average before it."""
    before = load()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    output = proc.communicate()[0].decode(errors="replace")
    wall = time.perf_counter() - t0
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    th.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{output[-3000:]}")
    # CPU seconds of the process and the children it waited for (less sensitive to a busy machine
    # than wall time; Ray's daemon processes are not counted)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {
        "process_wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": peak[0] / 2**20,
        "load_before": before,
        "output": output[-2000:],
    }


def _env(numba_cache: Path, **extra) -> dict:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", NUMBA_CACHE_DIR=str(numba_cache))
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def run_scanner(genome: Path, meme: Path, out: Path, numba_cache: Path, table_cache: Path, *flags: str) -> dict:
    """``scanner scan`` (the default command, or with ``flags``) in a fresh process."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "scanner.cli", "scan", "-g", str(genome), "-m", str(meme), "-o", str(out)]
    cmd += ["--background", "uniform", "--table-cache", str(table_cache), *flags]
    info = run_process(cmd, _env(numba_cache))
    meta = json.loads((out / "instances" / "_scan.json").read_text())
    markers = list((out / "instances" / "_shards").glob("*.json"))
    info.update(
        wall_s=info["process_wall_s"],
        hits=int(sum(meta["hits"].values())),
        shard_wall_s=sum(json.loads(p.read_text())["seconds"] for p in markers),
        shard_cpu_s=sum(json.loads(p.read_text()).get("cpu_seconds", 0.0) for p in markers),
        executor=meta["executor"],
        undecided=meta["undecided_windows"],
        unreachable=meta["unreachable"],
        exact_pvalues=meta["exact_pvalues"],
        max_rel_pvalue_error=meta["max_rel_pvalue_error"],
    )
    return info


def run_other(tool: str, genome: Path, meme: Path, out: Path, numba_cache: Path, extra: str = "") -> dict:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [sys.executable, __file__, "--child", tool, str(genome), str(meme), str(out), extra or "-"]
    info = run_process(cmd, _env(numba_cache))
    child_info = json.loads((out / "info.json").read_text())
    info.update(child_info)
    info["wall_s"] = info["process_wall_s"] - child_info.get("export_s", 0.0)
    return info


def best_of(runs: list[dict]) -> dict:
    best = min(runs, key=lambda r: r["wall_s"])
    return {
        **best,
        "walls_s": [round(r["wall_s"], 3) for r in runs],
        "cpus_s": [round(r["cpu_s"], 3) for r in runs],
        "loads_before": [r["load_before"] for r in runs],
    }


def scanner_hits(out: Path):
    import polars as pl

    return pl.scan_parquet(f"{out}/instances/**/*.parquet", hive_partitioning=True).collect()


def compare(tool_keys: set, truth: dict, facts: dict, genome_codes: dict, motifs: dict) -> dict:
    """Differences between a tool's hit set and the exact one, with their causes."""
    import _truth

    only_tool = tool_keys - truth.keys()
    only_truth = truth.keys() - tool_keys
    cache: dict = {}
    bg = np.full(4, 0.25)
    comp = np.array([3, 2, 1, 0, 4], dtype=np.uint8)

    def causes(keys) -> dict:
        out = {"with_N": 0, "motif_cannot_reach_threshold": 0, "near_threshold": 0, "other": 0}
        for motif_id, chrom, start, strand in keys:
            if facts[motif_id]["unreachable"]:
                out["motif_cannot_reach_threshold"] += 1
                continue
            length = motifs[motif_id][0].shape[0]
            word = genome_codes[chrom][start : start + length]
            if word.size < length or (word > 3).any():
                out["with_N"] += 1
                continue
            if strand == "-":
                word = comp[word[::-1]]
            p = _truth.true_pvalue(cache, motifs, motif_id, word, bg)
            out["near_threshold" if abs(np.log10(max(p, 1e-300)) - np.log10(THRESHOLD)) < 0.3 else "other"] += 1
        return out

    return {
        "hits": len(tool_keys),
        "same": len(tool_keys) - len(only_tool),
        "only_tool": len(only_tool),
        "only_exact": len(only_truth),
        "only_tool_causes": causes(only_tool),
        "only_exact_causes": causes(only_truth),
    }


def _keys(df) -> set:
    return set(df.select("motif_id", "chrom", "start", "strand").iter_rows())


def fimo_effective_meme(meme: Path, out: Path) -> Path:
    """A MEME file of the motif frequencies pymemesuite's FIMO scores with (after its pseudocount)."""
    from pymemesuite.common import MotifFile

    lines = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "", "Background letter frequencies"]
    lines += ["A 0.25 C 0.25 G 0.25 T 0.25", ""]
    with MotifFile(str(meme)) as mf:
        for m in mf:
            lines += [f"MOTIF {m.accession.decode()} {m.name.decode()}", ""]
            lines.append(f"letter-probability matrix: alength= 4 w= {m.width} nsites= 20 E= 0")
            for i in range(m.width):
                lines.append(" ".join(repr(float(m.frequencies[i][j])) for j in range(4)))
            lines.append("")
    out.write_text("\n".join(lines) + "\n")
    return out


def fimo_agreement(scanner_fimo, fimo) -> dict:
    """Scanner ``--pvalue-mode fimo`` against FIMO on every hit: sets, scores and p-values."""
    import polars as pl

    key = ["motif_id", "chrom", "start", "strand"]
    a = scanner_fimo.select(*key, pl.col("score").cast(pl.Float64), "pvalue")
    b = fimo.select(*key, pl.col("score").alias("score_fimo"), pl.col("pvalue").alias("pvalue_fimo"))
    both = a.join(b, on=key, how="inner")
    return {
        "scanner_hits": a.height,
        "fimo_hits": b.height,
        "both": both.height,
        "only_scanner": a.join(b, on=key, how="anti").height,
        "only_fimo": b.join(a, on=key, how="anti").height,
        "max_abs_score_diff": float((both["score"] - both["score_fimo"]).abs().max() or 0.0),
        "max_rel_pvalue_diff": float(((both["pvalue"] - both["pvalue_fimo"]).abs() / both["pvalue_fimo"]).max() or 0.0),
    }


def _slug(label: str) -> str:
    return "out_" + "".join(c if c.isalnum() else "_" for c in label)


def run_set(name: str, genome: Path, repeats: int, skip: set, with_ray: bool) -> dict:
    import _truth
    import polars as pl

    from scanner.motifs import write_meme

    motifs = pick_motifs(name)
    meme = write_meme(motifs, WORK / f"motifs_{name}.meme")
    lengths = sorted(m.length for m in motifs)
    print(f"\n== {name}: {len(motifs)} motifs of {lengths[0]}-{lengths[-1]} columns", file=sys.stderr, flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="scanbench_", dir=WORK))
    results: dict = {}

    def scanner_variant(label: str, fresh_numba: bool, fresh_tables: bool, *flags: str) -> None:
        runs = []
        for r in range(repeats):
            nc = tmp / f"numba_scanner_cold{r}" if fresh_numba else tmp / "numba_scanner"
            tc = tmp / f"tables_{label}{r}" if fresh_tables else tmp / "tables_warm"
            print(f"  {label} run {r + 1} ...", file=sys.stderr, flush=True)
            runs.append(run_scanner(genome, meme, tmp / _slug(label), nc, tc, *flags))
        results[label] = best_of(runs)

    # warm-up: fill the warm numba cache and the warm table cache (not timed)
    run_scanner(genome, meme, tmp / "out_warmup", tmp / "numba_scanner", tmp / "tables_warm")
    scanner_variant("scanner (cold: numba + tables)", True, True)
    scanner_variant("scanner (warm numba, new tables)", False, True)
    scanner_variant("scanner (warm numba + tables)", False, False)
    if with_ray:
        scanner_variant("scanner --ray (warm)", False, False, "--ray")
    for tool, labels in (("memelite", ("cold", "warm")), ("moods", ("",))):
        if tool in skip:
            continue
        if tool == "memelite":
            run_other("memelite", genome, meme, tmp / "mm_warmup", tmp / "numba_memelite")  # fills the cache
        for lab in labels:
            runs = []
            for r in range(repeats):
                nc = tmp / f"numba_memelite_cold{r}" if lab == "cold" else tmp / "numba_memelite"
                label = f"{tool} ({lab})" if lab else tool
                print(f"  {label} run {r + 1} ...", file=sys.stderr, flush=True)
                runs.append(run_other(tool, genome, meme, tmp / f"out_{tool}", nc))
            results[label] = best_of(runs)
            results[label]["hit_table"] = str(tmp / f"out_{tool}" / "hits.parquet")
    fimo_cmp = None
    if "fimo" not in skip:
        print("  FIMO (pymemesuite) ...", file=sys.stderr, flush=True)
        results["FIMO (pymemesuite)"] = run_other("fimo", genome, meme, tmp / "out_fimo", tmp / "numba_none")
        run_scanner(
            genome, meme, tmp / "out_fimo_mode", tmp / "numba_scanner", tmp / "tables_warm", "--pvalue-mode", "fimo"
        )
        fimo_cmp = fimo_agreement(
            scanner_hits(tmp / "out_fimo_mode"), pl.read_parquet(tmp / "out_fimo" / "hits.parquet")
        )

    print("  exact reference (numpy, benchmarks/_truth.py) ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    truth, facts = _truth.exact_hits(genome, meme, THRESHOLD, np.full(4, 0.25))
    truth_s = time.perf_counter() - t
    genome_codes = _truth.read_fasta(genome)
    mdict = {m: (p, n) for m, p, n in _truth.read_meme(meme)}
    ours = _keys(scanner_hits(tmp / _slug("scanner (warm numba, new tables)")))
    for label, info in results.items():
        if label.startswith("scanner"):
            keys = ours
        elif "hit_table" in info:
            keys = _keys(pl.read_parquet(info.pop("hit_table")))
        else:
            keys = _keys(pl.read_parquet(tmp / "out_fimo" / "hits.parquet"))
        info["agreement"] = compare(keys, truth, facts, genome_codes, mdict)
        info.pop("output", None)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "motifs": [m.motif_id for m in motifs],
        "lengths": lengths,
        "results": results,
        "truth": {
            "hits": len(truth),
            "seconds": truth_s,
            "unreachable": {k: v["best_pvalue"] for k, v in facts.items() if v["unreachable"]},
            "undecided_by_reference": sum(v["undecided"] for v in facts.values()),
        },
        "fimo_mode_vs_fimo": fimo_cmp,
    }


def print_set(name: str, rep: dict, bases: int) -> None:
    res = rep["results"]
    others = [v["wall_s"] for k, v in res.items() if k in ("memelite (warm)", "moods")]
    fastest = min(others) if others else float("nan")
    print(
        f"\n{name}: {len(rep['motifs'])} motifs ({rep['lengths'][0]}-{rep['lengths'][-1]} columns), "
        f"{bases / 1e6:.1f} Mb of A/C/G/T, p < {THRESHOLD}; exact reference: {rep['truth']['hits']} hits"
    )
    print(
        f"{'contender':34} {'wall s':>7} {'runs':>14} {'CPU s':>6} {'peak MB':>8} {'hits':>9} {'= exact':>9} "
        f"{'extra':>8} "
        f"{'missed':>7} {'vs fastest other':>16}"
    )
    for label, info in res.items():
        a = info["agreement"]
        runs = ",".join(f"{w:.1f}" for w in info.get("walls_s", [info["wall_s"]]))
        print(
            f"{label:34} {info['wall_s']:7.2f} {runs:>14} {info.get('cpu_s', float('nan')):6.1f} "
            f"{info['peak_rss_mb']:8.0f} {a['hits']:9d} {a['same']:9d} "
            f"{a['only_tool']:8d} {a['only_exact']:7d} {info['wall_s'] / fastest:15.2f}x"
        )
    for label, info in res.items():
        a = info["agreement"]
        if a["only_tool"] or a["only_exact"]:
            print(f"  {label}: extra {a['only_tool_causes']}  missed {a['only_exact_causes']}")
    print(f"  motifs that cannot reach p < {THRESHOLD} (best p-value): {rep['truth']['unreachable']}")
    if rep["fimo_mode_vs_fimo"]:
        print(f"  scanner --pvalue-mode fimo vs FIMO: {rep['fimo_mode_vs_fimo']}")


def run_large(size_mb: int, skip: set) -> dict:
    """100 Mb (no N gaps) x all JASPAR 2024 CORE vertebrate motifs: speed, hits and memory only."""
    from scanner.motifs import write_meme

    genome = WORK / f"genome_{size_mb}mb_nogaps.fa"
    if not genome.exists():
        make_genome(genome, size_mb, seed=11, gaps=False)
    motifs = pick_motifs("jaspar2024-all")
    meme = write_meme(motifs, WORK / "motifs_jaspar2024-all.meme")
    tmp = Path(tempfile.mkdtemp(prefix="scanbench_large_", dir=WORK))
    res = {}
    run_scanner(
        genome,
        WORK / "motifs_jaspar2026-50.meme" if (WORK / "motifs_jaspar2026-50.meme").exists() else meme,
        tmp / "warm",
        tmp / "numba_scanner",
        tmp / "tables_unused",
    )  # warm numba only
    print("  large: scanner (warm numba, new tables) ...", file=sys.stderr, flush=True)
    res["scanner (warm numba, new tables)"] = run_scanner(
        genome, meme, tmp / "out", tmp / "numba_scanner", tmp / "tables"
    )
    print("  large: scanner (warm numba + tables) ...", file=sys.stderr, flush=True)
    res["scanner (warm numba + tables)"] = run_scanner(genome, meme, tmp / "out", tmp / "numba_scanner", tmp / "tables")
    if "memelite" not in skip:
        small = WORK / "motifs_jaspar2026-50.meme"
        run_other("memelite", genome, small if small.exists() else meme, tmp / "mm", tmp / "numba_memelite", "count")
        print("  large: memelite (warm) ...", file=sys.stderr, flush=True)
        res["memelite (warm)"] = run_other("memelite", genome, meme, tmp / "mm", tmp / "numba_memelite", "count")
    if "moods" not in skip:
        print("  large: MOODS ...", file=sys.stderr, flush=True)
        res["moods"] = run_other("moods", genome, meme, tmp / "moods", tmp / "numba_none", "count")
    for info in res.values():
        info.pop("output", None)
    ours = res["scanner (warm numba + tables)"]
    per_mb_motif_core_s = ours["shard_cpu_s"] / (size_mb * len(motifs))
    table_s = res["scanner (warm numba, new tables)"]["wall_s"] - ours["wall_s"]
    human = {
        "genome_mb": 3100,
        "motifs": len(motifs),
        "cores": 16,
        "shards_s": 3100 * len(motifs) * per_mb_motif_core_s / 16,
        "tables_s_on_2_cores_once": table_s,
    }
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "genome_mb": size_mb,
        "motifs": len(motifs),
        "results": res,
        "per_mb_per_motif_core_s": per_mb_motif_core_s,
        "human_16_cores_estimate": human,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=50)
    ap.add_argument("--sets", default="jaspar2024-50,jaspar2026-50", help=f"comma-separated, of {SETS}, or none")
    ap.add_argument("--repeats", type=int, default=2, help="runs per configuration (best kept)")
    ap.add_argument("--skip", default="", help="tools to skip: memelite, moods, fimo")
    ap.add_argument("--with-ray", action="store_true", help="also time `scanner scan --ray`")
    ap.add_argument("--large", action="store_true", help="also 100 Mb x all JASPAR 2024 vertebrate motifs")
    ap.add_argument("--large-size-mb", type=int, default=100)
    ap.add_argument("--out", default=str(RESULTS / "scan.json"))
    ap.add_argument("--child", nargs=5, metavar=("TOOL", "GENOME", "MEME", "OUT", "EXTRA"))
    args = ap.parse_args()
    if args.child:
        tool, genome, meme, out, extra = args.child
        child(tool, Path(genome), Path(meme), Path(out), extra)
        return
    sys.path.insert(0, str(HERE))
    WORK.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    genome = WORK / f"genome_{args.size_mb}mb.fa"
    if not genome.exists():
        make_genome(genome, args.size_mb)
    import _truth

    bases = sum(int((c < 4).sum()) for c in _truth.read_fasta(genome).values())
    report: dict = {
        "genome_mb": args.size_mb,
        "acgt_bases": bases,
        "threshold": THRESHOLD,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "load_at_start": list(os.getloadavg()),
        "sets": {},
    }
    for name in [s for s in args.sets.split(",") if s and s != "none"]:
        report["sets"][name] = run_set(name, genome, args.repeats, skip, args.with_ray)
        print_set(name, report["sets"][name], bases)
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    if args.large:
        report["large"] = run_large(args.large_size_mb, skip)
        lg = report["large"]
        print(f"\nlarge: {lg['genome_mb']} Mb x {lg['motifs']} motifs")
        for label, info in lg["results"].items():
            print(f"  {label:34} wall {info['wall_s']:8.1f} s  peak {info['peak_rss_mb']:6.0f} MB  hits {info['hits']}")
        h = lg["human_16_cores_estimate"]
        print(
            f"  per Mb per motif: {lg['per_mb_per_motif_core_s'] * 1e3:.3f} core-ms; human genome x "
            f"{h['motifs']} motifs on 16 cores: ~{h['shards_s'] / 60:.1f} min of shards (+ tables once)"
        )
    report["load_at_end"] = list(os.getloadavg())
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
