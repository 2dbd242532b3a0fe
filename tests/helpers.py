"""Test helpers: signals the tests make themselves (no downloads), small random
generators, and the command lines of the launch scripts. Fixtures live in conftest.py."""

import importlib
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from mp3gan.models import Generator, build_generator

ROOT = Path(__file__).resolve().parent.parent

# launch/<name>.py whose mp3gan.cli module has another name.
CLI_MODULES = {"prepare_data": "prepare"}


def load_cli(name: str):
    """The code of ``launch/<name>.py``: its module in ``mp3gan.cli``, where tests can
    patch module globals (``launch/`` holds shims over it; tests/test_cli.py checks them)."""
    return importlib.import_module(f"mp3gan.cli.{CLI_MODULES.get(name, name)}")


def train_command(*args: str) -> list[str]:
    """``launch/train.py`` on ``configs/tiny.py`` with ``args``, as a subprocess command."""
    train_cli = ROOT / "launch" / "train.py"
    return [sys.executable, str(train_cli), f"--config={ROOT / 'configs' / 'tiny.py'}", *args]


def run_train_cli(*args: str) -> subprocess.CompletedProcess:
    """Run :func:`train_command` to completion, output captured as text."""
    return subprocess.run(train_command(*args), capture_output=True, text=True, timeout=120)


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


def signal(channels: int, n: int, seed: int = 0) -> np.ndarray:
    """Gaussian noise at about -10 dBFS RMS, ``[channels, n]`` float32."""
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((channels, n))).astype(np.float32)


# Small generators (receptive field a few hundred samples) so chunking shows on short clips.
SMALL = dict(
    kind="unet", channels=4, down_factors=(2, 2), dilations=(1, 3), kernel_size=3, max_channels=8
)
SMALL_FRAME = dict(kind="frame", n_fft=64, hop=16, dim=8, mlp_ratio=2, dilations=(1, 2))


def random_generator(seed: int = 1, size: dict = SMALL) -> Generator:
    """A small generator with random weights (not the identity an untrained one is, which
    would hide chunking errors). Built abstractly and filled with numpy draws: eager
    initialisation compiles every op once and costs tens of seconds on 2 cores."""
    abstract = nnx.eval_shape(lambda: build_generator(size, nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        fan_in = int(np.prod(leaf.shape[:-1])) or 1
        noise = 0.3 / np.sqrt(fan_in) * rng.standard_normal(leaf.shape)
        # Snake's alpha must stay away from 0 (it divides by it).
        base = 1.0 if "alpha" in jax.tree_util.keystr(path) else 0.0
        return (base + noise).astype(np.float32)

    return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(draw, state))
