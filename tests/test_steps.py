"""Tests for mp3gan.steps: data-parallel equivalence and learning of the pure train step."""

import jax
import numpy as np
import pytest
from helpers import clicks_and_noise

from configs import base, tiny
from mp3gan import audio, dsp, steps, train


def _batch(n_devices, per_device, samples, seed=0):
    sr = 44100
    rows = n_devices * per_device
    ref = clicks_and_noise(samples * rows, sr, seed=seed).reshape(rows, samples)
    deg = audio.mp3_roundtrip(ref.reshape(1, -1), sr, 64).reshape(rows, samples)
    return {
        "reference": ref.reshape(n_devices, per_device, samples),
        "degraded": deg.reshape(n_devices, per_device, samples),
    }


def test_pmap_over_4_devices_equals_one_device_with_whole_batch():
    # The adversarial variant exercises both networks; the warm-up one is a subset.
    adversarial = True
    assert jax.local_device_count() == 4
    config = tiny.get_config()
    state, statics = train.create_state(config)
    batch4 = _batch(4, 2, 2048)
    batch1 = jax.tree.map(lambda x: x.reshape(1, 8, -1), batch4)
    step4 = train.pmapped_step(statics, adversarial)
    step1 = train.pmapped_step(statics, adversarial, devices=jax.local_devices()[:1])
    s4, s1 = train.replicate(state, 4), train.replicate(state, 1, jax.local_devices()[:1])
    # Two steps: the learning-rate warm-up starts at 0, so the first one moves nothing.
    for _ in range(2):
        s4, m4 = step4(s4, batch4)
        s1, m1 = step1(s1, batch1)
    p4, p1 = train.unreplicate(s4), train.unreplicate(s1)
    # assert_allclose calls NaN equal to NaN: check finiteness first.
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(p4))
    assert np.isfinite(m4["g_grad_norm"][0]) and np.isfinite(m4["d_grad_norm"][0])
    for a, b in zip(jax.tree.leaves(p4), jax.tree.leaves(p1), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose(m4["g_loss"][0], m1["g_loss"][0], rtol=1e-5)
    # The step changed the parameters at all (otherwise the comparison is vacuous).
    for new, old in ((p4.g_params, state.g_params), (p4.d_params, state.d_params)):
        leaves = zip(jax.tree.leaves(new), jax.tree.leaves(old), strict=True)
        assert any(not np.allclose(a, b) for a, b in leaves)


@pytest.mark.parametrize(
    ("band", "min_cutoff_hz"), [("kept", 0.0), ("below_cutoff", 0.0), ("kept", 8500.0)]
)
def test_the_pmapped_step_trains_with_the_complex_term_where_the_input_holds_the_band(
    band, min_cutoff_hz
):
    config = tiny.get_config()
    config.loss.complex = 10.0
    config.loss.complex_band = band
    config.loss.complex_band_min_cutoff_hz = min_cutoff_hz
    state, statics = train.create_state(config)
    step = train.pmapped_step(statics, adversarial=False)
    p_state = train.replicate(state, 4)
    for _ in range(2):  # the learning-rate warm-up starts at 0: the second step moves
        p_state, metrics = step(p_state, _batch(4, 1, 2048))
    assert np.isfinite(metrics["g_grad_norm"][0]) and float(metrics["g_grad_norm"][0]) > 0
    new = train.unreplicate(p_state).g_params
    leaves = zip(jax.tree.leaves(new), jax.tree.leaves(state.g_params), strict=True)
    assert any(not np.allclose(x, y) for x, y in leaves)


def test_tiny_model_learns_a_fixed_clip():
    config = tiny.get_config()
    config.optim.g_lr = 1e-3
    config.optim.warmup_steps = 5
    state, statics = train.create_state(config)
    batch = jax.tree.map(lambda x: x[:1], _batch(1, 4, 4096, seed=3))
    step = train.pmapped_step(statics, adversarial=False, devices=jax.local_devices()[:1])
    p_state = train.replicate(state, 1, jax.local_devices()[:1])
    first = None
    for _ in range(200):
        p_state, metrics = step(p_state, batch)
        first = float(metrics["g_loss"][0]) if first is None else first
    last = float(metrics["g_loss"][0])
    assert last < 0.8 * first, (first, last)


def _band_noise(n: int, sr: int, lo: float, hi: float, rms: float, seed: int) -> np.ndarray:
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spectrum[(f < lo) | (f >= hi)] = 0
    x = np.fft.irfft(spectrum, n)
    return rms * x / x.std()


def test_base_weights_prefer_a_noise_band_to_lines_at_mel_crossings():
    # The band above an MP3's cutoff, restored two ways at the reference's level: as noise
    # (another realisation of the reference's band) or as sines at every other crossing
    # of adjacent mel filters, which feed every mel band from one line. Log-mel prefers
    # the noise band, but the power-compressed complex term prefers the lines almost as
    # much (compression is sub-additive: one line costs less than its energy spread), so
    # the linear-frequency MR-STFT term, which prices the empty bins between the lines,
    # decides. At weight 1 (its gradient 1/70 of mel's) a trained model grew exactly
    # such lines; at the base weights the lines must cost at least 30 % more.
    sr, n = 44100, 32768
    low = _band_noise(n, sr, 20, 10800, 0.1, seed=1)
    reference = low + _band_noise(n, sr, 11000, 20000, 0.01, seed=2)
    noise_band = low + _band_noise(n, sr, 11000, 20000, 0.01, seed=3)
    bank = dsp.mel_filterbank(sr, 2048, 80)  # [n_mels, bins]
    centres = np.fft.rfftfreq(2048, 1 / sr)[bank.argmax(axis=1)]
    crossings = (centres[:-1] + centres[1:]) / 2
    crossings = crossings[(crossings >= 11000) & (crossings < 20000)][::2]
    t = np.arange(n) / sr
    phases = np.random.default_rng(4).uniform(0, 2 * np.pi, len(crossings))
    lines = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(crossings, phases, strict=True))
    lines = low + 0.01 * lines / lines.std()
    weights = base.get_config().loss

    def weighted(estimate: np.ndarray) -> float:
        terms = steps.reconstruction_losses(
            reference[None].astype(np.float32), estimate[None].astype(np.float32), weights, sr
        )
        return sum(weights[k] * float(v) for k, v in terms.items() if k != "pre_echo")

    assert weighted(lines) > 1.3 * weighted(noise_band)


def test_complex_band_counts_the_complex_term_where_the_input_holds_the_band():
    sr, n = 44100, 8192
    low = _band_noise(n, sr, 50, 11000, 0.1, seed=5)
    reference = (low + _band_noise(n, sr, 11000, 20000, 0.01, seed=6))[None].astype(np.float32)
    degraded = low[None].astype(np.float32)
    estimate = (low + _band_noise(n, sr, 11000, 20000, 0.01, seed=7))[None].astype(np.float32)
    weights = base.get_config().loss
    terms = {}
    for band in ("all", "kept", "below_cutoff"):
        weights.complex_band = band
        terms[band] = steps.reconstruction_losses(reference, estimate, weights, sr, degraded)
    # The band above 11 kHz at the wrong phase: most of the full term, little of the others.
    for band in ("kept", "below_cutoff"):
        assert float(terms[band]["complex"]) < 0.2 * float(terms["all"]["complex"]), band
        assert float(terms[band]["mel"]) == float(terms["all"]["mel"])
    terms_by = {band: terms[band]["complex"] for band in terms}
    # The input holds the band to 11 kHz: freed by a minimum cutoff below that, not above.
    weights.complex_band = "kept"
    for hz, like in ((8500.0, "kept"), (12000.0, "all")):
        weights.complex_band_min_cutoff_hz = hz
        terms = steps.reconstruction_losses(reference, estimate, weights, sr, degraded)
        assert float(terms["complex"]) == pytest.approx(float(terms_by[like]), rel=1e-5), hz
    # A maximum below the input's 11 kHz cut keeps it bound; one above frees it.
    weights.complex_band_min_cutoff_hz = 8500.0
    for hz, like in ((10000.0, "all"), (12000.0, "kept")):
        weights.complex_band_max_cutoff_hz = hz
        terms = steps.reconstruction_losses(reference, estimate, weights, sr, degraded)
        assert float(terms["complex"]) == pytest.approx(float(terms_by[like]), rel=1e-5), hz
    weights.complex_band_min_cutoff_hz = weights.complex_band_max_cutoff_hz = 0.0
    weights.complex_band = "above"
    with pytest.raises(ValueError, match="complex_band='above'"):
        steps.reconstruction_losses(reference, estimate, weights, sr, degraded)


def test_lead_in_spectrum_term_is_counted_only_when_weighted():
    sr = 44100
    reference = clicks_and_noise(16384, sr, seed=3).astype(np.float32)
    degraded = audio.mp3_roundtrip(reference, sr, 64).astype(np.float32)
    weights = base.get_config().loss
    assert "lead_in_spectrum" not in steps.reconstruction_losses(
        reference, degraded, weights, sr, degraded
    )
    weights.lead_in_spectrum = 100.0
    terms = steps.reconstruction_losses(reference, degraded, weights, sr, degraded)
    # The MP3's lead-ins hold its pre-echo: the term reads it, and nothing for the reference.
    assert float(terms["lead_in_spectrum"]) > 0.05
    same = steps.reconstruction_losses(reference, reference, weights, sr, degraded)
    assert float(same["lead_in_spectrum"]) == pytest.approx(0.0, abs=1e-5)
