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

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator
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
# The model's sample rate: corpora are rendered at it, training crops and validation
# clips are at it, and restore resamples every input to it (and back).
MODEL_SAMPLE_RATE = 44100
# What takes audio [C, T] at a sample rate and returns audio [C, T] at that rate: a
# model's predict function, a baseline, any method evaluation scores. One name for it.
PredictFn = Callable[[np.ndarray, int], np.ndarray]
# Formats we write, by extension; FLAC is 24-bit so restoration output never loses headroom.
WRITE_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24")}
READ_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff", ".mp3", ".ogg")
READ_BLOCK = 65536  # frames per block when a file is read (or streamed) block by block
# What a header may claim before anything is allocated for it. A damaged or hostile
# header can claim any rate or channel count: 2**31 Hz made the restore path allocate
# 320 GiB to resample, 185 channels ran 185 network rows per chunk. 4 kHz is half the
# lowest rate in use (telephony, 8 kHz); 768 kHz is the highest converters offer; 64
# channels is seventh-order ambisonics, the largest layout in use.
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 768000
MAX_CHANNELS = 64


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


def check_layout(name: str, sample_rate: int, channels: int) -> None:
    """Raise AudioError unless ``sample_rate`` and ``channels`` are within what real audio
    uses (:data:`MIN_SAMPLE_RATE`..:data:`MAX_SAMPLE_RATE`, 1..:data:`MAX_CHANNELS`)."""
    if channels < 1:
        raise AudioError(f"{name}: audio has zero channels")
    if channels > MAX_CHANNELS:
        raise AudioError(
            f"{name}: {channels} channels; at most {MAX_CHANNELS} are supported "
            "(a damaged header, or not a layout in use)"
        )
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{name}: sample rate {sample_rate} Hz is outside the supported "
            f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz (a damaged header?)"
        )


@contextlib.contextmanager
def _c_stderr_muted() -> Iterator[None]:
    """Silence file descriptor 2 for a libsndfile call.

    mpg123 (libsndfile's MP3 decoder) prints resync notes and tag warnings straight to
    the C stderr for damaged MP3s; the one-line error we raise says what matters.
    """
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class AudioReader:
    """An audio file opened for reading block by block, with errors that name it.

    The one reader of files for restoring, training and evaluation alike: a header's
    rate and channel count are checked (:func:`check_layout`) before anything is
    allocated, every block is checked for NaN/Inf, and an MP3 that decodes to less than
    its Xing/Info header declares is reported as truncated.
    """

    def __init__(self, path: str | os.PathLike, block: int = READ_BLOCK):
        path = Path(path)
        self.path, self.block = path, block
        if path.is_dir():
            raise AudioError(f"{path}: is a folder, not a file")
        if not path.is_file():
            raise AudioError(f"{path}: no such file")
        try:  # libsndfile reports every failure to open as "not audio": find the cause
            with open(path, "rb") as f:
                f.read(1)
        except OSError as e:
            raise AudioError(f"{path}: cannot read it ({e.strerror or e})") from None
        if path.stat().st_size == 0:
            raise AudioError(f"{path}: file is empty")
        try:
            with _c_stderr_muted():
                self.file = sf.SoundFile(str(path))
        except (sf.LibsndfileError, RuntimeError, TypeError):
            raise AudioError(f"{path}: not readable audio (no format libsndfile decodes)") from None
        self.sample_rate, self.channels = int(self.file.samplerate), int(self.file.channels)
        self.frames = int(self.file.frames)  # a header's claim: trusted for progress only
        self.is_mp3 = self.file.format == "MP3"
        try:
            check_layout(str(path), self.sample_rate, self.channels)
        except AudioError:
            self.file.close()
            raise

    def blocks(self) -> Iterator[np.ndarray]:
        """The file's samples as ``[C, n]`` float32 blocks; AudioError on a bad stream."""
        read = 0
        while True:
            try:
                with _c_stderr_muted() if self.is_mp3 else contextlib.nullcontext():
                    data = self.file.read(self.block, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise AudioError(f"{self.path}: corrupt audio stream ({e})") from None
            if data.shape[0] == 0:
                break
            bad = ~np.isfinite(data)
            if bad.any():
                first = read + int(np.argwhere(bad)[0][0])
                raise AudioError(
                    f"{self.path}: NaN/Inf samples (first at {first / self.sample_rate:.3f} s)"
                )
            read += data.shape[0]
            yield np.ascontiguousarray(data.T)
        if read == 0:
            raise AudioError(f"{self.path}: no audio samples (truncated or empty stream)")
        # An MP3 with a Xing/Info header declares its length; a stream that ends well
        # before it was cut off (mpg123 just stops decoding).
        if self.is_mp3 and self.frames > read + max(2 * MP3_FRAME, self.frames // 100):
            sr = self.sample_rate
            raise AudioError(
                f"{self.path}: truncated or corrupt MP3 (decodes to {read / sr:.2f} s "
                f"of the {self.frames / sr:.2f} s its header declares)"
            )

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read WAV/FLAC/AIFF/MP3/OGG into float32 ``[channels, samples]`` and its rate.

    Raises AudioError naming the file for missing, unreadable, empty, corrupt,
    truncated (MP3) or non-audio files, implausible headers (:func:`check_layout`) and
    NaN/Inf samples: the same checks as the restore path's streaming reader.
    """
    with AudioReader(path) as reader:
        audio = np.concatenate(list(reader.blocks()), axis=-1)
        return audio, reader.sample_rate


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
