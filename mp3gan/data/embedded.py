"""The embedded default corpus: synthetic, transient-rich stereo "songs" made by numpy.

Used when no data path is configured, so ``launch/train.py --config configs/base.py``
runs on a fresh machine with no download. Everything is synthesised from a seed, so
every machine builds the same audio:

- drums: kick (pitch-swept sine plus click), snare (tone plus band-passed noise), closed
  and open hi-hats and crash/ride cymbals (noise and inharmonic square-wave clusters
  through resonant filters, sharp attacks, long decays: energy up to 20 kHz);
- plucked strings (Karplus-Strong) played as notes and strummed chords;
- piano-like notes and chords (slightly inharmonic partials, higher ones decaying faster,
  a hammer click);
- pads (detuned band-limited wavetables, slow attack): sustained tonal material;
- castanet-like clicks: millisecond bursts over digital silence, the classic MP3
  pre-echo case.

These are arranged by a seeded random "style" into short stereo songs at 44.1 kHz
(48 files of 4-8 s, about 4.8 minutes), written once as 24-bit FLAC with a
``manifest.jsonl`` into ``<cache home>/embedded-v1`` (see
:func:`mp3gan.data.sources.cache_home`; ``MP3GAN_CACHE_HOME`` overrides it) and then
treated like any user folder.

What it is good for: proving the whole pipeline (loader, pairs, training, evaluation)
end to end, smoke tests, and codec stress on transients and high bands. What it is NOT
good for: it is not music. No voices, no real instruments, no rooms, no mixing; a model
trained on it proves the pipeline works, not that it restores real recordings, and its
scores say nothing about quality on music.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import signal

from mp3gan import audio as audio_lib
from mp3gan.data.sources import LICENCE_MANIFEST, cache_home

# Bump the version (and the folder name) whenever the synthesis changes, so an old cache
# is never mistaken for the new corpus.
EMBEDDED_VERSION = "embedded-v1"
DEFAULT_SONGS = 48
DEFAULT_SECONDS = (4.0, 8.0)
DEFAULT_SEED = 20240611
LICENCE = "Apache-2.0 (synthesised by mp3gan.data.embedded)"
# Written last, after the folder is complete: its presence means the corpus is whole.
_COMPLETE_MARKER = ".complete"


def embedded_corpus_dir() -> Path:
    """Where the default embedded corpus lives (built on first use)."""
    return cache_home() / EMBEDDED_VERSION


# ---------------------------------------------------------------------------------------
# Instruments. Each returns a mono float64 hit ``[samples]``; songs place copies of hits.


def _decay(n: int, tau_s: float, sr: int) -> np.ndarray:
    return np.exp(-np.arange(n) / (tau_s * sr))


def _attack(n: int, attack_s: float, sr: int) -> np.ndarray:
    ramp = min(n, max(1, int(attack_s * sr)))
    env = np.ones(n)
    env[:ramp] = np.linspace(0.0, 1.0, ramp, endpoint=False)
    return env


def _resonate(x: np.ndarray, freq: float, q: float, sr: int) -> np.ndarray:
    b, a = signal.iirpeak(min(freq, 0.45 * sr), q, fs=sr)
    return signal.lfilter(b, a, x)


def _highpass(x: np.ndarray, freq: float, sr: int, order: int = 4) -> np.ndarray:
    sos = signal.butter(order, freq, btype="high", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _bandpass(x: np.ndarray, lo: float, hi: float, sr: int, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, (lo, min(hi, 0.45 * sr)), btype="band", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _metallic(n: int, rng: np.random.Generator, sr: int, scale: float) -> np.ndarray:
    """Six square waves at inharmonic ratios (the TR-808 cymbal recipe): a metallic cluster."""
    t = np.arange(n) / sr
    ratios = np.array([2.0, 3.0, 4.16, 5.43, 6.79, 8.21]) * rng.uniform(0.97, 1.03, 6)
    phases = rng.uniform(0, 1, 6)
    return sum(
        np.sign(np.sin(2 * np.pi * (scale * r * t + p)))
        for r, p in zip(ratios, phases, strict=True)
    )


def kick(rng: np.random.Generator, sr: int) -> np.ndarray:
    n = int(0.45 * sr)
    f_hi, f_lo = rng.uniform(120, 180), rng.uniform(42, 60)
    freq = f_lo + (f_hi - f_lo) * _decay(n, 0.03, sr)
    body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * _decay(n, rng.uniform(0.12, 0.25), sr)
    click = _highpass(rng.standard_normal(n), 2000, sr) * _decay(n, 0.002, sr)
    return body + 0.4 * click


def snare(rng: np.random.Generator, sr: int) -> np.ndarray:
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    f0 = rng.uniform(170, 230)
    tone = (np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * 1.6 * f0 * t)) * _decay(
        n, 0.05, sr
    )
    rattle = _bandpass(rng.standard_normal(n), 1200, 12000, sr) * _decay(
        n, rng.uniform(0.06, 0.14), sr
    )
    return 0.6 * tone + 0.8 * rattle


def hihat(rng: np.random.Generator, sr: int, open_: bool = False) -> np.ndarray:
    tau = rng.uniform(0.18, 0.35) if open_ else rng.uniform(0.012, 0.03)
    n = int(min(6 * tau, 1.2) * sr)
    raw = 0.6 * _metallic(n, rng, sr, rng.uniform(280, 360)) + rng.standard_normal(n)
    x = _highpass(raw, rng.uniform(6500, 8500), sr)
    x = x + 0.5 * _resonate(x, rng.uniform(9000, 13000), 4.0, sr)
    return 0.5 * x * _decay(n, tau, sr) * _attack(n, 0.0005, sr)


def cymbal(rng: np.random.Generator, sr: int, ride: bool = False) -> np.ndarray:
    """Crash (noisy, long) or ride (more metallic, a bell ping): full-band, long decays."""
    tau = rng.uniform(0.5, 0.9) if ride else rng.uniform(0.9, 1.6)
    n = int(min(4 * tau, 3.5) * sr)
    metal = _metallic(n, rng, sr, rng.uniform(380, 560))
    raw = (0.9 if ride else 0.4) * metal + (0.4 if ride else 1.0) * rng.standard_normal(n)
    x = _highpass(raw, 3000 if ride else 1500, sr, order=2)
    # A few resonances give each cymbal its own colour (and shimmer above 10 kHz).
    x = x + sum(_resonate(x, rng.uniform(3000, 16000), rng.uniform(3, 12), sr) for _ in range(3))
    env = _decay(n, tau, sr) * _attack(n, 0.001, sr)
    if ride:
        t = np.arange(n) / sr
        bell = np.sin(2 * np.pi * rng.uniform(2500, 3500) * t) * _decay(n, 0.25, sr)
        x = x / (np.abs(x).max() + 1e-9) + 0.3 * bell
    return 0.4 * x * env / (np.abs(x).max() + 1e-9)


def pluck(rng: np.random.Generator, sr: int, freq: float) -> np.ndarray:
    """Karplus-Strong string: a noise burst circulating in a damped, averaged delay line."""
    n = int(rng.uniform(1.0, 2.0) * sr)
    period = max(2, int(round(sr / freq)))
    burst = rng.uniform(-1, 1, period)
    if rng.random() < 0.5:  # a softer pluck: smoothed excitation
        burst = signal.lfilter([0.5, 0.5], [1.0], burst)
    rho = rng.uniform(0.994, 0.999)
    # y[t] = burst[t] + rho/2 (y[t - P] + y[t - P - 1]): one period per step, vectorised
    # (a direct-form IIR filter of order P would cost P multiplies per sample).
    y = np.zeros(n + 1)  # y[0] is the silence before the pluck; y[1:] the output
    y[1 : period + 1] = burst
    for start in range(period + 1, n + 1, period):
        stop = min(start + period, n + 1)
        y[start:stop] = (
            rho
            / 2
            * (y[start - period : stop - period] + y[start - period - 1 : stop - period - 1])
        )
    return 0.5 * y[1:]


def _damped_sines(
    freqs: np.ndarray, taus: np.ndarray, amps: np.ndarray, phases: np.ndarray, n: int, sr: int
) -> np.ndarray:
    """Sum of ``amps * exp(-t / taus) * sin(2 pi freqs t + phases)`` over ``n`` samples.

    Each partial is a complex geometric series ``c z**t``; splitting time into blocks turns
    the whole sum into one matrix product (far faster than sin and exp per partial).
    """
    block = 1024
    n_blocks = -(-n // block)
    log_z = -1.0 / (taus * sr) + 2j * np.pi * freqs / sr  # z = exp(log_z)
    within = np.exp(log_z[:, None] * np.arange(block)[None, :])  # [partials, block]
    starts = (amps * np.exp(1j * phases))[None, :] * np.exp(
        log_z[None, :] * (np.arange(n_blocks)[:, None] * block)
    )  # [blocks, partials]
    # Im(starts @ within). einsum without `optimize` stays out of BLAS, whose threads
    # thrash on such small products when the machine is busy (10x slower).
    x = np.einsum("bk,kn->bn", starts.real, within.imag) + np.einsum(
        "bk,kn->bn", starts.imag, within.real
    )
    return x.reshape(-1)[:n]


def piano(rng: np.random.Generator, sr: int, freq: float) -> np.ndarray:
    """Piano-like: inharmonic partials (stiff string) whose decay shortens with order."""
    n = int(rng.uniform(1.5, 2.5) * sr)
    stiffness = rng.uniform(1e-4, 4e-4)
    tau0 = rng.uniform(0.8, 1.5) * min(1.0, 300.0 / freq) ** 0.5
    k = np.arange(1, 25)
    freqs = k * freq * np.sqrt(1 + stiffness * k * k)
    k, freqs = k[freqs < 0.45 * sr], freqs[freqs < 0.45 * sr]
    x = _damped_sines(
        freqs, tau0 / (1 + 0.35 * k), 1.0 / k**1.1, rng.uniform(0, 2 * np.pi, len(k)), n, sr
    )
    hammer = _bandpass(rng.standard_normal(n), 800, 9000, sr) * _decay(n, 0.004, sr)
    return 0.35 * (x + 0.3 * hammer) * _attack(n, 0.002, sr)


def pad(rng: np.random.Generator, sr: int, freqs: list[float], seconds: float) -> np.ndarray:
    """Sustained chord: two detuned band-limited wavetable voices per note, slow swell."""
    n = int(seconds * sr)
    table_size = 4096
    phase_axis = np.arange(table_size) / table_size
    harmonics = np.arange(1, 13)
    table = (np.sin(2 * np.pi * np.outer(harmonics, phase_axis)) / harmonics[:, None]).sum(0)
    x = np.zeros(n)
    for f in freqs:
        for detune in (rng.uniform(-0.004, -0.001), rng.uniform(0.001, 0.004)):
            phase = (np.cumsum(np.full(n, f * (1 + detune) / sr)) + rng.random()) % 1.0
            x += table[(phase * table_size).astype(np.int64)]
    swell = _attack(n, rng.uniform(0.3, 1.0), sr) * np.minimum(1.0, (n - np.arange(n)) / (0.3 * sr))
    sos = signal.butter(2, rng.uniform(1500, 5000), btype="low", fs=sr, output="sos")
    return 0.08 * signal.sosfilt(sos, x) * swell


def castanet(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Two wooden clicks a few ms apart: broadband click plus a 1.5-3 kHz resonance."""
    n = int(0.04 * sr)
    x = np.zeros(n)
    for onset in (0, int(rng.uniform(0.002, 0.006) * sr)):
        m = n - onset
        click = rng.standard_normal(m) * _decay(m, rng.uniform(0.0008, 0.002), sr)
        body = _resonate(click, rng.uniform(1500, 3000), rng.uniform(6, 12), sr)
        x[onset:] += click + 2.0 * body
    return 0.5 * x * _decay(n, 0.008, sr)


# ---------------------------------------------------------------------------------------
# Arrangement.


def _note_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _chord(rng: np.random.Generator) -> list[float]:
    root = rng.integers(45, 62)
    shape = [(0, 4, 7), (0, 3, 7), (0, 4, 7, 11), (0, 3, 7, 10), (0, 5, 7)][rng.integers(5)]
    return [_note_hz(root + s) for s in shape]


class _Mix:
    """A stereo bus: place mono hits at times with a pan and a tiny inter-channel delay."""

    def __init__(self, n: int, sr: int):
        self.out = np.zeros((2, n))
        self.sr = sr

    def add(
        self, hit: np.ndarray, at_s: float, pan: float = 0.0, gain: float = 1.0, haas_s: float = 0.0
    ):
        start = int(at_s * self.sr)
        if start >= self.out.shape[1]:
            return
        angle = (pan + 1) * np.pi / 4  # constant-power pan, pan in [-1, 1]
        delay = int(abs(haas_s) * self.sr)
        for ch, g in enumerate((np.cos(angle), np.sin(angle))):
            lag = delay if (haas_s > 0) == (ch == 1) and delay else 0
            s = start + lag
            m = min(len(hit), self.out.shape[1] - s)
            if m > 0:
                self.out[ch, s : s + m] += gain * g * hit[:m]


def _drums(mix: _Mix, rng: np.random.Generator, beat: float, seconds: float, sr: int, busy: float):
    k, s = kick(rng, sr), snare(rng, sr)
    closed, opened = hihat(rng, sr), hihat(rng, sr, open_=True)
    crash, ride = cymbal(rng, sr), cymbal(rng, sr, ride=True)
    use_ride = rng.random() < 0.4
    for i in range(int(seconds / beat) + 1):
        t = i * beat
        if i % 4 in (0, 2) or rng.random() < 0.15 * busy:
            mix.add(k, t, pan=0.0, gain=0.9)
        if i % 4 in (1, 3):
            mix.add(s, t, pan=rng.uniform(-0.15, 0.15), gain=0.7)
        for sub in (0.0, 0.5):
            if rng.random() < busy:
                hat = opened if rng.random() < 0.15 else closed
                mix.add(hat, t + sub * beat, pan=0.35, gain=rng.uniform(0.5, 0.9), haas_s=0.0004)
        if use_ride and rng.random() < 0.7:
            mix.add(ride, t, pan=-0.4, gain=0.5)
        if i % 16 == 0 and rng.random() < 0.8:
            mix.add(crash, t, pan=rng.uniform(-0.6, 0.6), gain=0.8, haas_s=0.0006)


def _castanets(mix: _Mix, rng: np.random.Generator, beat: float, seconds: float, sr: int):
    hits = [castanet(rng, sr) for _ in range(4)]
    t = rng.uniform(0.05, 0.3)
    while t < seconds:
        if rng.random() < 0.4:  # a roll: several hits in quick succession
            for j in range(int(rng.integers(3, 7))):
                mix.add(hits[rng.integers(4)], t + j * rng.uniform(0.035, 0.06), pan=0.2, gain=0.9)
        else:
            mix.add(
                hits[rng.integers(4)], t, pan=rng.uniform(-0.3, 0.3), gain=rng.uniform(0.6, 1.0)
            )
        t += beat * rng.choice([0.5, 1.0, 1.5, 2.0])


def _plucks(mix: _Mix, rng: np.random.Generator, beat: float, seconds: float, sr: int):
    t = 0.0
    while t < seconds:
        chord = _chord(rng)
        if rng.random() < 0.4:  # strum: the chord's strings 10-30 ms apart
            gap = rng.uniform(0.01, 0.03)
            for j, f in enumerate(chord):
                mix.add(pluck(rng, sr, f * 2), t + j * gap, pan=rng.uniform(-0.5, 0.5), gain=0.6)
        else:
            mix.add(pluck(rng, sr, rng.choice(chord) * 2), t, pan=rng.uniform(-0.7, 0.7))
        t += beat * rng.choice([0.5, 1.0, 1.0, 2.0])


def _keys(mix: _Mix, rng: np.random.Generator, beat: float, seconds: float, sr: int):
    t = 0.0
    while t < seconds:
        chord = _chord(rng)
        notes = chord if rng.random() < 0.5 else [rng.choice(chord) * 2]
        for f in notes:
            mix.add(piano(rng, sr, f), t, pan=float(np.clip((np.log2(f / 260)) * 0.5, -0.8, 0.8)))
        t += beat * rng.choice([1.0, 2.0, 2.0, 4.0])


def _pads(mix: _Mix, rng: np.random.Generator, beat: float, seconds: float, sr: int):
    t, length = 0.0, beat * 8
    while t < seconds:
        voice = pad(rng, sr, _chord(rng), length)
        mix.add(voice, t, pan=-0.3, gain=1.0, haas_s=0.0)
        mix.add(voice, t, pan=0.3, gain=0.6, haas_s=0.011)  # a delayed copy for width
        t += length


_Part = Callable[[_Mix, np.random.Generator, float, float, int], None]
# Styles cycle with the song index, so every style appears many times in the corpus.
_STYLES: tuple[tuple[str, tuple[_Part, ...]], ...] = (
    ("kit+keys", (lambda m, r, b, s, sr: _drums(m, r, b, s, sr, 0.8), _keys)),
    ("castanets", (_castanets,)),
    ("plucks+pad", (_plucks, _pads)),
    ("piano", (_keys,)),
    ("kit+plucks", (lambda m, r, b, s, sr: _drums(m, r, b, s, sr, 0.5), _plucks, _pads)),
    ("cymbals+castanets", (lambda m, r, b, s, sr: _drums(m, r, b, s, sr, 1.0), _castanets)),
)


def synthesize_song(
    index: int,
    seed: int = DEFAULT_SEED,
    sample_rate: int = audio_lib.MODEL_SAMPLE_RATE,
    seconds: tuple[float, float] = DEFAULT_SECONDS,
) -> tuple[str, np.ndarray]:
    """Song ``index`` of the corpus: its style name and float32 stereo audio ``[2, T]``."""
    rng = np.random.default_rng([seed, index])
    style, parts = _STYLES[index % len(_STYLES)]
    length_s = float(rng.uniform(*seconds))
    beat = 60.0 / rng.uniform(80, 170)
    mix = _Mix(int(length_s * sample_rate), sample_rate)
    for part in parts:
        part(mix, rng, beat, length_s, sample_rate)
    out = mix.out
    # Fade the last 20 ms so songs end cleanly instead of cutting a decay.
    fade = int(0.02 * sample_rate)
    out[:, -fade:] *= np.linspace(1.0, 0.0, fade)
    peak = np.abs(out).max()
    out = out * (rng.uniform(0.5, 0.95) / peak) if peak > 0 else out
    return style, out.astype(np.float32)


def build_embedded_corpus(
    dest: str | os.PathLike,
    n_songs: int = DEFAULT_SONGS,
    seconds: tuple[float, float] = DEFAULT_SECONDS,
    seed: int = DEFAULT_SEED,
) -> Path:
    """Synthesise the corpus into ``dest`` (FLAC files plus manifest.jsonl), atomically.

    The songs are written to a temporary sibling folder that is renamed at the end, so an
    interrupted build leaves nothing behind and concurrent builders (several training
    processes on one host) cannot see a half-written corpus; the first rename wins.
    Returns ``dest``. Does nothing when ``dest`` already holds a complete corpus.
    """
    dest = Path(dest).expanduser()
    if (dest / _COMPLETE_MARKER).is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        lines = []
        for i in range(n_songs):
            style, song = synthesize_song(i, seed, audio_lib.MODEL_SAMPLE_RATE, seconds)
            name = f"song{i:03d}-{style.replace('+', '-')}.flac"
            audio_lib.write_audio(tmp / name, song, audio_lib.MODEL_SAMPLE_RATE)
            lines.append(
                json.dumps(
                    {
                        "path": name,
                        "duration_s": round(song.shape[1] / audio_lib.MODEL_SAMPLE_RATE, 6),
                        "sample_rate": audio_lib.MODEL_SAMPLE_RATE,
                        "channels": 2,
                        "licence": LICENCE,
                        "style": style,
                        "generator": f"mp3gan.data.embedded {EMBEDDED_VERSION}",
                        "seed": seed,
                    }
                )
            )
        (tmp / LICENCE_MANIFEST).write_text("\n".join(lines) + "\n")
        (tmp / _COMPLETE_MARKER).write_text(f"{EMBEDDED_VERSION} seed={seed} songs={n_songs}\n")
        try:
            os.rename(tmp, dest)
        except OSError as e:
            # Another process finished first (dest exists and is not empty): use theirs.
            if not (dest / _COMPLETE_MARKER).is_file():
                raise OSError(
                    f"{dest} exists but is not a complete embedded corpus; delete it to rebuild"
                ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ensure_embedded_corpus(dest: str | os.PathLike | None = None) -> Path:
    """The default embedded corpus folder, built on first use (a few seconds)."""
    return build_embedded_corpus(dest if dest is not None else embedded_corpus_dir())
