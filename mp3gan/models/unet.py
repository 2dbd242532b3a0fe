"""The 1-D U-Net generator (kind "unet"): a residual waveform U-Net that undoes MP3 artefacts.

The decoded MP3 already has the right pitch, timing and most of the spectrum, so the
network only has to learn a *correction*: ``y = x + correction(x)``. The last conv is
zero-initialised, so an untrained generator returns its input bit-exactly and training
starts from "do no harm" instead of from noise.

Pre-echo is the artefact that sets the context we need: MP3 spreads quantisation noise
over a whole (long) block of 1152 samples, i.e. up to ~26 ms *before* a transient at
44.1 kHz. To remove it the output at ``t`` must see the onset at ``t + 26 ms``, and to
know what the pre-onset signal should be it helps to see well before ``t`` too. With the
default size (``down_factors=(2, 4, 4, 4)``, ``dilations=(1, 3, 9)``, ``kernel_size=7``)
each output sample sees 10,660 samples before and 10,660 after it: a receptive field of
21,321 samples = 483.5 ms (±241.7 ms) at 44.1 kHz; see :func:`receptive_field`.

It spends its compute at the sample rate (~60 GMAC per channel-second at the base size,
against ~0.5 for :mod:`mp3gan.models.frame_generator`), so it is kept for comparison,
selected by ``model.generator.kind = "unet"``.

Sizes: ``TINY_UNET`` (tests, ~29 k params, all levels 8 wide) and
``BASE_UNET`` (training, ~4.6 M params; widths 32, 64, 128, 128, 128 from full
rate down to 1/128 rate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


class Snake(nnx.Module):
    """Snake activation ``x + sin²(αx) / α`` with a learned per-channel frequency α.

    A periodic inductive bias that suits audio better than leaky-ReLU (BigVGAN,
    Lee et al. 2023; Ziyin et al. 2020).
    """

    def __init__(self, channels: int):
        self.alpha = nnx.Param(jnp.ones((channels,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        alpha = self.alpha[...]
        # The epsilon keeps 1/α finite if training drives some α to zero.
        return x + jnp.sin(alpha * x) ** 2 / (alpha + 1e-9)


class LeakyReLU(nnx.Module):
    """Leaky-ReLU with HiFi-GAN's slope 0.1; a module only so it can stand in for Snake."""

    def __init__(self, channels: int):
        del channels

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.leaky_relu(x, 0.1)


def _activation(name: str, channels: int) -> nnx.Module:
    if name == "snake":
        return Snake(channels)
    if name == "leaky_relu":
        return LeakyReLU(channels)
    raise ValueError(f"unknown activation {name!r}; expected 'snake' or 'leaky_relu'")


class ResidualUnit(nnx.Module):
    """``h + conv_1(act(conv_d(act(h))))``: one dilated unit of HiFi-GAN's ResBlock1."""

    def __init__(
        self, channels: int, kernel_size: int, dilation: int, activation: str, branch_scale, *, rngs
    ):
        self.act_dilated = _activation(activation, channels)
        self.conv_dilated = nnx.Conv(
            channels, channels, (kernel_size,), kernel_dilation=dilation, rngs=rngs
        )
        self.act_local = _activation(activation, channels)
        # A deep path crosses ~30 units; full-variance branches would multiply the signal
        # variance by ~2 per unit. Scaled branches keep activations O(1) at init while
        # every layer still gets a gradient (unlike zero-init SkipInit).
        self.conv_local = nnx.Conv(
            channels,
            channels,
            (kernel_size,),
            kernel_init=nnx.initializers.variance_scaling(branch_scale, "fan_in", "normal"),
            rngs=rngs,
        )

    def __call__(self, h: jax.Array) -> jax.Array:
        return h + self.conv_local(self.act_local(self.conv_dilated(self.act_dilated(h))))


class ResidualStack(nnx.Module):
    """Residual units with growing dilations (e.g. 1, 3, 9) at one time resolution."""

    def __init__(
        self, channels: int, kernel_size: int, dilations, activation: str, branch_scale, *, rngs
    ):
        self.units = nnx.List(
            [
                ResidualUnit(channels, kernel_size, d, activation, branch_scale, rngs=rngs)
                for d in dilations
            ]
        )

    def __call__(self, h: jax.Array) -> jax.Array:
        for unit in self.units:
            h = unit(h)
        return h


class Downsample(nnx.Module):
    """Strided conv with kernel ``2·factor``, so neighbouring output frames overlap."""

    def __init__(self, in_channels: int, out_channels: int, factor: int, activation: str, *, rngs):
        self.act = _activation(activation, in_channels)
        self.conv = nnx.Conv(in_channels, out_channels, (2 * factor,), strides=factor, rngs=rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        return self.conv(self.act(h))


class Upsample(nnx.Module):
    """Nearest-neighbour repeat then a conv.

    A transposed conv with stride ``f`` paints overlapping kernels unevenly and leaves a
    periodic "checkerboard" tone at ``sr / f`` (Odena et al. 2016), which in audio is an
    audible whine; repeating samples first keeps every output sample treated alike.
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int, activation: str, *, rngs):
        self.factor = factor
        self.act = _activation(activation, in_channels)
        self.conv = nnx.Conv(in_channels, out_channels, (2 * factor + 1,), rngs=rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        return self.conv(jnp.repeat(self.act(h), self.factor, axis=1))


def level_channels(channels: int, max_channels: int, depth: int) -> list[int]:
    """Width at each U-Net level (0 = full rate, ``depth`` = bottleneck): doubling, capped."""
    return [min(channels * 2**level, max_channels) for level in range(depth + 1)]


def receptive_field(
    down_factors: Sequence[int], dilations: Sequence[int], kernel_size: int
) -> tuple[int, int]:
    """Samples ``(before, after)`` that can influence one output sample (worst case over t).

    Follows the deepest path (input conv, encoder stacks, bottleneck, decoder, output
    conv); skip connections only take shorter paths. A 'SAME' conv spanning ``w`` frames
    at a level where one frame is ``s`` samples reaches ``(w-1)//2·s`` before and the rest
    after; a strided conv starts ``(k - f)//2`` input frames early; a nearest repeat by
    ``f`` looks up to ``f - 1`` fine frames back. Independent of the widths.
    """
    before = after = 0

    def add_conv(span: int, stride: int, start_offset: int | None = None) -> None:
        nonlocal before, after
        lead = (span - 1) // 2 if start_offset is None else start_offset
        before += lead * stride
        after += (span - 1 - lead) * stride

    stack_spans = [(kernel_size - 1) * d + 1 for d in dilations] + [kernel_size] * len(dilations)
    strides = [math.prod(down_factors[:level]) for level in range(len(down_factors) + 1)]

    add_conv(kernel_size, 1)  # input conv
    add_conv(kernel_size, 1)  # output conv
    for level, factor in enumerate(down_factors):
        s = strides[level]
        for span in stack_spans:  # encoder and decoder stacks
            add_conv(span, s)
            add_conv(span, s)
        add_conv(2 * factor, s, start_offset=factor // 2)  # strided conv: pad (k - f)
        before += (factor - 1) * s  # nearest repeat
        add_conv(2 * factor + 1, s)  # conv after the repeat
    for span in stack_spans:  # bottleneck
        add_conv(span, strides[-1])
    return before, after


# Keyword sets for ``UNetGenerator(**cfg, rngs=...)``; configs may copy them.
TINY_UNET = dict(
    channels=8,
    down_factors=(2, 4, 4, 4),
    dilations=(1, 3, 9),
    kernel_size=7,
    max_channels=8,
    activation="snake",
)
BASE_UNET = dict(TINY_UNET, channels=32, max_channels=128)


class UNetGenerator(nnx.Module):
    """Residual 1-D U-Net: ``[B, T] -> [B, T]``, output = input + learned correction.

    Mono per call: the caller folds channels into the batch (a stereo clip is two rows).
    One set of weights then serves mono, stereo or any channel count, and the left/right
    artefacts (coded jointly in M/S but heard separately) are corrected the same way.

    Any ``T >= 1`` works: the signal is zero-padded to a multiple of the total
    downsampling factor and the output cropped back. Holds only ``nnx.Param`` state (no
    normalisation statistics, no dropout, no RNG), so ``nnx.split`` / ``nnx.merge``
    round-trip it inside a pure (pmapped) function.
    """

    def __init__(
        self,
        channels: int = 32,
        down_factors: Sequence[int] = (2, 4, 4, 4),
        dilations: Sequence[int] = (1, 3, 9),
        kernel_size: int = 7,
        max_channels: int = 128,
        activation: str = "snake",
        *,
        rngs: nnx.Rngs,
    ):
        # Config files hand over lists; keep tuples so the module stays hashable/static.
        self.down_factors = tuple(int(f) for f in down_factors)
        self.dilations = tuple(int(d) for d in dilations)
        self.kernel_size = int(kernel_size)
        widths = level_channels(channels, max_channels, len(self.down_factors))

        depth = len(self.down_factors)
        # Units on the deepest path: encoder + decoder stacks at every level, plus bottleneck.
        branch_scale = 1.0 / ((2 * depth + 1) * len(self.dilations))

        def stack(width: int) -> ResidualStack:
            return ResidualStack(
                width, kernel_size, self.dilations, activation, branch_scale, rngs=rngs
            )

        self.in_conv = nnx.Conv(1, widths[0], (kernel_size,), rngs=rngs)
        self.encoder_stacks = nnx.List()
        self.downsamples = nnx.List()
        self.upsamples = nnx.List()
        self.decoder_stacks = nnx.List()
        for level, factor in enumerate(self.down_factors):
            width, coarser = widths[level], widths[level + 1]
            self.encoder_stacks.append(stack(width))
            self.downsamples.append(Downsample(width, coarser, factor, activation, rngs=rngs))
            self.upsamples.append(Upsample(coarser, width, factor, activation, rngs=rngs))
            self.decoder_stacks.append(stack(width))
        self.bottleneck = stack(widths[-1])
        self.out_act = _activation(activation, widths[0])
        # Zero kernel and bias: the correction starts at exactly 0, so y == x bit for bit.
        self.out_conv = nnx.Conv(
            widths[0], 1, (kernel_size,), kernel_init=nnx.initializers.zeros, rngs=rngs
        )

    @property
    def total_factor(self) -> int:
        """Product of the downsampling factors; inputs are padded to a multiple of it."""
        return math.prod(self.down_factors)

    @property
    def context(self) -> tuple[int, int]:
        """Samples ``(before, after)`` that can influence one output sample."""
        return receptive_field(self.down_factors, self.dilations, self.kernel_size)

    @property
    def receptive_field(self) -> int:
        """Total receptive field in samples (before + after + the sample itself)."""
        before, after = self.context
        return before + after + 1

    def __call__(self, x: jax.Array) -> jax.Array:
        length = x.shape[-1]
        padded_length = -(-length // self.total_factor) * self.total_factor
        h = jnp.pad(x, ((0, 0), (0, padded_length - length)))[..., None]  # [B, T, 1]

        h = self.in_conv(h)
        skips = []
        for stack, down in zip(self.encoder_stacks, self.downsamples, strict=True):
            h = stack(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        for level in reversed(range(len(self.down_factors))):
            # Sum of two ~unit-variance paths; rescale so depth does not compound it.
            h = (self.upsamples[level](h) + skips[level]) * _INV_SQRT2
            h = self.decoder_stacks[level](h)
        correction = self.out_conv(self.out_act(h))[..., 0]
        return x + correction[:, :length]
