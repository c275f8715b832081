"""Shared fixtures: one small local Ray cluster per test session, seeded data helpers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# motif tables cached by scans go to a private folder, not the user's cache
os.environ.setdefault("SCANNER_CACHE_DIR", tempfile.mkdtemp(prefix="scanner-test-cache-"))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray instance for the whole session: 2 CPUs and one *logical* GPU.

    The logical GPU exercises the GPU scheduling path (actors get ``gpu_ids=[0]``) while
    ``torch.cuda.is_available()`` stays False, so code must still fall back to the CPU device.
    """
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            num_gpus=1,
            include_dashboard=False,
            object_store_memory=128 * 1024 * 1024,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder (yeast genome, Pho4 regions, JASPAR); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA
