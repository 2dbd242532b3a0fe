"""Networks: the waveform generator and the GAN discriminators (Flax NNX, Params only)."""

from mp3gan.models.discriminators import (
    BASE_DISCRIMINATORS,
    TINY_DISCRIMINATORS,
    Discriminators,
    MultiPeriodDiscriminator,
    MultiResolutionSTFTDiscriminator,
    PeriodDiscriminator,
    STFTDiscriminator,
)
from mp3gan.models.generator import BASE_GENERATOR, TINY_GENERATOR, Generator, receptive_field

__all__ = [
    "BASE_DISCRIMINATORS",
    "BASE_GENERATOR",
    "TINY_DISCRIMINATORS",
    "TINY_GENERATOR",
    "Discriminators",
    "Generator",
    "MultiPeriodDiscriminator",
    "MultiResolutionSTFTDiscriminator",
    "PeriodDiscriminator",
    "STFTDiscriminator",
    "receptive_field",
]
