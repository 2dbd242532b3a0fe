"""The frame-rate generator (kind "frame"): identity at init, any length, its declared
context is exact, it learns, and the shape-polymorphic STFT it uses equals dsp.stft."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from helpers import SMALL_FRAME, random_generator

from mp3gan import dsp, models
from mp3gan.models import BASE_GENERATOR, TINY_GENERATOR, FrameGenerator, build_generator


def noise(seed: int, shape: tuple[int, ...]) -> jax.Array:
    return jnp.asarray(0.3 * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@pytest.fixture(scope="module")
def tiny():
    return build_generator(TINY_GENERATOR, nnx.Rngs(0))


@pytest.mark.parametrize("length", [1, 63, 64, 1000, 4097])
def test_untrained_is_bit_exact_identity_at_any_length(tiny, length):
    # 64 is the tiny hop: lengths below, at and off a multiple of it, and below n_fft.
    x = noise(length, (3, length))
    y = tiny(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert bool(jnp.all(y == x))


def test_kind_selects_the_class_and_bad_sections_are_named():
    assert isinstance(
        nnx.eval_shape(lambda: build_generator(BASE_GENERATOR, nnx.Rngs(0))), FrameGenerator
    )
    unet = nnx.eval_shape(lambda: build_generator(models.BASE_UNET, nnx.Rngs(0)))
    assert isinstance(unet, models.UNetGenerator)  # no kind: a section from before "frame"
    with pytest.raises(ValueError, match="unknown generator kind 'wavenet'"):
        build_generator(dict(kind="wavenet"), nnx.Rngs(0))
    with pytest.raises(ValueError, match="model.generator .*'frame'.*channels"):
        build_generator(dict(TINY_GENERATOR, channels=4), nnx.Rngs(0))
    with pytest.raises(ValueError, match="multiple of hop"):
        FrameGenerator(n_fft=100, hop=64, rngs=nnx.Rngs(0))


def test_base_size_meets_the_time_resolution_and_look_ahead_it_promises():
    base = nnx.eval_shape(lambda: build_generator(BASE_GENERATOR, nnx.Rngs(0)))
    assert base.hop <= 128  # ≤ 2.9 ms at 44.1 kHz: finer than an MP3 short block
    before, after = base.context
    assert after >= 1152 and before >= 1152  # at least one MP3 long block each way
    assert (before, after) == (3710, 3710)  # documented in the module docstring


@pytest.mark.parametrize("stages", [{}, {"mask": True, "fine_hop": 4}])
def test_declared_context_is_exact(stages):
    # ∂y[t]/∂x is zero outside [t - before, t + after] and not zero at its far ends' frames.
    gen = random_generator(size=dict(SMALL_FRAME, **stages))
    graphdef, params = nnx.split(gen)
    before, after = gen.context
    length = 4 * (before + after)
    t = length // 2
    x = noise(1, (1, length))
    grad = jax.grad(lambda x: nnx.merge(graphdef, params)(x)[0, t])(x)[0]
    reach = np.flatnonzero(np.abs(np.asarray(grad)) > 0)
    assert reach.min() >= t - before and reach.max() <= t + after
    # The bound is tight to within one hop of frames on each side.
    assert reach.min() <= t - before + gen.hop and reach.max() >= t + after - gen.hop


def test_it_learns_to_restore_a_low_passed_band():
    # A few Adam steps on one clip: the restoration moves toward the reference.
    gen = build_generator(dict(TINY_GENERATOR), nnx.Rngs(0))
    graphdef, params = nnx.split(gen)
    rng = np.random.default_rng(0)
    reference = jnp.asarray(0.3 * rng.standard_normal((2, 4096)), jnp.float32)
    spec = dsp.stft(reference, 256, 64)
    keep = (jnp.arange(spec.shape[-2]) < 40)[:, None]
    degraded = dsp.istft(spec * keep, 256, 64, 4096)
    tx = optax.adam(3e-3)

    def loss_fn(p):
        return jnp.mean(jnp.abs(nnx.merge(graphdef, p)(degraded) - reference))

    @jax.jit
    def step(p, opt):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, opt = tx.update(grads, opt, p)
        return optax.apply_updates(p, updates), opt, loss

    opt = tx.init(params)
    first = None
    for _ in range(60):
        params, opt, loss = step(params, opt)
        first = float(loss) if first is None else first
    assert float(loss_fn(params)) < 0.8 * first


@pytest.mark.parametrize("length", [1, 100, 511, 512, 1000, 4097])
def test_shape_polymorphic_stft_equals_dsp_stft_and_inverts(length):
    x = noise(length, (2, length))
    spec = dsp.shape_polymorphic_stft(x, 512, 128)
    ref = dsp.stft(x, 512, 128)
    frames = spec.shape[-1]  # stft pads inputs shorter than n_fft and so adds zero frames
    assert frames == -(-length // 128) + 1
    np.testing.assert_allclose(spec, ref[..., :frames], atol=1e-6)
    back = dsp.shape_polymorphic_istft(spec, 512, 128, length)
    np.testing.assert_allclose(back, x, atol=1e-5)


def test_shape_polymorphic_stft_exports_with_a_symbolic_length():
    (samples,) = jax.export.symbolic_shape("samples")
    spec = jax.ShapeDtypeStruct((2, samples), jnp.float32)

    def roundtrip(x):
        return dsp.shape_polymorphic_istft(
            dsp.shape_polymorphic_stft(x, 64, 16), 64, 16, x.shape[-1]
        )

    exported = jax.export.export(jax.jit(roundtrip))(spec)
    x = noise(3, (2, 333))
    np.testing.assert_allclose(exported.call(x), x, atol=1e-5)


@pytest.mark.parametrize("dilation", [1, 2, 4])
@pytest.mark.parametrize("frames", [1, 5, 40])
def test_depthwise_conv_equals_the_grouped_conv_it_replaces(dilation, frames):
    from mp3gan.models.frame_generator import depthwise_conv

    conv = nnx.Conv(
        16,
        16,
        (7,),
        kernel_dilation=dilation,
        feature_group_count=16,
        padding="SAME",
        rngs=nnx.Rngs(dilation),
    )
    conv.bias[...] = jax.random.normal(jax.random.key(1), (16,))
    h = jax.random.normal(jax.random.key(frames), (3, frames, 16))
    np.testing.assert_allclose(depthwise_conv(h, conv), conv(h), atol=1e-5)
