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
