"""The project's one STFT, mel filterbank, Welch PSD/CSD and coherence, in JAX.

Everything here is differentiable and jit-compatible, so the same functions serve the
losses, the STFT discriminator, the metrics and the plots. Signals run along the last
axis; leading axes are batch. We wrap ``jax.scipy.signal`` (scipy semantics and
scaling) rather than re-deriving framing and windowing.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.scipy.signal as jss
import numpy as np
import scipy.signal


def stft(x: jax.Array, n_fft: int, hop: int, window: str = "hann") -> jax.Array:
    """Complex STFT ``[..., T] -> [..., n_fft // 2 + 1, frames]``.

    Zero-padded at both ends (``boundary='zeros'``) so frame ``k`` is centred on sample
    ``k * hop``; scipy's 'spectrum' scaling (divided by the window sum). An input shorter
    than ``n_fft`` is zero-padded to it: scipy's rule would shrink the window to the input
    instead, silently changing the number of bins.
    """
    if x.shape[-1] < n_fft:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n_fft - x.shape[-1])])
    _, _, z = jss.stft(x, window=window, nperseg=n_fft, noverlap=n_fft - hop)
    return z


def istft(z: jax.Array, n_fft: int, hop: int, length: int, window: str = "hann") -> jax.Array:
    """Inverse of :func:`stft`, cropped or zero-padded to ``length`` samples."""
    _, x = jss.istft(z, window=window, nperseg=n_fft, noverlap=n_fft - hop)
    if x.shape[-1] >= length:
        return x[..., :length]
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])


@functools.lru_cache(maxsize=16)
def _periodic_hann(n_fft: int) -> np.ndarray:
    return scipy.signal.get_window("hann", n_fft).astype(np.float32)


def _overlap_add(frames: jax.Array, hop: int) -> jax.Array:
    """``[..., K, n_fft] -> [..., (K - 1)·hop + n_fft]``, frame ``k`` starting at ``k·hop``."""
    *lead, count, n_fft = frames.shape
    ratio = n_fft // hop
    pieces = frames.reshape(*lead, count, ratio, hop)
    no_pad = [(0, 0)] * len(lead)
    total = sum(
        jnp.pad(pieces[..., i, :], [*no_pad, (i, ratio - 1 - i), (0, 0)]) for i in range(ratio)
    )
    return total.reshape(*lead, (count + ratio - 1) * hop)


def shape_polymorphic_stft(x: jax.Array, n_fft: int, hop: int) -> jax.Array:
    """:func:`stft` (Hann window) built from reshapes: the same frames, any ``T >= 1``
    (for ``T < n_fft`` :func:`stft` pads to ``n_fft`` first and adds all-zero-input frames),
    and no shape-dependent branch, so a model using it exports with a symbolic length
    (``jax.export``), which ``jax.scipy.signal``'s STFT does not. ``hop`` must divide
    ``n_fft``. Frames are centred on ``k·hop`` (zero boundary), 'spectrum' scaling."""
    if n_fft % hop:
        raise ValueError(f"hop ({hop}) must divide n_fft ({n_fft})")
    ratio, length = n_fft // hop, x.shape[-1]
    # Boundary zeros of n_fft/2 each side, plus zeros to a whole number of hops (scipy's
    # padded=True): frames k = 0 .. ceil(T / hop) as in stft().
    # Sizes written so that jax.export can prove them for a symbolic length.
    n_blocks = (length + hop - 1) // hop + ratio
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_blocks * hop - length - n_fft // 2)])
    blocks = x.reshape(*x.shape[:-1], n_blocks, hop)
    count = n_blocks - ratio + 1
    frames = jnp.concatenate([blocks[..., i : i + count, :] for i in range(ratio)], axis=-1)
    window = _periodic_hann(n_fft)
    spec = jnp.fft.rfft(frames * window, axis=-1) / window.sum()
    return jnp.swapaxes(spec, -1, -2)


def shape_polymorphic_istft(z: jax.Array, n_fft: int, hop: int, length: int) -> jax.Array:
    """Inverse of :func:`shape_polymorphic_stft` (as :func:`istft`: windowed overlap-add
    divided by the summed squared window), ``length`` samples."""
    window = _periodic_hann(n_fft)
    frames = jnp.fft.irfft(jnp.swapaxes(z, -1, -2) * window.sum(), n=n_fft, axis=-1) * window
    count = frames.shape[-2]
    norm = _overlap_add(jnp.broadcast_to(jnp.asarray(window**2), (count, n_fft)), hop)
    x = _overlap_add(frames, hop) / jnp.where(norm > 1e-10, norm, 1.0)
    return x[..., n_fft // 2 : n_fft // 2 + length]


_COMPRESS_EPS = 1e-12  # keeps |X|^(c-1) finite at X = 0 (where the product is still exactly 0)


def compress(spec: jax.Array, power: float) -> jax.Array:
    """``X · |X|^(power-1)``: magnitude to the power ``power``, phase kept. Smooth at 0."""
    magnitude_sq = spec.real**2 + spec.imag**2
    return spec * (magnitude_sq + _COMPRESS_EPS) ** ((power - 1.0) / 2)


def decompress(spec: jax.Array, power: float) -> jax.Array:
    """Inverse of :func:`compress` (up to the epsilon): ``Y · |Y|^(1/power - 1)``."""
    magnitude_sq = spec.real**2 + spec.imag**2
    return spec * (magnitude_sq + _COMPRESS_EPS) ** ((1.0 / power - 1.0) / 2)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney's mel scale: linear below 1 kHz, logarithmic above (as librosa's default).
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


@functools.lru_cache(maxsize=32)
def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> np.ndarray:
    """Slaney-normalised triangular mel filterbank ``[n_mels, n_fft // 2 + 1]``."""
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs - lower) / (centre - lower)
    fall = (upper - freqs) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(rise, fall))
    fb *= 2.0 / (upper - lower)  # equal area per filter
    return fb.astype(np.float32)


def log_mel(
    x: jax.Array,
    sample_rate: int,
    n_fft: int,
    hop: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> jax.Array:
    """Log mel magnitude spectrogram ``[..., n_mels, frames]``: ``log(max(mel, 1e-5))``."""
    mag = jnp.abs(stft(x, n_fft, hop))
    fb = jnp.asarray(mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max))
    return jnp.log(jnp.maximum(jnp.einsum("mf,...ft->...mt", fb, mag), 1e-5))


def welch(
    x: jax.Array, fs: float = 1.0, window: str = "hann", nperseg: int = 256, noverlap=None
) -> tuple[jax.Array, jax.Array]:
    """Welch power spectral density, as ``scipy.signal.welch`` (density scaling)."""
    return jss.welch(x, fs=fs, window=window, nperseg=nperseg, noverlap=noverlap)


def csd(
    x: jax.Array,
    y: jax.Array,
    fs: float = 1.0,
    window: str = "hann",
    nperseg: int = 256,
    noverlap=None,
) -> tuple[jax.Array, jax.Array]:
    """Welch cross spectral density, as ``scipy.signal.csd`` (density scaling)."""
    return jss.csd(x, y, fs=fs, window=window, nperseg=nperseg, noverlap=noverlap)


def coherence(
    x: jax.Array,
    y: jax.Array,
    fs: float = 1.0,
    window: str = "hann",
    nperseg: int = 256,
    noverlap: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Magnitude-squared coherence ``|Pxy|^2 / (Pxx Pyy)``, as ``scipy.signal.coherence``.

    Returns ``(f, Cxy)``. Differentiable, also in float32 on band-limited audio: the
    coherence does not change when either signal is scaled, so both are brought to unit
    RMS and the spectra computed with ``fs=1`` (powers of order 1). Without that, a
    near-empty bin (above an MP3's cutoff, ~1e-17) makes ``(Pxx Pyy)^2`` in the gradient
    underflow to 0 and the gradient NaN. Bins more than 80 dB below a signal's mean power
    count as empty: their coherence is 0 with a zero gradient.
    """

    def unit_rms(s):
        rms = jax.lax.stop_gradient(jnp.sqrt(jnp.mean(s**2, axis=-1, keepdims=True)))
        return s / jnp.where(rms > 0, rms, 1.0)

    x, y = unit_rms(jnp.asarray(x)), unit_rms(jnp.asarray(y))
    f, pxx = welch(x, 1.0, window, nperseg, noverlap)
    _, pyy = welch(y, 1.0, window, nperseg, noverlap)
    _, pxy = csd(x, y, 1.0, window, nperseg, noverlap)

    def has_power(p):
        return p > 1e-8 * jax.lax.stop_gradient(jnp.mean(p, axis=-1, keepdims=True))

    ok = has_power(pxx) & has_power(pyy)
    # Guard both branches of the where so the gradient is finite too.
    safe = jnp.where(ok, pxx * pyy, 1.0)
    cxy = jnp.where(ok, (jnp.real(pxy) ** 2 + jnp.imag(pxy) ** 2) / safe, 0.0)
    return f * fs, cxy
