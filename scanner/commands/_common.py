"""Helpers shared by the CLI commands: error reporting, list-valued options, the run directory and old
flag spellings (one vocabulary: ``--out`` is the run directory, ``--output/-o`` a file, ``--ray/--no-ray``)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from scanner.errors import InputError

if TYPE_CHECKING:
    from scanner.progress import Progress

F = TypeVar("F", bound=Callable[..., object])
T = TypeVar("T")

#: Exit code for bad input (same as a usage error).
EXIT_INPUT = 2


def reports_input_errors(fn: F) -> F:
    """Turn :class:`InputError` (and missing files) into a one-line message and exit code 2.

    An error about a setting (no file) names the command's flag for it: ``field 'size_mb'`` from the
    Python layer is printed as ``--size-mb``.
    """

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            flag = flag_for(fn, exc.field) if exc.source is None and exc.field else None
            typer.echo(f"error: {flag}: {exc.message}" if flag else f"error: {exc}", err=True)
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


def command_flags(fn: Callable[..., object]) -> dict[str, str]:
    """``{parameter name: its long flag}`` of a Typer command function (options only)."""
    import inspect
    import typing

    hints = typing.get_type_hints(fn, include_extras=True)
    flags: dict[str, str] = {}
    for name in inspect.signature(fn).parameters:
        for meta in getattr(hints.get(name), "__metadata__", ()):
            if isinstance(meta, typer.models.OptionInfo):
                decls = [d.split("/")[0] for d in (meta.param_decls or ()) if d.startswith("--")]
                flags[name] = decls[0] if decls else "--" + name.replace("_", "-")
    return flags


def flag_for(fn: Callable[..., object], field: str) -> str | None:
    """The flag of command ``fn`` that sets ``field`` (a Python field such as ``size_mb``, ``tfs`` or an
    older flag spelling such as ``--regimes``); None when the command has no such flag."""
    flags = command_flags(fn)
    if field in flags.values():
        return field
    f = field.lstrip("-").replace("-", "_")
    for name in (f, f.removesuffix("s"), f + "s", "n_" + f, f.removeprefix("n_")):
        if name in flags:
            return flags[name]
    return None


#: List flags whose values may themselves hold commas, so are not split: HTTP header values.
NO_COMMA_SPLIT = frozenset({"header"})


def split_list_values(command: object) -> None:
    """Make every repeatable option of a Click/Typer ``command`` also take comma-separated values
    (``--tf A,B --tf C`` is ``[A, B, C]``), except those in :data:`NO_COMMA_SPLIT`."""
    for param in getattr(command, "params", ()):
        if not getattr(param, "multiple", False) or param.name in NO_COMMA_SPLIT:
            continue
        inner = param.callback

        def callback(ctx: object, p: object, value: object, _inner: Callable[..., object] | None = inner) -> object:
            if value:
                value = tuple(part for v in value for part in (split_list([v]) if isinstance(v, str) else [v]))
            return _inner(ctx, p, value) if _inner is not None else value

        param.callback = callback


def take_alias(new: T | None, old: T | None, old_flag: str, new_flag: str) -> T | None:
    """The value of a flag given by its old (hidden) spelling or its new one; prints the new name."""
    if old is None or old == [] or old is False:
        return new
    echo_err(f"note: {old_flag} is now {new_flag} (the old spelling goes in the next release)")
    if isinstance(old, list) and isinstance(new, list):
        return [*new, *old]  # type: ignore[return-value]
    if new not in (None, [], False) and new != old:
        raise InputError(f"give {new_flag} only (the old spelling {old_flag} says otherwise)", field=new_flag)
    return old


def no_ray_alias(ray: bool | None, local: bool) -> bool | None:
    """``--ray/--no-ray`` given the old ``--local`` spelling of ``--no-ray`` (prints the new name)."""
    if not local:
        return ray
    if ray:
        raise InputError("--local (the old spelling of --no-ray) contradicts --ray; give one", field="--ray")
    echo_err("note: --local is now --no-ray (the old spelling goes in the next release)")
    return False


#: The command that writes each dataset a command may read (for "run it first" messages).
PRODUCERS = {
    "instances": "scan",
    "labelled": "label",
    "datasets": "label",
    "models": "train",
    "predictions": "predict",
    "attributions": "interpret",
    "features": "features",
    "sim": "simulate",
}


def run_out(out: Path, dataset: str) -> Path:
    """The run directory given by ``--out``. Before 0.2 some commands took the dataset itself
    (``--out RUN/models``); that spelling still works for one release, with a note."""
    from scanner.store import RunDir

    if out.name == RunDir(out.parent).dataset(dataset).root.name and out.parent != out:
        echo_err(f"note: --out is the run directory; writing {dataset} into {out.parent} (give --out {out.parent})")
        return out.parent
    return out


def empty_scan(out: Path) -> str | None:
    """Why the run ``out`` has nothing downstream of its scan (a finished scan with no hit), or None."""
    from scanner.scan.export import empty_reason
    from scanner.store import RunDir

    inst = RunDir(out).path("instances")
    if not inst.is_dir():
        return None
    try:
        return empty_reason(inst)
    except InputError:
        return None


def input_dataset(given: Path | None, out: Path, dataset: str, flag: str) -> Path:
    """Where a command reads ``dataset``: ``given`` (that dataset, or a run directory holding it) or,
    by default, the one in the run directory ``out``.

    Raises
    ------
    InputError
        Naming ``flag``, when the default does not exist.
    """
    from scanner.store import RunDir

    if given is not None:
        inside = RunDir(given).dataset(dataset).root
        return inside if given.name != dataset and inside.is_dir() else given
    path = RunDir(out).dataset(dataset).root
    if not path.exists():
        producer = PRODUCERS.get(dataset, dataset)
        raise InputError(
            f"{path} does not exist: run `scanner {producer} --out {out}` first, or give {flag} (a run "
            f"directory or its {dataset} dataset)",
            field=flag,
        )
    return path


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
