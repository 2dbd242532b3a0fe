"""The band split behind benchmarks/sisdr_bands.py: it must add back up to the signal and
put each tone on its own side of the cutoff, or its error columns mean nothing."""

import numpy as np
from sisdr_bands import band_errors_db, split_at

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
