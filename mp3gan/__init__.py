"""mp3gan: restore low-bitrate MP3 audio with a JAX/Flax GAN."""

__version__ = "0.1.0"
