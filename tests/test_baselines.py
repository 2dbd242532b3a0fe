"""Baselines: identity is the input; exciter and SBR really fill the band MP3 removed."""

import numpy as np
import pytest
from helpers import clicks_and_noise

from mp3gan import audio, baselines, metrics

SR = 44100


@pytest.fixture(scope="module")
def mp3_pair():
    """A broadband stereo reference and its aligned 64 kbps MP3 (cutoff ~11 kHz)."""
    reference = clicks_and_noise(SR, SR, channels=2, seed=3)
    return reference, audio.mp3_roundtrip(reference, SR, bitrate=64)


def band_energy_db(x: np.ndarray, lo_hz: float, hi_hz: float = np.inf) -> float:
    spectrum = np.abs(np.fft.rfft(np.asarray(x, np.float64), axis=-1)) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    band = (freqs >= lo_hz) & (freqs < hi_hz)
    return float(10 * np.log10(spectrum[..., band].sum() + 1e-30))


def test_identity_returns_the_input_unchanged(mp3_pair):
    _, degraded = mp3_pair
    out = baselines.identity(degraded, SR)
    assert out.shape == degraded.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, degraded)


@pytest.mark.parametrize("name", ["exciter", "sbr"])
def test_band_extension_fills_the_lost_band(mp3_pair, name):
    reference, degraded = mp3_pair
    cutoff = metrics.cutoff_frequency(degraded, SR)
    assert 8000 < cutoff < 14000  # the encode really lost its top band
    out = baselines.BASELINES[name](degraded, SR)
    assert out.shape == degraded.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    ref_high = band_energy_db(reference, cutoff)
    # The MP3 itself is far below the reference up there, so the check has teeth...
    assert band_energy_db(degraded, cutoff) < ref_high - 20
    # ...and the baseline brings it back to within 6 dB.
    assert abs(band_energy_db(out, cutoff) - ref_high) < 6.0
    # It only adds above the cutoff: the passband is (nearly) untouched.
    added = out - degraded
    assert band_energy_db(added, 0, 0.8 * cutoff) < band_energy_db(added, cutoff) - 30


@pytest.mark.parametrize("name", ["identity", "exciter", "sbr"])
def test_mono_1d_input_keeps_its_shape(mp3_pair, name):
    mono = mp3_pair[1][0]
    out = baselines.BASELINES[name](mono, SR)
    assert out.shape == mono.shape


@pytest.mark.parametrize("name", ["exciter", "sbr"])
def test_full_band_and_silent_input_pass_through(mp3_pair, name):
    reference, _ = mp3_pair  # broadband: no cutoff to fill above
    assert baselines.detect_cutoff(reference, SR) is None
    np.testing.assert_array_equal(baselines.BASELINES[name](reference, SR), reference)
    silence = np.zeros((2, SR), np.float32)
    np.testing.assert_array_equal(baselines.BASELINES[name](silence, SR), silence)
