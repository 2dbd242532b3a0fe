"""Discriminators: output structure, odd lengths, finite gradients, weight norm, phase."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mp3gan.models import (
    BASE_DISCRIMINATORS,
    TINY_DISCRIMINATORS,
    Discriminators,
    MultiResolutionSTFTDiscriminator,
)
from mp3gan.models.discriminators import WeightNormConv2d


def fast_rngs(seed: int = 0) -> nnx.Rngs:
    """Rngs on the 'rbg' PRNG: initialisers compile once per parameter shape, and
    threefry's ~1 s compile per shape would dominate these tests' run time."""
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def noise(seed: int, shape: tuple[int, ...]) -> jax.Array:
    # NumPy, for the same reason: a jax.random draw compiles for every new shape.
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


# XLA's backend optimisations double the compile time of these graphs and buy nothing
# at test sizes.
QUICK_COMPILE = {"xla_backend_optimization_level": 0}


def count_params(module: nnx.Module) -> int:
    return sum(p.size for p in jax.tree.leaves(nnx.state(module, nnx.Param)))


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# 4003 is prime: divisible by none of the periods. 300 is shorter than every FFT size.
@pytest.mark.parametrize("length", [4003, 300, 1])
def test_output_structure(length):
    # Shapes only (abstract evaluation): compiling the full model per length is slow.
    model = nnx.eval_shape(lambda: Discriminators(**TINY_DISCRIMINATORS, rngs=fast_rngs()))
    graphdef, abstract_params = nnx.split(model)
    x = jax.ShapeDtypeStruct((2, length), jnp.float32)
    logits, features = jax.eval_shape(
        lambda params, x: nnx.merge(graphdef, params)(x), abstract_params, x
    )
    periods, fft_sizes = TINY_DISCRIMINATORS["periods"], TINY_DISCRIMINATORS["fft_sizes"]
    assert len(logits) == len(features) == len(periods) + len(fft_sizes)
    for logit, layers in zip(logits, features, strict=True):
        assert len(logit.shape) == 2 and logit.shape[0] == 2 and logit.shape[1] >= 1
        assert len(layers) == 5 and all(f.shape[0] == 2 for f in layers)
    for period, layers in zip(periods, features, strict=False):
        # Folded to [B, ceil(T / p), p, 1]; the first conv has stride 3 along time.
        assert layers[0].shape[1:] == (ceil_div(ceil_div(length, period), 3), period, 4)
    for n_fft, layers in zip(fft_sizes, features[len(periods) :], strict=True):
        frames = ceil_div(max(length, n_fft), n_fft // 4) + 1  # centred frames, end padded
        # [B, time, freq, C]: the first conv patches frequency by 4, three more halve it.
        patched = ceil_div(n_fft // 2 + 1, 4)
        assert layers[0].shape[1:] == (frames, patched, 4)
        assert layers[-1].shape[2] == ceil_div(patched, 8)


def test_gradients_are_finite_and_reach_every_first_conv():
    # One sub-discriminator of each family keeps the compile short.
    model = Discriminators(
        **dict(TINY_DISCRIMINATORS, periods=(3,), fft_sizes=(512,)), rngs=fast_rngs()
    )
    graphdef, params = nnx.split(model, nnx.Param)
    assert len(jax.tree.leaves(nnx.state(model))) == len(jax.tree.leaves(params))
    x = 0.1 * noise(1, (2, 2203))

    @functools.partial(jax.jit, compiler_options=QUICK_COMPILE)
    def grads(params, x):
        def loss(params, x):
            logits, features = nnx.merge(graphdef, params)(x)
            fm = sum(jnp.mean(jnp.abs(f)) for layers in features for f in layers)
            return sum(jnp.mean((lg - 1.0) ** 2) for lg in logits) + fm

        return jax.grad(loss, argnums=(0, 1))(params, x)

    param_grads, input_grads = grads(params, x)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(param_grads))
    assert bool(jnp.all(jnp.isfinite(input_grads))) and float(jnp.abs(input_grads).sum()) > 0
    for family in ("multi_period", "multi_resolution_stft"):
        first_conv = param_grads[family]["discriminators"][0]["convs"][0]
        assert float(jnp.abs(first_conv["direction"][...]).sum()) > 0


def test_weight_norm_separates_direction_and_gain():
    conv = WeightNormConv2d(2, 3, (3, 5), (1, 2), (2, 1), rngs=fast_rngs())
    x = noise(0, (1, 16, 20, 2))
    y = conv(x)
    assert y.shape == (1, 16, 10, 3)  # symmetric 'same' padding, stride 2 along axis 2
    conv.direction[...] = 3.0 * conv.direction[...]
    np.testing.assert_allclose(conv(x), y, rtol=1e-5, atol=1e-6)
    conv.gain[...] = 2.0 * conv.gain[...]
    conv.bias[...] = jnp.ones(3)
    np.testing.assert_allclose(conv(x), 2.0 * y + 1.0, rtol=1e-5, atol=1e-5)


def test_stft_discriminator_sees_phase():
    # x and -x have identical STFT magnitudes; a magnitude-only discriminator could not
    # tell them apart. Fed real and imaginary parts, this one must.
    model = MultiResolutionSTFTDiscriminator((512,), channels=4, rngs=fast_rngs())
    x = 0.1 * noise(0, (1, 2048))
    logits = nnx.jit(lambda model, x: model(x)[0][0])  # one compile, not one per op
    logits_pos, logits_neg = logits(model, x), logits(model, -x)
    assert float(jnp.max(jnp.abs(logits_pos - logits_neg))) > 1e-6


def test_param_counts():
    tiny = nnx.eval_shape(lambda: Discriminators(**TINY_DISCRIMINATORS, rngs=fast_rngs()))
    base = nnx.eval_shape(lambda: Discriminators(**BASE_DISCRIMINATORS, rngs=fast_rngs()))
    n_tiny, n_base = count_params(tiny), count_params(base)
    print(f"discriminator params: tiny {n_tiny:,}, base {n_base:,}")
    assert n_tiny < 100_000
    assert 100_000 < n_base < 2_000_000  # widths capped for a CPU (LARGE is HiFi-GAN-like)
