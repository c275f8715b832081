"""The ``scanner`` command line (Typer).

Start-up is kept light: each command lives in ``scanner/commands/<name>.py`` and imports torch, ray
or numba only inside its body, so ``scanner --help`` answers at once.

Every command takes ``-h``/``--help`` and ``--version``; the app adds Typer's shell completion
(``scanner --install-completion``, ``scanner --show-completion``).
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from typer.core import TyperGroup


def _print_version(ctx: typer.Context, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from scanner import __version__

    typer.echo(f"scanner {__version__}")
    raise typer.Exit()


class _Group(TyperGroup):
    """The app's group: gives every command the app's ``--version`` option (after its own options), and
    makes every repeatable option take comma-separated values too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from scanner.commands._common import split_list_values

        version = [p for p in self.params if p.name == "version"]
        for cmd in self.commands.values():
            if version and not any(p.name == "version" for p in cmd.params):
                cmd.params.append(version[0])
            split_list_values(cmd)


app = typer.Typer(
    name="scanner",
    cls=_Group,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _app(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, expose_value=False, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Find every instance of a TF motif in a genome, predict from ~1 kb of context whether the TF binds it, and
    explain why, base by base. Runs on local Ray or a Ray cluster."""


# Each module defines ``register(app)``; order is the order shown by ``--help``.
_COMMAND_MODULES: tuple[str, ...] = (
    "scan",
    "export",
    "simulate",
    "label",
    "train",
    "tune",
    "evaluate",
    "predict",
    "demo",
    "interpret",
    "features",
    "variants",
    "run",
    "submit",
    "query",
    "report",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(f"scanner.commands.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
