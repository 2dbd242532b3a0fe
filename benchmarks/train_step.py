"""Print the train step's speed: steps/s and audio-seconds/s, for a config.

    python benchmarks/train_step.py --config configs/tiny.py
    python benchmarks/train_step.py --config configs/base.py --steps 5

Times the pmapped GAN step (discriminators on) over all local devices on synthetic
batches of the config's shape, after compilation. Compare with the loader's
examples/s from benchmarks/loader.py: the loader must keep up.
"""

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
from common import load_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mp3gan import train  # noqa: E402


def time_steps(config, adversarial: bool, steps: int) -> tuple[float, float]:
    """(compile + first step, seconds per step after it) of the pmapped step over all
    local devices, on a synthetic batch of the config's shape."""
    n = jax.local_device_count()
    per_device = max(config.train.batch_size // jax.device_count(), 1)
    rng = np.random.default_rng(0)
    shape = (n, per_device, config.data.crop_samples)
    reference = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    batch = {"reference": reference, "degraded": 0.9 * reference}
    state, statics = train.create_state(config)
    step = train.pmapped_step(statics, adversarial=adversarial)
    p_state = train.replicate(state, n)
    start = time.perf_counter()
    p_state, metrics = step(p_state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        p_state, metrics = step(p_state, batch)
    jax.block_until_ready(metrics)
    return compile_s, (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/tiny.py")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    config = load_config(args.config)
    n = jax.local_device_count()
    per_device = max(config.train.batch_size // jax.device_count(), 1)
    samples = config.data.crop_samples
    compile_s, per_step = time_steps(config, True, args.steps)
    rate = 1.0 / per_step
    audio_rate = rate * n * per_device * samples / config.data.sample_rate
    print(
        f"config {args.config}: {n} x {jax.devices()[0].platform} device(s), "
        f"batch {n * per_device} x {samples} samples"
    )
    print(f"compile + first step: {compile_s:.1f} s")
    print(
        f"steps/s: {rate:.3f}   audio-seconds/s: {audio_rate:.2f}   "
        f"examples/s: {rate * n * per_device:.1f}"
    )


if __name__ == "__main__":
    main()
