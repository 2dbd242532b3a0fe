"""The restore API: :class:`Restorer` (one jitted generator call, chunked streaming at any
rate and channel count) and :func:`restore` (the one-call form, with a cached Restorer).

Digital silence. Runs of exact zeros at least ``2 * SILENCE_GATE + 1`` samples long stay
exactly zero: a trained network has biases and would otherwise add a faint floor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mp3gan.audio import AudioError, check_finite
from mp3gan.models import BASE_GENERATOR, Generator, build_generator
from mp3gan.restore.streaming import Batcher, Chunker, Stitcher, StreamResampler

MODEL_SAMPLE_RATE = 44100  # rate of the untrained/base model when no config says otherwise
# Chunk length at the model rate (~3 s at 44.1 kHz). Longer chunks waste less time on
# overlap (the base overlap is ~0.5 s) but hold more activations; 2**17 keeps the base
# generator's working set to a few hundred MB for a stereo chunk.
DEFAULT_CHUNK_LENGTH = 2**17
DEFAULT_CROSSFADE = 1024  # samples of linear crossfade between neighbouring chunks
DEFAULT_BATCH_SIZE = 2  # rows per generator call: one stereo chunk, or two mono chunks
SILENCE_GATE = 128  # half-width of the digital-silence gate, in samples
ARRAY_BLOCK = 65536  # samples per block when an in-memory array is streamed


def _gated(generator: nnx.Module, x: jax.Array) -> jax.Array:
    """Generator output, forced to exact zero inside runs of digital silence."""
    y = generator(x)
    width = 2 * SILENCE_GATE + 1
    loudest = jax.lax.reduce_window(jnp.abs(x), 0.0, jax.lax.max, (1, width), (1, 1), "SAME")
    return jnp.where(loudest > 0, y, 0.0)


def generator_margin(generator: nnx.Module) -> int:
    """Samples of context a chunk needs on each side for exact output (receptive field
    plus silence gate), rounded up to the generator's ``total_factor``."""
    before, after = generator.context
    need = max(before, after) + SILENCE_GATE
    f = generator.total_factor
    return -(-need // f) * f


def untrained_generator(seed: int = 0) -> Generator:
    """The base-size generator with fresh weights: exactly the identity (for testing)."""
    return build_generator(BASE_GENERATOR, nnx.Rngs(seed))


class Restorer:
    """A generator ready for inference: one jit, chunked overlap-add, any rate/channels.

    ``chunk_length`` (samples at the model rate, rounded up to ``total_factor``) is the
    fixed shape the generator compiles for; ``crossfade`` the join length; ``batch_size``
    the rows per call (channels and consecutive chunks share them, so mono, stereo and
    multichannel files all reuse one compiled shape).
    """

    def __init__(
        self,
        generator: nnx.Module,
        sample_rate: int = MODEL_SAMPLE_RATE,
        *,
        chunk_length: int = DEFAULT_CHUNK_LENGTH,
        crossfade: int = DEFAULT_CROSSFADE,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        self.generator = generator
        self.sample_rate = int(sample_rate)
        f = generator.total_factor
        self.margin = generator_margin(generator)
        self.crossfade = -(-int(crossfade) // f) * f
        self.overlap = 2 * self.margin + self.crossfade
        self.chunk_length = -(-int(chunk_length) // f) * f
        self.hop = self.chunk_length - self.overlap
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if self.hop < max(2 * self.crossfade, f):
            shortest = self.overlap + max(2 * self.crossfade, f)
            raise ValueError(
                f"chunk_length {chunk_length} is too short: the overlap is {self.overlap} "
                f"samples (receptive field + crossfade), so use at least {shortest}"
            )
        graphdef, state = nnx.split(generator)
        self.traces = 0  # times the generator call was traced (= compiled)

        def forward(state: nnx.State, x: jax.Array) -> jax.Array:
            self.traces += 1  # runs only while tracing
            return _gated(nnx.merge(graphdef, state), x)

        self._state = state
        self._forward = jax.jit(forward)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | None = None, chunk_seconds: float | None = None, **chunking
    ) -> Restorer:
        """Load a training workdir, its checkpoints dir or a shipped model (None = shipped).

        ``"none"`` gives the untrained base generator, which is exactly the identity
        (handy for testing). Chunking defaults may come from the config's optional
        ``restore`` section (``chunk_length``, ``crossfade``, ``batch_size``); keyword
        arguments win; ``chunk_seconds`` sets ``chunk_length`` at the model rate.
        """
        if path is not None and str(path).lower() == "none":
            generator, sample_rate, section = untrained_generator(), MODEL_SAMPLE_RATE, {}
        else:
            from mp3gan.checkpoint import load_generator  # orbax is slow to import

            generator, config = load_generator(path)
            sample_rate = int(config.data.sample_rate)
            section = config.get("restore", None)
            section = section.to_dict() if section else {}
        if chunk_seconds is not None:
            chunking["chunk_length"] = round(chunk_seconds * sample_rate)
        return cls(generator, sample_rate, **{**section, **chunking})

    def _run(self, rows: np.ndarray) -> np.ndarray:
        x = np.zeros((self.batch_size, self.chunk_length), np.float32)
        x[: rows.shape[0]] = rows
        return np.asarray(self._forward(self._state, x))[: rows.shape[0]]

    def _model_stream(
        self, blocks: Iterable[np.ndarray], channels: int, on_chunk: Callable[[], None] | None
    ) -> Iterator[np.ndarray]:
        """Model-rate blocks in, restored model-rate blocks out (same total length)."""
        chunker = Chunker(channels, self.chunk_length, self.hop, self.generator.total_factor)
        batcher = Batcher(self._run, self.batch_size, channels)
        stitcher = Stitcher(self.chunk_length, self.crossfade)

        def stitch(done: list[tuple[int, np.ndarray]]) -> Iterator[np.ndarray]:
            for start, out in done:
                yield stitcher.add(start, out)
                if on_chunk is not None:
                    on_chunk()

        for block in blocks:
            for start, chunk in chunker.push(block):
                yield from stitch(batcher.add(start, chunk))
        for start, chunk in chunker.finish():
            yield from stitch(batcher.add(start, chunk))
        yield from stitch(batcher.flush())
        if chunker.total:
            yield stitcher.finish(chunker.total)

    def stream(
        self,
        blocks: Iterable[np.ndarray],
        sample_rate: int,
        channels: int,
        on_chunk: Callable[[], None] | None = None,
    ) -> Iterator[np.ndarray]:
        """Restore a stream of ``[channels, n]`` float32 blocks at ``sample_rate``.

        Yields restored blocks whose concatenation has exactly the input's length. Memory
        is a few chunks regardless of the stream's length. ``on_chunk`` is called after
        each generator chunk (for progress bars).
        """
        to_model = StreamResampler(sample_rate, self.sample_rate, channels)
        from_model = StreamResampler(self.sample_rate, sample_rate, channels)
        n_in = 0

        def model_blocks() -> Iterator[np.ndarray]:
            nonlocal n_in
            for block in blocks:
                n_in += block.shape[-1]
                yield to_model.process(block)
            yield to_model.flush()

        n_out = 0
        held: list[np.ndarray] = []  # output beyond the input read so far: maybe padding
        for restored in self._model_stream(model_blocks(), channels, on_chunk):
            held.append(from_model.process(restored))
            ready = np.concatenate(held, axis=-1)
            cut = max(0, min(ready.shape[-1], n_in - n_out))
            if cut:
                yield ready[:, :cut]
                n_out += cut
            held = [ready[:, cut:]]
        held.append(from_model.flush())
        rest = np.concatenate(held, axis=-1)[:, : n_in - n_out]
        if rest.shape[-1]:
            yield rest

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Restore ``[T]`` or ``[C, T]`` audio at ``sample_rate``: same shape, float32."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim not in (1, 2) or (audio.ndim == 2 and audio.shape[0] == 0):
            raise AudioError(
                f"restore: expected [samples] or [channels, samples], got {audio.shape}"
            )
        if int(sample_rate) <= 0:
            raise AudioError(f"restore: sample rate must be positive, got {sample_rate}")
        x = audio[None] if audio.ndim == 1 else audio
        check_finite(x, "restore")
        out = np.empty_like(x)
        blocks = (x[:, i : i + ARRAY_BLOCK] for i in range(0, x.shape[-1], ARRAY_BLOCK))
        pos = 0
        for y in self.stream(blocks, int(sample_rate), x.shape[0]):
            out[:, pos : pos + y.shape[-1]] = y
            pos += y.shape[-1]
        return out[0] if audio.ndim == 1 else out


@lru_cache(maxsize=4)
def _cached_restorer(checkpoint: str | None, chunking: tuple) -> Restorer:
    return Restorer.from_checkpoint(checkpoint, **dict(chunking))


def restore(
    audio: np.ndarray,
    sample_rate: int,
    checkpoint: str | Path | Restorer | None = None,
    **chunking,
) -> np.ndarray:
    """Restore ``audio`` (``[T]`` or ``[C, T]`` float, any rate): same shape, rate, channels.

    ``checkpoint`` is a training workdir, a shipped model folder, None for the shipped
    model, ``"none"`` for the untrained (identity) model, or a ready :class:`Restorer`.
    Restorers built from a path are cached, so repeated calls compile once.
    ``chunking``: ``chunk_length``, ``crossfade``, ``batch_size`` (see :class:`Restorer`).
    """
    if isinstance(checkpoint, Restorer):
        restorer = checkpoint
    else:
        key = checkpoint
        if checkpoint is not None and str(checkpoint).lower() != "none":
            key = str(Path(checkpoint).resolve())
        restorer = _cached_restorer(key, tuple(sorted(chunking.items())))
    return restorer(audio, sample_rate)
