"""Streaming resamplers compared: the Kaiser polyphase filter the restore path used
(kept here as ``Polyphase``) against soxr's ``ResampleStream`` at HQ and VHQ quality,
which replaced it in ``mp3gan.restore.StreamResampler`` (HQ) because it measured better
on quality and at least as fast.

Quality, for each rate pair the restore path uses (input rate -> 44.1 kHz and back):

- ``passband SNR``: a sum of 24 sines at random frequencies up to 0.85 x the lower
  Nyquist frequency, resampled block by block, against the same sines evaluated
  analytically at the output instants (any delay, ripple or phase error counts), in dB;
- ``alias``: when going down in rate, the loudest output (dB re the input tone) of a tone
  between 1.01 x the lower and 0.99 x the higher Nyquist frequency, which must not fold back;
- ``chunked = whole``: largest difference between block-by-block and one-shot output.

Speed: seconds to resample 60 s of stereo noise in 65,536-frame blocks (best of 3).

    python benchmarks/resampler.py
"""

from __future__ import annotations

import functools
import time
from math import gcd

import numpy as np
import soxr
from scipy import signal

PAIRS = [(48000, 44100), (44100, 48000), (96000, 44100), (44100, 96000), (22050, 44100)]
BLOCK = 65536


class Polyphase:
    """The resampler the restore path used before soxr: a Kaiser-windowed FIR (beta 8, 10
    zero crossings a side, cutoff at the lower Nyquist frequency), as
    ``scipy.signal.resample_poly``, evaluated with ``upfirdn`` on a sliding window."""

    def __init__(self, sr_in: int, sr_out: int, channels: int):
        g = gcd(int(sr_in), int(sr_out))
        self.up, self.down = int(sr_out) // g, int(sr_in) // g
        self.channels = channels
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
        self.buf = np.concatenate([self.buf, block], axis=-1)
        self.received += block.shape[-1]
        # Output n needs inputs up to floor((n + pre) * down / up) < received.
        return self._emit((self.received * self.up - 1) // self.down - self.pre + 1)

    def flush(self) -> np.ndarray:
        return self._emit(-(-self.received * self.up // self.down))

    def _first_input(self, n: int) -> int:
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


class Soxr:
    """soxr's stream, with the ``process``/``flush`` interface and exact output length."""

    def __init__(self, sr_in: int, sr_out: int, channels: int, quality: str = "VHQ"):
        self.stream = soxr.ResampleStream(sr_in, sr_out, channels, dtype="float32", quality=quality)
        self.channels = channels

    def process(self, block: np.ndarray) -> np.ndarray:
        return self.stream.resample_chunk(np.ascontiguousarray(block.T)).T

    def flush(self) -> np.ndarray:
        empty = np.zeros((0, self.channels), np.float32)
        return self.stream.resample_chunk(empty, last=True).T


def run(make, x: np.ndarray, block: int) -> np.ndarray:
    r = make()
    parts = [r.process(x[:, i : i + block]) for i in range(0, x.shape[1], block)]
    parts.append(r.flush())
    return np.concatenate(parts, axis=-1)


def tones(freqs, phases, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    return (0.03 * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None]).sum(0))[None]


def passband_snr(make, sr_in: int, sr_out: int) -> float:
    rng = np.random.default_rng(0)
    top = 0.85 * min(sr_in, sr_out) / 2
    freqs, phases = rng.uniform(20, top, 24), rng.uniform(0, 2 * np.pi, 24)
    n = sr_in * 2
    y = run(make, tones(freqs, phases, n, sr_in).astype(np.float32), BLOCK)
    n_out = n * sr_out // sr_in
    ref = tones(freqs, phases, n_out, sr_out)
    edge = sr_out // 10  # the analytic sines have no start or end: skip the edges
    err = y[:, edge : n_out - edge] - ref[:, edge : n_out - edge]
    return float(10 * np.log10((ref[:, edge:-edge] ** 2).mean() / (err**2).mean()))


def alias_db(make, sr_in: int, sr_out: int) -> float | None:
    if sr_out >= sr_in:
        return None
    worst = -np.inf
    for f in np.linspace(1.01, 0.99 * sr_in / sr_out, 7) * sr_out / 2:
        x = tones(np.array([f]), np.zeros(1), sr_in, sr_in).astype(np.float32) / 0.03
        y = run(make, x, BLOCK)[:, sr_out // 10 : -sr_out // 10]
        worst = max(worst, 20 * np.log10(np.abs(y).max() + 1e-30))
    return float(worst)


def chunking_error(make) -> float:
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal((2, 50000))).astype(np.float32)
    return float(np.abs(run(make, x, 997) - run(make, x, x.shape[1])).max())


def speed(make, sr_in: int) -> float:
    rng = np.random.default_rng(2)
    x = (0.3 * rng.standard_normal((2, 60 * sr_in))).astype(np.float32)
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        run(make, x, BLOCK)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    candidates = {
        "polyphase (before)": Polyphase,
        "soxr HQ": lambda a, b, c: Soxr(a, b, c, "HQ"),
        "soxr VHQ": lambda a, b, c: Soxr(a, b, c, "VHQ"),
    }
    head = ("pair", "resampler", "SNR dB", "alias dB", "chunk err", "60 s")
    print("{:>13} {:>20} {:>7} {:>8} {:>9} {:>7}".format(*head))
    for sr_in, sr_out in PAIRS:
        for name, build in candidates.items():
            mono = functools.partial(build, sr_in, sr_out, 1)
            stereo = functools.partial(build, sr_in, sr_out, 2)
            snr = passband_snr(mono, sr_in, sr_out)
            alias = alias_db(mono, sr_in, sr_out)
            chunk = chunking_error(stereo)
            secs = speed(stereo, sr_in)
            alias_s = "" if alias is None else f"{alias:8.1f}"
            print(
                f"{sr_in:>6}>{sr_out:<6} {name:>20} {snr:7.1f} {alias_s:>8} {chunk:9.1e} "
                f"{secs:6.2f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
