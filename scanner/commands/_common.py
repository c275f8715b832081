"""Helpers shared by the CLI commands: error reporting and list-valued options."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import typer

from scanner.errors import InputError

if TYPE_CHECKING:
    from scanner.progress import Progress

F = TypeVar("F", bound=Callable[..., object])

#: Exit code for bad input (same as a usage error).
EXIT_INPUT = 2


def reports_input_errors(fn: F) -> F:
    """Turn :class:`InputError` (and missing files) into a one-line message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=EXIT_INPUT) from None
        except BrokenPipeError:  # stdout closed early (`scanner export ... | head`): stop quietly
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            raise typer.Exit(code=0) from None
        except OSError as exc:  # a user path: missing, unwritable, read-only, a file not a folder, disk full
            typer.echo(f"error: {os_error_message(exc)}", err=True)
            raise typer.Exit(code=EXIT_INPUT) from None

    return wrapper  # type: ignore[return-value]


def os_error_message(exc: OSError) -> str:
    """One line naming the path and what went wrong (no traceback: the user can fix it)."""
    import errno

    what = {
        errno.ENOSPC: "no space left on the device",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOTDIR: "a path component is a file, not a directory",
        errno.EISDIR: "is a directory",
        errno.ENOENT: "no such file or directory",
    }.get(exc.errno or -1, exc.strerror or str(exc))
    paths = [p for p in (exc.filename, exc.filename2) if p]
    return f"{paths[0]}: {what}" if paths else what


def split_list(values: list[str] | None) -> list[str]:
    """Flatten repeated and comma-separated option values: ``["a,b", "c"] -> ["a", "b", "c"]``."""
    out: list[str] = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def echo_err(message: str) -> None:
    """Print to stderr (progress and diagnostics; stdout is kept for results)."""
    print(message, file=sys.stderr, flush=True)


@contextmanager
def stage_progress(label: str, unit: str) -> Iterator[Progress]:
    """The stage's progress display on stderr (closed on exit); print other lines with its ``write``."""
    from scanner.progress import Progress

    bar = Progress(label, unit)
    try:
        yield bar
    finally:
        bar.close()
