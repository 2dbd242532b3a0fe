"""Audio I/O, resampling, and the MP3 round trip: the only module that touches a codec.

Every array in mp3gan is float32 shaped ``[channels, samples]``; soundfile's
``[samples, channels]`` layout stops at this module's boundary.

The MP3 round trip must return audio that is sample-aligned with its input, because
every metric and every training pair compares the two sample by sample (lesson 3 of the
README: a few samples of offset look like a "big" difference that nobody hears).
libsndfile (LAME to encode, mpg123 to decode) trims the encoder delay only when the
stream carries a LAME/Info tag, which it writes for CBR at >= 56 kbps (44.1 kHz) or
>= 64 kbps (48 kHz) and for VBR. Without the tag the decoded audio starts
``MP3_UNTAGGED_DELAY`` samples late and is padded to whole frames. We undo whichever
case applies, then *verify* the result by cross-correlation and raise
``AlignmentError`` when the residual offset is not 0 or the polarity is flipped.
"""

from __future__ import annotations

import io
import os
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from mp3gan.files import atomic_path

# LAME's encoder delay (576) plus mpg123's decoder delay (529) for an untagged stream.
MP3_UNTAGGED_DELAY = 1105
MP3_FRAME = 1152
# Sample rates MPEG-1/2/2.5 Layer III can carry.
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# libsndfile rejects compression_level == 1.0; the CBR map is 320 - 288 * level kbps.
_MAX_LEVEL = 0.9999
# Formats we write, by extension; FLAC is 24-bit so restoration output never loses headroom.
WRITE_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24")}
READ_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff", ".mp3", ".ogg")


class AudioError(ValueError):
    """Bad audio input or output: the message names the file and the problem."""


class AlignmentError(RuntimeError):
    """A degraded signal is not sample-aligned with its reference."""


def _as_channels_first(audio: np.ndarray, name: str) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise AudioError(f"{name}: expected [channels, samples], got shape {audio.shape}")
    if audio.shape[0] == 0:
        raise AudioError(f"{name}: audio has zero channels")
    return audio.astype(np.float32, copy=False)


def check_finite(audio: np.ndarray, name: str) -> None:
    """Raise AudioError when ``audio`` holds NaN or Inf samples."""
    bad = ~np.isfinite(audio)
    if bad.any():
        first = int(np.argwhere(bad)[0][-1])
        raise AudioError(f"{name}: {int(bad.sum())} NaN/Inf samples (first at sample {first})")


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read WAV/FLAC/AIFF/MP3/OGG into float32 ``[channels, samples]`` and its rate.

    Raises AudioError naming the file for missing, empty, corrupt or non-audio files,
    zero channels and NaN/Inf samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not readable audio ({e})") from None
    if data.shape[1] == 0:
        raise AudioError(f"{path}: audio has zero channels")
    if data.shape[0] == 0:
        raise AudioError(f"{path}: no audio samples (truncated or empty stream)")
    audio = np.ascontiguousarray(data.T)
    check_finite(audio, str(path))
    return audio, int(sr)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write ``[channels, samples]`` audio atomically: WAV as float32, FLAC as 24-bit.

    The data goes to a temporary file in the same folder that is renamed at the end, so
    an error or Ctrl-C never leaves a half-written file. FLAC cannot hold values beyond
    full scale: we refuse rather than clip silently (write WAV, which is float).
    """
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"{path}: unsupported output extension (use .wav or .flac)")
    audio = _as_channels_first(audio, str(path))
    check_finite(audio, str(path))
    peak = float(np.abs(audio).max(initial=0.0))
    if fmt[0] == "FLAC" and peak > 1.0:
        raise AudioError(f"{path}: peak {peak:.3f} exceeds full scale; FLAC would clip (use .wav)")
    with atomic_path(path) as tmp:
        sf.write(tmp, audio.T, int(sample_rate), format=fmt[0], subtype=fmt[1])


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited polyphase resampling (Kaiser-windowed FIR) of ``[channels, samples]``.

    Output length is ``ceil(samples * sr_out / sr_in)``.
    """
    audio = _as_channels_first(audio, "resample")
    if sr_in == sr_out:
        return audio
    g = gcd(int(sr_in), int(sr_out))
    up, down = int(sr_out) // g, int(sr_in) // g
    out = signal.resample_poly(audio, up, down, axis=-1, window=("kaiser", 8.0))
    n_out = -(-audio.shape[-1] * up // down)
    return out[..., :n_out].astype(np.float32)


def _level_for_bitrate(kbps: int) -> float:
    return float(np.clip((320.0 - kbps) / 288.0, 0.0, _MAX_LEVEL))


def mp3_encode(
    audio: np.ndarray,
    sample_rate: int,
    bitrate: int | None = 128,
    vbr_quality: float | None = None,
) -> bytes:
    """Encode ``[channels<=2, samples]`` to MP3 bytes in memory with LAME.

    ``bitrate`` (kbps, 32..320) selects CBR; ``vbr_quality`` in [0, 1] (0 = best)
    selects VBR instead. Returns the encoded stream.
    """
    audio = _as_channels_first(audio, "mp3_encode")
    if audio.shape[0] > 2:
        raise AudioError(f"mp3_encode: MP3 holds 1 or 2 channels, got {audio.shape[0]}")
    if sample_rate not in MP3_SAMPLE_RATES:
        raise AudioError(f"mp3_encode: MP3 cannot carry {sample_rate} Hz; use {MP3_SAMPLE_RATES}")
    check_finite(audio, "mp3_encode")
    if vbr_quality is not None:
        mode, level = "VARIABLE", float(np.clip(vbr_quality, 0.0, _MAX_LEVEL))
    else:
        if bitrate is None or not 32 <= bitrate <= 320:
            raise AudioError(f"mp3_encode: bitrate must be 32..320 kbps, got {bitrate}")
        mode, level = "CONSTANT", _level_for_bitrate(bitrate)
    buf = io.BytesIO()
    # LAME clips at full scale like any integer codec; clip explicitly so it is deliberate.
    pcm = np.clip(audio, -1.0, 1.0).T
    sf.write(
        buf,
        pcm,
        sample_rate,
        format="MP3",
        subtype="MPEG_LAYER_III",
        compression_level=level,
        bitrate_mode=mode,
    )
    return buf.getvalue()


def mp3_decode(data: bytes, name: str = "<mp3 bytes>") -> tuple[np.ndarray, int]:
    """Decode MP3 bytes to float32 ``[channels, samples]`` and its rate (mpg123)."""
    if len(data) == 0:
        raise AudioError(f"{name}: empty MP3 stream")
    try:
        out, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{name}: not a decodable MP3 stream ({e})") from None
    if out.shape[0] == 0:
        raise AudioError(f"{name}: MP3 stream decodes to no samples")
    return np.ascontiguousarray(out.T), int(sr)


def mp3_bitrate_kbps(data: bytes, n_samples: int, sample_rate: int) -> float:
    """The real average bitrate of an encoded stream, from its size and duration."""
    return len(data) * 8.0 / (n_samples / sample_rate) / 1000.0


def find_offset(
    reference: np.ndarray, estimate: np.ndarray, max_lag: int = 2 * MP3_FRAME
) -> tuple[int, int]:
    """Lag (samples ``estimate`` is late) and polarity (+1/-1) of the best match.

    Cross-correlation of the channel-summed, first-differenced signals via FFT,
    searched over ``|lag| <= max_lag``. Differencing whitens the spectrum a little: a
    bass-heavy signal (a kick drum) has a broad correlation peak that the codec's phase
    shifts can tip by a sample; the differenced signals peak sharply where the codec
    is accurate. Returns (0, +1) when either signal is silent.
    """
    ref = np.diff(_as_channels_first(reference, "reference").astype(np.float64).sum(0))
    est = np.diff(_as_channels_first(estimate, "estimate").astype(np.float64).sum(0))
    if not (np.any(ref) and np.any(est)):
        return 0, 1
    n = 1 << int(np.ceil(np.log2(len(ref) + len(est) + 1)))
    cc = np.fft.irfft(np.fft.rfft(est, n) * np.conj(np.fft.rfft(ref, n)), n)
    lags = np.arange(-max_lag, max_lag + 1)
    values = cc[lags % n]
    best = int(np.argmax(np.abs(values)))
    # Periodic signals correlate equally at several lags: prefer lag 0 when it ties.
    zero = max_lag
    if np.abs(values[zero]) >= np.abs(values[best]) * (1 - 1e-6):
        best = zero
    return int(lags[best]), 1 if values[best] >= 0 else -1


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    if audio.shape[-1] >= n:
        return audio[..., :n]
    return np.pad(audio, ((0, 0), (0, n - audio.shape[-1])))


def align_to_reference(
    reference: np.ndarray, estimate: np.ndarray, max_lag: int = 2 * MP3_FRAME
) -> tuple[np.ndarray, int, int]:
    """Shift, crop/pad and fix the polarity of ``estimate`` to match ``reference``.

    The one alignment routine of the project (data pairs, evaluation of user files).
    Returns ``(aligned, lag, polarity)``; ``aligned`` has the reference's shape.
    """
    reference = _as_channels_first(reference, "reference")
    estimate = _as_channels_first(estimate, "estimate")
    lag, polarity = find_offset(reference, estimate, max_lag)
    shifted = estimate[..., lag:] if lag >= 0 else np.pad(estimate, ((0, 0), (-lag, 0)))
    return _fit_length(shifted * polarity, reference.shape[-1]), lag, polarity


def check_aligned(reference: np.ndarray, degraded: np.ndarray, name: str = "pair") -> None:
    """Raise AlignmentError unless ``degraded`` peaks at lag 0 with positive polarity."""
    lag, polarity = find_offset(reference, degraded)
    if lag != 0 or polarity != 1:
        raise AlignmentError(f"{name}: residual offset {lag} samples, polarity {polarity:+d}")


def mp3_roundtrip(
    audio: np.ndarray,
    sample_rate: int,
    bitrate: int | None = 128,
    vbr_quality: float | None = None,
    verify: bool = True,
) -> np.ndarray:
    """Encode to MP3 and decode back, aligned to the input: same shape, lag 0, polarity +.

    More than two channels are encoded one mono stream each. With ``verify`` the
    result is checked by cross-correlation (AlignmentError on failure).
    """
    audio = _as_channels_first(audio, "mp3_roundtrip")
    if audio.shape[0] > 2:
        return np.concatenate(
            [mp3_roundtrip(ch[None], sample_rate, bitrate, vbr_quality, verify) for ch in audio]
        )
    n = audio.shape[-1]
    decoded, _ = mp3_decode(mp3_encode(audio, sample_rate, bitrate, vbr_quality))
    # A tagged stream decodes to exactly n samples (delay and padding trimmed); an
    # untagged one is delayed and padded to whole frames.
    delay = 0 if decoded.shape[-1] == n else MP3_UNTAGGED_DELAY
    out = _fit_length(decoded[..., delay:], n)
    if verify:
        what = f"vbr q={vbr_quality}" if vbr_quality is not None else f"{bitrate} kbps"
        check_aligned(audio, out, name=f"MP3 round trip at {what}, {sample_rate} Hz")
    return out
