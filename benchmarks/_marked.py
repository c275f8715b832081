"""Rewrite the text a benchmark script owns inside a Markdown file, between ``<!-- TAG -->`` and
``<!-- /TAG -->`` (e.g. ``science:sim``), so documents show the script's last run."""

from __future__ import annotations

from pathlib import Path


def rewrite_marked(path: Path, tag: str, body: str, *, inline: bool = False) -> None:
    """Replace what stands between the markers ``tag`` in ``path`` with ``body``.

    ``inline`` keeps ``body`` on the markers' line (a figure inside a sentence); otherwise it stands on
    lines of its own (a table). A file without both markers is left unchanged.
    """
    text = path.read_text()
    a, b = f"<!-- {tag} -->", f"<!-- /{tag} -->"
    if a not in text or b not in text:
        return
    head, rest = text.split(a, 1)
    _, tail = rest.split(b, 1)
    sep = "" if inline else "\n"
    path.write_text(f"{head}{a}{sep}{body}{sep}{b}{tail}")
