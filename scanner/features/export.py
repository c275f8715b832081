"""Each pattern as a MEME file (its trimmed PPM) and a logo PNG (CWM and information-content PPM logos).

Logos stack the four letters of each column (largest nearest the axis; positive values above it,
negative below), drawn as glyph outlines like :func:`scanner.interpret.plots.draw_logo`; matplotlib only,
no pyplot state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scanner.interpret.plots import COLORS
from scanner.io import write_text_atomic

_BASES = "ACGT"


def meme_text(motifs: list[tuple[str, str, np.ndarray, int]]) -> str:
    """A MEME (version 4) file of ``(motif_id, name, ppm (L, 4), nsites)`` entries, uniform background."""
    out = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "", "Background letter frequencies"]
    out += ["A 0.250000 C 0.250000 G 0.250000 T 0.250000", ""]
    for motif_id, name, ppm, nsites in motifs:
        p = np.clip(np.asarray(ppm, dtype=np.float64), 0, None)
        p = p / np.where(p.sum(axis=1, keepdims=True) > 0, p.sum(axis=1, keepdims=True), 1)
        out += [
            f"MOTIF {motif_id} {name}",
            "",
            f"letter-probability matrix: alength= 4 w= {p.shape[0]} nsites= {nsites} E= 0",
        ]
        out += [" ".join(f"{x:.6f}" for x in row) for row in p]
        out.append("")
    return "\n".join(out) + "\n"


def write_meme_file(path: str | Path, motifs: list[tuple[str, str, np.ndarray, int]]) -> Path:
    """Write :func:`meme_text` atomically."""
    return write_text_atomic(meme_text(motifs), path)


def information_content(ppm: np.ndarray) -> np.ndarray:
    """Letter heights of an information-content logo: ``ppm * (2 - H)`` per column (bits), shape (L, 4)."""
    p = np.clip(np.asarray(ppm, dtype=np.float64), 1e-12, 1.0)
    h = -(p * np.log2(p)).sum(axis=1, keepdims=True)
    return np.asarray(ppm, dtype=np.float64) * np.clip(2.0 - h, 0.0, 2.0)


def draw_stacked_logo(ax: Any, heights: np.ndarray) -> None:
    """Draw a logo of ``heights`` (L, 4): per column, letters stacked by size away from zero."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    prop = FontProperties(family="DejaVu Sans", weight="bold")
    glyphs = {b: TextPath((0, 0), b, size=1, prop=prop) for b in _BASES}
    h = np.asarray(heights, dtype=np.float64)
    for i in range(h.shape[0]):
        for sign in (1, -1):
            vals = [(abs(h[i, j]), _BASES[j]) for j in range(4) if np.sign(h[i, j]) == sign and h[i, j] != 0]
            y = 0.0
            for size, b in sorted(vals, reverse=True):
                path = glyphs[b]
                bb = path.get_extents()
                y0 = y if sign > 0 else y - size
                tr = (
                    Affine2D().translate(-bb.x0, -bb.y0).scale(0.9 / bb.width, size / bb.height).translate(i - 0.45, y0)
                )
                ax.add_patch(PathPatch(tr.transform_path(path), facecolor=COLORS[b], lw=0))
                y = y + size if sign > 0 else y - size


def plot_pattern(cwm: np.ndarray, ppm: np.ndarray, title: str, out_png: str | Path, dpi: int = 110) -> Path:
    """Two logos of a pattern, one above the other: the CWM (logit units) and the PPM (bits).

    Parameters
    ----------
    cwm, ppm : numpy.ndarray, shape (L, 4)
    title : str
    out_png : path
        PNG written (parent directories created).
    dpi : int, optional
        Default 110.

    Returns
    -------
    Path
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cwm = np.asarray(cwm, dtype=np.float64)
    ic = information_content(ppm)
    length = cwm.shape[0]
    fig = Figure(figsize=(max(3.0, 0.32 * length + 1.2), 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1, sharex=True)
    for ax, heights, label in ((axes[0], cwm, "contribution"), (axes[1], ic, "bits")):
        draw_stacked_logo(ax, heights)
        lo = min(0.0, float(np.where(heights < 0, heights, 0).sum(axis=1).min()))
        hi = max(1e-6, float(np.where(heights > 0, heights, 0).sum(axis=1).max()))
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        ax.set_xlim(-0.6, length - 0.4)
        ax.axhline(0, color="#888888", lw=0.6)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[1].set_ylim(0, 2.05)
    axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    return out_png
