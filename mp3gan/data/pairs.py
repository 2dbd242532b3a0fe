"""Aligned (reference, degraded) training pairs, made on the fly from lossless files.

One pair is a crop of ``crop_samples`` at the model rate (files are resampled with
:func:`mp3gan.audio.resample`) plus the same crop after a degradation drawn from the
configured list (:func:`mp3gan.degrade.parse_degradation` specs).

Codec edges: an MP3 encoder starts and ends every stream with a transient (empty bit
reservoir, MDCT overlap against silence, the 1105-sample codec delay), and a zero-phase
filter rings at a signal's ends. So we degrade a *window* ``encode_margin`` samples longer
than the crop on each side and cut the crop out of its middle: the crop is then what the
codec makes of that audio in the middle of a song. The MP3 round trip itself returns
aligned audio and verifies lag 0 / polarity + (:func:`mp3gan.audio.mp3_roundtrip`).

Gain: a random gain is applied to the window *before* degrading, so reference and degraded
agree, and capped so the window's peak stays below full scale (MP3 clips at full scale
and the reference would not). Stereo files are encoded as stereo windows (joint-stereo
artefacts are real); the pair keeps both channels and the loader folds them into rows.

Near-silent crops (reference RMS below ``silence_db`` dBFS) are redrawn, as are files that
fail to read; both are bounded by ``MAX_ATTEMPTS``.

Optional cache (``cache_dir``): the whole file is degraded once per degradation (padded
with ``encode_margin`` zeros at both ends, so its own edges are codec-clean too) and kept
as a float16 ``.npy`` memmap keyed by a hash of path, size, mtime, degradation, rate and
margin; crops are then sliced from it. With the cache the gain is applied after the
codec (MP3 is close to scale-invariant; the pair still agrees exactly in gain), and the
float16 rounding (about -66 dB relative) sits far below any MP3 error we train on. Files
whose rate differs from the model rate also keep their resampled reference (float32).
Cost: about 5.3 MB per channel-minute per degradation.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from mp3gan import audio as audio_lib
from mp3gan import degrade as degrade_lib
from mp3gan.data.sources import DataError, Recording
from mp3gan.files import atomic_path

log = logging.getLogger(__name__)

# MP3 at 32-192 kbps CBR and two VBR qualities (about V4 and V7).
DEFAULT_DEGRADATIONS = (
    "mp3:32",
    "mp3:48",
    "mp3:64",
    "mp3:96",
    "mp3:128",
    "mp3:192",
    "vbr:0.4",
    "vbr:0.7",
)
# Four MP3 frames: covers the 1105-sample codec delay plus the MDCT overlap, and leaves a
# few frames for the encoder's bit reservoir and psychoacoustic state to settle.
DEFAULT_MARGIN = 4 * audio_lib.MP3_FRAME
# Redraws (another crop, maybe another file) before giving up on silence or read errors.
MAX_ATTEMPTS = 16
_CACHE_VERSION = "encoded-v1"
# Open memmaps kept per process; bounded so a large corpus cannot exhaust file handles.
_OPEN_MEMMAPS = 128


@dataclass(frozen=True)
class PairSettings:
    """How pairs are made (``mp3gan.data.loader.pair_settings`` reads them from a config)."""

    sample_rate: int = 44100
    crop_samples: int = 32768
    degradations: tuple[str, ...] = DEFAULT_DEGRADATIONS
    encode_margin: int = DEFAULT_MARGIN
    gain_db: tuple[float, float] = (-12.0, 6.0)
    silence_db: float = -50.0
    cache_dir: str = ""

    def __post_init__(self):
        if self.crop_samples <= 0 or self.encode_margin < 0:
            raise ValueError("crop_samples must be > 0 and encode_margin >= 0")
        if not self.degradations:
            raise ValueError("degradations is empty: list at least one spec, e.g. 'mp3:64'")
        for spec in self.degradations:
            degrade_lib.parse_degradation(spec)  # fail at configuration, not in a worker


@dataclass
class Pair:
    """An aligned training pair, both ``[channels, samples]`` float32 at the model rate."""

    reference: np.ndarray
    degraded: np.ndarray
    degradation: str
    path: str
    start: int
    gain_db: float = 0.0


def level_db(audio: np.ndarray) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    power = float(np.mean(np.square(audio, dtype=np.float64)))
    return 10 * np.log10(power) if power > 0 else -np.inf


def model_length(recording: Recording, sample_rate: int) -> int:
    """Samples of ``recording`` at the model rate (the length resample() returns)."""
    return -(-recording.frames * sample_rate // recording.sample_rate)


def read_window(
    path: Path, recording: Recording, start: int, length: int, sample_rate: int
) -> np.ndarray:
    """Samples ``[start, start + length)`` of a file at the model rate, ``[C, length]``.

    Positions outside the file read as zeros (so windows may overhang the file's ends).
    Other rates are read with a little extra at each end and resampled; the resampling
    filter's own edge effects fall in those extras or in the codec margin.
    """
    sr_in = recording.sample_rate
    if sr_in == sample_rate:
        lo, hi = start, start + length
    else:
        # Model sample k sits at source position k * down / up. Starting the read on a
        # multiple of `down` keeps the window on the whole file's model-rate grid (no
        # fractional shift), so crops agree with a whole-file resample.
        g = gcd(sr_in, sample_rate)
        up, down = sample_rate // g, sr_in // g
        pad = 64  # source samples: more than the Kaiser resampling filter's half-length
        lo = (start * down // up - pad) // down * down
        hi = -(-(start + length) * down // up) + pad
        skip = start - lo // down * up
    out = np.zeros((recording.channels, hi - lo), np.float32)
    a, b = max(lo, 0), min(hi, recording.frames)
    if b > a:
        try:
            with sf.SoundFile(str(path)) as f:
                f.seek(a)
                data = f.read(b - a, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            raise audio_lib.AudioError(f"{path}: not readable audio ({e})") from None
        out[:, a - lo : a - lo + data.shape[0]] = data.T
    audio_lib.check_finite(out, str(path))
    if sr_in == sample_rate:
        return out
    return audio_lib.resample(out, sr_in, sample_rate)[:, skip : skip + length]


def degrade_crop(window: np.ndarray, degradation, sample_rate: int, margin: int) -> np.ndarray:
    """Degrade a window and return its middle: the crop without the codec's edge effects."""
    degraded = degradation(window, sample_rate)
    return degraded[:, margin : window.shape[-1] - margin]


class _EncodedCache:
    """Whole-file degraded (float16) and resampled reference (float32) arrays on disk."""

    def __init__(self, cache_dir: str, settings: PairSettings):
        self.dir = Path(cache_dir).expanduser() / _CACHE_VERSION
        self.settings = settings
        self._open: OrderedDict[Path, np.ndarray] = OrderedDict()

    def _key(self, path: Path, recording: Recording, what: str) -> Path:
        s = self.settings
        ident = f"{path.resolve()}|{recording.size}|{recording.mtime_ns}|{what}|{s.sample_rate}"
        if what != "reference":
            ident += f"|margin={s.encode_margin}"
        digest = hashlib.sha1(ident.encode()).hexdigest()[:20]
        return self.dir / f"{Path(recording.path).stem[:40]}-{digest}.npy"

    def _memmap(self, file: Path) -> np.ndarray:
        if file in self._open:
            self._open.move_to_end(file)
            return self._open[file]
        array = np.load(file, mmap_mode="r")
        self._open[file] = array
        if len(self._open) > _OPEN_MEMMAPS:
            self._open.popitem(last=False)
        return array

    def _store(self, file: Path, array: np.ndarray) -> None:
        """Write atomically (workers may race to build the same file; the last rename wins)."""
        with atomic_path(file) as tmp, open(tmp, "wb") as f:
            np.save(f, array)

    def reference(self, path: Path, recording: Recording) -> np.ndarray:
        """The whole file at the model rate (only cached when the rates differ)."""
        file = self._key(path, recording, "reference")
        if not file.is_file():
            audio, sr = audio_lib.read_audio(path)
            self._store(file, audio_lib.resample(audio, sr, self.settings.sample_rate))
        return self._memmap(file)

    def degraded(self, path: Path, recording: Recording, degradation) -> np.ndarray:
        file = self._key(path, recording, degradation.name)
        if not file.is_file():
            s = self.settings
            if recording.sample_rate == s.sample_rate:
                audio, _ = audio_lib.read_audio(path)
            else:
                audio = np.asarray(self.reference(path, recording))
            # Over-full-scale sources (float WAV) are scaled down for the codec and back up.
            scale = max(1.0, float(np.abs(audio).max(initial=0.0)) / 0.99)
            padded = np.pad(audio / scale, ((0, 0), (s.encode_margin, s.encode_margin)))
            decoded = degrade_crop(padded, degradation, s.sample_rate, s.encode_margin) * scale
            self._store(file, decoded.astype(np.float16))
        return self._memmap(file)

    def __getstate__(self):
        # Memmaps do not travel to worker processes; each reopens what it needs.
        return {**self.__dict__, "_open": OrderedDict()}


@dataclass
class PairMaker:
    """Makes pairs from the recordings of one corpus split (or one process's shard).

    Picklable (grain sends it to worker processes). :meth:`random_pair` draws a file
    (weighted by duration, so every second of audio is equally likely), a crop, a
    degradation and a gain from ``rng``; :meth:`pair_at` makes one fixed pair.
    """

    root: Path
    recordings: Sequence[Recording]
    settings: PairSettings
    _degradations: list = field(init=False, repr=False)
    _cumulative_weights: np.ndarray = field(init=False, repr=False)
    _cache: _EncodedCache | None = field(init=False, repr=False)
    _warned: set = field(init=False, repr=False)

    def __post_init__(self):
        if not self.recordings:
            raise DataError(f"{self.root}: no recordings to make pairs from")
        self.root = Path(self.root)
        self._degradations = [degrade_lib.parse_degradation(s) for s in self.settings.degradations]
        durations = np.array([r.duration_s for r in self.recordings], np.float64)
        self._cumulative_weights = np.cumsum(durations) / durations.sum()
        cache_dir = self.settings.cache_dir
        self._cache = _EncodedCache(cache_dir, self.settings) if cache_dir else None
        self._warned = set()

    def _read(
        self, recording: Recording, start: int, length: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(reference crop, window)``; the window (crop plus margins) only without cache."""
        s = self.settings
        path = self.root / recording.path
        if self._cache is None:
            m = s.encode_margin
            window = read_window(path, recording, start - m, length + 2 * m, s.sample_rate)
            return window[:, m : m + length], window
        if recording.sample_rate == s.sample_rate:
            return read_window(path, recording, start, length, s.sample_rate), None
        return _slice(self._cache.reference(path, recording), start, length), None

    def _finish(
        self,
        recording: Recording,
        start: int,
        degradation,
        gain_db: float,
        reference: np.ndarray,
        window: np.ndarray | None,
    ) -> Pair:
        s = self.settings
        if window is None:  # cached: slice the whole-file decode, gain after the codec
            whole = self._cache.degraded(self.root / recording.path, recording, degradation)
            degraded = _slice(whole, start, reference.shape[-1])
            gain = _capped_gain(gain_db, reference)
            reference, degraded = reference * gain, degraded * gain
        else:  # on the fly: gain before the codec, degrade the window, keep its middle
            gain = _capped_gain(gain_db, window)
            degraded = degrade_crop(window * gain, degradation, s.sample_rate, s.encode_margin)
            reference = reference * gain
        return Pair(
            reference.astype(np.float32),
            degraded.astype(np.float32),
            degradation.name,
            recording.path,
            start,
            float(20 * np.log10(gain)),
        )

    def pair_at(
        self,
        recording: Recording,
        start: int,
        degradation,
        gain_db: float = 0.0,
        length: int | None = None,
    ) -> Pair:
        """The pair for the crop at ``start`` (model-rate samples) under ``degradation``
        (a spec string or a degradation); ``length`` defaults to ``crop_samples``."""
        if isinstance(degradation, str):
            degradation = degrade_lib.parse_degradation(degradation)
        length = self.settings.crop_samples if length is None else length
        return self._finish(
            recording, start, degradation, gain_db, *self._read(recording, start, length)
        )

    def fill_cache(self) -> int:
        """Degrade every (recording, degradation) into the cache now; returns how many.

        Optional: the cache also fills itself as crops are drawn. Filling it up front
        makes a long run's first epoch as fast as the later ones.
        """
        if self._cache is None:
            raise ValueError("fill_cache needs a cache_dir")
        for recording in self.recordings:
            for degradation in self._degradations:
                self._cache.degraded(self.root / recording.path, recording, degradation)
        return len(self.recordings) * len(self._degradations)

    def read_reference(self, recording: Recording, start: int, length: int) -> np.ndarray:
        """Just the reference crop (to test for silence before paying for a degradation)."""
        return self._read(recording, start, length)[0]

    def random_start(self, recording: Recording, rng: np.random.Generator, length: int) -> int:
        """A crop start anywhere in the file (0 when the file is shorter than the crop)."""
        last = max(model_length(recording, self.settings.sample_rate) - length, 0)
        return int(rng.integers(0, last + 1))

    def random_pair(self, rng: np.random.Generator) -> Pair:
        """A random pair; silent crops and unreadable files are redrawn (bounded)."""
        s = self.settings
        errors, silent = [], None
        for _ in range(MAX_ATTEMPTS):
            index = int(np.searchsorted(self._cumulative_weights, rng.random(), side="right"))
            recording = self.recordings[min(index, len(self.recordings) - 1)]
            start = self.random_start(recording, rng, s.crop_samples)
            degradation = self._degradations[int(rng.integers(len(self._degradations)))]
            gain_db = float(rng.uniform(*s.gain_db))
            try:
                reference, window = self._read(recording, start, s.crop_samples)
                if level_db(reference) < s.silence_db:
                    silent = (recording, start, degradation, gain_db, reference, window)
                    continue
                return self._finish(recording, start, degradation, gain_db, reference, window)
            except (audio_lib.AudioError, audio_lib.AlignmentError, OSError) as e:
                errors.append(str(e))
                if recording.path not in self._warned:  # once per file and process
                    self._warned.add(recording.path)
                    log.warning("skipping a crop of %s: %s", recording.path, e)
        if silent is not None:
            # A corpus of mostly quiet material: better a quiet crop than no batch at all.
            return self._finish(*silent)
        raise DataError(
            f"{self.root}: {MAX_ATTEMPTS} attempts to make a pair failed: {errors[-3:]}"
        )


def _slice(whole: np.ndarray, start: int, length: int) -> np.ndarray:
    """``whole[:, start:start + length]`` as float32, zero-filled past the end."""
    out = np.zeros((whole.shape[0], length), np.float32)
    part = whole[:, start : start + length]
    out[:, : part.shape[1]] = part
    return out


def _capped_gain(gain_db: float, audio: np.ndarray) -> float:
    """``gain_db`` as a factor, lowered if needed so the peak stays below full scale."""
    peak = float(np.abs(audio).max(initial=0.0))
    gain = 10 ** (gain_db / 20)
    return min(gain, 0.99 / peak) if peak > 0 else gain
