"""The cells behind benchmarks/lsd_bands.py: an error put in one place of the band above
the cutoff must show up there, with its sign, or its columns mean nothing."""

import numpy as np
from lsd_bands import cell_errors

RATE = 44100
CUTOFF = 11025.0


def _noise(n: int = RATE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, n))


def _scale_band(x: np.ndarray, lo: float, hi: float, gain: float) -> np.ndarray:
    spectrum = np.fft.rfft(x, axis=-1)
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / RATE)
    spectrum[..., (freqs >= lo) & (freqs < hi)] *= gain
    return np.fft.irfft(spectrum, n=x.shape[-1], axis=-1)


def _means(cells: dict) -> dict[str, float]:
    return {name: total / count if count else np.nan for name, (total, _, count) in cells.items()}


def test_an_exact_copy_has_no_error_anywhere():
    x = _noise()
    cells = cell_errors(x, x, RATE, CUTOFF)
    assert cells["third 1"][2] > 0 and cells["loud"][2] > 0
    assert cells["quiet"][2] == 0  # steady noise: every frame is loud
    for total, squares, _ in cells.values():
        assert total == 0 and squares == 0


def test_a_band_20_db_too_dark_shows_in_its_third_only():
    reference = _noise()
    thirds = np.linspace(CUTOFF, RATE / 2, 4)
    estimate = _scale_band(reference, thirds[2] + 200, RATE / 2 + 1, 0.1)  # the top third
    means = _means(cell_errors(reference, estimate, RATE, CUTOFF))
    assert abs(means["third 1"]) < 0.5
    assert abs(means["third 2"]) < 0.5
    assert -20.5 < means["third 3"] < -17.0  # (the window blurs the band's lower edge)


def test_loud_and_quiet_frames_are_told_apart():
    reference = _noise()
    reference[:, RATE // 2 :] *= 10 ** (-30 / 20)  # the second half 30 dB down: quiet
    estimate = reference.copy()
    estimate[:, RATE // 2 + 4096 :] = _scale_band(reference[:, RATE // 2 + 4096 :], CUTOFF, RATE, 2)
    means = _means(cell_errors(reference, estimate, RATE, CUTOFF))
    assert abs(means["loud"]) < 0.5
    assert 4.0 < means["quiet"] < 6.1  # twice the amplitude: +6 dB in most quiet frames
