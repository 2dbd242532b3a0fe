"""Restoring real files: the ``restore()`` API, chunked streaming, file I/O and export.

Everything a user runs after training goes through this module:

- :func:`restore` / :class:`Restorer` restore an array ``[T]`` or ``[C, T]`` at any
  sample rate and give back the same shape, rate and channel count. A ``Restorer``
  holds one jitted generator call, so many files share one compile.
- :meth:`Restorer.stream` and :func:`restore_file` process audio as a stream of blocks:
  a file is read in blocks, resampled to the model rate and back by a streaming
  polyphase filter, cut into fixed-size overlapping chunks, and written block by block
  to a temporary file that is renamed at the end. Peak memory does not grow with the
  file's length and the generator compiles once per Restorer, not once per file.
- :func:`export_generator` serialises the generator (parameters baked in as constants,
  symbolic ``[channels, samples]`` shape) with ``jax.export``; the artifact runs with
  only jax and numpy installed (docs/RESTORE.md).

Chunking. The generator is fully convolutional: output sample ``t`` depends only on the
input in ``[t - before, t + after]`` (its receptive field, ~±10.7 k samples for the base
size) and its strided convs repeat every ``total_factor`` samples. Chunks therefore
start on multiples of ``total_factor`` and consecutive chunks overlap by
``2 * margin + crossfade`` samples, where ``margin`` covers the receptive field. Inside
a chunk, samples at least ``margin`` from both edges are exactly what a whole-file call
gives; neighbouring chunks are joined with a linear crossfade in the middle of their
overlap, where both are exact, so the join cannot click and the result does not depend
on the chunk size (up to float rounding). The last chunk is aligned to end where a
whole-file call's zero padding ends, so the file's end is exact too; a file shorter
than one chunk is padded with silence to the chunk length instead.

Digital silence. Runs of exact zeros at least ``2 * SILENCE_GATE + 1`` samples long stay
exactly zero: a trained network has biases and would otherwise add a faint floor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from math import ceil, gcd
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import soundfile as sf
from flax import nnx
from scipy import ndimage, signal

from mp3gan import files
from mp3gan.audio import READ_EXTENSIONS, AudioError, check_finite
from mp3gan.models import BASE_GENERATOR, Generator, build_generator

MODEL_SAMPLE_RATE = 44100  # rate of the untrained/base model when no config says otherwise
# Chunk length at the model rate (~3 s at 44.1 kHz). Longer chunks waste less time on
# overlap (the base overlap is ~0.5 s) but hold more activations; 2**17 keeps the base
# generator's working set to a few hundred MB for a stereo chunk.
DEFAULT_CHUNK_LENGTH = 2**17
DEFAULT_CROSSFADE = 1024  # samples of linear crossfade between neighbouring chunks
DEFAULT_BATCH_SIZE = 2  # rows per generator call: one stereo chunk, or two mono chunks
SILENCE_GATE = 128  # half-width of the digital-silence gate, in samples
READ_BLOCK = 65536  # frames read (and written) per block when streaming a file
FLAC_MAX_CHANNELS = 8
LIMITER_CEILING = 0.999  # FLAC output peak after the safety limiter (just under full scale)
LIMITER_SECONDS = 0.005  # limiter look-ahead and release window
EXPORT_PLATFORMS = ("cpu", "cuda", "tpu")
_WRITE_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24")}
_MP3_FRAME = 1152


# --------------------------------------------------------------------------------------
# Streaming building blocks (pure numpy, no model)
# --------------------------------------------------------------------------------------


class StreamResampler:
    """Block-by-block version of :func:`mp3gan.audio.resample` with the same output.

    Same Kaiser-windowed FIR and alignment as ``scipy.signal.resample_poly`` (which
    ``audio.resample`` calls), evaluated with ``upfirdn`` on a sliding window of input,
    so the concatenated output equals the whole-array result up to float rounding while
    memory stays at one block plus the filter's span.
    """

    def __init__(self, sr_in: int, sr_out: int, channels: int):
        g = gcd(int(sr_in), int(sr_out))
        self.up, self.down = int(sr_out) // g, int(sr_in) // g
        self.identity = self.up == self.down
        self.channels = channels
        if not self.identity:
            max_rate = max(self.up, self.down)
            half_len = 10 * max_rate
            h = signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 8.0))
            pre_pad = self.down - half_len % self.down
            self.h = np.concatenate([np.zeros(pre_pad), h * self.up])
            self.pre = (half_len + pre_pad) // self.down
        self.buf = np.zeros((channels, 0), np.float32)
        self.base = 0  # input index of buf[:, 0]
        self.received = 0
        self.next_out = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed ``[C, n]`` input; return every output sample that is now complete."""
        if self.identity:
            self.received += block.shape[-1]
            return block
        self.buf = np.concatenate([self.buf, block], axis=-1)
        self.received += block.shape[-1]
        # Output n needs inputs up to floor((n + pre) * down / up) < received.
        n_end = (self.received * self.up - 1) // self.down - self.pre + 1
        return self._emit(n_end)

    def flush(self) -> np.ndarray:
        """End of input: the remaining output, as if the input continued with zeros."""
        if self.identity:
            return np.zeros((self.channels, 0), np.float32)
        return self._emit(-(-self.received * self.up // self.down))

    def _first_input(self, n: int) -> int:
        """First input index that output ``n`` depends on, rounded down to a multiple of
        ``down`` so the upfirdn output grid lands on the global one."""
        i_lo = max(0, -(-((n + self.pre) * self.down - len(self.h) + 1) // self.up))
        return i_lo // self.down * self.down

    def _emit(self, n_end: int) -> np.ndarray:
        n0 = self.next_out
        if n_end <= n0:
            return np.zeros((self.channels, 0), np.float32)
        start = self._first_input(n0)
        stop = (n_end - 1 + self.pre) * self.down // self.up + 1
        if stop > self.base + self.buf.shape[-1]:  # only at flush: zeros after the end
            missing = stop - self.base - self.buf.shape[-1]
            self.buf = np.pad(self.buf, ((0, 0), (0, missing)))
        seg = self.buf[:, start - self.base : stop - self.base]
        y = signal.upfirdn(self.h, seg, self.up, self.down, axis=-1)
        j0 = n0 + self.pre - start * self.up // self.down
        out = y[:, j0 : j0 + n_end - n0].astype(np.float32)
        self.next_out = n_end
        keep = self._first_input(n_end)
        self.buf = self.buf[:, keep - self.base :]
        self.base = keep
        return out


class Chunker:
    """Cuts a stream into ``[C, length]`` chunks starting every ``hop`` samples.

    A chunk is released once at least one sample beyond it has arrived, so the chunker
    knows it is not the last. At the end, :meth:`finish` releases a final chunk whose end
    is the stream length rounded up to ``factor`` (where a whole-file generator call's own
    zero padding ends), or one zero-padded chunk at 0 for a stream shorter than a chunk.
    """

    def __init__(self, channels: int, length: int, hop: int, factor: int):
        self.length, self.hop, self.factor = length, hop, factor
        self.buf = np.zeros((channels, 0), np.float32)
        self.base = 0
        self.total = 0
        self.next_start = 0
        self.emitted = False

    def push(self, x: np.ndarray) -> list[tuple[int, np.ndarray]]:
        self.buf = np.concatenate([self.buf, x], axis=-1)
        self.total += x.shape[-1]
        chunks = []
        while self.total > self.next_start + self.length:
            s = self.next_start - self.base
            chunks.append((self.next_start, self.buf[:, s : s + self.length].copy()))
            self.emitted = True
            # The final chunk starts after this one, so nothing before it is needed again.
            self.buf = self.buf[:, s:]
            self.base = self.next_start
            self.next_start += self.hop
        return chunks

    def finish(self) -> list[tuple[int, np.ndarray]]:
        if self.total == 0:
            return []
        padded_end = -(-self.total // self.factor) * self.factor
        start = padded_end - self.length if self.emitted else 0
        chunk = np.zeros((self.buf.shape[0], self.length), np.float32)
        tail = self.buf[:, start - self.base : self.total - self.base]
        chunk[:, : tail.shape[-1]] = tail
        return [(start, chunk)]


class Stitcher:
    """Joins overlapping chunk outputs with a linear crossfade centred in each overlap.

    Linear (not equal-power) because both sides carry the *same* signal there: weights
    summing to one reproduce it exactly, where equal-power would bump the level by 3 dB.
    """

    def __init__(self, length: int, crossfade: int):
        self.length, self.crossfade = length, crossfade
        self.prev: tuple[int, np.ndarray] | None = None
        self.emitted = 0
        self.ramp = ((np.arange(crossfade) + 0.5) / crossfade).astype(np.float32)

    def add(self, start: int, out: np.ndarray) -> np.ndarray:
        """Add the output of the chunk at ``start``; return the newly final samples."""
        if self.prev is None:
            self.prev = (start, out)
            return out[:, :0]
        a, prev = self.prev
        c0 = start + (a + self.length - start - self.crossfade) // 2
        head = prev[:, self.emitted - a : c0 - a]
        w = self.ramp
        fade = prev[:, c0 - a : c0 - a + self.crossfade] * (1 - w)
        fade = fade + out[:, c0 - start : c0 - start + self.crossfade] * w
        self.prev, self.emitted = (start, out), c0 + self.crossfade
        return np.concatenate([head, fade], axis=-1)

    def finish(self, total: int) -> np.ndarray:
        """The rest of the stream up to ``total`` samples."""
        if self.prev is None:
            return np.zeros((0, 0), np.float32)
        a, prev = self.prev
        return prev[:, self.emitted - a : total - a]


class _Batcher:
    """Packs the rows (channels) of consecutive chunks into fixed ``[batch, length]``
    calls, so every file, whatever its channel count, reuses one compiled shape.
    Returns chunks in order once all their rows are done."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], batch_size: int, channels: int):
        self.run, self.batch_size, self.channels = run, batch_size, channels
        self.chunks: list[list] = []  # [start, input, output, rows done], in order
        self.rows: list[tuple[list, int]] = []  # (chunk, channel) not yet run

    def add(self, start: int, chunk: np.ndarray) -> list[tuple[int, np.ndarray]]:
        record = [start, chunk, np.empty_like(chunk), 0]
        self.chunks.append(record)
        self.rows.extend((record, c) for c in range(self.channels))
        return self._drain(final=False)

    def flush(self) -> list[tuple[int, np.ndarray]]:
        return self._drain(final=True)

    def _drain(self, final: bool) -> list[tuple[int, np.ndarray]]:
        while len(self.rows) >= self.batch_size or (final and self.rows):
            batch, self.rows = self.rows[: self.batch_size], self.rows[self.batch_size :]
            y = self.run(np.stack([record[1][c] for record, c in batch]))
            for (record, c), row in zip(batch, y, strict=True):
                record[2][c] = row
                record[3] += 1
        done = []
        while self.chunks and self.chunks[0][3] == self.channels:
            start, _, out, _ = self.chunks.pop(0)
            done.append((start, out))
        return done


# --------------------------------------------------------------------------------------
# The model call
# --------------------------------------------------------------------------------------


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
        batcher = _Batcher(self._run, self.batch_size, channels)
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
        blocks = (x[:, i : i + READ_BLOCK] for i in range(0, x.shape[-1], READ_BLOCK))
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


# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------


def export_generator(generator: nnx.Module, platforms: Sequence[str] = EXPORT_PLATFORMS) -> bytes:
    """Serialise ``float32 [channels, samples] -> [channels, samples]`` with ``jax.export``.

    The parameters are closed over, so they are baked into the artifact as constants;
    both dimensions are symbolic, so one artifact takes any channel count and length.
    The function is the one :class:`Restorer` runs per chunk (generator + silence gate),
    applied to the whole input at once: memory grows with the length, so chunk long
    files the way :class:`Restorer` does.
    """
    channels, samples = jax.export.symbolic_shape("channels, samples")
    spec = jax.ShapeDtypeStruct((channels, samples), jnp.float32)
    exported = jax.export.export(jax.jit(lambda x: _gated(generator, x)), platforms=platforms)(spec)
    return bytes(exported.serialize())


def export_to_file(generator: nnx.Module, sample_rate: int, path: str | Path) -> Path:
    """Write :func:`export_generator`'s artifact atomically, plus ``PATH.json`` metadata
    (sample rate, receptive field) for users who have only the artifact."""
    path = Path(path)
    blob = export_generator(generator)
    before, after = generator.context
    meta = {
        "sample_rate": int(sample_rate),
        "input": "float32 [channels, samples] at sample_rate",
        "receptive_field_before": before,
        "receptive_field_after": after,
        "recommended_chunk_overlap": 2 * generator_margin(generator) + DEFAULT_CROSSFADE,
        "platforms": list(EXPORT_PLATFORMS),
    }
    files.write_bytes_atomic(path, blob)
    files.write_text_atomic(path.with_name(path.name + ".json"), json.dumps(meta, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------------------
# Files: block reader, atomic block writer, FLAC safety limiter
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _c_stderr_muted() -> Iterator[None]:
    """Silence file descriptor 2 for a libsndfile call.

    mpg123 (libsndfile's MP3 decoder) prints resync notes and tag warnings straight to
    the C stderr for damaged MP3s; the one-line error we raise says what matters.
    """
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _BlockReader:
    """Opens an audio file and yields float32 ``[C, n]`` blocks, with errors that name it."""

    def __init__(self, path: Path, block: int = READ_BLOCK):
        self.path, self.block = path, block
        if not path.is_file():
            raise AudioError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise AudioError(f"{path}: file is empty")
        try:
            with _c_stderr_muted():
                self.file = sf.SoundFile(str(path))
        except (sf.LibsndfileError, RuntimeError, TypeError):
            raise AudioError(f"{path}: not an audio file that libsndfile can decode") from None
        self.sample_rate, self.channels = int(self.file.samplerate), int(self.file.channels)
        self.frames = int(self.file.frames)  # a header's claim: trusted for progress only
        self.is_mp3 = self.file.format == "MP3"
        if self.channels < 1:
            self.file.close()
            raise AudioError(f"{path}: audio has zero channels")

    def blocks(self) -> Iterator[np.ndarray]:
        read = 0
        while True:
            try:
                with _c_stderr_muted() if self.is_mp3 else contextlib.nullcontext():
                    data = self.file.read(self.block, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise AudioError(f"{self.path}: corrupt audio stream ({e})") from None
            if data.shape[0] == 0:
                break
            bad = ~np.isfinite(data)
            if bad.any():
                first = read + int(np.argwhere(bad)[0][0])
                raise AudioError(
                    f"{self.path}: NaN/Inf samples (first at {first / self.sample_rate:.3f} s)"
                )
            read += data.shape[0]
            yield np.ascontiguousarray(data.T)
        if read == 0:
            raise AudioError(f"{self.path}: no audio samples (truncated or empty stream)")
        # An MP3 with a Xing/Info header declares its length; a stream that ends well
        # before it was cut off (mpg123 just stops decoding).
        if self.is_mp3 and self.frames > read + max(2 * _MP3_FRAME, self.frames // 100):
            sr = self.sample_rate
            raise AudioError(
                f"{self.path}: truncated or corrupt MP3 (decodes to {read / sr:.2f} s "
                f"of the {self.frames / sr:.2f} s its header declares)"
            )

    def close(self) -> None:
        self.file.close()


class _AtomicWriter:
    """Writes blocks to a temporary file beside ``path``; :meth:`commit` renames it into
    place, :meth:`abort` deletes it, so no half-written output is ever left behind."""

    def __init__(self, path: Path, sample_rate: int, channels: int):
        fmt = _WRITE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise AudioError(f"{path}: unsupported output extension (use .wav or .flac)")
        self.path = path
        self.tmp = files.temporary_beside(path)
        try:
            self.file = sf.SoundFile(
                self.tmp, "w", int(sample_rate), channels, subtype=fmt[1], format=fmt[0]
            )
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise

    def write(self, block: np.ndarray) -> None:
        if block.shape[-1]:
            self.file.write(np.ascontiguousarray(block.T))

    def commit(self) -> None:
        self.file.close()
        files.publish(self.tmp, self.path)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class PeakLimiter:
    """Streaming safety limiter: keeps every sample at or below ``ceiling``.

    Per sample, the gain that would just fit its peak (over all channels) is min-filtered
    over ``2 * window + 1`` samples, then box-averaged over ``window``: every minimum in
    the average covers the sample itself, so the gain never exceeds that sample's own
    required gain (no overs), and it changes smoothly over ``window`` samples (attack
    and release). Samples come out once ``2 * window`` samples of look-ahead have arrived.
    """

    def __init__(self, channels: int, window: int, ceiling: float = LIMITER_CEILING):
        self.w, self.ceiling = max(int(window), 1) | 1, ceiling  # odd: a centred box
        self.context = 2 * self.w  # samples each side that a gain depends on (< 1.5 w)
        self.x = np.zeros((channels, 0), np.float32)  # samples not yet output
        self.req = np.ones(self.context)  # required gains: history (silence) + pending
        self.limited_samples = 0
        self.min_gain = 1.0

    def process(self, block: np.ndarray, final: bool = False) -> np.ndarray:
        self.x = np.concatenate([self.x, block], axis=-1)
        peak = np.abs(block).max(axis=0) if block.shape[-1] else np.zeros(0)
        req = np.minimum(1.0, self.ceiling / np.maximum(peak, 1e-30))
        tail = np.ones(self.context) if final else np.zeros(0)
        self.req = np.concatenate([self.req, req, tail])
        n = self.x.shape[-1] if final else max(0, len(self.req) - 2 * self.context)
        lows = ndimage.minimum_filter1d(self.req, 2 * self.w + 1)
        gain = ndimage.uniform_filter1d(lows, self.w)[self.context : self.context + n]
        g = np.minimum(gain, 1.0).astype(np.float32)
        self.limited_samples += int((g < 1.0).sum())
        self.min_gain = min(self.min_gain, float(g.min(initial=1.0)))
        out = self.x[:, :n] * g
        self.x, self.req = self.x[:, n:], self.req[n:]
        return out

    def flush(self) -> np.ndarray:
        return self.process(self.x[:, :0], final=True)


@dataclasses.dataclass
class FileResult:
    """What :func:`restore_file` did: paths, duration, and any limiting applied."""

    src: Path
    dst: Path
    seconds: float
    limited_samples: int = 0
    limiter_db: float = 0.0


def same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same file (resolving links), existing or not."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def restore_file(
    restorer: Restorer,
    src: str | Path,
    dst: str | Path,
    *,
    block: int = READ_BLOCK,
    progress: Any = None,
) -> FileResult:
    """Restore one audio file (WAV/FLAC/AIFF/MP3/OGG) into ``dst`` (.wav or .flac).

    Streams: memory does not grow with the file's length. WAV output is float32 and
    keeps peaks above full scale; FLAC (24-bit) cannot, so it goes through
    :class:`PeakLimiter` and the result reports how much it limited. The output appears
    only when complete. ``progress`` (a tqdm bar) gets the estimated chunk count as its
    total and one update per chunk.
    Raises AudioError naming the file for every bad-input case.
    """
    src, dst = Path(src), Path(dst)
    if same_file(src, dst):
        raise AudioError(f"{src}: output path is the input file; refusing to overwrite it")
    reader = _BlockReader(src, block)
    try:
        if dst.suffix.lower() == ".flac" and reader.channels > FLAC_MAX_CHANNELS:
            raise AudioError(
                f"{src}: {reader.channels} channels, but FLAC holds at most "
                f"{FLAC_MAX_CHANNELS} (write .wav)"
            )
        writer = _AtomicWriter(dst, reader.sample_rate, reader.channels)
        try:
            limiter = None
            if dst.suffix.lower() == ".flac":
                window = round(LIMITER_SECONDS * reader.sample_rate)
                limiter = PeakLimiter(reader.channels, window)
            estimate = reader.frames * restorer.sample_rate / reader.sample_rate
            n_chunks = max(1, ceil((estimate - restorer.overlap) / restorer.hop))
            on_chunk = None
            if progress is not None:
                progress.reset(total=n_chunks)
                on_chunk = lambda: progress.update(1)  # noqa: E731
            for y in restorer.stream(
                reader.blocks(), reader.sample_rate, reader.channels, on_chunk
            ):
                writer.write(limiter.process(y) if limiter else y)
            if limiter:
                writer.write(limiter.flush())
            seconds = writer.file.frames / reader.sample_rate
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    finally:
        reader.close()
    result = FileResult(src, dst, seconds)
    if limiter and limiter.limited_samples:
        result.limited_samples = limiter.limited_samples
        result.limiter_db = float(-20 * np.log10(limiter.min_gain))
    return result


# --------------------------------------------------------------------------------------
# Many files: discovery, output names, the batch loop
# --------------------------------------------------------------------------------------


def find_inputs(paths: Sequence[str | Path]) -> list[tuple[Path, Path | None]]:
    """Expand inputs into ``(file, folder it was found under or None)``.

    Folders are searched recursively for audio extensions, skipping our own outputs
    (``*.restored.*``) and temporary files, so re-running on a folder does not restore
    the restorations. A named path that does not exist is kept (it fails later with a
    clear message) so the other files still run.
    """
    found: list[tuple[Path, Path | None]] = []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if (
                    f.is_file()
                    and f.suffix.lower() in READ_EXTENSIONS
                    and not f.stem.endswith(".restored")
                    and not f.name.startswith(".")
                ):
                    found.append((f, p))
        else:
            found.append((p, None))
    return found


def plan_outputs(
    inputs: Sequence[tuple[Path, Path | None]], output: str | Path | None, ext: str = ".wav"
) -> list[tuple[Path, Path]]:
    """Output path per input.

    - no ``output``: ``song.restored.wav`` next to each input;
    - ``output`` a folder (exists, ends with a separator, or several/folder inputs):
      ``output/<path below the input folder>/song.wav``;
    - otherwise ``output`` is the single input's output file; its extension (.wav or
      .flac) picks the format.
    """
    ext = ext if ext.startswith(".") else f".{ext}"
    if output is None:
        return [(src, src.with_name(f"{src.stem}.restored{ext}")) for src, _ in inputs]
    out = Path(output)
    as_folder = (
        out.is_dir()
        or str(output).endswith((os.sep, "/"))
        or len(inputs) > 1
        or any(root is not None for _, root in inputs)
    )
    if not as_folder:
        return [(inputs[0][0], out)] if inputs else []
    if out.suffix.lower() in _WRITE_FORMATS:
        raise AudioError(f"{out}: several inputs need an output folder, not a file")
    pairs = []
    for src, root in inputs:
        rel = src.relative_to(root).parent if root is not None else Path()
        pairs.append((src, out / rel / f"{src.stem}{ext}"))
    return pairs


def restore_files(
    restorer: Restorer,
    pairs: Sequence[tuple[Path, Path]],
    *,
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> int:
    """Restore each ``(src, dst)``; report one line per file. Returns how many failed.

    A bad file (unreadable, NaN, truncated, unsupported layout, output == input, two
    inputs with one output) goes to ``on_error`` as one line naming it, and the rest go
    on. ``log`` gets the success lines. Both default to printing to stderr through tqdm.
    ``show_progress=None`` shows tqdm bars (files, and chunks of each file) only on a
    terminal.
    """
    from tqdm import tqdm

    def stderr(msg: str) -> None:
        tqdm.write(msg, file=sys.stderr)

    log = log or stderr
    on_error = on_error or (lambda msg: stderr(f"error: {msg}"))
    failed = 0
    claimed: dict[Path, Path] = {}
    disable = None if show_progress is None else not show_progress
    files = tqdm(pairs, unit="file", disable=disable)
    for src, dst in files:
        try:
            key = dst.resolve()
            if key in claimed:
                raise AudioError(f"{src}: output {dst} is also the output of {claimed[key]}")
            claimed[key] = src
            bar = tqdm(unit="chunk", desc=src.name, leave=False, disable=files.disable)
            try:
                result = restore_file(restorer, src, dst, progress=bar)
            finally:
                bar.close()
            note = ""
            if result.limited_samples:
                note = (
                    f"; FLAC safety limiter reduced {result.limited_samples} samples "
                    f"by up to {result.limiter_db:.2f} dB"
                )
            log(f"{src} -> {dst} ({result.seconds:.2f} s{note})")
        except (AudioError, OSError, sf.LibsndfileError) as e:
            failed += 1
            on_error(str(e) if isinstance(e, AudioError) else f"{src}: {e}")
    return failed
