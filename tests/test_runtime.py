"""Process settings for the model stages: torch threads and glibc's handling of freed memory."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from scanner.runtime import ActorPlan, RayResources, keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_applies_on_glibc_and_is_idempotent():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True


def test_keep_freed_memory_keeps_a_freed_buffer_resident():
    """After a 20 MB buffer is freed, the process keeps its pages (the point of the setting)."""
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    code = (
        "import numpy as np, resource, sys\n"
        "from scanner.runtime import keep_freed_memory\n"
        "if sys.argv[1] == '1': keep_freed_memory()\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()\n"
        "before = rss()\n"
        "a = np.ones(20_000_000 // 8); del a\n"
        "print(rss() - before)\n"
    )
    kept = int(subprocess.run([sys.executable, "-c", code, "1"], capture_output=True, text=True, check=True).stdout)
    freed = int(subprocess.run([sys.executable, "-c", code, "0"], capture_output=True, text=True, check=True).stdout)
    assert kept > 15_000_000 > freed


def test_actor_plan_cpu_and_gpu():
    cpu = ActorPlan.for_items(RayResources(cpus=4, gpus=0), n_items=10)
    assert cpu.actors == 4 and cpu.resources == {"num_cpus": 1.0} and cpu.threads == 1
    gpu = ActorPlan.for_items(RayResources(cpus=8, gpus=2), n_items=1)
    assert gpu.actors == 1 and gpu.resources == {"num_gpus": 1, "num_cpus": 0} and gpu.threads == 8
    two = ActorPlan.for_items(RayResources(cpus=8, gpus=2), n_items=10)
    assert two.actors == 2 and two.resources["num_gpus"] == 1 and two.threads == 4
    # more actors than GPUs: they share the GPUs, so the pool can always be scheduled
    packed = ActorPlan.for_items(RayResources(cpus=16, gpus=1), n_items=10, actors=4)
    assert packed.actors == 4 and packed.resources == {"num_gpus": 0.25, "num_cpus": 0} and packed.threads == 4
    assert packed.actors * packed.resources["num_gpus"] <= 1


def test_full_float32_turns_tf32_off_inside_and_restores_it():
    import torch

    from scanner.interpret import preserved_model
    from scanner.runtime import full_float32

    flags = (torch.backends.cudnn, torch.backends.cuda.matmul)
    before = [f.allow_tf32 for f in flags]
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with full_float32():
            assert not any(f.allow_tf32 for f in flags)
        assert all(f.allow_tf32 for f in flags)
        with pytest.raises(ValueError), full_float32():
            raise ValueError("inside")
        assert all(f.allow_tf32 for f in flags)  # restored on error too
        with preserved_model(torch.nn.Linear(2, 1)):  # every attribution method runs inside this
            assert not any(f.allow_tf32 for f in flags)
        assert all(f.allow_tf32 for f in flags)
    finally:
        for f, b in zip(flags, before, strict=True):
            f.allow_tf32 = b


def _lan_address() -> str | None:
    """A non-loopback IPv4 address of this machine, or None."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


def _tree(pid: int) -> set[int]:
    """``pid`` and its descendants (from /proc)."""
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        out.add(p)
        todo += children.get(p, [])
    return out


def _listening(pids: set[int]) -> list[str]:
    """Local addresses (hex, from /proc/net/tcp*) of the TCP sockets those processes listen on."""
    import os
    from pathlib import Path

    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                out.append(f[1].split(":")[0])
    return out


def _is_loopback(hex_addr: str) -> bool:
    if len(hex_addr) == 8:  # IPv4, little-endian
        return hex_addr.endswith("7F")
    # IPv6: ::1, or ::ffff:127.x.y.z (IPv4-mapped)
    return hex_addr == "00000000000000000000000001000000" or (
        hex_addr.startswith("0000000000000000FFFF0000") and hex_addr.endswith("7F")
    )


@pytest.mark.ray
def test_local_ray_listens_on_loopback_only_and_keeps_its_token_private(tmp_path):
    """A Ray the tool starts binds every server to 127.0.0.1 (a probe from the LAN address is refused)
    and, in token mode, leaves Ray's token file readable by its owner only."""
    import os
    import signal
    import socket

    lan = _lan_address()
    if lan is None:
        pytest.skip("this machine has no non-loopback address to probe from")
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}  # Ray's default: token mode
    env["HOME"] = str(tmp_path)  # its token file goes here
    code = (
        "import time, ray\n"
        "from scanner.runtime import ray_session\n"
        "with ray_session(num_cpus=1, uses_data=False):\n"
        "    print(ray.get_runtime_context().gcs_address, flush=True)\n"
        "    time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        gcs = proc.stdout.readline().strip()
        host, port = gcs.rsplit(":", 1)
        assert host == "127.0.0.1", gcs
        with pytest.raises(OSError):  # refused: nothing listens on the LAN address
            socket.create_connection((lan, int(port)), timeout=3).close()
        listening = _listening(_tree(proc.pid))
        assert listening and all(_is_loopback(a) for a in listening), listening
        token = tmp_path / ".ray" / "auth_token"
        if token.is_file():
            assert token.stat().st_mode & 0o077 == 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
