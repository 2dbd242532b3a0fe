"""Networks: the generators, the GAN discriminators (Flax NNX, Params only), and their cost.

Generators come in kinds, chosen by ``model.generator.kind`` in a config:

- ``"frame"`` (the base): :class:`FrameGenerator`, ConvNeXt blocks on the compressed
  complex STFT at frame rate, ~0.5 GMAC per channel-second;
- ``"unet"``: :class:`UNetGenerator`, the residual 1-D U-Net at sample rate, kept for
  comparison.

Every kind maps ``[B, T] -> [B, T]``, is exactly the identity when untrained and exposes
``total_factor`` and ``context`` (before, after) for chunked restoration and export.
"""

from collections.abc import Mapping
from typing import Any

from flax import nnx

from mp3gan.models.discriminators import (
    BASE_DISCRIMINATORS,
    LARGE_DISCRIMINATORS,
    TINY_DISCRIMINATORS,
    Discriminators,
    MultiPeriodDiscriminator,
    MultiResolutionSTFTDiscriminator,
    PeriodDiscriminator,
    STFTDiscriminator,
)
from mp3gan.models.frame_generator import (
    BASE_FRAME_GENERATOR,
    LARGE_FRAME_GENERATOR,
    TINY_FRAME_GENERATOR,
    FrameGenerator,
)
from mp3gan.models.unet import BASE_UNET, TINY_UNET, UNetGenerator, receptive_field

GENERATOR_KINDS = {"frame": FrameGenerator, "unet": UNetGenerator}
Generator = FrameGenerator | UNetGenerator

# Generator config sections (``kind`` + the class's keyword arguments); configs copy them.
TINY_GENERATOR = dict(kind="frame", **TINY_FRAME_GENERATOR)
BASE_GENERATOR = dict(kind="frame", **BASE_FRAME_GENERATOR)
LARGE_GENERATOR = dict(kind="frame", **LARGE_FRAME_GENERATOR)


def build_generator(section: Mapping[str, Any], rngs: nnx.Rngs) -> Generator:
    """The generator a config's ``model.generator`` section describes.

    ``kind`` picks the class (a section without one predates the frame generator and is
    a U-Net); the other fields are its keyword arguments.
    """
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(section).items()}
    kind = kwargs.pop("kind", "unet")
    if kind not in GENERATOR_KINDS:
        raise ValueError(
            f"unknown generator kind {kind!r}; expected one of {list(GENERATOR_KINDS)}"
        )
    try:
        return GENERATOR_KINDS[kind](**kwargs, rngs=rngs)
    except TypeError as e:  # an unknown or missing field: name it, not the constructor
        raise ValueError(f"model.generator (kind {kind!r}): {e}") from None


__all__ = [
    "BASE_DISCRIMINATORS",
    "BASE_FRAME_GENERATOR",
    "BASE_GENERATOR",
    "BASE_UNET",
    "GENERATOR_KINDS",
    "LARGE_DISCRIMINATORS",
    "LARGE_FRAME_GENERATOR",
    "LARGE_GENERATOR",
    "TINY_DISCRIMINATORS",
    "TINY_FRAME_GENERATOR",
    "TINY_GENERATOR",
    "TINY_UNET",
    "Discriminators",
    "FrameGenerator",
    "Generator",
    "MultiPeriodDiscriminator",
    "MultiResolutionSTFTDiscriminator",
    "PeriodDiscriminator",
    "STFTDiscriminator",
    "UNetGenerator",
    "build_generator",
    "receptive_field",
]
