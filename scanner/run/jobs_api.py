"""A thin wrapper over the Ray Jobs API (:class:`ray.job_submission.JobSubmissionClient`, HTTP).

``scanner submit`` uploads a tiny working directory (the resolved ``run.toml`` and the entrypoint
``jobs/run_pipeline.py``, a few KB) and runs ``python run_pipeline.py run.toml`` on the head with the
``python`` on the head's PATH, so the cluster must have this package installed (the same image on
head and workers); nothing is pip-installed per job. Every path in the config must be valid on the
cluster: input files and ``out`` on storage all nodes share (workers write dataset parts directly).

Jobs carry metadata ``{"scanner": "run", "scanner_out": OUT, "scanner_config": CONFIG}``, which
``scanner jobs`` filters on and ``scanner status`` uses to find the run's manifest: read from
``OUT/manifest.json`` when this machine can see it, else from the last ``SCANNER_MANIFEST`` line of
the job's log.

Authentication: with token auth on (``RAY_AUTH_MODE=token``, Ray's default for new clusters in 2.60)
the client sends the token from ``RAY_AUTH_TOKEN`` or ``~/.ray/auth_token``; ``headers`` adds
others (e.g. ``Authorization: Bearer ...`` for a reverse proxy). No call here starts or connects a
Ray driver: only HTTP requests, so this module is safe in a process that runs its own Ray.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from scanner.errors import InputError

#: Used when neither ``--address`` nor ``RAY_API_SERVER_ADDRESS`` is given (a local head).
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
ENTRYPOINT = "run_pipeline.py"


@dataclass(frozen=True)
class JobInfo:
    """One job as the Jobs API reports it (times in Unix seconds)."""

    job_id: str
    status: str
    entrypoint: str
    start_time: float | None
    end_time: float | None
    message: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def out(self) -> str | None:
        """The run directory of a scanner run job, else None."""
        return self.metadata.get("scanner_out")

    @property
    def is_scanner(self) -> bool:
        return self.metadata.get("scanner") == "run"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def _details(d: Any) -> JobInfo:
    def secs(ms: Any) -> float | None:
        return None if not ms else float(ms) / 1000.0

    status = getattr(d.status, "value", d.status)
    return JobInfo(
        job_id=d.submission_id or d.job_id or "",
        status=str(status),
        entrypoint=d.entrypoint or "",
        start_time=secs(d.start_time),
        end_time=secs(d.end_time),
        message=d.message or "",
        metadata=dict(d.metadata or {}),
    )


class JobsClient:
    """The Jobs API of one cluster.

    Parameters
    ----------
    address : str, optional
        Dashboard URL, e.g. ``http://HEAD:8265``. Default :data:`DEFAULT_ADDRESS`.
    headers : mapping, optional
        Extra HTTP headers (authentication in front of the Jobs API).
    verify : bool or str, optional
        TLS verification for ``https://`` addresses (a CA bundle path, or False). Default True.

    Raises
    ------
    InputError
        If the Jobs API cannot be reached (the message names the address).
    """

    def __init__(
        self, address: str | None = None, *, headers: Mapping[str, str] | None = None, verify: bool | str = True
    ) -> None:
        from ray.exceptions import AuthenticationError
        from ray.job_submission import JobSubmissionClient

        self.address = address or DEFAULT_ADDRESS
        try:
            self._client = JobSubmissionClient(self.address, headers=dict(headers or {}), verify=verify)
        except (ConnectionError, ValueError) as exc:
            raise InputError(
                f"cannot reach the Ray Jobs API: {exc}. Is a head running there "
                "(cluster/local.sh start, or `ray start --head` with the dashboard)?",
                field="--address",
            ) from None
        except AuthenticationError as exc:
            raise InputError(_auth_hint(exc), field="--address") from None

    def _call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        from ray.exceptions import AuthenticationError

        try:
            return getattr(self._client, fn)(*args, **kwargs)
        except AuthenticationError as exc:
            raise InputError(_auth_hint(exc), field="--address") from None
        except RuntimeError as exc:
            text = str(exc)
            if "does not exist" in text or "404" in text:
                raise InputError(f"no such job on {self.address}: {args[0] if args else ''}", field="JOB") from None
            raise

    # ---- submit ------------------------------------------------------------------------------------
    def submit_run(
        self,
        config_path: str | Path,
        *,
        job_id: str | None = None,
        until: str | None = None,
        force: tuple[str, ...] = (),
        entrypoint_num_cpus: float | None = None,
    ) -> str:
        """Submit ``scanner run CONFIG`` as a job; return its submission ID.

        The config is loaded and validated here first (errors surface before anything is sent),
        written back with absolute paths as ``run.toml`` in a temporary working directory together
        with the entrypoint script, and the directory uploaded as the job's ``working_dir``.

        Raises
        ------
        InputError
            Bad config, unreachable Jobs API, or a job ID already in use.
        """
        from scanner.run.config import dumps, load_config

        config = load_config(config_path)
        config = replace(config, address=None)  # the job uses the cluster it runs on
        staging = Path(tempfile.mkdtemp(prefix="scanner-job-"))
        try:
            (staging / "run.toml").write_text(dumps(config))
            script = entrypoint_script()
            args = " ".join([*([f"--until {until}"] if until else []), *(f"--force {s}" for s in force)]).strip()
            if script is not None:
                shutil.copy2(script, staging / ENTRYPOINT)
                entrypoint = f"python {ENTRYPOINT} run.toml {args}".strip()
            else:  # installed without the repository's jobs/ folder: the CLI does the same
                entrypoint = f"python -m scanner.cli run run.toml --address auto {args}".strip()
            metadata = {
                "scanner": "run",
                "scanner_out": str(config.out),
                "scanner_config": str(Path(config_path).resolve()),
            }
            runtime_env = {"working_dir": str(staging), "env_vars": {"PYTHONUNBUFFERED": "1"}}
            kwargs: dict[str, Any] = {}
            if entrypoint_num_cpus is not None:
                kwargs["entrypoint_num_cpus"] = entrypoint_num_cpus
            try:
                return self._call(
                    "submit_job",
                    entrypoint=entrypoint,
                    submission_id=job_id,
                    runtime_env=runtime_env,
                    metadata=metadata,
                    **kwargs,
                )
            except RuntimeError as exc:
                if "already exists" in str(exc):
                    raise InputError(f"a job with ID {job_id!r} already exists", field="--job-id") from None
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # ---- query -------------------------------------------------------------------------------------
    def list_jobs(self, *, all_jobs: bool = False) -> list[JobInfo]:
        """Jobs, newest first; only scanner runs unless ``all_jobs``."""
        jobs = [_details(d) for d in self._call("list_jobs")]
        if not all_jobs:
            jobs = [j for j in jobs if j.is_scanner]
        return sorted(jobs, key=lambda j: j.start_time or 0.0, reverse=True)

    def info(self, job_id: str) -> JobInfo:
        """One job's state.

        Raises
        ------
        InputError
            If there is no such job.
        """
        return _details(self._call("get_job_info", job_id))

    def latest(self) -> JobInfo | None:
        """The most recently started scanner run, or None."""
        jobs = self.list_jobs()
        return jobs[0] if jobs else None

    def logs(self, job_id: str) -> str:
        """The job's whole log so far."""
        return self._call("get_job_logs", job_id)

    def follow(self, job_id: str) -> Iterator[str]:
        """Yield the job's log in chunks as they are written, until the job ends."""
        self.info(job_id)  # raises InputError for an unknown job
        agen = self._client.tail_job_logs(job_id)
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    chunk = loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
                yield chunk
        finally:
            loop.run_until_complete(agen.aclose())
            loop.close()

    def stop(self, job_id: str, *, wait: float = 0.0) -> JobInfo:
        """Ask the job to stop (SIGTERM, then SIGKILL after Ray's grace period); optionally wait.

        Returns
        -------
        JobInfo
            The job's state after the request (and the wait).
        """
        self._call("stop_job", job_id)
        deadline = time.monotonic() + wait
        info = self.info(job_id)
        while not info.terminal and time.monotonic() < deadline:
            time.sleep(0.5)
            info = self.info(job_id)
        return info

    def wait(self, job_id: str, *, timeout: float = 3600.0, poll: float = 1.0) -> JobInfo:
        """Poll until the job reaches a terminal state or ``timeout`` seconds pass; return its state."""
        deadline = time.monotonic() + timeout
        info = self.info(job_id)
        while not info.terminal and time.monotonic() < deadline:
            time.sleep(poll)
            info = self.info(job_id)
        return info

    def manifest(self, info: JobInfo) -> dict[str, Any] | None:
        """The run manifest of a scanner job: ``OUT/manifest.json`` if readable here, else the last
        one the job printed to its log; None when neither exists yet."""
        from scanner.run.manifest import read_manifest
        from scanner.run.pipeline import last_manifest_in_log
        from scanner.store import RunDir

        if info.out:
            path = RunDir(info.out).manifest_path
            if path.is_file():
                try:
                    return read_manifest(path)
                except InputError:
                    pass
        return last_manifest_in_log(self.logs(info.job_id))


def _auth_hint(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"the Jobs API refused the request ({first}); this cluster uses token authentication: run with "
        "RAY_AUTH_MODE=token and the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
    )


def entrypoint_script() -> Path | None:
    """``jobs/run_pipeline.py`` of the source tree this package runs from, or None when installed without it."""
    import scanner

    path = Path(scanner.__file__).resolve().parent.parent / "jobs" / ENTRYPOINT
    return path if path.is_file() else None


def format_job(info: JobInfo, now: float | None = None) -> str:
    """One line: ID, state, start time, duration and run directory."""
    now = time.time() if now is None else now
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.start_time)) if info.start_time else "-"
    end = info.end_time or (now if info.start_time else None)
    took = f"{end - info.start_time:.0f}s" if end and info.start_time else "-"
    where = info.out or info.entrypoint
    return f"{info.job_id}  {info.status:9s}  {start}  {took:>6s}  {where}"
