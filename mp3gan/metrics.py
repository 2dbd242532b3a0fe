"""Objective metrics for MP3 restoration: spectral distance, SNR, coherence, pre-echo, bandwidth.

Each metric takes ``(reference, estimate, sample_rate)`` as numpy arrays ``[T]`` or
``[C, T]`` that are already sample-aligned (``audio.align_to_reference``) and returns a
float; channels are averaged. The same function scores the MP3 input and the
restoration against the lossless reference, so a report can show both and their
difference (lesson 2 of the README): a number for the restoration alone says nothing.
Spectra come from :mod:`mp3gan.dsp` (JAX), the project's one STFT/Welch implementation.

A metric that cannot be computed on a clip (pre-echo without an onset, ViSQOL on a clip
shorter than its patches) is NaN there: undefined for that clip, never an error that
would end an evaluation, or the training run that called it.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Collection

import jax
import jax.numpy as jnp
import numpy as np
from scipy import signal

from mp3gan import audio as audio_lib
from mp3gan import dsp, losses
from mp3gan.degrade import LowPass

# A cutoff at or above this fraction of Nyquist means there is no lost band to fill.
FULL_BAND_FRACTION = 0.95

log = logging.getLogger(__name__)


def _info(description: str, unit: str, higher_is_better: bool) -> dict[str, object]:
    return {"description": description, "unit": unit, "higher_is_better": higher_is_better}


# The keys of score_all(): what each number means, its unit and which direction is better.
METRIC_INFO: dict[str, dict[str, object]] = {
    "lsd": _info("log-spectral distance, full band", "dB", False),
    "lsd_high": _info("log-spectral distance above the MP3 input's cutoff", "dB", False),
    "si_sdr": _info("scale-invariant signal-to-distortion ratio", "dB", True),
    "mr_stft": _info("multi-resolution STFT distance (the training loss)", "", False),
    "coherence_high": _info("mean coherence with the reference above the cutoff", "", True),
    "pre_echo_db": _info("energy before attacks, re the reference's", "dB", False),
    "pre_echo_error_db": _info("|energy before attacks re the reference's|", "dB", False),
    "cutoff_hz": _info("bandwidth of the signal (the reference's is ideal)", "Hz", True),
    "visqol": _info("ViSQOL v3 audio-mode MOS-LQO, 1 (bad) to ~4.7", "MOS", True),
}


def improvement(key: str, input_value: float, restored_value: float) -> float:
    """Restored minus input, signed so that a positive number always means "better"."""
    delta = restored_value - input_value
    return delta if METRIC_INFO[key]["higher_is_better"] else -delta


def _channels(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x[None] if x.ndim == 1 else x


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, est = _channels(reference), _channels(estimate)
    if ref.ndim != 2 or ref.shape != est.shape:
        raise ValueError(f"reference {ref.shape} and estimate {est.shape}: need equal [C, T]")
    return ref, est


def align_output(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, cutoff_hz: float | None
) -> tuple[np.ndarray, int, int]:
    """:func:`audio.align_to_reference` on the band the MP3 input kept: ``(aligned, lag,
    polarity)``, ``aligned`` shaped like ``reference``.

    The estimate is matched against the reference low-passed at the input's cutoff. A
    band a method invents above the cutoff is uncorrelated with the reference by nature;
    matched against the full reference it lets the cross-correlation peak wander when it
    carries most of the energy (a hi-hat at 32 kbps came out 194 samples off, inverted).
    Both signals share the band below the cutoff, so that is where the lag is decided.
    """
    anchor = reference
    if cutoff_hz is not None and cutoff_hz < FULL_BAND_FRACTION * sample_rate / 2:
        anchor = LowPass(cutoff_hz)(reference, sample_rate)
    return audio_lib.align_to_reference(anchor, estimate)


# The spectral parts run jitted: one XLA program per input shape compiles several times
# faster than the same JAX ops run eagerly one by one.
@functools.partial(jax.jit, static_argnums=(1, 2))
def _power_spectrogram(x: jax.Array, n_fft: int, hop: int) -> jax.Array:
    return jnp.abs(dsp.stft(x, n_fft, hop)) ** 2


@functools.partial(jax.jit, static_argnums=(1, 2))
def _welch(x: jax.Array, fs: float, nperseg: int) -> tuple[jax.Array, jax.Array]:
    return dsp.welch(x, fs, nperseg=nperseg)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _coherence(x: jax.Array, y: jax.Array, fs: float, nperseg: int):
    f, cxy = dsp.coherence(x, y, fs, nperseg=nperseg)
    return f, cxy, dsp.welch(x, fs, nperseg=nperseg)[1]


_mr_stft = jax.jit(losses.multi_resolution_stft_loss)


def _band(freqs: np.ndarray, f_min: float, f_max: float | None) -> np.ndarray:
    """Boolean mask of the bins in [f_min, f_max) (f_max=None: up to and with Nyquist)."""
    mask = freqs >= f_min if f_max is None else (freqs >= f_min) & (freqs < f_max)
    if not mask.any():
        raise ValueError(f"no frequency bins in [{f_min}, {f_max}) Hz")
    return mask


def lsd(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    n_fft: int = 2048,
    hop: int = 512,
) -> float:
    """Log-spectral distance (dB) over the band [f_min, f_max), lower is better.

    ``LSD = mean_frames sqrt(mean_bins (10 log10(|X|^2 + eps) - 10 log10(|Y|^2 + eps))^2)``
    with X the reference's and Y the estimate's STFT (as in e.g. Kuleshov et al. 2017,
    "Audio super resolution using neural networks"). ``eps`` is 100 dB below the
    reference's mean bin power: it keeps exact zeros (MP3 zeroes everything above its
    cutoff) finite and caps a missing bin's penalty at its level above that floor, while
    a common gain on both signals leaves the value unchanged. Frames where the reference
    is more than 60 dB below its loudest frame count as silent and are skipped: the
    log ratio of two near-silences is noise. NaN for an all-silent reference.
    """
    ref, est = _pair(reference, estimate)
    band = _band(np.arange(n_fft // 2 + 1) * sample_rate / n_fft, f_min, f_max)
    pr = np.asarray(_power_spectrogram(ref, n_fft, hop))  # [C, bins, frames]
    pe = np.asarray(_power_spectrogram(est, n_fft, hop))
    if not pr.any():
        return math.nan
    eps = 1e-10 * pr.mean(dtype=np.float64)
    frame_power = pr.sum(axis=-2, dtype=np.float64)  # [C, frames]
    active = frame_power > 1e-6 * frame_power.max()
    diff = 10 * np.log10(pr[..., band, :] + eps) - 10 * np.log10(pe[..., band, :] + eps)
    per_frame = np.sqrt(np.mean(diff**2, axis=-2, dtype=np.float64))
    return float(per_frame[active].mean())


def lsd_high_band(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, f_low: float
) -> float:
    """:func:`lsd` above ``f_low`` Hz: how well the band an encoder removed comes back."""
    return lsd(reference, estimate, sample_rate, f_min=f_low)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., "SDR - half-baked or well done?", 2019).

    With zero-mean s (reference) and s_hat (estimate), ``a = <s_hat, s> / ||s||^2`` and
    ``SI-SDR = 10 log10(||a s||^2 / ||a s - s_hat||^2)``: any gain on the estimate
    cancels, and swapping the two gives the same value (both equal
    ``10 log10(rho^2 / (1 - rho^2))`` for the correlation rho). +inf for an exact
    (scaled) copy, -inf for a silent estimate, NaN for a silent reference; channel mean.
    """
    ref, est = (x.astype(np.float64) for x in _pair(reference, estimate))
    ref = ref - ref.mean(-1, keepdims=True)
    est = est - est.mean(-1, keepdims=True)
    values = []
    for s, s_hat in zip(ref, est, strict=True):
        if not s.any():
            values.append(math.nan)
        elif not s_hat.any():
            values.append(-math.inf)
        else:
            target = np.dot(s_hat, s) / np.dot(s, s) * s
            with np.errstate(divide="ignore"):  # an exact copy: no distortion, +inf
                values.append(10 * np.log10(np.sum(target**2) / np.sum((s_hat - target) ** 2)))
    return float(np.mean(values))


def mr_stft_distance(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Multi-resolution STFT distance: the training loss (:mod:`mp3gan.losses`) as a metric.

    Spectral convergence plus log-magnitude L1 averaged over FFT sizes 512/1024/2048
    (Yamamoto et al. 2020, Parallel WaveGAN); 0 for identical signals.
    """
    ref, est = _pair(reference, estimate)
    return float(_mr_stft(ref, est))


def mean_coherence(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    nperseg: int = 2048,
) -> float:
    """Mean magnitude-squared coherence ``|Pxy|^2 / (Pxx Pyy)`` over [f_min, f_max).

    Welch estimate (Hann, 50 % overlap) from :func:`dsp.coherence`: 1 where the
    estimate is a linear filtering of the reference, ~1/K (K segments) for unrelated
    content, so it rewards a regenerated high band only when it follows the original's
    phase. Bins where the reference has no power (over 120 dB below its peak) have no
    defined coherence and are left out. Averaged over channels.
    """
    ref, est = _pair(reference, estimate)
    nperseg = min(nperseg, ref.shape[-1])
    f, cxy, pxx = (np.asarray(a, np.float64) for a in _coherence(ref, est, sample_rate, nperseg))
    keep = _band(f, f_min, f_max) & (pxx > 1e-12 * pxx.max(-1, keepdims=True))
    return float(cxy[keep].mean()) if keep.any() else math.nan


# Onset detector for the pre-echo measure (see find_onsets).
_ATTACK_BAND_HZ = (2000.0, 8000.0)
_BLOCK_MS = 1.0
_HISTORY_MS = 50.0
_ONSET_JUMP_DB = 15.0
_ONSET_FLOOR_DBFS = -50.0
_PRE_FLOOR_DB = -60.0


def _attack_band_energy(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Channel-mean instantaneous energy in 2-8 kHz, ``[T]``.

    Pre-echo is audible (and unmasked) in the treble; sustained bass would hide it.
    The band stops at 8 kHz, below the cutoff of any MP3 of 56 kbps or more, so that
    a lost (or regenerated) high band does not read as less (or more) pre-echo. The
    filter is causal: no energy of an onset leaks to the samples before it.
    """
    sos = signal.butter(4, _ATTACK_BAND_HZ, btype="bandpass", fs=sample_rate, output="sos")
    y = signal.sosfilt(sos, _channels(x).astype(np.float64), axis=-1)
    return np.mean(y**2, axis=0)


def find_onsets(reference: np.ndarray, sample_rate: int) -> np.ndarray:
    """Sample indices of sharp onsets in ``reference``, to within a 1 ms block.

    The 2-8 kHz energy (:func:`_attack_band_energy`) is averaged over 1 ms blocks. A
    block is an onset when its energy is at least 15 dB above the mean of the 50 ms
    before it and above -50 dBFS (mean square re full scale), and no onset was found in
    those 50 ms; the first 50 ms of the clip have no history and cannot hold one.
    Channels are judged together, on their mean energy.
    """
    energy = _attack_band_energy(reference, sample_rate)
    block = max(1, round(sample_rate * _BLOCK_MS / 1000))
    history = max(1, round(_HISTORY_MS / _BLOCK_MS))
    n_blocks = len(energy) // block
    blocks = energy[: n_blocks * block].reshape(n_blocks, block).mean(axis=1)
    if n_blocks <= history:
        return np.zeros(0, dtype=np.int64)
    # Mean of the `history` blocks before each block i >= history.
    before = np.convolve(blocks, np.ones(history) / history, mode="valid")[:-1]
    now = blocks[history:]
    loud = now >= 10 ** (_ONSET_FLOOR_DBFS / 10)
    jump = now >= before * 10 ** (_ONSET_JUMP_DB / 10)
    onsets: list[int] = []
    for i in np.flatnonzero(loud & jump) + history:
        if not onsets or i - onsets[-1] > history:  # one onset per attack
            onsets.append(int(i))
    return np.asarray(onsets, dtype=np.int64) * block


def _pre_echo_per_onset(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, window_ms: float, guard_ms: float
) -> np.ndarray:
    """``10 log10(E(estimate) / E(reference))`` in the window before each onset
    (:func:`pre_echo_db` says how); empty when the reference has no onset."""
    ref, est = _pair(reference, estimate)
    w = max(1, round(sample_rate * window_ms / 1000))
    guard = round(sample_rate * guard_ms / 1000)
    # Channel-mean energies (not channel by channel): joint-stereo coding puts one
    # channel's noise into the other, and a hard-panned attack next to a silent
    # channel would then read as pre-echo.
    e_ref, e_est = _attack_band_energy(ref, sample_rate), _attack_band_energy(est, sample_rate)
    values = []
    for o in find_onsets(ref, sample_rate):
        floor = e_ref[o : o + w].mean() * 10 ** (_PRE_FLOOR_DB / 10)
        before = slice(max(0, o - guard - w), max(1, o - guard))
        pre_ref = max(e_ref[before].mean(), floor)
        pre_est = max(e_est[before].mean(), floor)
        values.append(10 * np.log10(pre_est / pre_ref))
    return np.asarray(values, dtype=np.float64)


def pre_echo_db(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    window_ms: float = 10.0,
    guard_ms: float = 1.0,
) -> float:
    """Mean excess 2-8 kHz energy (dB) the estimate puts just before the onsets.

    For each onset ``o`` of :func:`find_onsets`, with E(x) the channel-mean 2-8 kHz
    energy of x over the ``window_ms`` that end ``guard_ms`` before ``o``:
    ``10 log10(E(estimate) / E(reference))``, averaged over onsets. 0 for the reference
    itself, positive when the estimate smears energy ahead of the attack (MP3
    pre-echo: quantisation noise spread over the transform block that holds the
    attack), negative when it is quieter than the reference there. Both energies are
    floored at -60 dB re the reference's energy in the ``window_ms`` after the onset,
    so digital silence before an attack gives a finite number (at most +60 dB).
    The guard leaves out the last millisecond: any filterbank codec spreads its noise
    about that far even at 320 kbps (MP3's 512-tap synthesis filter), backward masking
    hides it, and the detector places an attack only to within its 1 ms block.
    MP3 pre-echo depends on where an attack falls in the encoder's block grid, so
    average over many onsets (a clip, a test set) before comparing two systems.
    NaN when the reference has no onset.
    """
    values = _pre_echo_per_onset(reference, estimate, sample_rate, window_ms, guard_ms)
    return float(np.mean(values)) if values.size else math.nan


def pre_echo_error_db(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    window_ms: float = 10.0,
    guard_ms: float = 1.0,
) -> float:
    """How far the lead-in's 2-8 kHz level is from the reference's, either way: the mean
    over onsets of ``|10 log10(E(estimate) / E(reference))|`` (:func:`pre_echo_db`'s
    windows and floor). 0 only when every lead-in is at the reference's level.

    :func:`pre_echo_db` is signed, so a restoration that dulls the lead-ins below the
    reference's (taking away the music before an attack with its pre-echo) reads there
    as *less* pre-echo, and one that overshoots some onsets and undershoots others can
    average to 0. This one counts both sides, as the training loss does.
    NaN when the reference has no onset.
    """
    values = _pre_echo_per_onset(reference, estimate, sample_rate, window_ms, guard_ms)
    return float(np.mean(np.abs(values))) if values.size else math.nan


def cutoff_frequency(
    x: np.ndarray, sample_rate: int, drop_db: float = 40.0, edge_db: float = 6.0
) -> float:
    """Low-pass cutoff (Hz) of a signal, from its long-term (Welch) power spectrum.

    MP3 encoders low-pass before coding (LAME at 64 kbps: ~11 kHz stereo, ~16.5 kHz
    mono) and zero the bands above: the spectrum falls off a cliff. On a Welch PSD
    (2048-point Hann, channels averaged) let U(k) be the loudest bin at or above bin k
    and B(k) the mean power of the octave below k. A cliff is a k with
    ``U(k) <= B(k) - drop_db``: nothing above comes within 40 dB of the octave below,
    which a filter does (``LowPass(4000)`` falls 96 dB per octave) but no natural
    spectral tilt. From the lowest cliff, the cutoff is the lowest frequency above
    which everything stays ``edge_db`` below B, measured once more against the
    third-octave below that first answer (the octave below a cliff may still hold a
    filter's slope or an encoder's starved top bands). That lands near a filter's -6 dB
    point (``LowPass``'s nominal cutoff) and on the edge of an MP3's cliff. The moving
    reference band keeps falling music spectra from looking band-limited; the
    loudest-bin-above rule copes with gaps between partials. ``sample_rate / 2`` when
    there is no cliff (full band); NaN for silence.
    """
    x = _channels(x)
    f, p = _welch(x, sample_rate, min(2048, x.shape[-1]))
    f, p = np.asarray(f, np.float64), np.asarray(p, np.float64).mean(axis=0)
    if not p.any():
        return math.nan
    floor = 1e-30 * p.max()  # keeps log10 finite where a codec wrote exact zeros
    above = np.maximum.accumulate(10 * np.log10(p[::-1] + floor))[::-1]
    # Direct means, not cumsum differences: those cancel to garbage 200 dB down.
    octave_db = np.full(len(p), -np.inf)
    for k in range(16, len(p)):  # the octave below bin 16 spans 8 bins: enough to average
        octave_db[k] = 10 * np.log10(p[k // 2 : k].mean() + floor)
    cliff = np.flatnonzero(above <= octave_db - drop_db)
    if len(cliff) == 0:
        return sample_rate / 2
    # The lowest cliff: higher ones follow in a stopband's noise floor, where the
    # octave below is the filter's slope rather than the passband.
    edge = int(np.argmax(above < octave_db[cliff[0]] - edge_db))
    lo = int(edge / 2 ** (1 / 3))
    if edge - lo >= 4:
        passband = 10 * np.log10(p[lo:edge].mean() + floor)
        edge = int(np.argmax(above < passband - edge_db))
    return float(f[edge])


@functools.lru_cache(maxsize=1)
def _visqol_api():
    from visqol import VisqolApi  # optional: pip install "mp3gan[visqol]"

    api = VisqolApi()
    api.create(mode="audio")
    return api


VISQOL_SAMPLE_RATE = 48000


def visqol(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float | None:
    """ViSQOL v3 audio-mode MOS-LQO (Chinen et al. 2020), or None without ``visqol-python``.

    Uses the pure-Python port of Google's ViSQOL (PyPI ``visqol-python``, the ``visqol``
    extra). Audio mode is defined at 48 kHz on mono, so both signals are channel-averaged
    (as ViSQOL's own file loader does) and resampled to 48 kHz. Needs about a second of
    audio or more; scale 1 (bad) to ~4.7 (transparent). NaN (undefined) on a clip
    ViSQOL cannot score, e.g. one shorter than its patches ("Reference spectrum size (22)
    smaller than minimum patch size (45)"), with a warning saying why.
    """
    try:
        api = _visqol_api()
    except ImportError:
        return None
    ref, est = _pair(reference, estimate)
    ref = audio_lib.resample(ref.mean(0, keepdims=True), sample_rate, VISQOL_SAMPLE_RATE)
    est = audio_lib.resample(est.mean(0, keepdims=True), sample_rate, VISQOL_SAMPLE_RATE)
    try:
        result = api.measure_from_arrays(
            ref[0].astype(np.float64), est[0].astype(np.float64), VISQOL_SAMPLE_RATE
        )
        mos = float(result.moslqo)
    except Exception as e:  # the package's own limits are not a reason to stop a run
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        log.warning("ViSQOL is undefined on a %.2f s clip: %s", ref.shape[-1] / 48000, why)
        return math.nan
    return mos if math.isfinite(mos) else math.nan


def _guarded(name: str, fn, *args, **kwargs) -> float | None:
    """``fn(*args, **kwargs)``, or NaN with a warning when it raises: an undefined value
    for this clip, so one clip a metric cannot handle never ends an evaluation."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        log.warning("metric %s is undefined on this clip (%s: %s)", name, type(e).__name__, e)
        return math.nan


# Left out unless asked for: ViSQOL's Python port takes minutes a clip on a small CPU.
SLOW_METRICS = ("visqol",)


def score_all(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    cutoff_hz: float | None = None,
    skip: Collection[str] = SLOW_METRICS,
) -> dict[str, float]:
    """Every metric of this module in one call, keyed as :data:`METRIC_INFO`, except those
    named in ``skip`` (by default :data:`SLOW_METRICS`; pass ``()`` for all).

    The high band of ``lsd_high`` and ``coherence_high`` starts at ``cutoff_hz``: pass
    the MP3 input's :func:`cutoff_frequency` and use the same value when scoring the
    input and the restoration, so both are measured on the same band. Without it the
    band starts at ``sample_rate / 4`` (11.025 kHz at 44.1 kHz, near LAME's 64 kbps
    stereo cutoff), a choice that never depends on the estimate; a cutoff at Nyquist
    (full-band input) leaves no high band and makes both NaN. ``cutoff_hz`` in the
    result is the estimate's own bandwidth. ``visqol`` is present only when installed.
    """
    ref, est = _pair(reference, estimate)
    f_low = sample_rate / 4 if cutoff_hz is None else float(cutoff_hz)
    high_band = f_low < sample_rate / 2
    metrics = {
        "lsd": (lsd, ref, est, sample_rate),
        "lsd_high": (lsd, ref, est, sample_rate, f_low) if high_band else None,
        "si_sdr": (si_sdr, ref, est),
        "mr_stft": (mr_stft_distance, ref, est),
        "coherence_high": (mean_coherence, ref, est, sample_rate, f_low) if high_band else None,
        "pre_echo_db": (pre_echo_db, ref, est, sample_rate),
        "pre_echo_error_db": (pre_echo_error_db, ref, est, sample_rate),
        "cutoff_hz": (cutoff_frequency, est, sample_rate),
        "visqol": (visqol, ref, est, sample_rate),
    }
    scores = {}
    for name, call in metrics.items():
        if name in skip:
            continue
        value = math.nan if call is None else _guarded(name, *call)
        if value is not None:  # None: ViSQOL is not installed
            scores[name] = value
    return scores
