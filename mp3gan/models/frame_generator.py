"""The base generator: residual correction of the compressed complex STFT at frame rate.

Why frame rate: a 1-D U-Net spends most of its compute at the sample rate (44,100 steps a
second); Vocos, AP-BWE and Conv-TasNet show that a transform to frames (here: the
project's one STFT, ``n_fft=512``, ``hop=128``, so ~345 frames a second) lets a stack of
cheap ConvNeXt blocks do the work for a fraction of the cost, with inverse STFT back to
samples. The base size costs about 0.45 GMAC per channel-second (see
:mod:`mp3gan.models.cost`), against ~60 for the U-Net.

What the network sees and predicts:

- Input: the *compressed* complex spectrum ``Xc = X · |X|^(c-1)`` (``c = 0.3``), real and
  imaginary parts as features. Power-law compression brings a high band 60 dB down to a
  level a network can use, and keeping real/imag (not the magnitude alone) lets the
  corrections be phase-coherent with the input: pre-echo is noise *inside* the analysis
  frame before an onset, which a magnitude-only mask cannot take out without smearing
  the onset, and a band added with the wrong phase costs SI-SDR.
- Output: a correction ``D`` and a real gain ``M = 1 + m`` per bin of the compressed
  spectrum; the waveform gets ``istft(decompress(M·Xc + D) − decompress(Xc))``. ``D``
  adds what MP3 removed (the band above its cutoff); ``M`` takes away what it added
  (quantisation noise, pre-echo): attenuation is a product, which an additive head
  alone would have to rebuild from the spectrum it scales.
- A second, fine stage (``fine_hop``) scales an STFT of that output with frames of 2.9
  ms every 0.7 ms, gains predicted by the same features: 11.6 ms frames cannot quiet
  the 10 ms before an attack without touching the attack (see ``_fine_correction``).
- The output layers are zero-initialised, so ``D = 0``, ``m = 0`` and the fine gains
  are 1: an untrained generator returns its input bit for bit (lesson 6: predict what
  MP3 lost, do no harm where it is good).

Time resolution and look-ahead: the hop of 128 samples (2.9 ms) is finer than MP3's
short block (192 samples), and the depthwise convolutions (kernel 7, dilations 1, 2, 4,
1 in the base size) see ±24 frames: each output sample sees 3,710 samples (84 ms) on
either side (with the fine stage), three MP3 long blocks of look-ahead for pre-echo.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mp3gan import dsp


def depthwise_conv(h: jax.Array, conv: nnx.Conv) -> jax.Array:
    """``conv(h)`` for a depthwise (one filter per feature), "SAME"-padded, dilated
    ``nnx.Conv`` over ``[B, frames, dim]``, as a sum of shifted, weighted copies.

    Why not call the conv: XLA's CPU backend runs grouped convolutions through a slow
    generic path. For the base block (kernel 7, 256 features) the conv took 61 of the
    block's 82 ms, three times the MLP that holds 99 % of its MACs; as ``kernel_size``
    multiply-adds of slices it costs about 1 ms, forward and backward. The parameters
    stay the conv's (``kernel [K, 1, dim]``, ``bias [dim]``), so weights are unchanged.
    """
    kernel = conv.kernel[...]
    size = kernel.shape[0]
    dilation = conv.kernel_dilation
    dilation = int(dilation[0] if isinstance(dilation, tuple | list) else dilation or 1)
    pad = (size - 1) // 2 * dilation
    padded = jnp.pad(h, [(0, 0)] * (h.ndim - 2) + [(pad, pad), (0, 0)])
    frames = h.shape[-2]
    out = sum(
        jax.lax.slice_in_dim(padded, i * dilation, i * dilation + frames, axis=-2) * kernel[i, 0]
        for i in range(size)
    )
    return out + conv.bias[...] if conv.bias is not None else out


_ZERO_INIT = dict(kernel_init=nnx.initializers.zeros, bias_init=nnx.initializers.zeros)


class ConvNeXtBlock(nnx.Module):
    """``h + γ · MLP(LayerNorm(depthwise_conv(h)))`` over ``[B, frames, dim]`` (Liu et
    al. 2022, as used by Vocos): the depthwise conv mixes along time, the pointwise MLP
    across features; ``γ`` (layer scale) starts small so a deep stack starts near identity.
    """

    def __init__(
        self,
        dim: int,
        mlp_ratio: int,
        kernel_size: int,
        dilation: int,
        layer_scale: float,
        *,
        rngs: nnx.Rngs,
    ):
        self.depthwise = nnx.Conv(
            dim,
            dim,
            (kernel_size,),
            kernel_dilation=dilation,
            feature_group_count=dim,
            padding="SAME",
            rngs=rngs,
        )
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.expand = nnx.Linear(dim, mlp_ratio * dim, rngs=rngs)
        self.project = nnx.Linear(mlp_ratio * dim, dim, rngs=rngs)
        self.gamma = nnx.Param(jnp.full((dim,), layer_scale, jnp.float32))

    def __call__(self, h: jax.Array) -> jax.Array:
        r = self.norm(depthwise_conv(h, self.depthwise))
        r = self.project(jax.nn.gelu(self.expand(r)))
        return h + self.gamma[...] * r


# Keyword sets for ``FrameGenerator(**cfg, rngs=...)``; configs copy them.
TINY_FRAME_GENERATOR = dict(
    n_fft=256,
    hop=64,
    dim=16,
    mlp_ratio=2,
    kernel_size=7,
    dilations=(1, 2),
    compress=0.3,
    mask=True,
    fine_hop=16,
)
BASE_FRAME_GENERATOR = dict(
    n_fft=512,
    hop=128,
    dim=256,
    mlp_ratio=2,
    kernel_size=7,
    dilations=(1, 2, 4, 1),
    compress=0.3,
    mask=True,
    fine_hop=32,
)
LARGE_FRAME_GENERATOR = dict(
    BASE_FRAME_GENERATOR, dim=512, mlp_ratio=3, dilations=(1, 2, 4, 8, 1, 2, 4, 8)
)


class FrameGenerator(nnx.Module):
    """Residual STFT-domain ConvNeXt generator: ``[B, T] -> [B, T]``, any ``T >= 1``.

    Mono per call (channels are folded into the batch by the caller), ``nnx.Param`` state
    only, so ``nnx.split`` / ``nnx.merge`` round-trip it inside a pure pmapped function.
    Exposes the small interface the restore path needs from every generator kind:
    ``total_factor`` (chunks start on multiples of it: the hop) and ``context`` (samples
    before and after an output sample that can change it).
    """

    def __init__(
        self,
        n_fft: int = 512,
        hop: int = 128,
        dim: int = 256,
        mlp_ratio: int = 2,
        kernel_size: int = 7,
        dilations: Sequence[int] = (1, 2, 4, 1),
        compress: float = 0.3,
        layer_scale: float = 0.1,
        mask: bool = False,
        fine_hop: int = 0,
        *,
        rngs: nnx.Rngs,
    ):
        if n_fft % hop or n_fft // hop < 2:
            raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop ({hop}), at least 2×")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (centred convs), got {kernel_size}")
        if fine_hop and (fine_hop < 1 or hop % fine_hop):
            raise ValueError(f"fine_hop ({fine_hop}) must divide hop ({hop})")
        self.n_fft, self.hop = int(n_fft), int(hop)
        self.kernel_size = int(kernel_size)
        self.dilations = tuple(int(d) for d in dilations)
        self.power = float(compress)
        bins = self.n_fft // 2 + 1
        self.bins = bins
        self.embed = nnx.Linear(2 * bins, dim, rngs=rngs)
        self.norm_in = nnx.LayerNorm(dim, rngs=rngs)
        self.blocks = nnx.List(
            [
                ConvNeXtBlock(dim, mlp_ratio, kernel_size, d, layer_scale, rngs=rngs)
                for d in self.dilations
            ]
        )
        self.norm_out = nnx.LayerNorm(dim, rngs=rngs)
        # Zero kernel and bias: D = 0, so the correction is exactly 0 and y == x.
        self.head = nnx.Linear(dim, 2 * bins, **_ZERO_INIT, rngs=rngs)
        # The defaults (no mask, no fine stage) are the first models' layout, so their
        # saved configs (which do not name these fields) still build the same network.
        self.mask = bool(mask)
        if self.mask:  # a real gain per bin on the input: M = 1 + m, m = 0 at init
            self.mask_head = nnx.Linear(dim, bins, **_ZERO_INIT, rngs=rngs)
        self.fine_hop = int(fine_hop)
        if self.fine_hop:  # a gain per fine frame and bin: exp(0) = 1 at init
            self.fine_n_fft = 4 * self.fine_hop
            self.fine_bins = self.fine_n_fft // 2 + 1
            self.fine_head = nnx.Linear(
                dim, self.hop // self.fine_hop * self.fine_bins, **_ZERO_INIT, rngs=rngs
            )

    @property
    def total_factor(self) -> int:
        """Chunks must start on multiples of the hop to share the whole file's frame grid."""
        return self.hop

    @property
    def context(self) -> tuple[int, int]:
        """Samples ``(before, after)`` that can influence one output sample.

        An output sample lies under the synthesis windows of frames within ``n_fft/2`` of
        it; each frame's correction depends on ``reach`` frames either side (the convs),
        and each of those frames on ``n_fft/2`` samples either side of its centre.
        """
        reach = sum((self.kernel_size - 1) // 2 * d for d in self.dilations)
        side = self.n_fft - 1 + reach * self.hop
        if self.fine_hop:
            # The fine stage re-analyses the stage-one output in frames of fine_n_fft
            # samples; its gains come from a coarse frame that sees less far than that.
            side += self.fine_n_fft - 1
        return side, side

    def __call__(self, x: jax.Array) -> jax.Array:
        length = x.shape[-1]
        # Work on whole hops (zeros after the end; the STFT pads so anyway): the fine
        # stage then sees stage one's output past the end as a chunked restore does,
        # whose last chunk ends on the hop grid, and a file equals its chunks exactly.
        padded = (length + self.hop - 1) // self.hop * self.hop
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, padded - length)])
        # dsp.stft's numbers, in a form that exports with a symbolic length.
        spec = dsp.shape_polymorphic_stft(x, self.n_fft, self.hop)  # [B, bins, frames]
        spec_c = dsp.compress(spec, self.power)
        features = jnp.concatenate([spec_c.real, spec_c.imag], axis=-2)  # [B, 2·bins, frames]
        h = self.norm_in(self.embed(features.swapaxes(-1, -2)))  # [B, frames, dim]
        for block in self.blocks:
            h = block(h)
        h = self.norm_out(h)
        d = self.head(h).swapaxes(-1, -2)  # [B, 2·bins, frames]
        delta = jax.lax.complex(d[..., : self.bins, :], d[..., self.bins :, :])
        out_c = spec_c + delta
        if self.mask:
            out_c = out_c + self.mask_head(h).swapaxes(-1, -2) * spec_c
        correction = dsp.decompress(out_c, self.power) - dsp.decompress(spec_c, self.power)
        y = x + dsp.shape_polymorphic_istft(correction, self.n_fft, self.hop, padded).astype(
            x.dtype
        )
        if self.fine_hop:
            y = y + self._fine_correction(y, h).astype(x.dtype)
        return jax.lax.slice_in_dim(y, 0, length, axis=-1)

    def _fine_correction(self, y: jax.Array, h: jax.Array) -> jax.Array:
        """``istft((G − 1) · STFT_fine(y))``: gains ``G = exp(4 tanh(a / 4))`` (between
        -35 and +35 dB, 1 at init) on an STFT of 2.9 ms frames every 0.7 ms (at hop 32).

        Why a second, finer stage: the frame-rate spectrum (11.6 ms frames) cannot lower
        the 10 ms before an attack without lowering the attack's own frames. An oracle
        gain at 11.6 ms frames takes 1.3 dB of MP3 64 kbps pre-echo away; at 2.9 ms
        frames 2.2 dB. The coarse frame ``k`` (centred on ``k·hop``) predicts the gains
        of the ``hop / fine_hop`` fine frames centred on ``k·hop + j·fine_hop``, and
        multiplying is the form attenuation takes (an additive head would have to
        rebuild the spectrum it scales).
        """
        sub = self.hop // self.fine_hop
        spec = dsp.shape_polymorphic_stft(y, self.fine_n_fft, self.fine_hop)  # [B, fb, n]
        a = self.fine_head(h)  # [B, frames, sub·fine_bins]
        a = a.reshape(*a.shape[:-2], a.shape[-2] * sub, self.fine_bins).swapaxes(-1, -2)
        a = jax.lax.slice_in_dim(a, 0, spec.shape[-1], axis=-1)  # coarse grid covers fine
        gain_minus_one = jnp.expm1(4.0 * jnp.tanh(a / 4.0))
        return dsp.shape_polymorphic_istft(
            gain_minus_one * spec, self.fine_n_fft, self.fine_hop, y.shape[-1]
        )
