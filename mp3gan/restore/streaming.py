"""Streaming building blocks of the restore path: pure numpy, no model.

A stream of ``[C, n]`` float32 blocks is resampled to the model rate
(:class:`StreamResampler`), cut into fixed-size overlapping chunks (:class:`Chunker`),
run through the generator a fixed batch of rows at a time (:class:`Batcher`), and the
chunk outputs are joined again (:class:`Stitcher`). Each keeps only what it still needs,
so memory does not grow with the stream's length.

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
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from math import gcd

import numpy as np
from scipy import signal


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
        """Add ``[C, n]`` samples; return the ``(start, chunk)`` pairs now complete."""
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
        """End of stream: the final chunk (none for an empty stream)."""
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


@dataclasses.dataclass
class PendingChunk:
    """A chunk in the :class:`Batcher`: its input, its output as rows come back, and how
    many of its rows (channels) are done."""

    start: int
    input: np.ndarray
    output: np.ndarray
    rows_done: int = 0


class Batcher:
    """Packs the rows (channels) of consecutive chunks into fixed ``[batch, length]``
    calls, so every file, whatever its channel count, reuses one compiled shape.
    Returns chunks in order once all their rows are done."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], batch_size: int, channels: int):
        self.run, self.batch_size, self.channels = run, batch_size, channels
        self.chunks: collections.deque[PendingChunk] = collections.deque()  # in order
        self.rows: list[tuple[PendingChunk, int]] = []  # (chunk, channel) not yet run

    def add(self, start: int, chunk: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Queue the chunk at ``start``; return the ``(start, output)`` pairs now done."""
        pending = PendingChunk(start, chunk, np.empty_like(chunk))
        self.chunks.append(pending)
        self.rows.extend((pending, c) for c in range(self.channels))
        return self._drain(final=False)

    def flush(self) -> list[tuple[int, np.ndarray]]:
        """Run the rows still queued (a partly filled last batch); return what is done."""
        return self._drain(final=True)

    def _drain(self, final: bool) -> list[tuple[int, np.ndarray]]:
        while len(self.rows) >= self.batch_size or (final and self.rows):
            batch, self.rows = self.rows[: self.batch_size], self.rows[self.batch_size :]
            y = self.run(np.stack([pending.input[c] for pending, c in batch]))
            for (pending, c), row in zip(batch, y, strict=True):
                pending.output[c] = row
                pending.rows_done += 1
        done = []
        while self.chunks and self.chunks[0].rows_done == self.channels:
            pending = self.chunks.popleft()
            done.append((pending.start, pending.output))
        return done
