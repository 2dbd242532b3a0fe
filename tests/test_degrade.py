"""Tests for mp3gan.degrade: spec parsing, alignment, and the 4 kHz low-pass."""

import numpy as np
import pytest
from helpers import clicks_and_noise

from mp3gan import audio, degrade


def test_parse_specs_and_names():
    assert degrade.parse_degradation("mp3:64").name == "mp3:64"
    assert degrade.parse_degradation("vbr:0.4").name == "vbr:0.4"
    assert degrade.parse_degradation("lowpass:4000").name == "lowpass:4000"
    chain = degrade.parse_degradation("lowpass:8000+mp3:128")
    assert chain.name == "lowpass:8000+mp3:128"
    for bad in ["", "mp3:16", "mp3:abc", "vbr:2", "reverb:1"]:
        with pytest.raises(ValueError, match="degradation"):
            degrade.parse_degradation(bad)


def test_lowpass_removes_the_band_and_stays_aligned():
    sr = 44100
    x = clicks_and_noise(sr, sr, 2)
    y = degrade.parse_degradation("lowpass:4000")(x, sr)
    assert y.shape == x.shape
    # Hann window: an unwindowed FFT leaks the clip's end discontinuity into every bin.
    win = np.hanning(sr)
    spec_x = np.abs(np.fft.rfft(win * x[0].astype(np.float64))) ** 2
    spec_y = np.abs(np.fft.rfft(win * y[0].astype(np.float64))) ** 2
    f = np.fft.rfftfreq(sr, 1 / sr)
    # Order 8 run forwards and backwards: ~96 dB per octave above the cutoff.
    assert spec_y[f > 6000].sum() < 1e-4 * spec_x[f > 6000].sum()
    assert spec_y[f > 8000].sum() < 1e-7 * spec_x[f > 8000].sum()
    assert spec_y[f < 2000].sum() > 0.95 * spec_x[f < 2000].sum()
    audio.check_aligned(x, y)


def test_chain_applies_in_order_and_keeps_shape():
    sr = 44100
    x = clicks_and_noise(20000, sr)
    y = degrade.parse_degradation("lowpass:8000+mp3:128")(x, sr)
    assert y.shape == x.shape
    audio.check_aligned(degrade.LowPass(3000)(x, sr), degrade.LowPass(3000)(y, sr))


def test_lowpass_handles_tiny_inputs():
    assert degrade.LowPass(4000)(np.ones((1, 1), np.float32), 44100).shape == (1, 1)
