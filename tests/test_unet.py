"""The 1-D U-Net generator (kind "unet"): identity at init, shapes, purity, receptive field."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mp3gan.models import BASE_UNET, TINY_UNET, UNetGenerator
from mp3gan.models.unet import receptive_field


def fast_rngs(seed: int = 0) -> nnx.Rngs:
    """Rngs on the 'rbg' PRNG: initialisers compile once per parameter shape, and
    threefry's ~1 s compile per shape would dominate these tests' run time."""
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def noise(seed: int, shape: tuple[int, ...]) -> jax.Array:
    # NumPy, for the same reason: a jax.random draw compiles for every new shape.
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


# Odd factor, a width change, two levels: small enough to probe every phase of the grid.
# Kernel size and base width match TINY so most conv shapes (and compiles) are shared.
SMALL_ODD = dict(channels=8, down_factors=(3, 2), dilations=(2,), kernel_size=7, max_channels=16)


# XLA's backend optimisations double the compile time of these graphs and buy nothing
# at test sizes.
QUICK_COMPILE = {"xla_backend_optimization_level": 0}


def count_params(module: nnx.Module) -> int:
    return sum(p.size for p in jax.tree.leaves(nnx.state(module, nnx.Param)))


@pytest.fixture(scope="module")
def tiny():
    return UNetGenerator(**TINY_UNET, rngs=fast_rngs())


def perturbed(model: UNetGenerator, seed: int = 1) -> tuple[nnx.GraphDef, nnx.State]:
    """``(graphdef, params)`` with a non-zero output conv, so the whole network is live."""
    graphdef, params = nnx.split(model, nnx.Param)
    params = jax.tree.map(jnp.array, params)  # a copy: the shared fixture stays untrained
    kernel = params["out_conv"]["kernel"]
    kernel[...] = 0.1 * noise(seed, kernel.shape)
    return graphdef, params


def sensitivities(graphdef, params, x: jax.Array, probes: tuple[int, ...]):
    """Output, parameter gradients and ``∂y[probe]/∂x`` for each probe (one row each)."""
    rows = jnp.broadcast_to(x, (len(probes), x.shape[-1]))
    y, pullback = jax.vjp(lambda p, x: nnx.merge(graphdef, p)(x), params, rows)
    one_hot = jnp.zeros_like(y).at[jnp.arange(len(probes)), jnp.array(probes)].set(1.0)
    param_grads, input_grads = pullback(one_hot)
    return y, param_grads, input_grads


def support(input_grads: jax.Array, probes: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """How far before and after each probe the input gradient is non-zero."""
    before, after = [], []
    for row, probe in zip(np.asarray(input_grads), probes, strict=True):
        nonzero = np.flatnonzero(row)
        before.append(probe - int(nonzero[0]))
        after.append(int(nonzero[-1]) - probe)
    return before, after


# Lengths 1..128 share one padded size (a compile each costs seconds), 131 the next.
@pytest.mark.parametrize("length", [1, 2, 127, 128, 131])
def test_untrained_generator_is_bit_exact_identity(tiny, length):
    x = noise(length, (3, length)) * 0.5
    y = tiny(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


def test_leaky_relu_variant_is_identity_too():
    model = UNetGenerator(**dict(TINY_UNET, activation="leaky_relu"), rngs=fast_rngs())
    x = noise(0, (2, 100))
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(x))


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="activation"):
        UNetGenerator(**dict(TINY_UNET, activation="tanh"), rngs=fast_rngs())


def test_state_is_params_only(tiny):
    # Nothing is left for a second collection, so split(model) / merge is all a trainer needs.
    assert len(jax.tree.leaves(nnx.state(tiny))) == len(jax.tree.leaves(nnx.state(tiny, nnx.Param)))


def test_documented_receptive_field():
    assert receptive_field((2, 4, 4, 4), (1, 3, 9), 7) == (10660, 10660)
    model = nnx.eval_shape(lambda: UNetGenerator(**BASE_UNET, rngs=fast_rngs()))
    assert model.receptive_field == 21321
    assert model.receptive_field / 44100 > 0.45  # seconds; MP3 pre-echo is < 30 ms
    # By hand: in/out convs 1+1 each side; two level-0 stacks of two k=3 convs, 4 each
    # side; strided conv (k=4, f=2, padded 1 low) 1 before / 2 after; repeat 1 before;
    # up conv 2 each side; bottleneck at 2 samples a frame, 4 each side.
    assert receptive_field((2,), (1,), 3) == (14, 14)


def test_jitted_split_merge_backward_and_receptive_field_of_default_size(tiny):
    """One jitted pass at the default architecture: finite grads and the RF bound."""
    graphdef, params = perturbed(tiny)
    before, after = receptive_field(
        TINY_UNET["down_factors"], TINY_UNET["dilations"], TINY_UNET["kernel_size"]
    )
    margin = 4 * tiny.total_factor  # keeps the padded ends out of reach of the probes
    length = before + after + 2 * margin
    probes = (before + margin + 77, before + margin - 140)  # off the coarse grid
    x = noise(0, (1, length))
    y, param_grads, input_grads = jax.jit(
        sensitivities, static_argnums=(0, 3), compiler_options=QUICK_COMPILE
    )(graphdef, params, x, probes)

    assert y.shape == (len(probes), length)
    assert float(jnp.max(jnp.abs(y[0] - x[0]))) > 1e-3  # the perturbed model changes x
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(param_grads))
    assert float(jnp.abs(param_grads["in_conv"]["kernel"][...]).sum()) > 0
    reach_before, reach_after = support(input_grads, probes)
    # Within the bound, and reaching it to within one coarsest frame (128 samples): the
    # worst case over t is attained only at some phases of the downsampling grid.
    for reach, bound in [(reach_before, before), (reach_after, after)]:
        assert all(bound - tiny.total_factor <= r <= bound for r in reach), (reach, bound)


def test_receptive_field_is_exact_over_every_phase():
    model = UNetGenerator(**SMALL_ODD, rngs=fast_rngs())
    graphdef, params = perturbed(model)
    before, after = receptive_field(
        SMALL_ODD["down_factors"], SMALL_ODD["dilations"], SMALL_ODD["kernel_size"]
    )
    assert (before, after) == (150, 151)
    length = 3 * (before + after)
    probes = tuple(length // 2 + phase for phase in range(model.total_factor))
    x = noise(0, (1, length))
    _, _, input_grads = jax.jit(
        sensitivities, static_argnums=(0, 3), compiler_options=QUICK_COMPILE
    )(graphdef, params, x, probes)
    reach_before, reach_after = support(input_grads, probes)
    assert max(reach_before) == before and max(reach_after) == after


def test_param_counts(tiny):
    base = nnx.eval_shape(lambda: UNetGenerator(**BASE_UNET, rngs=fast_rngs()))
    n_tiny, n_base = count_params(tiny), count_params(base)
    print(f"generator params: tiny {n_tiny:,}, base {n_base:,}")
    assert 10_000 < n_tiny < 500_000
    assert 3_000_000 < n_base < 7_000_000
