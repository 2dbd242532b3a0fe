"""The band split behind benchmarks/sisdr_bands.py: it must add back up to the signal and
put each tone on its own side of the cutoff, or its error columns mean nothing."""

import numpy as np
from sisdr_bands import band_errors_db, format_row, split_at

RATE = 44100


def _tones(*freqs: float, n: int = RATE // 2) -> np.ndarray:
    t = np.arange(n) / RATE
    return sum(np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float64)


def test_split_at_sums_to_the_signal_and_separates_the_bands():
    low, high = _tones(1000.0), _tones(12000.0)
    below, above = split_at(low + high, RATE, cutoff_hz=6000.0)
    np.testing.assert_allclose(below + above, low + high, atol=1e-9)
    np.testing.assert_allclose(below, low, atol=1e-6)
    np.testing.assert_allclose(above, high, atol=1e-6)


def test_band_errors_db_puts_each_error_in_its_band():
    reference = _tones(1000.0, 12000.0)
    # An error of 1 % amplitude in the low band only: -40 dB re one tone, -43 dB re both.
    estimate = reference + 0.01 * _tones(1000.0)
    below_db, above_db = band_errors_db(reference, estimate, RATE, cutoff_hz=6000.0)
    assert abs(below_db - (-40.0 - 10 * np.log10(2))) < 0.01
    assert above_db < -200  # nothing wrong above the cutoff


def test_split_at_keeps_channels_apart_and_an_off_bin_tone_on_its_side():
    # Tones between FFT bins leak; far from the cutoff the leak across it must stay small,
    # and each channel is split on its own (mixed channels would leak at 0 to -6 dB).
    n = RATE // 2 + 37  # neither tone lands on a bin
    left, right = _tones(1003.7, n=n), _tones(12011.3, n=n)
    below, above = split_at(np.stack([left, right]), RATE, cutoff_hz=6000.0)
    assert below.shape == above.shape == (2, n)

    def leak_db(part: np.ndarray, whole: np.ndarray) -> float:
        return 10 * np.log10(np.sum(part**2) / np.sum(whole**2))

    assert leak_db(above[0], left) < -40  # the low tone stays below
    assert leak_db(below[1], right) < -40  # the high tone stays above


def test_format_row_means_the_finite_clips_and_counts_the_others():
    rows = [
        (-20.0, -30.0, -21.0, -31.0, 10.0, 10.5, 10.4),
        (-22.0, -32.0, -23.0, -33.0, 12.0, 12.5, 12.4),
        (-10.0, float("-inf"), -11.0, -12.0, 1.0, 1.5, float("nan")),  # left out
    ]
    line = format_row("mp3:64", rows)
    assert "-21.00 / -31.00  -22.00 / -32.00" in line
    assert "11.00  11.50  11.40" in line
    assert line.endswith("(n=2, 1 not finite left out)")
    assert format_row("mp3:64", rows[2:]).endswith("no clip to score (n=0, 1 not finite left out)")
    assert format_row("mp3:64", []).endswith("no clip to score (n=0)")
