"""Where ``scanner scan`` runs its shards: on threads of this process, or on Ray.

The rule (issue 18): an address (``--address``, ``RAY_ADDRESS``), a Ray already initialised in this
process or a running local cluster (``ray start``) always means Ray. Otherwise the shards run on
threads of this process unless the estimated work is large enough that starting and stopping a local
Ray costs under :data:`RAY_SHARE` of it. A switch forces either way. The choice and its reason are
printed by the CLI.

The switch's spelling lives in :data:`FORCE_CHOICES` and :func:`choose_executor` only (one place to
rename it when every command's no-Ray switch is unified).
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

#: Starting and stopping a local Ray on the 2-core CI machine: 4.0-5.5 s + 1.2-1.4 s, measured
#: (benchmarks/RESULTS.md, section Scan).
RAY_START_S = 6.0
#: Ray is started for a scan when its start would cost at most this share of the estimated work.
RAY_SHARE = 0.10
#: Shard work per Mb of sequence per motif per core (s), measured on the 2-core CI machine with the
#: 50-motif benchmark (benchmarks/RESULTS.md: ~1.3-2 ms); the estimate only picks the executor.
SECONDS_PER_MB_MOTIF = 2.0e-3
#: Values of the forcing switch: None (decide), "local" (threads, no Ray), "ray".
FORCE_CHOICES = (None, "local", "ray")


@dataclass(frozen=True)
class ExecutorChoice:
    """Where the shards run: ``executor`` is ``"local"`` or ``"ray"``; ``address`` the Ray address
    (None: start or reuse a Ray in this process); ``reason`` one line for the console."""

    executor: str
    address: str | None
    reason: str


def estimated_seconds(bases: int, motifs: int, cores: int) -> float:
    """Estimated wall seconds of the shards on ``cores`` threads (see :data:`SECONDS_PER_MB_MOTIF`)."""
    return bases / 1e6 * motifs * SECONDS_PER_MB_MOTIF / max(1, cores)


def running_cluster_address(temp_dir: str | None = None) -> str | None:
    """The address of a local cluster started with ``ray start`` that answers, else None.

    Reads the file Ray's own ``address="auto"`` reads (``<RAY_TMPDIR|TMPDIR|/tmp>/ray/ray_current_cluster``)
    and checks that its GCS port accepts a connection (a stale file from a stopped cluster is ignored).
    Does not import Ray.
    """
    if temp_dir is None:
        temp_dir = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    path = Path(temp_dir) / "ray" / "ray_current_cluster"
    try:
        text = path.read_text().strip()
        host, port = text.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=0.3):
            return text
    except (OSError, ValueError):
        return None


def _ray_in_process() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and getattr(ray, "is_initialized", lambda: False)())


def choose_executor(
    force: str | None,
    address: str | None,
    bases: int,
    motifs: int,
    cores: int,
    env: dict | None = None,
) -> ExecutorChoice:
    """Apply the rule of this module.

    Parameters
    ----------
    force : {None, "local", "ray"}
        The switch (``--no-ray`` / ``--ray``, ``use_ray=False/True``); None decides.
    address : str, optional
        ``--address``.
    bases, motifs, cores : int
        Sequence to scan (bp), motifs, and threads available, for the work estimate.
    env : dict, optional
        Environment (default ``os.environ``), for ``RAY_ADDRESS``.

    Returns
    -------
    ExecutorChoice

    Raises
    ------
    ValueError
        For an unknown ``force``.
    """
    if force not in FORCE_CHOICES:
        raise ValueError(f"force must be one of {FORCE_CHOICES}, got {force!r}")
    env = os.environ if env is None else env
    if force == "local":
        return ExecutorChoice("local", None, "--no-ray: shards on threads of this process")
    if address:
        return ExecutorChoice("ray", address, f"Ray at {address} (--address)")
    if env.get("RAY_ADDRESS"):
        return ExecutorChoice("ray", env["RAY_ADDRESS"], f"Ray at {env['RAY_ADDRESS']} (RAY_ADDRESS is set)")
    if _ray_in_process():
        return ExecutorChoice("ray", None, "Ray already running in this process")
    running = running_cluster_address()
    if running:
        return ExecutorChoice("ray", running, f"the local Ray cluster running at {running}")
    if force == "ray":
        return ExecutorChoice("ray", None, "--ray: starting a local Ray")
    work = estimated_seconds(bases, motifs, cores)
    if RAY_START_S <= RAY_SHARE * work:
        return ExecutorChoice(
            "ray", None, f"starting a local Ray (~{RAY_START_S:.0f} s) is under 10% of the ~{work:.0f} s of work"
        )
    return ExecutorChoice(
        "local",
        None,
        f"~{work:.1f} s of work on {cores} threads: starting Ray (~{RAY_START_S:.0f} s) would cost more "
        "than 10% of it, so threads of this process (no cluster, no address)",
    )
