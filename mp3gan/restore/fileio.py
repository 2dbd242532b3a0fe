"""Files in the restore path: an atomic block writer and the FLAC safety limiter.

Both take one block at a time, so a restored file streams through in bounded memory
(the reader is :class:`mp3gan.audio.AudioReader`, shared with training and evaluation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import ndimage

from mp3gan import files
from mp3gan.audio import WRITE_FORMATS, AudioError

FLAC_MAX_CHANNELS = 8
LIMITER_CEILING = 0.999  # FLAC output peak after the safety limiter (just under full scale)
LIMITER_SECONDS = 0.005  # limiter look-ahead and release window


class AtomicWriter:
    """Writes blocks to a temporary file beside ``path``; :meth:`commit` renames it into
    place, :meth:`abort` deletes it, so no half-written output is ever left behind."""

    def __init__(self, path: Path, sample_rate: int, channels: int):
        fmt = WRITE_FORMATS.get(path.suffix.lower())
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
        """Feed ``[C, n]`` samples; return those whose look-ahead is complete, limited."""
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
        """End of stream: the remaining samples."""
        return self.process(self.x[:, :0], final=True)
