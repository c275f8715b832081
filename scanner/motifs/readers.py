"""Motif readers: JASPAR counts, minimal MEME, HOMER ``.motif``, plain probability matrices, JASPAR IDs.

Every reader returns :class:`~scanner.motifs.model.Motif` records with probabilities (rows sum to 1)
and an ``nsites`` used by the pseudocount. Malformed input raises :class:`~scanner.errors.InputError`
naming the file and line.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from scanner.errors import InputError
from scanner.motifs.background import Background
from scanner.motifs.model import Motif

#: nsites assumed when a format does not give it (MEME's default).
DEFAULT_NSITES = 20
#: Largest |row sum - 1| accepted for probability rows (they are then renormalised).
ROW_SUM_TOLERANCE = 0.02

_JASPAR_ID = re.compile(r"^(MA|PB|PF|PH|PL|POL|CN|UN|CJ)\d{4}(\.\d+)?$")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|NaN|inf|-inf")


def is_jaspar_id(text: str) -> bool:
    """True for a JASPAR matrix ID such as ``MA0139.2`` or ``MA0139`` (latest version)."""
    return bool(_JASPAR_ID.match(text))


def _parse_numbers(text: str, source: Path, line: int) -> list[float]:
    vals = []
    for tok in text.replace("[", " ").replace("]", " ").split():
        try:
            vals.append(float(tok))
        except ValueError:
            raise InputError(f"expected a number, got {tok!r}", source=source, line=line) from None
    return vals


def _check_matrix(m: np.ndarray, what: str, source: Path, line: int) -> None:
    if m.ndim != 2 or m.shape[0] == 0:
        raise InputError(f"motif {what} has zero columns", source=source, line=line)
    if m.shape[1] != 4:
        raise InputError(
            f"motif {what} has {m.shape[1]} letters per column, expected 4 (A,C,G,T)",
            source=source,
            line=line,
        )
    if not np.all(np.isfinite(m)):
        raise InputError(f"motif {what} contains NaN or infinite values", source=source, line=line)
    if np.any(m < 0):
        raise InputError(f"motif {what} contains negative values", source=source, line=line)


def _probs_from_rows(m: np.ndarray, what: str, source: Path, line: int) -> np.ndarray:
    """Validate probability rows (one per column of the motif) and renormalise them."""
    _check_matrix(m, what, source, line)
    sums = m.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"motif {what}: position {i + 1} sums to {sums[i]:.6g}, expected 1 (probabilities)",
            source=source,
            line=line + i,
        )
    return m / sums[:, None]


def read_jaspar(path: str | Path) -> list[Motif]:
    """Read a JASPAR counts file (``>ID NAME`` then rows ``A [ ... ]`` for A, C, G, T).

    Rows without the letter and brackets (the older ``.pfm`` layout) are accepted. Columns are
    normalised to frequencies; ``nsites`` is the rounded mean column sum (at least 1).
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    motifs: list[Motif] = []
    i = 0
    while i < len(lines):
        raw = lines[i].strip()
        if not raw or raw.startswith("#"):
            i += 1
            continue
        if not raw.startswith(">"):
            raise InputError(f"expected a '>ID NAME' header, got {raw[:40]!r}", source=path, line=i + 1)
        header_line = i + 1
        fields = raw[1:].split()
        if not fields:
            raise InputError("empty motif header", source=path, line=header_line)
        motif_id = fields[0]
        name = " ".join(fields[1:]) if len(fields) > 1 else motif_id
        rows: dict[str, list[float]] = {}
        order = "ACGT"
        i += 1
        while i < len(lines) and len(rows) < 4:
            row = lines[i].strip()
            if not row:
                i += 1
                continue
            if row.startswith(">"):
                break
            letter = row[0].upper()
            if letter in "ACGT" and not _NUMBER.match(row):
                body = row[1:]
            else:
                letter = order[len(rows)]
                body = row
            if letter in rows:
                raise InputError(f"row {letter} given twice for motif {motif_id}", source=path, line=i + 1)
            rows[letter] = _parse_numbers(body, path, i + 1)
            i += 1
        if len(rows) < 4:
            missing = [b for b in "ACGT" if b not in rows]
            raise InputError(f"motif {motif_id} lacks row(s) {', '.join(missing)}", source=path, line=header_line)
        widths = {len(v) for v in rows.values()}
        if len(widths) != 1:
            raise InputError(
                f"motif {motif_id}: rows have different numbers of columns {sorted(widths)}",
                source=path,
                line=header_line,
            )
        counts = np.array([rows[b] for b in "ACGT"], dtype=np.float64).T  # (L, 4)
        _check_matrix(counts, motif_id, path, header_line)
        sums = counts.sum(axis=1)
        if np.any(sums <= 0):
            j = int(np.flatnonzero(sums <= 0)[0])
            raise InputError(f"motif {motif_id}: column {j + 1} has no counts", source=path, line=header_line)
        nsites = max(1, round(float(sums.mean())))
        motifs.append(Motif(motif_id, name, counts / sums[:, None], nsites, f"{path}:{header_line}"))
    if not motifs:
        raise InputError("no motifs found", source=path)
    return motifs


def read_meme(path: str | Path) -> tuple[list[Motif], Background | None]:
    """Read a minimal MEME file; returns the motifs and the file's background (None if absent).

    ``nsites`` comes from each ``letter-probability matrix`` line (default 20).
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    motifs: list[Motif] = []
    bg: Background | None = None
    alphabet_ok = True
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("ALPHABET"):
            alph = line.split("=", 1)[1].strip() if "=" in line else ""
            alphabet_ok = alph.upper().startswith("ACGT")
            if not alphabet_ok:
                raise InputError(f"only the DNA alphabet ACGT is supported, got {alph!r}", source=path, line=i + 1)
        elif line.startswith("Background letter frequencies"):
            vals: dict[str, float] = {}
            j = i + 1
            while j < len(lines) and lines[j].strip() and not lines[j].startswith("MOTIF"):
                toks = lines[j].split()
                for k in range(0, len(toks) - 1, 2):
                    try:
                        vals[toks[k].upper()] = float(toks[k + 1])
                    except ValueError:
                        raise InputError(f"bad background entry {toks[k + 1]!r}", source=path, line=j + 1) from None
                j += 1
            if all(b in vals for b in "ACGT"):
                try:
                    bg = Background(np.array([vals[b] for b in "ACGT"]), f"{path} header")
                except InputError as exc:
                    raise InputError(exc.message, source=path, line=i + 2) from None
            i = j
            continue
        elif line.startswith("MOTIF"):
            header_line = i + 1
            toks = line.split()
            if len(toks) < 2:
                raise InputError("MOTIF line without an identifier", source=path, line=header_line)
            motif_id = toks[1]
            name = toks[2] if len(toks) > 2 else motif_id
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("letter-probability"):
                if lines[j].strip().startswith("MOTIF"):
                    raise InputError(
                        f"motif {motif_id} has no letter-probability matrix", source=path, line=header_line
                    )
                j += 1
            if j >= len(lines):
                raise InputError(f"motif {motif_id} has no letter-probability matrix", source=path, line=header_line)
            mline = lines[j]
            kv = dict(re.findall(r"(\w+)=\s*([^\s]+)", mline))
            nsites = DEFAULT_NSITES
            if "nsites" in kv:
                try:
                    nsites = max(1, round(float(kv["nsites"])))
                except ValueError:
                    raise InputError(f"nsites {kv['nsites']!r} is not a number", source=path, line=j + 1) from None
            width = None
            if "w" in kv:
                try:
                    width = int(kv["w"])
                except ValueError:
                    raise InputError(f"w {kv['w']!r} is not an integer", source=path, line=j + 1) from None
            rows = []
            first_row_line = j + 2
            k = j + 1
            while k < len(lines):
                row = lines[k].strip()
                if not row:
                    if rows:
                        break
                    k += 1
                    continue
                if not (_NUMBER.match(row)):
                    break
                vals = _parse_numbers(row, path, k + 1)
                if len(vals) != 4:
                    raise InputError(
                        f"motif {motif_id}: expected 4 probabilities, got {len(vals)}",
                        source=path,
                        line=k + 1,
                    )
                rows.append(vals)
                k += 1
                if width is not None and len(rows) == width:
                    break
            if width is not None and len(rows) != width:
                raise InputError(
                    f"motif {motif_id}: header says w= {width} but {len(rows)} rows follow",
                    source=path,
                    line=j + 1,
                )
            m = np.array(rows, dtype=np.float64).reshape(-1, 4) if rows else np.zeros((0, 4))
            probs = _probs_from_rows(m, motif_id, path, first_row_line)
            motifs.append(Motif(motif_id, name, probs, nsites, f"{path}:{header_line}"))
            i = k
            continue
        i += 1
    if not motifs:
        raise InputError("no MOTIF entries found", source=path)
    return motifs, bg


def read_homer(path: str | Path) -> list[Motif]:
    """Read a HOMER ``.motif`` file (``>consensus<TAB>name<TAB>threshold...`` then probability rows).

    ``motif_id`` is the HOMER name; ``name`` its part before the first ``/``; ``nsites`` 20.
    """
    path = Path(path)
    motifs: list[Motif] = []
    lines = path.read_text().splitlines()
    header: tuple[str, str, int] | None = None
    rows: list[list[float]] = []

    def flush() -> None:
        if header is None:
            return
        motif_id, name, hline = header
        m = np.array(rows, dtype=np.float64).reshape(-1, 4) if rows else np.zeros((0, 4))
        motifs.append(
            Motif(
                motif_id,
                name,
                _probs_from_rows(m, motif_id, path, hline + 1),
                DEFAULT_NSITES,
                f"{path}:{hline}",
            )
        )

    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(">"):
            flush()
            fields = line[1:].split("\t")
            full = fields[1].strip() if len(fields) > 1 and fields[1].strip() else fields[0].strip()
            if not full:
                raise InputError("empty HOMER motif header", source=path, line=lineno)
            header = (full, full.split("/")[0], lineno)
            rows = []
            continue
        if header is None:
            raise InputError("probability row before any '>' header", source=path, line=lineno)
        vals = _parse_numbers(line, path, lineno)
        if len(vals) != 4:
            raise InputError(f"expected 4 probabilities, got {len(vals)}", source=path, line=lineno)
        rows.append(vals)
    flush()
    if not motifs:
        raise InputError("no motifs found", source=path)
    return motifs


def read_probability_matrix(path: str | Path) -> list[Motif]:
    """Read one plain probability matrix (rows A C G T, optional ``ALPHABET=`` line), named by the file stem."""
    path = Path(path)
    rows = []
    first = None
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.upper().startswith("ALPHABET"):
            continue
        first = first or lineno
        vals = _parse_numbers(line, path, lineno)
        if len(vals) != 4:
            raise InputError(f"expected 4 probabilities (A C G T), got {len(vals)}", source=path, line=lineno)
        rows.append(vals)
    m = np.array(rows, dtype=np.float64).reshape(-1, 4) if rows else np.zeros((0, 4))
    stem = path.stem
    name = stem.split("_")[0].upper() if "_" in stem else stem
    return [Motif(stem, name, _probs_from_rows(m, stem, path, first or 1), DEFAULT_NSITES, str(path))]


def fetch_jaspar(motif_id: str, release: str | None = None) -> Motif:
    """Resolve a JASPAR matrix ID offline through the ``pyjaspar`` package's bundled database.

    Parameters
    ----------
    motif_id : str
        ``MA0139.2`` (exact version) or ``MA0139`` (latest version).
    release : str, optional
        e.g. ``"JASPAR2024"``. Default: pyjaspar's latest.

    Raises
    ------
    InputError
        If the ID is unknown in that release.
    """
    from pyjaspar import jaspardb

    db = jaspardb(release=release) if release else jaspardb()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyjaspar warns before returning None for unknown IDs
            m = db.fetch_motif_by_id(motif_id)
    except Exception:
        m = None
    if m is None:
        raise InputError(f"unknown JASPAR matrix ID {motif_id!r} in {db.release}", field="motifs")
    counts = np.array([m.counts[b] for b in "ACGT"], dtype=np.float64).T
    sums = counts.sum(axis=1)
    full_id = f"{m.base_id}.{m.version}" if getattr(m, "version", None) else motif_id
    return Motif(full_id, m.name, counts / sums[:, None], max(1, round(float(sums.mean()))), f"pyjaspar {db.release}")


def read_motif_file(path: str | Path) -> list[Motif]:
    """Read a motif file, choosing the reader by content (MEME, JASPAR, HOMER) or extension.

    Raises
    ------
    InputError
        If the file is missing, empty, or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("motif file not found", source=path)
    text = path.read_text(errors="replace")
    head = text.lstrip()[:2000]
    if not head:
        raise InputError("motif file is empty", source=path)
    if head.startswith("MEME version") or "\nMOTIF" in head or head.startswith("MOTIF"):
        return read_meme(path)[0]
    if head.startswith(">"):
        body = [x.strip() for x in head.splitlines()[1:] if x.strip()]
        second = body[0] if body else ""
        looks_homer = bool(second) and _NUMBER.match(second) is not None and len(second.split()) == 4
        if path.suffix == ".motif" or (looks_homer and path.suffix not in (".jaspar", ".pfm")):
            return read_homer(path)
        return read_jaspar(path)
    return read_probability_matrix(path)


def load_motifs(specs: list[str], jaspar_release: str | None = None) -> list[Motif]:
    """Load motifs from files and JASPAR IDs, in the order given.

    Parameters
    ----------
    specs : list of str
        Motif file paths (MEME, JASPAR, HOMER, probability matrix) and/or JASPAR IDs.
    jaspar_release : str, optional
        Release for IDs. Default: pyjaspar's latest.

    Raises
    ------
    InputError
        For a missing file, an unknown ID, malformed content, or a motif ID given twice.
    """
    if not specs:
        raise InputError("no motifs given", field="motifs")
    motifs: list[Motif] = []
    for spec in specs:
        if is_jaspar_id(spec) and not Path(spec).exists():
            motifs.append(fetch_jaspar(spec, jaspar_release))
        else:
            motifs.extend(read_motif_file(spec))
    seen: dict[str, str] = {}
    for m in motifs:
        if m.motif_id in seen:
            raise InputError(
                f"motif ID {m.motif_id!r} appears twice ({seen[m.motif_id]} and {m.source})", field="motifs"
            )
        seen[m.motif_id] = m.source
    return motifs


def write_meme(motifs: list[Motif], path: str | Path, background: Background | None = None) -> Path:
    """Write motifs as a minimal MEME file (probabilities with 6 decimals and ``nsites``)."""
    bg = background or Background.uniform()
    out = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "", "Background letter frequencies"]
    out.append(" ".join(f"{b} {f:.6f}" for b, f in zip("ACGT", bg.freqs, strict=True)))
    out.append("")
    for m in motifs:
        out.append(f"MOTIF {m.motif_id} {m.name}")
        out.append("")
        out.append(f"letter-probability matrix: alength= 4 w= {m.length} nsites= {m.nsites} E= 0")
        out.extend(" ".join(f"{x:.6f}" for x in row) for row in m.probs)
        out.append("")
    path = Path(path)
    path.write_text("\n".join(out) + "\n")
    return path
