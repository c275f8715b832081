"""Benchmark: genome-wide motif scanning, this project vs memelite's fimo, MOODS and FIMO (pymemesuite).

One seeded random genome (default 50 Mb in 5 chromosomes, with N gaps and soft-masked runs) and the same
motifs (1 motif: CTCF MA0139.2; 50 JASPAR 2024 CORE vertebrate motifs, seeded choice), p < 1e-4,
uniform background for every tool (memelite supports only that). Every tool runs in its own
subprocess; the parent samples the resident memory of the whole process tree (Ray's processes
included). The parent then compares every tool's hit set with this project's exact one and explains
the differences (windows containing N, motifs that cannot reach the threshold, sites near the threshold).

    python benchmarks/scan.py                 # full run (~5 min with FIMO)
    python benchmarks/scan.py --size-mb 5 --skip fimo   # quick check

Prints a table and writes benchmarks/results/scan.json.
"""

from __future__ import annotations

import argparse
import json
import os
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
TOOLS = ("scanner", "scanner-local", "memelite", "moods", "fimo")


# ---- data --------------------------------------------------------------------------------------


def make_genome(path: Path, size_mb: int, seed: int = 7) -> Path:
    """Seeded genome: 5 chromosomes, A/T 0.3, C/G 0.2, N gaps (telomeres + 4 internal), 15% soft-masked."""
    rng = np.random.default_rng(seed)
    n_chrom = 5
    length = size_mb * 1_000_000 // n_chrom
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    with open(path, "wb") as fh:
        for c in range(n_chrom):
            seq = letters[rng.choice(4, length, p=[0.3, 0.2, 0.2, 0.3])]
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


def pick_motifs(n: int, seed: int = 7) -> list:
    """n JASPAR 2024 CORE vertebrate motifs (seeded), resolved offline through pyjaspar."""
    from pyjaspar import jaspardb

    from scanner.motifs import Motif

    db = jaspardb(release="JASPAR2024")
    if n == 1:
        ms = [db.fetch_motif_by_id("MA0139.2")]
    else:
        pool = db.fetch_motifs(collection="CORE", tax_group=["vertebrates"], all_versions=False)
        pool = sorted(pool, key=lambda m: m.matrix_id)
        idx = np.random.default_rng(seed).choice(len(pool), n, replace=False)
        ms = [pool[i] for i in sorted(idx)]
    out = []
    for m in ms:
        counts = np.array([m.counts[b] for b in "ACGT"], dtype=np.float64).T
        sums = counts.sum(axis=1)
        out.append(Motif(m.matrix_id, m.name, counts / sums[:, None], max(1, round(float(sums.mean())))))
    return out


# ---- children: one tool each -----------------------------------------------------------------------


def child(tool: str, genome: Path, meme: Path, out: Path, cache: Path) -> None:
    t0 = time.perf_counter()
    info: dict = {}
    if tool in ("scanner", "scanner-local"):
        import shutil

        shutil.rmtree(out / "run", ignore_errors=True)  # a fresh scan, not a resumed one
        from scanner.scan import ScanConfig, scan_genome

        # As `scanner scan` runs it: local Ray started (and stopped) inside, tables built while it starts;
        # scanner-local as `scanner scan --local` runs it: shards on threads of this process, no Ray.
        executor = "ray" if tool == "scanner" else "local"
        s = scan_genome(
            genome, [str(meme)], out / "run", ScanConfig(background="uniform"), overwrite=True, executor=executor
        )
        info["scan_s"] = s.timings["shards_s"]  # actors ready + every shard
        info["ray_start_s"] = s.timings["setup_s"]
        import polars as pl

        t_export = time.perf_counter()
        df = pl.scan_parquet(f"{out}/run/instances/**/*.parquet", hive_partitioning=True).select(
            "motif_id", "chrom", "start", "strand", "pvalue"
        )
        df.collect().write_parquet(out / "hits.parquet")
        info["export_s"] = time.perf_counter() - t_export
        info["inexact_pvalue_motifs"] = s.inexact_motifs
        info["stage_timings"] = s.timings
        markers = (out / "run" / "instances" / "_shards").glob("*.json")
        info["shard_cpu_s"] = sum(json.loads(p.read_text())["seconds"] for p in markers)
    elif tool == "memelite":
        os.environ["NUMBA_CACHE_DIR"] = str(cache)
        import polars as pl
        from memelite import fimo

        t1 = time.perf_counter()
        res = fimo(str(meme), str(genome), threshold=THRESHOLD)
        info["scan_s"] = time.perf_counter() - t1
        t_export = time.perf_counter()
        frames = [
            pl.from_pandas(d[["motif_name", "sequence_name", "start", "strand", "p-value"]]) for d in res if len(d)
        ]
        df = pl.concat(frames) if frames else pl.DataFrame()
        df = df.select(
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
        import polars as pl

        from scanner.motifs.readers import read_meme

        motifs, _ = read_meme(meme)
        bg = MOODS.tools.flat_bg(4)
        mats = []
        for m in motifs:  # counts with FIMO-like pseudocount 0.1 spread by background
            counts = (m.probs * m.nsites).T.tolist()
            mats.append(MOODS.tools.log_odds(counts, bg, 0.1))
        mats = mats + [MOODS.tools.reverse_complement(x) for x in mats]
        thresholds = [MOODS.tools.threshold_from_p(x, bg, THRESHOLD) for x in mats]
        t1 = time.perf_counter()
        rows = {"motif_id": [], "chrom": [], "start": [], "strand": []}
        name, seq = None, []

        def flush():
            if name is None:
                return
            s = "".join(seq).upper()
            results = MOODS.scan.scan_dna(s, mats, bg, thresholds, 7)
            for i, hits in enumerate(results):
                m = motifs[i % len(motifs)]
                for h in hits:
                    rows["motif_id"].append(m.motif_id)
                    rows["chrom"].append(name)
                    rows["start"].append(h.pos)
                    rows["strand"].append("+" if i < len(motifs) else "-")

        with open(genome) as fh:
            for line in fh:
                if line.startswith(">"):
                    flush()
                    name, seq = line[1:].strip(), []
                else:
                    seq.append(line.strip())
        flush()
        info["scan_s"] = time.perf_counter() - t1
        t_export = time.perf_counter()
        pl.DataFrame(
            rows, schema={"motif_id": pl.Utf8, "chrom": pl.Utf8, "start": pl.Int64, "strand": pl.Utf8}
        ).write_parquet(out / "hits.parquet")
        info["export_s"] = time.perf_counter() - t_export
    elif tool == "fimo":
        import polars as pl
        from pymemesuite.common import Alphabet, Array, Background, MotifFile, Sequence
        from pymemesuite.fimo import FIMO

        with MotifFile(str(meme)) as mf:
            motifs = list(mf)
        bg = Background(Alphabet.dna(), Array([0.25] * 4))
        seqs = []
        name, parts = None, []
        with open(genome) as fh:
            for line in fh:
                if line.startswith(">"):
                    if name:
                        seqs.append(Sequence("".join(parts), name=name.encode()))
                    name, parts = line[1:].strip(), []
                else:
                    parts.append(line.strip())
        seqs.append(Sequence("".join(parts), name=name.encode()))
        t1 = time.perf_counter()
        rows = {"motif_id": [], "chrom": [], "start": [], "strand": [], "pvalue": []}
        fimo = FIMO(both_strands=True, threshold=THRESHOLD, max_stored_scores=10_000_000)
        for m in motifs:
            pat = fimo.score_motif(m, seqs, bg)
            for e in pat.matched_elements:
                rows["motif_id"].append(m.accession.decode())
                rows["chrom"].append(e.source.accession.decode())
                rows["start"].append(min(e.start, e.stop) - 1)
                rows["strand"].append(e.strand)
                rows["pvalue"].append(e.pvalue)
        info["scan_s"] = time.perf_counter() - t1
        t_export = time.perf_counter()
        pl.DataFrame(rows).write_parquet(out / "hits.parquet")
        info["export_s"] = time.perf_counter() - t_export
    info["child_total_s"] = time.perf_counter() - t0
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


def run_child(tool: str, genome: Path, meme: Path, out: Path, cache: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    cmd = [sys.executable, __file__, "--child", tool, str(genome), str(meme), str(out), str(cache)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    output = proc.communicate()[0].decode(errors="replace")
    wall = time.perf_counter() - t0
    th.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{output[-3000:]}")
    info = json.loads((out / "info.json").read_text())
    # Wall: the whole process less the hit-list export this script adds for the comparison.
    info.update(wall_s=wall - info.get("export_s", 0.0), process_wall_s=wall, peak_rss_mb=peak[0] / 2**20)
    return info


def python_startup(imports: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", imports], check=True, capture_output=True)
    return time.perf_counter() - t0


def load_codes(genome: Path) -> dict[str, np.ndarray]:
    from scanner.genome import open_genome

    g = open_genome(genome)
    return {c: g.codes(c, 0, g.lengths[c]) for c in g.chroms}


def compare(tool_hits, exact_hits, motifs, codes, prepared) -> dict:
    """Differences between a tool's hit set and the exact one, with their causes."""
    import polars as pl

    key = ["motif_id", "chrom", "start", "strand"]
    t = tool_hits.select(key).unique()
    e = exact_hits.select(key).unique()
    only_tool = t.join(e, on=key, how="anti")
    only_exact = e.join(t, on=key, how="anti")
    lengths = {m.motif_id: m.length for m in motifs}
    by_id = {p.motif_id: p for p in prepared}
    unreachable = {p.motif_id for p in prepared if p.tables["+"].cut > p.w.max(axis=1).sum()}

    def causes(df: pl.DataFrame) -> dict:
        out = {"with_N": 0, "motif_cannot_reach_threshold": 0, "near_threshold": 0, "other": 0}
        comp = np.array([3, 2, 1, 0, 4], dtype=np.uint8)
        for motif_id, chrom, start, strand in df.iter_rows():
            if motif_id in unreachable:
                out["motif_cannot_reach_threshold"] += 1
                continue
            length = lengths[motif_id]
            word = codes[chrom][start : start + length]
            if word.size < length or (word > 3).any():
                out["with_N"] += 1
                continue
            if strand == "-":
                word = comp[word[::-1]]
            pm = by_id[motif_id]
            from scanner.scan._kernels import sequential_scores

            s = sequential_scores(word[None, :].astype(np.uint8), pm.w)
            p = float(pm.tables[strand].pvalue(s)[0])
            if abs(np.log10(p) - np.log10(THRESHOLD)) < 0.3:
                out["near_threshold"] += 1
            else:
                out["other"] += 1
        return out

    return {
        "hits": t.height,
        "same": t.height - only_tool.height,
        "only_tool": only_tool.height,
        "only_exact": only_exact.height,
        "only_tool_causes": causes(only_tool),
        "only_exact_causes": causes(only_exact),
    }


def yeast_section() -> dict | None:
    shared = HERE.parent.parent / "shared" / "data"
    fa = shared / "yeast_sacCer3" / "genome" / "sacCer3.fa"
    motifs = shared / "motifs" / "JASPAR2024_CORE_fungi_nonredundant.jaspar"
    if not fa.exists() or not motifs.exists():
        return None
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "scanner.cli", "scan", "-g", str(fa), "-m", str(motifs), "-o", d]
        env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-2000:])
        meta = json.loads((Path(d) / "instances" / "_scan.json").read_text())
        return {
            "genome": "sacCer3 (12.2 Mb)",
            "motifs": len(meta["motifs"]),
            "hits": sum(meta["hits"].values()),
            "wall_s": wall,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=50)
    ap.add_argument("--motif-sets", default="1,50", help="comma-separated motif counts")
    ap.add_argument("--skip", default="", help="tools to skip, e.g. fimo")
    ap.add_argument("--no-yeast", action="store_true")
    ap.add_argument("--child", nargs=5, metavar=("TOOL", "GENOME", "MEME", "OUT", "CACHE"))
    args = ap.parse_args()
    if args.child:
        tool, genome, meme, out, cache = args.child
        child(tool, Path(genome), Path(meme), Path(out), Path(cache))
        return

    import polars as pl

    from scanner.motifs import Background, write_meme
    from scanner.scan import prepare_motifs

    WORK.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    genome = WORK / f"genome_{args.size_mb}mb.fa"
    if not genome.exists():
        make_genome(genome, args.size_mb)
    codes = load_codes(genome)
    bases = sum(int((c < 4).sum()) for c in codes.values())
    skip = set(filter(None, args.skip.split(",")))
    report: dict = {"genome_mb": args.size_mb, "acgt_bases": bases, "threshold": THRESHOLD, "sets": {}}
    startup = {
        "scanner": python_startup(
            "import os; os.environ['RAY_AUTH_MODE']='disabled'; import scanner.scan, ray; "
            "ray.init(address='local', include_dashboard=False, log_to_driver=False); ray.shutdown()"
        ),
        "memelite": python_startup("import memelite.fimo"),
        "moods": python_startup("import MOODS.scan"),
        "fimo": python_startup("import pymemesuite.fimo"),
    }
    report["startup_s"] = startup
    for n in [int(x) for x in args.motif_sets.split(",")]:
        motifs = pick_motifs(n)
        meme = write_meme(motifs, WORK / f"motifs_{n}.meme")
        prepared = prepare_motifs(motifs, Background.uniform(), THRESHOLD)
        results: dict = {}
        cache = Path(tempfile.mkdtemp(prefix="numba_cache_"))
        for tool in TOOLS:
            if tool in skip:
                continue
            runs = ["cold", "warm"] if tool == "memelite" else ["run"]
            for label in runs:
                name = tool if label == "run" else f"{tool} ({label})"
                print(f"[{n} motifs] running {name} ...", file=sys.stderr, flush=True)
                results[name] = run_child(tool, genome, meme, WORK / f"out_{n}_{tool}", cache)
        exact = pl.read_parquet(WORK / f"out_{n}_scanner" / "hits.parquet")
        for name, info in results.items():
            tool = name.split(" ")[0]
            hits = pl.read_parquet(WORK / f"out_{n}_{tool}" / "hits.parquet")
            info["agreement"] = compare(hits, exact, motifs, codes, prepared)
        ours = results["scanner"]
        threads = {"memelite (cold)": os.cpu_count(), "memelite (warm)": os.cpu_count()}
        for name, info in results.items():
            info["throughput_mbp_s"] = bases / 1e6 / info["scan_s"]
            # per core: our shards' own time (actor start-up excluded); memelite runs one thread per core
            busy = info.get("shard_cpu_s") or info["scan_s"] * threads.get(name, 1)
            info["mbp_per_core_s"] = bases / 1e6 / busy
            info["wall_ratio_vs_scanner"] = info["wall_s"] / ours["wall_s"]
            info["throughput_ratio_scanner_over_tool"] = ours["throughput_mbp_s"] / info["throughput_mbp_s"]
            info["per_core_ratio_scanner_over_tool"] = ours["mbp_per_core_s"] / info["mbp_per_core_s"]
        report["sets"][n] = {"motifs": [m.motif_id for m in motifs], "results": results}
        print(f"\n{n} motif(s), {args.size_mb} Mb genome ({bases / 1e6:.1f} Mb of A/C/G/T), p < {THRESHOLD}")
        print(
            f"{'tool':18} {'wall s':>8} {'scan s':>8} {'Mbp/s':>8} {'/core':>7} {'peak MB':>8} {'hits':>9} "
            f"{'= exact':>9} {'extra':>7} {'missed':>7}  scanner speed-up (wall, scan, per core)"
        )
        for name, info in results.items():
            a = info["agreement"]
            print(
                f"{name:18} {info['wall_s']:8.1f} {info['scan_s']:8.1f} {info['throughput_mbp_s']:8.1f} "
                f"{info['mbp_per_core_s']:7.1f} {info['peak_rss_mb']:8.0f} {a['hits']:9d} {a['same']:9d} "
                f"{a['only_tool']:7d} {a['only_exact']:7d}  {info['wall_ratio_vs_scanner']:.2f}x, "
                f"{info['throughput_ratio_scanner_over_tool']:.2f}x, {info['per_core_ratio_scanner_over_tool']:.2f}x"
            )
        for name, info in results.items():
            a = info["agreement"]
            if a["only_tool"] or a["only_exact"]:
                print(f"  {name}: extra {a['only_tool_causes']}  missed {a['only_exact_causes']}")
    print("\nstart-up (python + imports; scanner: + local Ray init):", {k: round(v, 1) for k, v in startup.items()})
    if not args.no_yeast:
        y = yeast_section()
        if y:
            report["yeast"] = y
            print(f"yeast: {y['genome']} x {y['motifs']} JASPAR fungal motifs: {y['hits']} hits in {y['wall_s']:.1f} s")
    (RESULTS / "scan.json").write_text(json.dumps(report, indent=2))
    print(f"\nwrote {RESULTS / 'scan.json'}")


if __name__ == "__main__":
    main()
