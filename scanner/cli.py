"""The ``scanner`` command line (Typer).

Start-up is kept light: each command lives in ``scanner/commands/<name>.py`` and imports torch, ray
or numba only inside its body, so ``scanner --help`` answers at once.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="scanner",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help=(
        "Find every instance of a TF motif in a genome, predict from ~1 kb of context whether the TF binds "
        "it, and explain why, base by base. Runs on local Ray or a Ray cluster."
    ),
)

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
