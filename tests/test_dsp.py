"""Tests for mp3gan.dsp: STFT round trip, mel filterbank, and coherence vs scipy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from mp3gan import dsp


def test_stft_istft_roundtrip():
    x = np.random.default_rng(0).standard_normal((2, 5000)).astype(np.float32)
    z = dsp.stft(x, 512, 128)
    assert z.shape == (2, 257, 5000 // 128 + 2)
    np.testing.assert_allclose(dsp.istft(z, 512, 128, 5000), x, atol=1e-5)


@pytest.mark.parametrize("length", [100, 1023])
def test_stft_of_an_input_shorter_than_the_window_keeps_every_bin(length):
    x = jax.random.normal(jax.random.PRNGKey(1), (2, length))
    z = dsp.stft(x, 1024, 256)
    assert z.shape[-2] == 513
    # The values are scipy's STFT of the input zero-padded to one window.
    padded = np.pad(np.asarray(x), ((0, 0), (0, 1024 - length)))
    _, _, expected = scipy.signal.stft(padded, nperseg=1024, noverlap=768)
    np.testing.assert_allclose(z, expected, atol=1e-6)
    np.testing.assert_allclose(dsp.istft(z, 1024, 256, length), x, atol=1e-5)


def test_mel_filterbank_covers_band_and_log_mel_shape():
    fb = dsp.mel_filterbank(44100, 2048, 80)
    assert fb.shape == (80, 1025)
    assert np.all(fb >= 0)
    assert np.all(fb.sum(1) > 0)  # no empty filter at this resolution
    x = np.random.default_rng(0).standard_normal(8192).astype(np.float32)
    assert dsp.log_mel(x, 44100, 2048, 512, 80).shape == (80, 8192 // 512 + 1)


def _sine_plus_noise(n, fs, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    s = np.sin(2 * np.pi * 1234.5 * t)
    return (s + 0.5 * rng.standard_normal(n)), (0.7 * s + 0.5 * rng.standard_normal(n))


@pytest.mark.parametrize("nperseg", [64, 256, 1024])
@pytest.mark.parametrize("kind", ["random", "sine+noise"])
def test_coherence_matches_scipy(nperseg, kind):
    fs, n = 8000.0, 16000
    rng = np.random.default_rng(nperseg)
    if kind == "random":
        x = rng.standard_normal(n)
        y = 0.5 * x + rng.standard_normal(n)
    else:
        x, y = _sine_plus_noise(n, fs, nperseg)
    x, y = x.astype(np.float32), y.astype(np.float32)
    f_ref, c_ref = scipy.signal.coherence(x, y, fs=fs, nperseg=nperseg)
    f, c = dsp.coherence(x, y, fs=fs, nperseg=nperseg)
    np.testing.assert_allclose(f, f_ref, rtol=1e-6)
    np.testing.assert_allclose(c, c_ref, atol=1e-4)


def test_coherence_gradient_is_finite_and_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(2048)
    y = x + 0.8 * rng.standard_normal(2048)

    def loss(x):
        return jnp.mean(1.0 - dsp.coherence(x, y, nperseg=256)[1])

    with jax.enable_x64():
        x64, y = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
        g = jax.grad(loss)(x64)
        assert np.all(np.isfinite(g))
        eps = 1e-6
        for i in [0, 100, 1000, 2047]:
            e = jnp.zeros_like(x64).at[i].set(eps)
            fd = (loss(x64 + e) - loss(x64 - e)) / (2 * eps)
            np.testing.assert_allclose(g[i], fd, rtol=1e-4, atol=1e-9)


def test_coherence_of_silence_is_zero_with_finite_gradient():
    z = jnp.zeros(1024)
    _, c = dsp.coherence(z, z, nperseg=128)
    assert np.all(c == 0)
    g = jax.grad(lambda x: dsp.coherence(x, z, nperseg=128)[1].sum())(z)
    assert np.all(np.isfinite(g))


def test_coherence_gradient_is_finite_when_a_band_is_empty():
    # An MP3 leaves near-zero (not exactly zero) power above its cutoff: the case that
    # made the training loss NaN before the power floor.
    from helpers import clicks_and_noise

    from mp3gan import audio

    sr = 44100
    ref = clicks_and_noise(8192, sr)[0]
    mp3 = audio.mp3_roundtrip(ref[None], sr, 64)[0]
    g = jax.grad(lambda e: jnp.mean(1 - dsp.coherence(ref, e, fs=sr, nperseg=1024)[1]))(mp3)
    assert np.all(np.isfinite(g))
    assert np.any(g != 0)
