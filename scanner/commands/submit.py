"""Cluster jobs through the Ray Jobs API: ``scanner submit``, ``jobs``, ``status``, ``logs``, ``stop``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.commands._common import echo_err, reports_input_errors, split_list
from scanner.errors import InputError

_ADDRESS_HELP = "Ray Jobs API (dashboard) URL, e.g. http://HEAD:8265. Default: http://127.0.0.1:8265."
_HEADER_HELP = "Extra HTTP header NAME=VALUE (repeatable), e.g. for an authenticating proxy."

Address = Annotated[Optional[str], typer.Option("--address", envvar="RAY_API_SERVER_ADDRESS", help=_ADDRESS_HELP)]
Header = Annotated[Optional[list[str]], typer.Option("--header", help=_HEADER_HELP)]


def _client(address: str | None, header: list[str] | None):
    from scanner.run.jobs_api import JobsClient

    headers = {}
    for h in header or []:
        name, sep, value = h.partition("=")
        if not sep or not name.strip():
            raise InputError(f"expected NAME=VALUE, got {h!r}", field="--header")
        headers[name.strip()] = value
    return JobsClient(address, headers=headers)


def _status_text(client, job_id: str | None, out: Path | None) -> tuple[str, bool]:
    """The status screen and whether it is final (job ended / run not running)."""
    from scanner.run.jobs_api import format_job
    from scanner.run.manifest import format_status, read_manifest

    lines: list[str] = []
    final = True
    doc = None
    if client is not None:
        info = client.info(job_id) if job_id else client.latest()
        if info is None:
            raise InputError(f"no scanner jobs on {client.address}", field="JOB")
        lines.append(format_job(info))
        if info.message and info.terminal and info.status != "SUCCEEDED":
            lines.append(f"  {info.message.strip().splitlines()[-1]}")
        final = info.terminal
        doc = client.manifest(info) if info.is_scanner else None
        if doc is None and info.is_scanner:
            lines.append("(no manifest yet: the run has not started its first stage)")
    if out is not None:
        doc = read_manifest(out)
        if client is None:
            final = not any(s.get("status") == "running" for s in doc.get("stages", {}).values())
    if doc is not None:
        lines.append(format_status(doc))
    return "\n".join(lines), final


def register(app: typer.Typer) -> None:
    """Add ``submit``, ``jobs``, ``status``, ``logs`` and ``stop`` to ``app``."""

    @app.command("submit")
    @reports_input_errors
    def submit(
        config: Annotated[Path, typer.Argument(help="Run config (TOML); its paths must be valid on the cluster.")],
        address: Address = None,
        header: Header = None,
        job_id: Annotated[Optional[str], typer.Option(help="Submission ID. Default: Ray picks one.")] = None,
        until: Annotated[Optional[str], typer.Option(help="Stop after this stage.")] = None,
        force: Annotated[Optional[list[str]], typer.Option(help="Re-run these stages even if complete.")] = None,
        follow: Annotated[bool, typer.Option(help="Stream the job's log until it ends.")] = False,
    ) -> None:
        """Submit `scanner run CONFIG` to a Ray cluster as a job; print its ID."""
        client = _client(address, header)
        jid = client.submit_run(config, job_id=job_id, until=until, force=tuple(split_list(force)))
        typer.echo(jid)
        echo_err(f"submitted to {client.address}; watch it: scanner status {jid} --watch")
        if follow:
            for chunk in client.follow(jid):
                sys.stderr.write(chunk)
            info = client.info(jid)
            echo_err(f"job {jid}: {info.status}")
            if info.status != "SUCCEEDED":
                raise typer.Exit(code=1)

    @app.command("jobs")
    @reports_input_errors
    def jobs(
        address: Address = None,
        header: Header = None,
        all_jobs: Annotated[bool, typer.Option("--all", help="Also list jobs that are not scanner runs.")] = False,
    ) -> None:
        """List the cluster's scanner jobs, newest first: ID, state, start, duration, run directory."""
        from scanner.run.jobs_api import format_job

        client = _client(address, header)
        listed = client.list_jobs(all_jobs=all_jobs)
        if not listed:
            echo_err(f"no {'' if all_jobs else 'scanner '}jobs on {client.address}")
        for info in listed:
            typer.echo(format_job(info))

    @app.command("status")
    @reports_input_errors
    def status(
        job: Annotated[Optional[str], typer.Argument(help="Job ID. Default: the latest scanner job.")] = None,
        address: Address = None,
        header: Header = None,
        out: Annotated[Optional[Path], typer.Option(help="Run directory: show its manifest (no job needed).")] = None,
        watch: Annotated[bool, typer.Option(help="Refresh until the job (or run) ends.")] = False,
        interval: Annotated[float, typer.Option(help="Seconds between refreshes with --watch.")] = 2.0,
    ) -> None:
        """A job's state and its run manifest: per stage done/total, rows, elapsed, time left."""
        client = None if (out is not None and job is None) else _client(address, header)
        tty = sys.stdout.isatty()
        while True:
            text, final = _status_text(client, job, out)
            if watch and tty:
                sys.stdout.write("\x1b[2J\x1b[H")
            typer.echo(text)
            if not watch or final:
                break
            if not tty:
                typer.echo("")
            time.sleep(max(0.2, interval))

    @app.command("logs")
    @reports_input_errors
    def logs(
        job: Annotated[str, typer.Argument(help="Job ID.")],
        address: Address = None,
        header: Header = None,
        follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming until the job ends.")] = False,
        manifest_lines: Annotated[
            bool, typer.Option(help="Keep the SCANNER_MANIFEST lines (hidden by default).")
        ] = False,
    ) -> None:
        """Print a job's log (driver output: stage progress, errors)."""
        from scanner.run.pipeline import MANIFEST_LOG_PREFIX

        client = _client(address, header)

        def clean(text: str) -> str:
            if manifest_lines:
                return text
            return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(MANIFEST_LOG_PREFIX))

        if follow:
            for chunk in client.follow(job):
                sys.stdout.write(clean(chunk))
                sys.stdout.flush()
        else:
            sys.stdout.write(clean(client.logs(job)))

    @app.command("stop")
    @reports_input_errors
    def stop(
        job: Annotated[str, typer.Argument(help="Job ID.")],
        address: Address = None,
        header: Header = None,
        wait: Annotated[float, typer.Option(help="Seconds to wait for the job to end.")] = 30.0,
    ) -> None:
        """Stop a job; a later `scanner submit` of the same config resumes where it stopped."""
        client = _client(address, header)
        info = client.stop(job, wait=wait)
        typer.echo(f"{info.job_id}: {info.status}")
