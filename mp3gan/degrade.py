"""Degradations that turn a lossless reference into the model's input, kept aligned.

A degradation is a callable ``(audio [C, T], sample_rate) -> audio [C, T]`` that returns
a signal of the same shape, sample-aligned with its input. They are named by short
spec strings so configs and command lines can list them:

- ``mp3:64``        MP3 CBR at 64 kbps (32..320);
- ``vbr:0.4``       MP3 VBR at LAME quality 0.4 (0 best .. 1 worst);
- ``lowpass:4000``  zero-phase low-pass at 4 kHz (the sanity task, lesson 5);
- ``a+b``           ``a`` then ``b``, e.g. ``lowpass:8000+mp3:128``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import signal

from mp3gan import audio as audio_lib

Degradation = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class Clip:
    """A lossless reference and its degraded version, sample-aligned: what evaluation
    scores a method on (validation clips during training, files in evaluate_run)."""

    name: str  # unique within an evaluation (file and clip index)
    degradation: str  # spec string of the degradation that made ``degraded``
    reference: np.ndarray  # [C, T]
    degraded: np.ndarray  # [C, T], the method's input
    sample_rate: int
    path: str = ""  # source file (relative to the corpus root), when there is one
    start: int = 0  # first sample of the clip in that file


@dataclass(frozen=True)
class Mp3:
    """MP3 round trip at a CBR ``bitrate`` (kbps) or, if set, a VBR ``vbr_quality``."""

    bitrate: int | None = 128
    vbr_quality: float | None = None

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return audio_lib.mp3_roundtrip(audio, sample_rate, self.bitrate, self.vbr_quality)

    @property
    def name(self) -> str:
        return (
            f"vbr:{self.vbr_quality:g}" if self.vbr_quality is not None else f"mp3:{self.bitrate}"
        )


@dataclass(frozen=True)
class LowPass:
    """Zero-phase Butterworth low-pass at ``cutoff_hz`` (applied forwards and backwards).

    Zero phase keeps the pair aligned; order 8 each way gives about -96 dB per octave.
    """

    cutoff_hz: float
    order: int = 8

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if self.cutoff_hz >= sample_rate / 2:
            return audio
        sos = signal.butter(self.order, self.cutoff_hz, btype="low", fs=sample_rate, output="sos")
        # filtfilt needs a few samples of padding; very short clips use what they have.
        padlen = min(3 * (2 * len(sos) + 1), max(audio.shape[-1] - 1, 0))
        out = signal.sosfiltfilt(sos, audio, axis=-1, padlen=padlen)
        return out.astype(np.float32)

    @property
    def name(self) -> str:
        return f"lowpass:{self.cutoff_hz:g}"


@dataclass(frozen=True)
class Chain:
    """Apply degradations left to right."""

    steps: tuple[Degradation, ...]

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        for step in self.steps:
            audio = step(audio, sample_rate)
        return audio

    @property
    def name(self) -> str:
        return "+".join(step.name for step in self.steps)


def parse_degradation(spec: str) -> Degradation:
    """Build a degradation from its spec string (see the module docstring)."""
    parts = [p.strip() for p in spec.split("+") if p.strip()]
    if not parts:
        raise ValueError(f"empty degradation spec {spec!r}")
    steps = []
    for part in parts:
        kind, _, value = part.partition(":")
        try:
            if kind == "mp3":
                kbps = int(value)
                if not 32 <= kbps <= 320:
                    raise ValueError
                steps.append(Mp3(bitrate=kbps))
            elif kind == "vbr":
                q = float(value)
                if not 0.0 <= q <= 1.0:
                    raise ValueError
                steps.append(Mp3(bitrate=None, vbr_quality=q))
            elif kind == "lowpass":
                steps.append(LowPass(float(value)))
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"bad degradation {part!r}: use mp3:<32..320>, vbr:<0..1>, lowpass:<Hz>"
            ) from None
    return steps[0] if len(steps) == 1 else Chain(tuple(steps))
