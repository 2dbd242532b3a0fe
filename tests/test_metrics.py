"""Tests for mp3gan.metrics: known answers on synthetic signals and real LAME encodes."""

import math
import sys

import numpy as np
import pytest
from helpers import burst_after_silence, clicks_and_noise

from mp3gan import metrics
from mp3gan.audio import mp3_roundtrip
from mp3gan.degrade import LowPass

SR = 44100
N = int(1.5 * SR)  # one clip length for most tests: the jitted spectra compile once


def music_like(n: int, sr: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A chord of harmonic tones (partials up to Nyquist, falling 6 dB/octave) plus
    clicks_and_noise's drum-like clicks: tonal and broadband, like a mix."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = np.zeros((channels, n))
    for f0 in (110.0, 138.6, 164.8):
        for k in range(1, int(sr / 2 / f0)):
            phase = rng.uniform(0, 2 * np.pi, (channels, 1))
            x += (0.05 / k) * np.sin(2 * np.pi * f0 * k * t + phase)
    return (x + clicks_and_noise(n, sr, channels, seed)).astype(np.float32)


@pytest.fixture(scope="module")
def music():
    return music_like(N, SR)


@pytest.fixture(scope="module")
def encoded(music):
    return {kbps: mp3_roundtrip(music, SR, kbps) for kbps in (64, 320)}


def _noise(seed: int, shape=(2, N), scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def test_lsd_is_zero_for_itself_and_the_gain_in_db(music):
    assert metrics.lsd(music, music, SR) == 0.0
    assert metrics.lsd_high_band(music, music, SR, 10000) == 0.0
    # A gain g changes every bin by 20 log10 g dB, whichever signal is the reference.
    assert metrics.lsd(music, 2 * music, SR) == pytest.approx(20 * np.log10(2), abs=0.01)
    assert metrics.lsd(2 * music, music, SR) == pytest.approx(20 * np.log10(2), abs=0.01)
    with pytest.raises(ValueError):
        metrics.lsd(music, music[:1], SR)
    with pytest.raises(ValueError):
        metrics.lsd(music, music, SR, f_min=30000)


def test_high_band_lsd_is_larger_at_64_than_at_320_kbps(music, encoded):
    low, high = (metrics.lsd_high_band(music, encoded[k], SR, 10000) for k in (64, 320))
    print(f"LSD above 10 kHz: 64 kbps {low:.1f} dB, 320 kbps {high:.1f} dB")
    assert low > high + 20
    assert metrics.lsd(music, encoded[64], SR) > metrics.lsd(music, encoded[320], SR)


def test_si_sdr_known_values_gain_invariance_and_symmetry():
    x = _noise(0, (1, SR))[0]
    y = x + 0.1 * _noise(1, (1, SR))[0]  # distortion 20 dB below the signal
    value = metrics.si_sdr(x, y)
    assert value == pytest.approx(20.0, abs=0.5)
    assert metrics.si_sdr(x, 0.3 * y) == pytest.approx(value, abs=1e-6)
    assert metrics.si_sdr(x, 3.0 * y) == pytest.approx(value, abs=1e-6)
    assert metrics.si_sdr(y, x) == pytest.approx(value, abs=1e-6)
    assert metrics.si_sdr(x, _noise(2, (1, SR))[0]) < -20
    assert metrics.si_sdr(x, 0.5 * x) == math.inf
    assert metrics.si_sdr(x, np.zeros_like(x)) == -math.inf


def test_mr_stft_distance_orders_the_encodes(music, encoded):
    assert metrics.mr_stft_distance(music, music) == pytest.approx(0.0, abs=1e-6)
    low, high = (metrics.mr_stft_distance(music, encoded[k]) for k in (64, 320))
    assert low > high > 0


def test_mean_coherence_identical_independent_and_half():
    x, n = _noise(3), _noise(4)
    assert metrics.mean_coherence(x, x, SR) == pytest.approx(1.0, abs=1e-3)
    assert metrics.mean_coherence(x, n, SR) < 0.05
    # Signal plus an equal power of independent noise: Px^2 / (Px (Px + Pn)) = 0.5.
    assert metrics.mean_coherence(x, x + n, SR, f_min=2000, f_max=8000) == pytest.approx(
        0.5, abs=0.05
    )


def test_pre_echo_of_a_burst_after_silence():
    burst = burst_after_silence(SR)
    onsets = metrics.find_onsets(burst, SR)
    assert len(onsets) == 1 and abs(onsets[0] - (SR // 2 + 300)) <= SR // 1000  # 1 ms
    values = {
        "original": metrics.pre_echo_db(burst, burst, SR),
        **{k: metrics.pre_echo_db(burst, mp3_roundtrip(burst, SR, k), SR) for k in (64, 320)},
    }
    print("pre-echo dB:", {k: round(v, 1) for k, v in values.items()})
    assert values["original"] == 0.0
    assert values[64] > 5
    assert values[64] > values[320] + 5
    # Stationary noise has no onset: the measure is undefined, not 0.
    assert math.isnan(metrics.pre_echo_db(_noise(5), _noise(5), SR))


def test_pre_echo_error_counts_a_dulled_lead_in_that_the_signed_measure_rewards():
    # A quiet bed (40 dB under the burst) gives the lead-in something to dull.
    bed = 0.005 * np.random.default_rng(1).standard_normal((1, SR)).astype(np.float32)
    burst = burst_after_silence(SR) + bed
    onset = int(metrics.find_onsets(burst, SR)[0])
    ducked = burst.copy()
    ducked[..., : onset - SR // 1000] *= 10 ** (-6 / 20)  # the lead-in 6 dB down
    signed = metrics.pre_echo_db(burst, ducked, SR)
    error = metrics.pre_echo_error_db(burst, ducked, SR)
    assert signed == pytest.approx(-6.0, abs=0.1)  # reads as 6 dB "less pre-echo"
    assert error == pytest.approx(6.0, abs=0.1)  # is 6 dB off the reference
    encoded = mp3_roundtrip(burst, SR, 64)
    assert metrics.pre_echo_error_db(burst, encoded, SR) == pytest.approx(
        abs(metrics.pre_echo_db(burst, encoded, SR))
    )  # one onset, MP3 above the reference: the two agree
    assert metrics.pre_echo_db(burst, encoded, SR) > 0
    assert metrics.pre_echo_error_db(burst, burst, SR) == 0.0
    assert math.isnan(metrics.pre_echo_error_db(_noise(5), _noise(5), SR))
    # Two attacks, one lead-in 6 dB up and one 6 dB down: the signed mean cancels to 0,
    # the error is 6 (a mean of |per onset|, not |mean|).
    two = np.concatenate([burst, burst], axis=-1)
    onsets = metrics.find_onsets(two, SR)
    assert len(onsets) == 2
    mixed = two.copy()
    mixed[..., : onsets[0] - SR // 1000] *= 10 ** (6 / 20)
    mixed[..., SR : onsets[1] - SR // 1000] *= 10 ** (-6 / 20)
    assert metrics.pre_echo_db(two, mixed, SR) == pytest.approx(0.0, abs=0.1)
    assert metrics.pre_echo_error_db(two, mixed, SR) == pytest.approx(6.0, abs=0.1)


def test_cutoff_of_encodes_low_passes_and_full_band_signals(music, encoded):
    nyquist = SR / 2
    mono_64 = metrics.cutoff_frequency(mp3_roundtrip(music[:1], SR, 64), SR)
    stereo_64 = metrics.cutoff_frequency(encoded[64], SR)
    lowpass = metrics.cutoff_frequency(LowPass(4000)(music, SR), SR)
    print(
        f"cutoff: 64 kbps stereo {stereo_64:.0f} Hz, mono {mono_64:.0f} Hz; 4 kHz LP {lowpass:.0f}"
    )
    # LAME's 64 kbps low-pass is ~11 kHz for stereo; mono gets the 128 kbps stereo one.
    assert 10000 <= stereo_64 <= 13000
    assert 15000 <= mono_64 <= 18000
    assert 3800 <= lowpass <= 4400
    assert 19000 <= metrics.cutoff_frequency(encoded[320], SR) < nyquist
    # Full band: white noise, and music whose spectrum falls but is never cut off.
    assert metrics.cutoff_frequency(_noise(6), SR) == nyquist
    assert metrics.cutoff_frequency(music, SR) == nyquist
    assert math.isnan(metrics.cutoff_frequency(np.zeros((2, N), np.float32), SR))


def test_score_all_ideal_for_the_reference_and_worse_for_mp3(music, encoded):
    cutoff = metrics.cutoff_frequency(encoded[64], SR)
    ideal = metrics.score_all(music, music, SR, cutoff_hz=cutoff)
    assert set(ideal) <= set(metrics.METRIC_INFO)
    assert set(metrics.METRIC_INFO) - set(ideal) <= {"visqol"}
    assert ideal["lsd"] == ideal["lsd_high"] == ideal["pre_echo_db"] == 0.0
    assert ideal["pre_echo_error_db"] == 0.0
    assert ideal["si_sdr"] == math.inf
    assert ideal["mr_stft"] == pytest.approx(0.0, abs=1e-6)
    assert ideal["coherence_high"] == pytest.approx(1.0, abs=1e-3)
    assert ideal["cutoff_hz"] == SR / 2
    mp3 = metrics.score_all(music, encoded[64], SR, cutoff_hz=cutoff)
    assert mp3.keys() == ideal.keys()
    # The reference restores the MP3 perfectly: every metric must say "better".
    for key in mp3:
        assert metrics.improvement(key, mp3[key], ideal[key]) > 0, key
    for info in metrics.METRIC_INFO.values():
        assert {"description", "unit", "higher_is_better"} <= set(info)


def test_visqol_is_none_without_the_package_else_a_mos(monkeypatch, music, encoded):
    metrics._visqol_api.cache_clear()
    monkeypatch.setitem(sys.modules, "visqol", None)  # makes `import visqol` fail
    assert metrics.visqol(music, music, SR) is None
    monkeypatch.undo()
    metrics._visqol_api.cache_clear()
    mos = metrics.visqol(music, encoded[64], SR)
    if mos is not None:  # only with the optional visqol-python installed
        assert 1.0 <= mos < metrics.visqol(music, music, SR) <= 5.0


class FailingVisqol:
    """Stands in for ViSQOL where it refuses a short clip, whether installed or not."""

    def measure_from_arrays(self, reference, degraded, sample_rate):
        raise ValueError("Reference spectrum size (22) smaller than minimum patch size (45)")


# Issue 16, item 10: a metric that cannot be computed on a clip is undefined, not fatal.
def test_a_metric_that_cannot_be_computed_is_undefined(monkeypatch, music, caplog):
    monkeypatch.setattr(metrics, "_visqol_api", lambda: FailingVisqol())
    assert math.isnan(metrics.visqol(music, music, SR))
    assert "minimum patch size" in caplog.text

    def broken(*args, **kwargs):
        raise ValueError("no onset to measure")

    monkeypatch.setattr(metrics, "pre_echo_db", broken)
    scores = metrics.score_all(music, music, SR, skip=())  # ViSQOL too (it is slow)
    assert math.isnan(scores["visqol"]) and math.isnan(scores["pre_echo_db"])
    assert scores["lsd"] == pytest.approx(0.0, abs=1e-6)  # the others are still measured


def test_slow_metrics_are_left_out_unless_asked_for(monkeypatch, music):
    monkeypatch.setattr(metrics, "_visqol_api", lambda: FailingVisqol())
    assert "visqol" not in metrics.score_all(music, music, SR)
    assert "visqol" in metrics.score_all(music, music, SR, skip=())


def test_visqol_on_a_short_clip_is_undefined_when_installed():
    metrics._visqol_api.cache_clear()
    short = music_like(SR // 2, SR)  # 0.5 s: what the tiny config's validation clips hold
    mos = metrics.visqol(short, short, SR)
    assert mos is None or math.isnan(mos)  # None: visqol-python is not installed
