"""One exception type for bad user input, carrying where the problem is."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input: a file, line or field that cannot be used as given.

    The CLI turns it into a one-line message and exit code 2.

    Parameters
    ----------
    message : str
        What was received and what was expected.
    source : str or Path, optional
        The file (or other named input) the problem is in. Default None.
    line : int, optional
        1-based line number inside ``source``. Default None.
    field : str, optional
        The field, column or option at fault. Default None.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.source = None if source is None else str(source)
        self.line = line
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.source is not None:
            where.append(self.source + (f":{self.line}" if self.line is not None else ""))
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message
