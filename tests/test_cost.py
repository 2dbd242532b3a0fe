"""The cost counter: XLA's flop count, checked on layers whose MACs are counted by hand,
and the sizes it certifies for the shipped configs."""

import jax.numpy as jnp
import pytest
from flax import nnx

from mp3gan import models
from mp3gan.models.cost import compiled_flops, gmac_per_channel_second, parameter_count


def test_dense_layer_costs_what_a_hand_count_says():
    layer = nnx.Linear(64, 32, use_bias=False, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(layer)
    flops = compiled_flops(lambda s, x: nnx.merge(graphdef, s)(x), state, jnp.zeros((10, 64)))
    assert flops == 2 * 10 * 64 * 32  # one multiply and one add per MAC


def test_per_channel_second_scales_a_valid_conv_by_its_rate():
    # A 'VALID' conv of kernel 5 from 1 to 8 channels on [1, T, 1]: (T - 4) · 5 · 8 MACs.
    conv = nnx.Conv(1, 8, (5,), padding="VALID", use_bias=False, rngs=nnx.Rngs(0))

    class Wrapped(nnx.Module):
        def __init__(self):
            self.conv = conv

        def __call__(self, x):
            return self.conv(x[..., None])

    gmac = gmac_per_channel_second(Wrapped(), sample_rate=1000, seconds=2.0)
    assert gmac == pytest.approx((2000 - 4) * 5 * 8 / 2.0 / 1e9, rel=1e-6)


def test_base_sizes_stay_within_their_cpu_budget():
    # The budget: about 0.5 GMAC per channel-second for the base generator; the
    # discriminators must not dominate the step (HiFi-GAN's MPD alone is ~10 per pass).
    gen = models.build_generator(models.BASE_GENERATOR, nnx.Rngs(0))
    disc = models.Discriminators(**models.BASE_DISCRIMINATORS, rngs=nnx.Rngs(1))
    g, d = gmac_per_channel_second(gen, 44100, 1.0), gmac_per_channel_second(disc, 44100, 1.0)
    print(f"base: G {g:.3f}, D {d:.3f} GMAC per channel-second")
    assert 0.3 < g <= 0.55
    assert d <= 1.2
    assert 1_000_000 < parameter_count(gen) < 2_000_000
