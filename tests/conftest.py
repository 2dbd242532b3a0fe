"""Shared test fixtures and the test environment (4 fake CPU devices, no network).

Helpers (signals, small generators, CLI commands) live in tests/helpers.py.
"""

import os

# Tests see 4 fake CPU devices so pmap is exercised; set before jax is imported anywhere.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Many tests build the same tiny train step; a persistent cache compiles it once per run.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "/tmp/mp3gan-test-jax-cache")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")

import pytest  # noqa: E402
from helpers import SMALL, SMALL_FRAME, clicks_and_noise, random_generator  # noqa: E402

from mp3gan.restore import Restorer  # noqa: E402


@pytest.fixture
def clicks():
    return clicks_and_noise


@pytest.fixture(scope="module", params=["unet", "frame", "frame+gains"])
def gen(request):
    """A small random generator of each kind (the frame kind also with its gain stages,
    whose fine stage re-analyses stage one's output): restore and export run for all."""
    sizes = {
        "unet": SMALL,
        "frame": SMALL_FRAME,
        "frame+gains": dict(SMALL_FRAME, mask=True, fine_hop=4),
    }
    return random_generator(size=sizes[request.param])


@pytest.fixture(scope="module")
def restorer(gen):
    return Restorer(gen, 44100, chunk_length=1024, crossfade=64)
