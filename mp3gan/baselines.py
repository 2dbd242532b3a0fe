"""Signal-processing baselines the model has to beat, with the same call as ``restore``.

Every baseline is ``fn(audio [C, T] or [T], sample_rate) -> same shape`` and blind: it
sees only the decoded MP3, never the reference.

- :func:`identity` returns the decoded MP3 itself (the "do nothing" row of every table);
- :func:`exciter` makes harmonics of the band just below the detected cutoff with a
  full-wave rectifier, keeps those above the cutoff and mixes them in at a level that
  follows the source band's envelope;
- :func:`spectral_band_replication` (blind SBR) copies the octave below the cutoff into
  the empty band above it in the STFT domain and shapes it with the spectral envelope
  extrapolated from below the cutoff.

Both band-extension baselines aim the filled band at the level a straight-line fit of
dB against log-frequency over the top octave below the cutoff predicts: real spectra
fall smoothly with frequency, and that fit is all a blind method can know about the
band the encoder threw away. Input whose cutoff is (near) Nyquist passes through.
"""

from __future__ import annotations

import numpy as np

from mp3gan import audio as audio_lib
from mp3gan import dsp, metrics

# STFT of the band-extension baselines: hop = n_fft / 4, so shifting content by a
# multiple of 4 bins keeps the phase advance per frame consistent (see _sbr_shift).
# Short frames (11.6 ms at 44.1 kHz, 86 Hz bins): masking bins smears an attack over a
# frame, and a longer frame would itself put pre-echo into the band we fill.
N_FFT = 512
HOP = N_FFT // 4
# Below this there is too little band left to learn an envelope from.
MIN_CUTOFF_HZ = 1000.0
# The envelope fit and the copy source stop short of the cutoff: the encoder's low-pass
# has a transition band whose roll-off would bend the fit downwards.
SOURCE_TOP_FRACTION = 0.9
# Slopes a real spectrum plausibly has above a few kHz (dB per octave, power per bin):
# acoustic sound does not get louder towards 20 kHz, so a rising fit (a resonance or a
# tonal peak near the cutoff) is flattened rather than extrapolated over an octave.
SLOPE_RANGE_DB_PER_OCTAVE = (-24.0, 0.0)
# Energy envelopes are smoothed over this many STFT frames (~15 ms at 44.1 kHz), so the
# gain does not flutter from frame to frame yet follows a drum's decay.
SMOOTH_FRAMES = 5
# Per-frame level corrections around the overall one are limited to this.
MAX_GAIN_DB = 12.0
_EPS = 1e-12


def identity(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The decoded MP3 itself: the reference point every improvement is measured from."""
    return np.asarray(audio, dtype=np.float32)


def detect_cutoff(audio: np.ndarray, sample_rate: int) -> float | None:
    """The input's cutoff in Hz, or None when it is full band (nothing to fill)."""
    cutoff = metrics.cutoff_frequency(audio, sample_rate)
    if cutoff is None or not np.isfinite(cutoff):
        return None
    if cutoff >= metrics.FULL_BAND_FRACTION * sample_rate / 2 or cutoff < MIN_CUTOFF_HZ:
        return None
    return float(cutoff)


def _moving_average(power: np.ndarray, frames: int = SMOOTH_FRAMES) -> np.ndarray:
    """Centred moving average along the last (frame) axis, same length."""
    kernel = np.ones(frames) / frames
    pad = [(0, 0)] * (power.ndim - 1) + [(frames // 2, frames - 1 - frames // 2)]
    padded = np.pad(power, pad, mode="edge")
    return np.apply_along_axis(np.convolve, -1, padded, kernel, mode="valid")


def _envelope_shape(power: np.ndarray, freqs: np.ndarray, lo_hz: float, hi_hz: float) -> np.ndarray:
    """Fit dB = a + b * log2(f) to the mean power over ``[lo_hz, hi_hz)``.

    ``power`` is ``[..., F, frames]``; channels share one fit (the mean over them).
    Returns the fitted relative power over all ``freqs`` (1 at ``hi_hz``).
    """
    band = (freqs >= lo_hz) & (freqs < hi_hz)
    mean_db = 10 * np.log10(power.reshape(-1, *power.shape[-2:]).mean(axis=(0, 2)) + _EPS)
    log_f = np.log2(freqs[band])
    slope, intercept = np.polyfit(log_f, mean_db[band], 1)
    slope = float(np.clip(slope, *SLOPE_RANGE_DB_PER_OCTAVE))
    # Re-fit the intercept with the clamped slope so the line still passes through the band.
    intercept = float(np.mean(mean_db[band] - slope * log_f))
    fit_db = intercept + slope * np.log2(np.maximum(freqs, freqs[1]))
    top_db = intercept + slope * np.log2(hi_hz)
    return 10 ** ((fit_db - top_db) / 10)


def _level_gain(target: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Amplitude gain per frame that brings smoothed ``actual`` energy to ``target``.

    ``[..., frames]`` energies. The overall ratio is applied in full; the per-frame
    deviation from it (the envelope) is limited to MAX_GAIN_DB, so one odd frame cannot
    blow up while a band that is quiet overall still reaches its level.
    """
    overall = target.sum(-1, keepdims=True) / (actual.sum(-1, keepdims=True) + _EPS)
    ratio = _moving_average(target) / (_moving_average(actual) + _EPS)
    limit = 10 ** (MAX_GAIN_DB / 10)
    return np.sqrt(overall * np.clip(ratio / (overall + _EPS), 1 / limit, limit))


def _prepare(audio: np.ndarray) -> tuple[np.ndarray, bool]:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"expected audio [C, T] or [T], got shape {x.shape}")
    return (x[None] if x.ndim == 1 else x), x.ndim == 1


def _stft(x: np.ndarray) -> np.ndarray:
    return np.asarray(dsp.stft(x, N_FFT, HOP))


def _istft(z: np.ndarray, length: int) -> np.ndarray:
    return np.asarray(dsp.istft(z, N_FFT, HOP, length), dtype=np.float32)


def _sbr_shift(cutoff_bin: int, source_lo: int, source_hi: int) -> tuple[int, int]:
    """First shift (bins) and patch width for copying ``[source_lo, source_hi)`` upwards.

    Both are multiples of N_FFT / HOP: moving STFT content by m bins changes its phase
    advance per frame by 2 pi m HOP / N_FFT, which is a whole turn only then, so the
    copied band stays a consistent (single-sideband-modulated) signal.
    """
    step = N_FFT // HOP
    width = max(step, (source_hi - source_lo) // step * step)
    shift = -(-(cutoff_bin - (source_hi - width)) // step) * step
    return shift, width


def spectral_band_replication(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Blind SBR: fill the band above the detected cutoff with copies of the octave below.

    The copy is tilted to the envelope extrapolated from below the cutoff, and its level
    per frame follows the source octave's energy, smoothed over ~15 ms.
    """
    x, mono = _prepare(audio)
    cutoff = detect_cutoff(x, sample_rate)
    if cutoff is None or not np.any(x):
        return x[0] if mono else x
    spec = _stft(x)
    n_bins = spec.shape[-2]
    freqs = np.arange(n_bins) * sample_rate / N_FFT
    cutoff_bin = int(np.ceil(cutoff * N_FFT / sample_rate))
    source_lo = int(np.ceil(cutoff / 2 * N_FFT / sample_rate))
    source_hi = int(SOURCE_TOP_FRACTION * cutoff_bin)
    power = np.abs(spec) ** 2
    shape = _envelope_shape(power, freqs, freqs[source_lo], freqs[source_hi])

    shift, width = _sbr_shift(cutoff_bin, source_lo, source_hi)
    target_bins = np.arange(cutoff_bin, n_bins)
    # Patch p moves the source up by shift + p * width bins; every target bin gets one source.
    source_bins = target_bins - shift - (target_bins - cutoff_bin) // width * width
    tilt = np.sqrt(shape[target_bins] / shape[source_bins])
    patch = spec[..., source_bins, :] * tilt[:, None]

    # Energy the envelope predicts above the cutoff, from the source octave's own energy.
    source = slice(source_lo, source_hi)
    ratio = shape[target_bins].sum() / shape[source].sum()
    target_energy = power[..., source, :].sum(-2) * ratio
    patch_energy = (np.abs(patch) ** 2).sum(-2)
    patch *= _level_gain(target_energy, patch_energy)[..., None, :]

    added = np.zeros_like(spec)
    added[..., target_bins, :] = patch
    out = x + _istft(added, x.shape[-1])
    return out[0] if mono else out


def _band_mask(freqs: np.ndarray, lo_hz: float, hi_hz: float) -> np.ndarray:
    return ((freqs >= lo_hz) & (freqs < hi_hz)).astype(np.float32)[:, None]


def exciter(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Harmonic exciter: rectified top octave, high-passed above the cutoff, mixed in.

    Full-wave rectifying a band ``[f/2, f)`` puts its second harmonics in ``[f, 2f)``.
    When one octave does not reach Nyquist (low cutoffs) the step repeats on the band
    just made. The rectifier runs at twice the rate so its harmonics above Nyquist are
    filtered off instead of aliasing down.
    """
    x, mono = _prepare(audio)
    cutoff = detect_cutoff(x, sample_rate)
    if cutoff is None or not np.any(x):
        return x[0] if mono else x
    nyquist = sample_rate / 2
    spec = _stft(x)
    freqs = np.arange(spec.shape[-2]) * sample_rate / N_FFT
    shape = _envelope_shape(np.abs(spec) ** 2, freqs, cutoff / 2, SOURCE_TOP_FRACTION * cutoff)

    added = np.zeros_like(spec)
    top = cutoff
    while top < nyquist:
        source_mask = _band_mask(freqs, top / 2, top)
        target_mask = _band_mask(freqs, top, min(2 * top, nyquist + 1))
        source_spec = (spec + added) * source_mask
        source = _istft(source_spec, x.shape[-1])
        upsampled = audio_lib.resample(source, sample_rate, 2 * sample_rate)
        rectified = audio_lib.resample(np.abs(upsampled), 2 * sample_rate, sample_rate)
        harmonics = _stft(rectified[..., : x.shape[-1]]) * target_mask
        ratio = (shape * target_mask[:, 0]).sum() / (shape * source_mask[:, 0]).sum()
        target_energy = (np.abs(source_spec) ** 2).sum(-2) * ratio
        gain = _level_gain(target_energy, (np.abs(harmonics) ** 2).sum(-2))
        added += harmonics * gain[..., None, :]
        top *= 2
    out = x + _istft(added, x.shape[-1])
    return out[0] if mono else out


BASELINES: dict[str, audio_lib.PredictFn] = {
    "identity": identity,
    "exciter": exciter,
    "sbr": spectral_band_replication,
}
