"""Shared test fixtures: signals the tests make themselves (no downloads)."""

import os

# Tests see 4 fake CPU devices so pmap is exercised; set before jax is imported anywhere.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Many tests build the same tiny train step; a persistent cache compiles it once per run.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "/tmp/mp3gan-test-jax-cache")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def load_cli(name: str):
    """Import ``launch/<name>.py`` as a module (launch/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"launch_{name}", ROOT / "launch" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clicks_and_noise(n: int, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Broadband test signal: soft noise plus decaying clicks every ~0.15 s."""
    rng = np.random.default_rng(seed)
    x = 0.02 * rng.standard_normal((channels, n))
    for start in range(sr // 20, n, int(0.15 * sr)):
        burst = rng.standard_normal((channels, min(400, n - start)))
        x[:, start : start + burst.shape[1]] += (
            0.5 * burst * np.exp(-np.arange(burst.shape[1]) / 80)
        )
    return x.astype(np.float32)


def burst_after_silence(sr: int, seed: int = 0) -> np.ndarray:
    """Silence, then a sharp noise burst with a cymbal-like decay: the pre-echo test case."""
    rng = np.random.default_rng(seed)
    n = sr
    x = np.zeros((1, n), np.float32)
    onset = sr // 2 + 300
    tail = n - onset
    x[0, onset:] = 0.5 * rng.standard_normal(tail) * np.exp(-np.arange(tail) / (0.08 * sr))
    return x


@pytest.fixture
def clicks():
    return clicks_and_noise
