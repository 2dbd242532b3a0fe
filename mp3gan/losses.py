"""Training losses (and the multi-resolution STFT distance metric), as pure JAX functions.

Waveforms are ``[T]`` or ``[B, T]`` (any leading axes); every loss returns a scalar, is
jit-compatible and has finite gradients even on all-zero signals. Discriminator outputs
are the lists returned by :mod:`mp3gan.models.discriminators`, one entry per
sub-discriminator.

Reduction convention: every term is a *mean* (over sub-discriminators, layers, FFT sizes
and elements). HiFi-GAN *sums* over sub-discriminators and layers, so its weights
(λ_fm = 2, λ_mel = 45) are not directly transferable: with our 8 sub-discriminators of 5
hidden layers, the summed HiFi-GAN terms are 8× (adversarial) and 40× (features) ours.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from mp3gan import dsp


def discriminator_adversarial_loss(
    real_logits: Sequence[jax.Array], fake_logits: Sequence[jax.Array]
) -> jax.Array:
    """LSGAN discriminator loss ``mean_k [ E(D_k(x) − 1)² + E D_k(G(z))² ]``.

    Mao et al. 2017, "Least Squares Generative Adversarial Networks"; as in HiFi-GAN.
    """
    terms = [
        jnp.mean((real - 1.0) ** 2) + jnp.mean(fake**2)
        for real, fake in zip(real_logits, fake_logits, strict=True)
    ]
    return jnp.mean(jnp.stack(terms))


def generator_adversarial_loss(fake_logits: Sequence[jax.Array]) -> jax.Array:
    """LSGAN generator loss ``mean_k E(D_k(G(z)) − 1)²`` (Mao et al. 2017)."""
    return jnp.mean(jnp.stack([jnp.mean((fake - 1.0) ** 2) for fake in fake_logits]))


def feature_matching_loss(
    real_features: Sequence[Sequence[jax.Array]], fake_features: Sequence[Sequence[jax.Array]]
) -> jax.Array:
    """``mean over (k, l) of E|D_k^l(x) − D_k^l(G(z))|``: L1 between hidden activations.

    Larsen et al. 2016; Kumar et al. 2019 (MelGAN). The real features are constants
    (stop-gradient): this loss trains the generator, not the discriminator.
    """
    terms = [
        jnp.mean(jnp.abs(jax.lax.stop_gradient(real) - fake))
        for real_layers, fake_layers in zip(real_features, fake_features, strict=True)
        for real, fake in zip(real_layers, fake_layers, strict=True)
    ]
    return jnp.mean(jnp.stack(terms))


def _window_sum(n_fft: int) -> float:
    return float(scipy.signal.get_window("hann", n_fft).sum())


def _stft_magnitude(x: jax.Array, n_fft: int, power_floor: float) -> jax.Array:
    # Undo 'spectrum' scaling so the floor means what it does in Parallel WaveGAN
    # (unnormalised torch.stft): the metric then stays comparable with the literature.
    spec = dsp.stft(x, n_fft, n_fft // 4) * _window_sum(n_fft)
    power = spec.real**2 + spec.imag**2
    return jnp.sqrt(jnp.maximum(power, power_floor))


def _safe_norm(x: jax.Array, axis) -> jax.Array:
    # ‖0‖ = 0 with a zero (not NaN) gradient, so identical inputs are exactly 0 and safe.
    squared = jnp.sum(x**2, axis=axis)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def multi_resolution_stft_loss(
    reference: jax.Array,
    estimate: jax.Array,
    fft_sizes: Sequence[int] = (512, 1024, 2048),
    power_floor: float = 1e-7,
) -> jax.Array:
    """Spectral convergence + log-magnitude L1, averaged over FFT sizes (hop n_fft/4).

    For each size, with magnitudes ``S = sqrt(max(|STFT|², floor))``::

        L_sc  = ‖S_ref − S_est‖_F / ‖S_ref‖_F        (per clip, then mean over clips)
        L_mag = mean |log S_ref − log S_est|
        loss  = mean over sizes of (L_sc + L_mag)

    Yamamoto et al. 2020, "Parallel WaveGAN", eqs. (2)-(4). Also the evaluation metric
    "multi-resolution STFT distance"; 0 iff the magnitudes agree (above the floor).
    """
    reference = jnp.asarray(reference, jnp.float32)
    estimate = jnp.asarray(estimate, jnp.float32)
    per_size = []
    for n_fft in fft_sizes:
        s_ref = _stft_magnitude(reference, n_fft, power_floor)
        s_est = _stft_magnitude(estimate, n_fft, power_floor)
        # The floor keeps ‖S_ref‖ ≥ sqrt(bins · floor) > 0, so the ratio is always finite.
        convergence = _safe_norm(s_ref - s_est, (-2, -1)) / _safe_norm(s_ref, (-2, -1))
        log_magnitude = jnp.mean(jnp.abs(jnp.log(s_ref) - jnp.log(s_est)))
        per_size.append(jnp.mean(convergence) + log_magnitude)
    return jnp.mean(jnp.stack(per_size))


def mel_loss(
    reference: jax.Array,
    estimate: jax.Array,
    sample_rate: int,
    n_fft: int = 2048,
    hop: int = 512,
    n_mels: int = 80,
) -> jax.Array:
    """``mean |log_mel(ref) − log_mel(est)|`` (HiFi-GAN's reconstruction term, Kong et al.
    2020), with :func:`mp3gan.dsp.log_mel` (log clipped at 1e-5)."""
    # dsp.stft's 'spectrum' scaling makes magnitudes n_fft/2 times smaller than the
    # unnormalised STFT HiFi-GAN's 1e-5 clip was chosen for, which would put the clip at
    # about -40 dBFS and hide every artefact in quiet passages. Scaling the waveform
    # (the STFT is linear) restores HiFi-GAN's floor; log differences are unchanged.
    gain = _window_sum(n_fft)
    reference, estimate = reference * gain, estimate * gain
    ref_mel = dsp.log_mel(reference, sample_rate, n_fft, hop, n_mels)
    est_mel = dsp.log_mel(estimate, sample_rate, n_fft, hop, n_mels)
    return jnp.mean(jnp.abs(ref_mel - est_mel))


def coherence_loss(
    reference: jax.Array,
    estimate: jax.Array,
    sample_rate: int,
    nperseg: int = 1024,
    f_min: float = 0.0,
) -> jax.Array:
    """``mean over f ≥ f_min of (1 − C_xy(f))``, with the magnitude-squared coherence

    ``C_xy = |P_xy|² / (P_xx P_yy)`` from Welch averages (:func:`mp3gan.dsp.coherence`;
    Carter et al. 1973). 0 when the estimate is a linear-filtered copy of the reference
    at every frequency, → 1 where it is unrelated: it rewards getting the *phase*
    relationship right, which magnitude losses ignore. Bins where either signal has no
    power count as incoherent (1, with zero gradient). The clip needs ≥ ``nperseg``
    samples; the Welch average needs several segments to mean anything.
    """
    if reference.shape[-1] < nperseg:
        raise ValueError(f"clip of {reference.shape[-1]} samples is shorter than {nperseg=}")
    keep = np.fft.rfftfreq(nperseg, 1.0 / sample_rate) >= f_min  # the bins dsp returns
    if not keep.any():
        raise ValueError(f"f_min={f_min} Hz leaves no frequency bin below {sample_rate / 2} Hz")
    _, cxy = dsp.coherence(reference, estimate, fs=sample_rate, nperseg=nperseg)
    return jnp.mean(1.0 - cxy[..., keep])


COMPLEX_BANDS = ("all", "kept", "below_cutoff")


def complex_band_settings(loss_cfg, sample_rate: int) -> tuple[str, float, float]:
    """``(band, min_cutoff_hz, max_cutoff_hz)`` of a config's ``loss`` section
    (``complex_band``, ``complex_band_min_cutoff_hz``, ``complex_band_max_cutoff_hz``;
    a config from before a field existed reads as "all" / 0, as it trained), checked:
    ValueError (one line, naming the field) unless the band is one of
    :data:`COMPLEX_BANDS` and each cutoff is 0, or below Nyquist with a band other than
    "all" (with "all" nothing is freed, so it would do nothing), the minimum below the
    maximum."""
    band = loss_cfg.get("complex_band", "all")
    min_cutoff_hz = float(loss_cfg.get("complex_band_min_cutoff_hz", 0.0))
    max_cutoff_hz = float(loss_cfg.get("complex_band_max_cutoff_hz", 0.0))
    if band not in COMPLEX_BANDS:
        raise ValueError(f"loss.complex_band={band!r}: one of {', '.join(COMPLEX_BANDS)}")
    for name, hz in (("min", min_cutoff_hz), ("max", max_cutoff_hz)):
        if hz == 0:
            continue
        field = f"loss.complex_band_{name}_cutoff_hz={hz:g}"
        if not 0 < hz < sample_rate / 2:
            raise ValueError(f"{field}: 0 (off) or a frequency below {sample_rate / 2:g} Hz")
        if band == "all":
            raise ValueError(f"{field} needs loss.complex_band 'kept' or 'below_cutoff', not 'all'")
    if min_cutoff_hz and max_cutoff_hz and min_cutoff_hz >= max_cutoff_hz:
        raise ValueError(
            f"loss.complex_band_min_cutoff_hz={min_cutoff_hz:g} must be below "
            f"loss.complex_band_max_cutoff_hz={max_cutoff_hz:g}"
        )
    return band, min_cutoff_hz, max_cutoff_hz


def _inner_frames(frames: int, edge_frames: int) -> slice:
    """The frames of an STFT but ``edge_frames`` at each end, which see the zero padding
    (and spread a loud band's leakage over every bin); all of them for a clip of no more
    frames than the edges."""
    return slice(edge_frames, frames - edge_frames) if frames > 2 * edge_frames else slice(None)


def kept_band(
    reference_stft: jax.Array,
    degraded_stft: jax.Array,
    where: str = "kept",
    kept_db: float = 30.0,
    edge_frames: int = 4,
) -> jax.Array:
    """Weights (1.0 or 0.0, no gradient) for the bins of the STFTs where the degraded input
    holds the band, so the phase of a correction there can be known from it.

    ``"kept"``: per time-frequency bin, where the input's power is within ``kept_db`` of
    the reference's (a low-bitrate MP3 also zeroes bins below its cutoff frame by frame;
    in the first and last frames, which see the zero padding, leakage keeps a few more).
    ``"below_cutoff"``: per frequency, where the input has power in any frame (above
    ``kept_db`` below the reference's mean power there), i.e. below the encoder's
    low-pass; the ``edge_frames`` at each end (n_fft / hop for the complex term's STFT),
    which see the zero padding and spread a loud band's leakage over every bin, are left
    out of that test. Shaped ``[..., bins, frames]`` or ``[..., bins, 1]``.
    """
    ref_power = jnp.abs(reference_stft) ** 2
    deg_power = jnp.abs(degraded_stft) ** 2
    floor = 10 ** (-kept_db / 10)
    if where == "kept":
        kept = deg_power >= floor * ref_power
    elif where == "below_cutoff":
        inner = _inner_frames(deg_power.shape[-1], edge_frames)
        deg_max = jnp.max(deg_power[..., inner], axis=-1, keepdims=True)
        ref_mean = jnp.mean(ref_power[..., inner], axis=-1, keepdims=True)
        kept = deg_max >= floor * ref_mean
    else:
        raise ValueError(f"where={where!r}: one of {', '.join(COMPLEX_BANDS[1:])}")
    return jax.lax.stop_gradient(kept.astype(jnp.float32))


def wide_input(
    reference_stft: jax.Array,
    degraded_stft: jax.Array,
    frequency_hz: float,
    sample_rate: int,
    n_fft: int,
    edge_frames: int = 4,
    silent_db: float = 50.0,
    if_silent: bool = False,
) -> jax.Array:
    """Per clip, whether the degraded input holds the band just above ``frequency_hz``
    (its encoder's low-pass is higher): at least half of the reference's power in the
    kHz above that frequency lies in bins :func:`kept_band` marks kept. Shaped
    ``[..., 1, 1]`` (it broadcasts over bins and frames), no gradient.

    Power, not presence: an MP3's noise floor above its low-pass is "kept" wherever the
    reference's band is ~30 dB quieter still, and a test of any such bin called most
    32 kbps crops wide. Where the reference itself has next to nothing in that kHz (more
    than ``silent_db`` below the clip's power) the test cannot tell a low cut from a high
    one, and the answer is ``if_silent`` (not wide for a lower bound: every bin counts,
    the cautious side; wide for an upper one, for the same reason). The ``edge_frames``
    at each end, which see the zero padding, are left out as in :func:`kept_band`.

    Typical: LAME's low-passes on stereo music sit near 5.5, 7.6, 11, 15 and 16.5 kHz at
    32, 48, 64, 96 and 128 kbps (``metrics.cutoff_frequency`` on the held-out music), so
    8.5 kHz parts the two lowest rates from the rest; mono encodes are cut higher, and a
    64 kbps crop whose top is quiet can lose most of that kHz (then it is not wide).
    """
    inner = _inner_frames(reference_stft.shape[-1], edge_frames)
    reference_stft, degraded_stft = reference_stft[..., inner], degraded_stft[..., inner]
    kept = kept_band(reference_stft, degraded_stft, "kept")
    freqs = np.arange(reference_stft.shape[-2]) * sample_rate / n_fft
    band = ((freqs >= frequency_hz) & (freqs < frequency_hz + 1000.0))[:, None]
    power = jnp.abs(reference_stft) ** 2
    in_band = jnp.sum(band * power, axis=(-2, -1), keepdims=True)
    held = jnp.sum(kept * band * power, axis=(-2, -1), keepdims=True)
    audible = in_band > 10 ** (-silent_db / 10) * jnp.sum(power, axis=(-2, -1), keepdims=True)
    return jax.lax.stop_gradient(jnp.where(audible, held >= 0.5 * in_band, if_silent))


def compressed_complex_loss(
    reference: jax.Array,
    estimate: jax.Array,
    n_fft: int = 512,
    hop: int = 128,
    power: float = 0.3,
    degraded: jax.Array | None = None,
    where: str = "kept",
    min_cutoff_hz: float = 0.0,
    sample_rate: int | None = None,
    max_cutoff_hz: float = 0.0,
) -> jax.Array:
    """``‖Xc_ref − Xc_est‖² / ‖Xc_ref‖²`` on power-compressed complex STFTs
    (``Xc = X·|X|^(power−1)``, as the frame generator sees them), per clip, then mean.

    The phase-aware term: magnitude losses (mel, MR-STFT) are as happy with a band added
    at random phase as with the right one, but a random-phase band is distortion to the
    listener's waveform (it costs SI-SDR). For an unknowable phase this loss prefers
    *less* energy to wrong energy, so against the magnitude losses it keeps additions
    coherent and leaves audio that is already good alone. Power-law compression (as in
    AP-BWE and CMGAN) keeps quiet bands from vanishing under loud ones. 0 iff equal.

    With ``degraded`` (the generator's input), only the bins where the input holds the
    band count (:func:`kept_band` with ``where``). Above the cutoff the phase is
    unknowable, and there compression makes a quiet band weigh about as much as a loud
    one: the full term held the restored band about 10 dB below the reference's
    (``benchmarks/lsd_bands.py``), far more than the band's true cost to the waveform,
    which the waveform term prices.

    ``min_cutoff_hz`` (with ``sample_rate``) frees the band only in clips whose input
    holds most of the reference's power in the kHz above that frequency
    (:func:`wide_input`); any other clip counts every bin. Filled above a low low-pass
    (a 32 kbps MP3's ~5.5 kHz), a band at unknowable phase costs the waveform more than
    it is worth, as run 10 found (docs/results/runs_from_run9.md). ``max_cutoff_hz``
    keeps clips whose input holds the kHz above it bound too: near-transparent MP3s,
    where a filled band costs more of a high SI-SDR than it is worth (run 12).
    """
    ref_stft = dsp.stft(reference, n_fft, hop)
    ref = dsp.compress(ref_stft, power)
    est = dsp.compress(dsp.stft(estimate, n_fft, hop), power)
    weight = 1.0
    if degraded is not None and where != "all":
        deg_stft = dsp.stft(degraded, n_fft, hop)
        weight = kept_band(ref_stft, deg_stft, where)
        if (min_cutoff_hz > 0 or max_cutoff_hz > 0) and sample_rate is None:
            raise ValueError("min_cutoff_hz and max_cutoff_hz need the sample_rate")
        if min_cutoff_hz > 0:
            wide = wide_input(ref_stft, deg_stft, min_cutoff_hz, sample_rate, n_fft)
            weight = jnp.where(wide, weight, 1.0)
        if max_cutoff_hz > 0:
            wider = wide_input(
                ref_stft, deg_stft, max_cutoff_hz, sample_rate, n_fft, if_silent=True
            )
            weight = jnp.where(wider, 1.0, weight)
    error = jnp.sum(weight * jnp.abs(ref - est) ** 2, axis=(-2, -1))
    energy = jnp.sum(weight * jnp.abs(ref) ** 2, axis=(-2, -1))
    return jnp.mean(error / jnp.maximum(energy, 1e-8))


def waveform_error_ratio_loss(
    reference: jax.Array, degraded: jax.Array, estimate: jax.Array
) -> jax.Array:
    """``log10(‖estimate − reference‖² / ‖degraded − reference‖²)`` per clip, then the
    mean over clips: 0 = as much error as the MP3 input, −0.1 = 1 dB better SDR.

    The do-no-harm term. The spectral losses are level-relative (log mel, compressed
    spectra): a 5 % change of a loud bass note barely moves them but costs SI-SDR, and
    on a good MP3 (128 kbps) the input's own error is tiny, so any invented change is
    harm. Measured against the input's error, this term is steep exactly there. The
    floor (60 dB below the reference) keeps silent and near-perfect clips finite.
    """
    err_out = jnp.sum((estimate - reference) ** 2, axis=-1)
    err_in = jax.lax.stop_gradient(jnp.sum((degraded - reference) ** 2, axis=-1))
    floor = jax.lax.stop_gradient(1e-6 * jnp.sum(reference**2, axis=-1)) + 1e-12
    return jnp.mean(jnp.log10((err_out + floor) / (err_in + floor)))


def _band_energy(x: jax.Array, sample_rate: int, n_fft: int, hop: int, band) -> jax.Array:
    """Energy per short frame (``n_fft`` samples every ``hop``) within ``band`` Hz,
    ``[..., frames]``: a differentiable stand-in for the pre-echo metric's filter."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    keep = jnp.asarray((freqs >= band[0]) & (freqs <= band[1]), jnp.float32)
    spec = dsp.stft(x, n_fft, hop)
    return jnp.einsum("...ft,f->...t", spec.real**2 + spec.imag**2, keep)


def _trailing(x: jax.Array, n: int, op=jax.lax.add) -> jax.Array:
    """``op`` (add: a sum; max) over ``x[..., t - n + 1 : t + 1]`` for every ``t``
    (zeros before the start).

    A windowed reduction, not a difference of running sums: over a clip of loud and
    quiet frames, float32 cancellation in ``cumsum[t] - cumsum[t - n]`` can exceed a
    quiet window's own energy and even turn it negative (a NaN under the log).
    """
    padded = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(n - 1, 0)])
    ones = (1,) * x.ndim
    return jax.lax.reduce_window(padded, 0.0, op, ones[:-1] + (n,), ones, "VALID")


def _delayed(x: jax.Array, frames: int = 1) -> jax.Array:
    """``x`` moved ``frames`` later in time (zeros in front); negative: earlier."""
    pad = [(0, 0)] * (x.ndim - 1)
    if frames >= 0:
        return jnp.pad(x, pad + [(frames, 0)])[..., : x.shape[-1]]
    return jnp.pad(x, pad + [(0, -frames)])[..., -frames:]


_LEAD_IN_FFT, _LEAD_IN_HOP = 128, 32  # 2.9 ms frames every 0.7 ms at 44.1 kHz


def _onset_windows(
    reference: jax.Array,
    sample_rate: int,
    window_ms: float,
    guard_ms: float,
    band_hz: tuple[float, float],
) -> tuple[jax.Array, jax.Array, jax.Array, int]:
    """Where the lead-ins before the reference's onsets lie, in short frames
    (``_LEAD_IN_FFT`` samples every ``_LEAD_IN_HOP``): ``(energy, ends, after, window)``,
    the reference's ``band_hz`` energy per frame, 1 at the last frame of each onset's
    lead-in window (else 0), the reference's energy in the ``window`` frames from that
    onset on (read at the same frame), and the window's length in frames.

    Onsets are found nearly as the metric finds them: a frame at least 15 dB above the
    mean of the 50 ms before it (none in the first 50 ms), within 50 dB of the clip's
    loudest frame, and no jump in the 50 ms before it (the metric asks for no *onset*
    there, a sequential rule; the two differ only for attacks closer than 50 ms in a
    row). The window's last frame ends ``guard_ms`` before the first sample of the onset
    frame (the first frame whose energy jumped), so no frame of it shares a sample with it.
    """
    n_fft, hop = _LEAD_IN_FFT, _LEAD_IN_HOP
    frames_per_ms = sample_rate / hop / 1000.0
    history = max(1, round(50.0 * frames_per_ms))
    window = max(1, round(window_ms * frames_per_ms))
    guard = max(1, round(guard_ms * frames_per_ms))
    energy = jax.lax.stop_gradient(_band_energy(reference, sample_rate, n_fft, hop, band_hz))
    # Mean of the `history` frames before each frame (inf until there are that many).
    before = _delayed(_trailing(energy, history)) / history
    before = jnp.where(jnp.arange(energy.shape[-1]) < history, jnp.inf, before)
    loudest = jnp.max(energy, axis=-1, keepdims=True)
    loud = (energy > 0) & (energy >= 1e-5 * loudest)
    jump = ((energy >= before * 10**1.5) & loud).astype(jnp.float32)
    # One onset per attack, as the metric counts them: the first jump in 50 ms. (A
    # rising attack jumps in several frames; the later ones' windows would hold it.)
    recent = _delayed(_trailing(jump, history, jax.lax.max))
    onset = jump * (1.0 - recent)
    # The frame that ends each onset's window: its last sample `guard` frames before the
    # onset frame's first (frames overlap by n_fft - hop samples).
    ends = _delayed(onset, -(guard + n_fft // hop))
    after = _delayed(_trailing(energy, window), -(guard + n_fft // hop + window - 1))
    return energy, ends, after, window


def pre_echo_loss(
    reference: jax.Array,
    estimate: jax.Array,
    sample_rate: int,
    window_ms: float = 10.0,
    guard_ms: float = 1.0,
    band_hz: tuple[float, float] = (2000.0, 8000.0),
) -> jax.Array:
    """How far the estimate's 2-8 kHz energy is from the reference's in the ``window_ms``
    before each onset: ``|log10(E_est / E_ref)|`` of the energies summed over that
    window (0.1 = 1 dB), averaged over the clip's onsets, then over clips (0 for a clip
    without onsets).

    It is the differentiable twin of :func:`mp3gan.metrics.pre_echo_error_db` (the
    distance either way; :func:`mp3gan.metrics.pre_echo_db` is its signed form): the
    same band, the same window, energy rather than error. Pre-echo is MP3's quantisation noise
    spread into the quiet lead-in of an attack; no network can subtract noise it cannot
    predict, but it can bring the lead-in's *level* back down to the reference's, which
    is what is heard and what the metric measures. Both sides count, so a dulled
    lead-in is as wrong as a smeared one. Frames are 2.9 ms long every 0.7 ms
    (``n_fft`` 128, hop 32 at 44.1 kHz), onsets and windows as
    :func:`_onset_windows` finds them. Both energies are floored
    at 60 dB below the reference's energy in the ``window_ms`` from the onset on (the
    metric's floor), so digital silence before an attack stays finite.
    """
    energy, ends, after, window = _onset_windows(
        reference, sample_rate, window_ms, guard_ms, band_hz
    )
    e_est = _band_energy(estimate, sample_rate, _LEAD_IN_FFT, _LEAD_IN_HOP, band_hz)
    # The floor, as the metric's: 60 dB below the reference's energy in the `window`
    # frames from the onset on. Relative to the clip's loudest frame instead, it sat
    # 10-30 dB higher for an attack after silence in a clip with louder parts, and hid a
    # lead-in the metric reads as 10-20 dB of pre-echo.
    floor = 1e-6 * after + window * 1e-12
    distance = jnp.abs(
        jnp.log10(_trailing(e_est, window) + floor) - jnp.log10(_trailing(energy, window) + floor)
    )
    count = jnp.sum(ends, axis=-1)
    per_clip = jnp.sum(distance * ends, axis=-1) / jnp.maximum(count, 1.0)
    # A plain mean over clips (those without onsets count 0): averaging over the clips
    # *with* onsets would weigh devices unequally under pmap (pmean of means).
    return jnp.mean(per_clip)


def lead_in_spectrum_loss(
    reference: jax.Array,
    estimate: jax.Array,
    sample_rate: int,
    window_ms: float = 10.0,
    guard_ms: float = 1.0,
    band_hz: tuple[float, float] = (2000.0, 8000.0),
) -> jax.Array:
    """Per bin and frame, ``|log10|`` of the estimate's ``band_hz`` power over the
    reference's in the lead-ins :func:`pre_echo_loss` judges (its frames, onsets and
    windows), averaged over those bins and frames, then over clips (0 for a clip without
    onsets).

    Why beside :func:`pre_echo_loss`: that term is one number per onset (the window's
    summed energy), so its gradient asks the fine gain stage for one cut over the whole
    window and band. Which 2.9 ms frames and which bins hold MP3's noise is what an
    oracle gain knows (``benchmarks/pre_echo_ceiling.py``: on those frames it takes 2.9
    dB of the test music's 64 kbps pre-echo away, the model about 1.1); this term's
    minimum is that gain, and its gradient reaches every frame and bin of the lead-in.
    Powers are floored at 60 dB below the reference's mean power per bin and frame in
    the ``window_ms`` from the onset on (the metric's floor, shared out), so digital
    silence before an attack stays finite.
    """
    n_fft, hop = _LEAD_IN_FFT, _LEAD_IN_HOP
    _, ends, after, window = _onset_windows(reference, sample_rate, window_ms, guard_ms, band_hz)
    # A frame lies in a lead-in when a window ends within `window - 1` frames after it;
    # onsets are 50 ms apart, so windows never overlap and each frame reads its own
    # window's `after`.
    inside = _delayed(_trailing(ends, window), -(window - 1))
    after_here = _delayed(_trailing(ends * after, window), -(window - 1))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    in_band = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    keep, bins = jnp.asarray(in_band, jnp.float32), max(float(np.sum(in_band)), 1.0)
    ref = jax.lax.stop_gradient(dsp.stft(reference, n_fft, hop))
    est = dsp.stft(estimate, n_fft, hop)
    floor = (1e-6 * after_here / (window * bins) + 1e-12)[..., None, :]
    distance = jnp.abs(
        jnp.log10(est.real**2 + est.imag**2 + floor) - jnp.log10(ref.real**2 + ref.imag**2 + floor)
    )
    weight = keep[:, None] * inside[..., None, :]
    per_clip = jnp.sum(distance * weight, axis=(-2, -1)) / jnp.maximum(
        jnp.sum(weight, axis=(-2, -1)), 1.0
    )
    return jnp.mean(per_clip)
