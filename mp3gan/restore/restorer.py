"""The restore API: :class:`Restorer` (one jitted generator call, chunked streaming at any
rate and channel count) and :func:`restore` (the one-call form, with a cached Restorer).

Crossover. The model restores the band below its own Nyquist frequency. What it changes
is its *correction* (output minus input, at the model rate); that is resampled to the
input's rate and added to the input. So a file at a higher rate than the model's keeps
its own content above the model's band (a complementary crossover at the resampler's
band edge), and a lower-rate file keeps all it had where the model changes nothing.

Checks. Input more than ``MAX_INPUT_PEAK`` above full scale is refused (it is not audio
the model knows, and a finite 3e38 sample overflowed it to NaN), and so is output that
is not finite or beyond ``MAX_OUTPUT_PEAK`` (damaged or diverged weights): an error,
never a file of garbage.

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

from mp3gan.audio import (
    MAX_CHANNELS,
    MODEL_SAMPLE_RATE,
    AudioError,
    check_finite,
    check_layout,
)
from mp3gan.models import BASE_GENERATOR, Generator, build_generator
from mp3gan.restore.streaming import Batcher, Chunker, Fifo, Stitcher, StreamResampler

# Chunk length at the model rate (~3 s at 44.1 kHz). Longer chunks waste less time on
# overlap (the base overlap is ~0.5 s) but hold more activations; 2**17 keeps the base
# generator's working set to a few hundred MB for a stereo chunk.
DEFAULT_CHUNK_LENGTH = 2**17
DEFAULT_CROSSFADE = 1024  # samples of linear crossfade between neighbouring chunks
DEFAULT_BATCH_SIZE = 2  # rows per generator call: one stereo chunk, or two mono chunks
SILENCE_GATE = 128  # half-width of the digital-silence gate, in samples
ARRAY_BLOCK = 65536  # samples per block when an in-memory array is streamed
# Longest chunk: a few minutes is all a chunk length can usefully be; beyond it only
# memory grows (and `--chunk-seconds 1e9` would ask for terabytes).
MAX_CHUNK_SECONDS = 300.0
MAX_CHUNK_LENGTH = 2**24
MAX_INPUT_PEAK = 100.0  # +40 dB above full scale: more is not audio (see the docstring)
MAX_OUTPUT_PEAK = 1000.0  # +60 dB: no working model gets there from a bounded input


def as_audio_array(audio: np.ndarray, name: str = "restore") -> np.ndarray:
    """``audio`` as float32 ``[T]`` or ``[C, T]``: float kept, integer PCM scaled to
    [-1, 1) (int16 by 2**15, unsigned around its midpoint), anything else refused, and a
    layout that would have to be guessed (more than ``MAX_CHANNELS`` rows) refused."""
    a = np.asarray(audio)
    bits = 8 * a.dtype.itemsize
    if a.dtype.kind == "i":
        a = (a / 2.0 ** (bits - 1)).astype(np.float32)
    elif a.dtype.kind == "u":
        a = ((a - 2.0 ** (bits - 1)) / 2.0 ** (bits - 1)).astype(np.float32)
    elif a.dtype.kind == "f":
        a = a.astype(np.float32, copy=False)
    else:
        raise AudioError(f"{name}: samples of dtype {a.dtype} are not audio (float or int PCM)")
    if a.ndim not in (1, 2) or (a.ndim == 2 and a.shape[0] == 0):
        raise AudioError(f"{name}: expected [samples] or [channels, samples], got {a.shape}")
    if a.ndim == 2 and a.shape[0] > MAX_CHANNELS:
        hint = ""
        if a.shape[1] <= MAX_CHANNELS:
            hint = "; it looks like [samples, channels] (soundfile's layout): pass audio.T"
        raise AudioError(
            f"{name}: {a.shape[0]} channels; at most {MAX_CHANNELS} rows of a "
            f"[channels, samples] array{hint}"
        )
    return a


def _check_level(x: np.ndarray, offset: int, sample_rate: int, name: str, output: bool) -> None:
    """Raise AudioError at the first non-finite sample or peak over the limit in ``x``."""
    if not x.size:
        return
    peak = np.abs(x).max(axis=0)
    bad = ~np.isfinite(peak) | (peak > (MAX_OUTPUT_PEAK if output else MAX_INPUT_PEAK))
    if not bad.any():
        return
    i = int(np.argmax(bad))
    at = f"at {(offset + i) / sample_rate:.3f} s"
    what = f"peak {peak[i]:.3g}" if np.isfinite(peak[i]) else "NaN/Inf samples"
    if output:
        raise AudioError(
            f"{name}: the model's output is unusable ({what} {at}): its weights are "
            "damaged or training diverged; nothing is written"
        )
    if not np.isfinite(peak[i]):
        raise AudioError(f"{name}: NaN/Inf samples (first {at})")
    raise AudioError(
        f"{name}: peak {peak[i]:.3g} {at} is {20 * np.log10(peak[i]):.0f} dB above full "
        f"scale; more than {20 * np.log10(MAX_INPUT_PEAK):.0f} dB is not audio (integer "
        "PCM stored as float? scale it to [-1, 1])"
    )


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
        if self.chunk_length > MAX_CHUNK_LENGTH:
            raise ValueError(
                f"chunk_length {chunk_length} is too long: at most {MAX_CHUNK_LENGTH} samples"
            )
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
        """Load a training workdir, its checkpoints dir, one step's folder or a shipped model
        (None = shipped).

        ``"none"`` gives the untrained base generator, which is exactly the identity
        (handy for testing). Chunking defaults may come from the config's optional
        ``restore`` section (``chunk_length``, ``crossfade``, ``batch_size``); keyword
        arguments win; ``chunk_seconds`` sets ``chunk_length`` at the model rate.
        """
        if chunk_seconds is not None and not 0 < chunk_seconds <= MAX_CHUNK_SECONDS:
            raise ValueError(  # NaN and inf included; checked before loading anything
                f"chunk_seconds must be a finite number of seconds in (0, "
                f"{MAX_CHUNK_SECONDS:g}], got {chunk_seconds}"
            )
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
        """Model-rate blocks in, the model's corrections (output minus input) out, at the
        model rate and of the same total length."""
        chunker = Chunker(channels, self.chunk_length, self.hop, self.generator.total_factor)
        batcher = Batcher(self._run, self.batch_size, channels)
        stitcher = Stitcher(self.chunk_length, self.crossfade)

        def stitch(done) -> Iterator[np.ndarray]:
            for chunk in done:
                # Linear in the chunk, so crossfaded corrections are the crossfaded outputs
                # minus the (identical) inputs: exact where the outputs are.
                yield stitcher.add(chunk.start, chunk.output - chunk.input)
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
        name: str = "restore",
    ) -> Iterator[np.ndarray]:
        """Restore a stream of ``[channels, n]`` float32 blocks at ``sample_rate``.

        Yields restored blocks whose concatenation has exactly the input's length: the
        input plus the model's correction (the crossover of the module docstring). Memory
        is a few chunks regardless of the stream's length. ``on_chunk`` is called after
        each generator chunk (for progress bars). Raises AudioError, its message starting
        with ``name``, for an implausible rate or channel count, input far above full
        scale, and unusable output.
        """
        check_layout(name, int(sample_rate), channels)
        sample_rate = int(sample_rate)
        to_model = StreamResampler(sample_rate, self.sample_rate, channels)
        from_model = StreamResampler(self.sample_rate, sample_rate, channels)
        waiting = Fifo(channels)  # input samples whose correction has not come back yet
        corrections = Fifo(channels)  # corrections at the input rate, not yet applied
        n_in = n_out = 0

        def model_blocks() -> Iterator[np.ndarray]:
            nonlocal n_in
            for block in blocks:
                _check_level(block, n_in, sample_rate, name, output=False)
                n_in += block.shape[-1]
                waiting.push(block)
                yield to_model.process(block)
            yield to_model.flush()

        def ready() -> np.ndarray:
            nonlocal n_out
            n = min(waiting.size, corrections.size)
            y = waiting.pop(n) + corrections.pop(n)
            _check_level(y, n_out, sample_rate, name, output=True)
            n_out += n
            return y

        for correction in self._model_stream(model_blocks(), channels, on_chunk):
            corrections.push(from_model.process(correction))
            if (y := ready()).shape[-1]:
                yield y
        # Resampled back, the corrections are at least as long as the input: all of it.
        corrections.push(from_model.flush())
        if (y := ready()).shape[-1]:
            yield y

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Restore ``[T]`` or ``[C, T]`` audio at ``sample_rate``: same shape, float32.

        Float input is taken as is (full scale 1.0); integer PCM is scaled to full scale
        first (see :func:`as_audio_array`), and the result is float32 at that scale.
        """
        audio = as_audio_array(audio)
        if sample_rate != int(sample_rate):
            raise AudioError(f"restore: sample rate must be a whole number, got {sample_rate}")
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
