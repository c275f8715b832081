"""Genome access (pyfaidx), base codes, one-hot encoding and windows with N padding.

Base codes (uint8): ``A=0, C=1, G=2, T=3``, anything else (N, IUPAC, gap) ``=4``. Lower-case
(soft-masked) letters get the same code as upper case; :func:`encode` can report them separately.
One-hot order is A, C, G, T along axis 1 (``(N, 4, L)``); code 4 becomes ``0.25`` in every row, as in
the reference pipeline. Coordinates are 0-based half-open throughout.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scanner.errors import InputError

ALPHABET = "ACGT"
N_CODE = 4

_LUT = np.full(256, N_CODE, dtype=np.uint8)
for _i, _b in enumerate(ALPHABET):
    _LUT[ord(_b)] = _i
    _LUT[ord(_b.lower())] = _i
_LOWER = np.zeros(256, dtype=bool)
_LOWER[np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)] = True
_DECODE = np.frombuffer(b"ACGTN", dtype=np.uint8)
_COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)


def encode(seq: str | bytes, *, return_lower: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Encode a DNA string as uint8 codes (A=0, C=1, G=2, T=3, other=4).

    Parameters
    ----------
    seq : str or bytes
        Sequence, any case.
    return_lower : bool, optional
        Also return a boolean mask of lower-case (soft-masked) positions. Default False.

    Returns
    -------
    numpy.ndarray of uint8, shape (len(seq),)
        The codes; with ``return_lower`` a tuple ``(codes, lower_mask)``.
    """
    raw = np.frombuffer(seq.encode("ascii") if isinstance(seq, str) else bytes(seq), dtype=np.uint8)
    codes = _LUT[raw]
    if return_lower:
        return codes, _LOWER[raw]
    return codes


def decode(codes: np.ndarray) -> str:
    """Inverse of :func:`encode` (upper case, code 4 -> ``N``)."""
    codes = np.asarray(codes, dtype=np.uint8)
    if codes.size and codes.max() > N_CODE:
        raise ValueError(f"codes must be in 0..4, got max {int(codes.max())}")
    return _DECODE[codes].tobytes().decode("ascii")


def reverse_complement_codes(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of codes along the last axis (N stays N)."""
    return _COMPLEMENT[np.asarray(codes, dtype=np.uint8)][..., ::-1].copy()


def reverse_complement(seq: str) -> str:
    """Reverse complement of a DNA string (case kept; non-ACGT letters become N/n)."""
    table = str.maketrans("ACGTacgt", "TGCAtgca")
    out = seq.translate(table)[::-1]
    return "".join(c if c in "ACGTacgt" else ("n" if c.islower() else "N") for c in out)


def one_hot(codes: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """One-hot encode codes.

    Parameters
    ----------
    codes : numpy.ndarray of uint8, shape (L,) or (N, L)
        Base codes from :func:`encode`.
    dtype : str, optional
        Output dtype. Default ``"float32"``.

    Returns
    -------
    numpy.ndarray, shape (4, L) or (N, 4, L)
        Rows in A, C, G, T order; code 4 gives 0.25 in every row.
    """
    codes = np.asarray(codes, dtype=np.uint8)
    table = np.zeros((5, 4), dtype=dtype)
    table[np.arange(4), np.arange(4)] = 1
    table[N_CODE] = 0.25
    out = table[codes]  # (..., L, 4)
    return np.ascontiguousarray(np.moveaxis(out, -1, -2))


@dataclass(frozen=True)
class Window:
    """A fixed-length window of codes, padded with N where it runs off the chromosome."""

    chrom: str
    start: int
    end: int
    codes: np.ndarray
    padded: bool


class Genome:
    """Random access to a FASTA file through pyfaidx.

    Use :func:`open_genome` to construct it; it checks and (re)builds the ``.fai`` index.

    Parameters
    ----------
    path : str or Path
        FASTA file (plain or bgzip-compressed).
    """

    def __init__(self, path: str | Path) -> None:
        import pyfaidx

        self.path = Path(path)
        self._fa = pyfaidx.Fasta(
            str(self.path), as_raw=True, sequence_always_upper=False, rebuild=False, build_index=False
        )
        self.lengths: dict[str, int] = {name: len(rec) for name, rec in self._fa.records.items()}
        self._lock = threading.Lock()
        # Plain FASTA: a descriptor of our own for positional (thread-safe) reads in read_codes.
        self._fd: int | None = None if self._fa.faidx._bgzf else os.open(self.path, os.O_RDONLY)

    @property
    def chroms(self) -> list[str]:
        """Chromosome names in FASTA order."""
        return list(self.lengths)

    def check_chrom(self, chrom: str, *, source: str | None = None, line: int | None = None) -> None:
        """Raise :class:`InputError` if ``chrom`` is not in the genome, with a ``chr``-prefix hint."""
        if chrom in self.lengths:
            return
        raise InputError(chrom_mismatch_message(chrom, self.lengths), source=source, line=line)

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Sequence of ``[start, end)`` on ``chrom`` as stored (case kept), clipped to the chromosome."""
        self.check_chrom(chrom)
        length = self.lengths[chrom]
        start, end = max(0, int(start)), min(length, int(end))
        if end <= start:
            return ""
        return self._fa[chrom][start:end]

    def read_codes(
        self, chrom: str, start: int, end: int, *, lower: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Codes of ``[start, end)`` (clipped to the chromosome) read straight from the file.

        Thread-safe and faster than :meth:`fetch` + :func:`encode` for plain FASTA (one positional
        read of the raw bytes and one pass that drops line breaks); bgzip-compressed files go through
        pyfaidx.

        Parameters
        ----------
        chrom : str
        start, end : int
            0-based half-open interval; clipped to ``[0, length)``.
        lower : bool, optional
            Also return the soft-mask (lower-case) flags. Default False (None is returned instead).

        Returns
        -------
        (codes, lower_mask) : (numpy.ndarray of uint8, numpy.ndarray of bool or None), shape (n,)

        Raises
        ------
        InputError
            If ``chrom`` is not in the genome, or the file is shorter than its index says.
        """
        self.check_chrom(chrom)
        start, end = max(0, int(start)), min(self.lengths[chrom], int(end))
        n = max(0, end - start)
        rec = self._fa.faidx.index[chrom]
        if self._fd is None or n == 0 or rec.lenc <= 0:
            with self._lock:  # pyfaidx reads through one shared handle
                seq = self.fetch(chrom, start, end)
            return encode(seq, return_lower=True) if lower else (encode(seq), None)
        from scanner._fasta_kernels import strip_encode

        first = rec.offset + (start // rec.lenc) * rec.lenb + start % rec.lenc
        last = rec.offset + ((end - 1) // rec.lenc) * rec.lenb + (end - 1) % rec.lenc + 1
        raw = np.frombuffer(os.pread(self._fd, last - first, first), dtype=np.uint8)
        codes = np.empty(n, dtype=np.uint8)
        mask = np.empty(n if lower else 0, dtype=np.bool_)
        got = strip_encode(raw, _LUT, codes, mask, lower)
        if got != n:
            raise InputError(
                f"sequence {chrom} is shorter than its .fai index says (rebuild the index)", source=self.path
            )
        return codes, (mask if lower else None)

    def codes(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Codes of ``[start, end)``, N-padded (code 4) wherever the interval is off the chromosome."""
        length = int(end) - int(start)
        if length < 0:
            raise ValueError(f"end {end} < start {start}")
        self.check_chrom(chrom)
        out = np.full(length, N_CODE, dtype=np.uint8)
        lo, hi = max(0, int(start)), min(self.lengths[chrom], int(end))
        if hi > lo:
            out[lo - start : hi - start] = self.read_codes(chrom, lo, hi)[0]
        return out

    def window(self, chrom: str, center: int, width: int) -> Window:
        """The ``width``-bp window whose centre is at 0-based position ``center``.

        The window is ``[center - width // 2, center - width // 2 + width)``; the part off the
        chromosome is N and ``padded`` is True.
        """
        start = int(center) - width // 2
        end = start + width
        codes = self.codes(chrom, start, end)
        padded = start < 0 or end > self.lengths[chrom]
        return Window(chrom, start, end, codes, padded)

    def close(self) -> None:
        """Close the underlying file handles."""
        self._fa.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Genome:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])


def chrom_mismatch_message(chrom: str, known: dict[str, int] | list[str]) -> str:
    """Explain an unknown chromosome name, suggesting a ``chr`` prefix fix when that would match."""
    names = list(known)
    hint = ""
    if ("chr" + chrom) in names:
        hint = f"; the genome names it 'chr{chrom}' (add the 'chr' prefix)"
    elif chrom.startswith("chr") and chrom[3:] in names:
        hint = f"; the genome names it '{chrom[3:]}' (drop the 'chr' prefix)"
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"chromosome '{chrom}' is not in the genome (it has {len(names)}: {shown}){hint}"


def _fai_is_stale(fasta: Path, fai: Path) -> str | None:
    """Return why ``fai`` does not describe ``fasta`` (None when it is usable)."""
    if fai.stat().st_mtime < fasta.stat().st_mtime:
        return "it is older than the FASTA"
    size = fasta.stat().st_size
    try:
        with open(fai) as fh:
            for lineno, line in enumerate(fh, 1):
                fields = line.rstrip("\n").split("\t")
                if len(fields) < 5:
                    return f"line {lineno} has {len(fields)} fields, expected 5"
                length, offset, bases, width = (int(x) for x in fields[1:5])
                if bases <= 0 or width < bases:
                    return f"line {lineno} has line lengths {bases}/{width}"
                nlines = -(-length // bases) if length else 0
                last = offset + max(0, nlines - 1) * width + (length - max(0, nlines - 1) * bases)
                if last > size:
                    return f"line {lineno} ('{fields[0]}') points past the end of the FASTA"
    except ValueError as exc:
        return f"it cannot be parsed ({exc})"
    return None


def open_genome(path: str | Path) -> Genome:
    """Open a FASTA, building or rebuilding its ``.fai`` index when missing or stale.

    Parameters
    ----------
    path : str or Path
        FASTA file; plain text or bgzip (plain gzip cannot be indexed).

    Returns
    -------
    Genome

    Raises
    ------
    InputError
        If the file is missing, is plain gzip, is malformed, or its index cannot be (re)built
        (e.g. the directory is read-only); the message names the file and the reason.
    """
    import pyfaidx

    fasta = Path(path)
    if not fasta.is_file():
        raise InputError("FASTA file not found", source=fasta)
    with open(fasta, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"\x1f\x8b" and not (magic[3:4] and magic[3] & 4):
        raise InputError(
            "FASTA is plain gzip, which cannot be indexed; recompress it with `bgzip` or decompress it",
            source=fasta,
        )
    fai = Path(str(fasta) + ".fai")
    reason = "it does not exist" if not fai.exists() else _fai_is_stale(fasta, fai)
    if reason is not None:
        if not os.access(fasta.parent, os.W_OK) or (fai.exists() and not os.access(fai, os.W_OK)):
            raise InputError(
                f"the index {fai} cannot be used ({reason}) and cannot be rebuilt: {fasta.parent} is "
                "not writable; run `samtools faidx` where you can write, or copy the FASTA",
                source=fasta,
            )
        try:
            if fai.exists():
                fai.unlink()  # pyfaidx only rebuilds an index that is older than the FASTA
            pyfaidx.Faidx(str(fasta), rebuild=True, build_index=True).close()
        except Exception as exc:  # pyfaidx raises several types for malformed FASTA
            raise InputError(f"cannot index the FASTA: {exc}", source=fasta) from exc
    try:
        return Genome(fasta)
    except Exception as exc:
        raise InputError(f"cannot open the FASTA: {exc}", source=fasta) from exc
