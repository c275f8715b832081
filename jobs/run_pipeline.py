"""Entrypoint of a submitted run (``scanner submit`` runs it on the head): parse args, call scanner.

    python run_pipeline.py run.toml [--until STAGE] [--force STAGE ...]

Runs :func:`scanner.run.pipeline.run_pipeline` on the cluster the job belongs to (``address="auto"``:
the job's ``RAY_ADDRESS``), printing progress lines and, on every manifest change, one
``SCANNER_MANIFEST {json}`` line that ``scanner status`` reads when it cannot see the run directory.
Exit status: 0 done, 2 bad input (the message is the last log line), 1 any other failure.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="run config TOML (paths valid on the cluster)")
    parser.add_argument("--until", default=None, help="stop after this stage")
    parser.add_argument("--force", action="append", default=[], help="re-run this stage even if complete")
    args = parser.parse_args(argv)

    from scanner.errors import InputError
    from scanner.run.config import load_config
    from scanner.run.manifest import format_status
    from scanner.run.pipeline import manifest_printer, run_pipeline

    try:
        config = load_config(args.config)
        if config.use_ray:
            config = replace(config, address="auto")
        result = run_pipeline(
            config,
            until=args.until,
            force=tuple(args.force),
            log=lambda m: print(m, flush=True),
            on_manifest=manifest_printer(),
        )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(format_status(result.manifest), flush=True)
    print(f"run complete: {result.out} ({len(result.ran)} stage(s) run, {len(result.skipped)} skipped)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
