"""Connecting to Ray or starting it in-process, and the GPU/CPU decision.

Nothing here runs at import time; ``ray`` is imported inside the functions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class RayResources:
    """What the connected cluster offers, read on the driver."""

    cpus: float
    gpus: float

    @property
    def use_gpu(self) -> bool:
        """True when at least one GPU (physical or logical) is in the cluster."""
        return self.gpus >= 1


def _quiet_env() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def quiet_ray_data() -> None:
    """Keep Ray Data's per-dataset INFO logs and progress bars off the terminal (our CLI prints its own)."""
    import logging

    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ray_data_without_bars()
    ray.data.DataContext.get_current().print_on_execution_start = False


def ray_data_without_bars() -> None:
    """Turn Ray Data's progress bars off, without its notice that they are off.

    Stages draw their own progress (:mod:`scanner.progress`). Ray Data logs "Progress bars disabled. To
    enable, set ..." at WARNING the first time bars are off; the notice comes from the one logger that
    only reports on bars, which is raised to ERROR here (its other lines are about bars too).
    """
    import logging

    import ray.data

    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False


def spend_actor_restart_warning() -> None:
    """Let Ray core log its "constructor arguments in the object store" error now, where it is not shown.

    Every Ray Data actor pool starts restartable actors whose constructor receives object refs (Ray
    Data's own map function and context, held by the running dataset), and Ray core then logs, once per
    process, an error-level line that restarts could fail if those objects were lost
    (ray-project/ray#53727, #57733): a false alarm here, and a confusing one on every run's console.
    The check runs synchronously while an actor is created, so one throw-away actor of that kind,
    created with this process's stderr pointed at /dev/null for that call only, uses the once-per-process
    line up; later Ray Data stages print nothing. The actor asks for no resources and is killed at once.
    Every other line Ray writes to stderr is untouched.
    """
    import ray

    @ray.remote(num_cpus=0, max_restarts=1)
    class _RestartableProbe:
        def __init__(self, _arg: object) -> None:
            pass

    arg = ray.put(None)
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        probe = _RestartableProbe.remote(arg)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    ray.kill(probe)


@contextmanager
def ray_session(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    object_store_memory: int | None = None,
    verbose: bool = False,
    uses_data: bool = True,
) -> Iterator[RayResources]:
    """Use the Ray cluster at ``address``, or start a local one in-process when ``address`` is None.

    If Ray is already initialised in this process (a test fixture, or a submitted job's driver), it is
    used as is and left running.

    Parameters
    ----------
    address : str, optional
        ``ray://host:10001``, ``host:6379`` or ``"auto"``. None (default) starts a private local
        instance (``address="local"``, no dashboard, every server bound to 127.0.0.1, Ray's token
        authentication on unless ``RAY_AUTH_MODE=disabled`` is set, the token file made private) and
        shuts it down on exit. The environment variable ``RAY_ADDRESS`` is not consulted unless
        ``address="auto"``.
    num_cpus, num_gpus : int, optional
        Resources to declare for a local instance. Default: what the machine has. ``num_gpus=1`` on a
        machine with no GPU declares a logical GPU (used by tests of the GPU scheduling path).
    object_store_memory : int, optional
        Bytes for the local object store. Default: Ray's choice.
    verbose : bool
        Keep Ray Data's INFO logs and progress bars. Default False (the CLI prints its own progress).
    uses_data : bool
        Whether the work uses Ray Data, whose logs are then quieted (which imports it: ~1.5 s).
        Default True; the scan, which uses plain actors, passes False.

    Yields
    ------
    RayResources
        CPUs and GPUs of the cluster.
    """
    _quiet_env()
    restore = _loopback_only() if address is None else None
    import ray

    started = False
    if not ray.is_initialized():
        if address is None:
            kwargs: dict = {
                "address": "local",
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if num_cpus is not None:
                kwargs["num_cpus"] = num_cpus
            if num_gpus is not None:
                kwargs["num_gpus"] = num_gpus
            if object_store_memory is not None:
                kwargs["object_store_memory"] = object_store_memory
            import logging

            # Ray announces the token mode it chose by default on every start; the docs say it once
            notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
            level = notice.level
            notice.setLevel(logging.ERROR)
            try:
                ray.init(**kwargs)
            finally:
                notice.setLevel(level)
            _private_token_file()
        else:
            ray.init(address=address, log_to_driver=False)
        started = True
        if uses_data and not verbose:
            spend_actor_restart_warning()
    if not verbose and (uses_data or "ray.data" in sys.modules):
        quiet_ray_data()
    try:
        res = ray.cluster_resources()
        yield RayResources(cpus=float(res.get("CPU", 0)), gpus=float(res.get("GPU", 0)))
    finally:
        if started:
            ray.shutdown()
        if restore is not None:
            restore()


#: Ray's switch that keeps a single-node cluster on the loopback interface (node address 127.0.0.1).
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _loopback_only() -> Callable[[], None]:
    """Make the local Ray about to start bind every server to 127.0.0.1; return the undo.

    Ray's multi-node mode advertises the machine's LAN address and its GCS, raylet and workers then
    listen on every interface (docs/cluster.md "What listens where"); with cluster mode off, a local
    node's address is the loopback one, which its processes inherit through the environment. Token
    authentication (Ray's default) stays on unless the user set ``RAY_AUTH_MODE=disabled``.
    """
    before = {_LOOPBACK_ENV: os.environ.get(_LOOPBACK_ENV)}
    os.environ[_LOOPBACK_ENV] = "0"
    if "RAY_AUTH_MODE" not in os.environ:  # Ray's default token mode: its token file, private from the start
        _ensure_token()
    constants = sys.modules.get("ray._private.ray_constants")
    was = getattr(constants, "ENABLE_RAY_CLUSTER", None) if constants is not None else None
    if constants is not None:  # imported before: the driver reads the constant, its children the variable
        constants.ENABLE_RAY_CLUSTER = False

    def undo() -> None:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if constants is not None and was is not None:
            constants.ENABLE_RAY_CLUSTER = was

    return undo


def _token_path() -> str:
    return os.path.expanduser(os.environ.get("RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token"))


def _ensure_token() -> None:
    """Create Ray's token file (owner-only from the start) when there is no token yet; Ray would write
    one readable by everyone."""
    import secrets

    if os.environ.get("RAY_AUTH_TOKEN"):
        return
    path = _token_path()
    if os.path.isfile(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:  # another process made it meanwhile
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))


def _private_token_file() -> None:
    """Ray writes its authentication token world-readable; keep it to its owner."""
    path = _token_path()
    try:
        if os.path.isfile(path) and os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError:  # not ours to change: leave it
        pass


def bind_constructor(cls: type, **kwargs: object) -> type:
    """A subclass of ``cls`` whose no-argument constructor calls ``cls(**kwargs)``.

    Ray Data puts ``fn_constructor_kwargs`` in the object store, and Ray then logs an error-level
    warning for every restartable actor created from object-store arguments. Handing Ray Data a class
    that carries its (small) settings avoids both; the subclass is pickled by value, ``cls`` by
    reference, so ``cls`` must still be importable on the workers.
    """

    def __init__(self: object) -> None:
        cls.__init__(self, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__})


@dataclass(frozen=True)
class ActorPlan:
    """How many model actors to run and what each asks Ray for.

    GPU clusters: one actor per GPU (``num_gpus=1, num_cpus=0``), each with the cluster's CPUs shared
    out as torch threads; ``actors`` above the GPU count packs several per GPU (``num_gpus`` = GPUs /
    actors). CPU clusters: one actor per CPU (or ``actors``), each reserving
    ``cpus_per_actor`` CPUs and using the CPUs per actor, rounded, as torch threads.
    """

    actors: int
    resources: dict
    threads: float

    @classmethod
    def for_items(
        cls, res: RayResources, n_items: int, actors: int | None = None, cpus_per_actor: float = 1.0
    ) -> ActorPlan:
        """The plan for ``n_items`` work items (never more actors than items, at least one)."""
        if res.use_gpu:
            n = max(1, min(actors or int(res.gpus), n_items))
            # more actors than GPUs share them (num_gpus < 1), so that one actor's host work (reading,
            # cutting windows, writing) overlaps another's model passes
            return cls(n, {"num_gpus": min(1.0, res.gpus / n), "num_cpus": 0}, max(1.0, res.cpus / n))
        n = max(1, min(actors or max(1, int(res.cpus)), n_items))
        return cls(n, {"num_cpus": cpus_per_actor}, max(1.0, round(res.cpus / n)))


def describe_resources(opts: dict) -> str:
    """Ray resource options in words: ``{"num_cpus": 0.5}`` -> ``"0.5 CPU each"``; GPUs first when asked."""
    parts = []
    for key, name in (("num_gpus", "GPU"), ("num_cpus", "CPU")):
        v = opts.get(key)
        if v:
            parts.append(f"{v:g} {name}")
    return (" and ".join(parts) or "no reserved CPU") + " each"


def relay_item_errors(
    batches: object,
    spans: list[tuple[float, float]] | None = None,
    on_item: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Collect ``{out_file: rows}`` from Ray Data result batches, re-raising an item's InputError.

    Workers report a bad input as a JSON ``[message, source, line, field]`` in an ``error`` column
    instead of raising (an exception would be retried as if transient). When ``spans`` is given and
    the batches have ``started``/``ended`` columns (``time.time()`` at each item's start and end on
    its worker), their pairs are appended to it. ``on_item(n)`` is called with the number of items of
    every batch as it arrives (progress).
    """
    import json

    from scanner.errors import InputError

    written: dict[str, int] = {}
    for batch in batches:
        for f, r, e in zip(batch["out_file"], batch["rows"], batch["error"], strict=True):
            if e:
                message, source, line, fld = json.loads(str(e))
                raise InputError(message, source=source, line=line, field=fld)
            written[str(f)] = int(r)
        if spans is not None and "started" in batch:
            spans.extend(zip(batch["started"].tolist(), batch["ended"].tolist(), strict=True))
        if on_item is not None:
            on_item(len(batch["out_file"]))
    return written


def cluster_resources() -> RayResources:
    """Resources of the Ray cluster this process is connected to."""
    import ray

    res = ray.cluster_resources()
    return RayResources(cpus=float(res.get("CPU", 0)), gpus=float(res.get("GPU", 0)))


def torch_device(prefer_gpu: bool = True) -> str:
    """``"cuda"`` when a CUDA device is visible to this process and wanted, else ``"cpu"``."""
    import torch

    return "cuda" if prefer_gpu and torch.cuda.is_available() else "cpu"


@contextmanager
def full_float32() -> Iterator[None]:
    """Run CUDA convolutions and matrix products in full float32 inside the block (TF32 off).

    PyTorch lets cuDNN convolutions use TF32 (a 10-bit mantissa) by default: fine for a bound
    probability, not for quantities that are differences of nearby outputs (ISM, attributions) or
    for the scan's candidate filter, whose float32 margin assumes float32 arithmetic. Measured on an
    H200 with the DeepSEA model: naive and fast ISM differed by 2.4e-4 (0.3% of the ISM range) with
    TF32 on. The previous settings are restored on exit, also on error. The flags are process-wide:
    other threads of the process see them while the block runs. Leaves torch's newer
    ``fp32_precision`` settings alone where a caller chose them (torch refuses to mix the two APIs).
    """
    import torch

    saved = []
    for obj, name in ((torch.backends.cudnn, "allow_tf32"), (torch.backends.cuda.matmul, "allow_tf32")):
        try:
            before = getattr(obj, name)
            setattr(obj, name, False)
        except RuntimeError:  # the caller uses torch's fp32_precision API
            continue
        saved.append((obj, name, before))
    try:
        yield
    finally:
        for obj, name, before in reversed(saved):
            setattr(obj, name, before)


def set_torch_threads(num_cpus: float | None) -> None:
    """Set torch's intra-op threads from a task's CPU share (at least 1), and :func:`keep_freed_memory`.

    Ray reuses worker processes, which keep the thread count torch had at first import, so each
    actor or task calls this at start.
    """
    import torch

    n = max(1, int(num_cpus or 1))
    torch.set_num_threads(n)
    keep_freed_memory()


#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Make glibc's allocator keep freed memory in the process instead of returning it to the OS.

    Model stages allocate and free the same multi-MB buffers every batch (one-hot input,
    activations). By default glibc serves such blocks with ``mmap`` or trims its heap after each
    free, so every batch faults fresh zeroed pages in again: measured here, CPU prediction on the
    main thread ran at ~3.2k rows/s per core this way and ~5.2k with freed memory kept. Sets the mmap
    threshold to its maximum (32 MiB) and disables trimming for the whole process (idempotent). Peak
    memory is unchanged; memory freed after the peak stays with the process. No-op where the C
    library is not glibc.

    Returns
    -------
    bool
        True if both settings were applied.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    ok_trim = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    return bool(ok_mmap and ok_trim)
