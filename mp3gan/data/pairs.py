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

Attacks after silence: a share ``lead_in`` of random crops open with silence: they
start up to half a crop before their file's first sample (uniformly), the part before
the file being digital silence, encoded as such, so the codec's pre-echo ahead of the
first attack is in the pair. Songs start after silence and one-shots are played after
it, and evaluation cuts every file's first clip 0.1 s before its first sound; without
this almost every one-shot crop began on its attack, and the model, never having seen
an attack after silence, put 10-20 dB more energy than the MP3 into the milliseconds
before one (its 11.6 ms frames leak the attack's correction ahead of it). These crops
are encoded on the fly: the cache keeps only the file's own span.

Prepared pair cache (``cache_dir``, :mod:`mp3gan.data.pair_cache`, built by
:func:`build_pair_cache`): the whole file degraded once per degradation. A crop then
reads its reference from the file as above and slices its degraded side from the cache;
the gain (capped on the same window as without the cache, so references are identical)
is applied after the codec, since the cache cannot know it (MP3 is close to
scale-invariant; the pair still agrees exactly in gain). A (file, degradation) missing
from the cache is made on the fly, so a partial cache only costs speed.

Which file a crop comes from: by default every second of audio is equally likely.
``mix`` (``data.mix``) shares the draws between groups instead: ``("music=0.6",
"drums=0.25", "one-shot=0.15")`` gives each group that share, each file of a group its
share by duration. A file belongs to the first entry naming its manifest ``source`` or
``kind``; files no entry names are not drawn. When no file belongs to any entry (a
corpus without a manifest, like the embedded one) the draw is by duration.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from mp3gan import audio as audio_lib
from mp3gan import degrade as degrade_lib
from mp3gan.data.pair_cache import PairCache
from mp3gan.data.sources import DataError, Recording, scan_folder

log = logging.getLogger(__name__)

# MP3 at 32-192 kbps CBR and two VBR qualities (about V4 and V7), and 320 kbps: an MP3
# with little to repair (a cut near 20 kHz, faint noise), an experiment toward a model
# that leaves good audio alone. The shipped model, trained without it, moves lossless
# input a median 29 dB SI-SDR from itself and costs test one-shots 2.8 dB at 128 kbps.
# Runs 6 and 7 (docs/results/run5.md) trained with it, changing other settings too,
# and dulled lead-ins; not validated.
DEFAULT_DEGRADATIONS = (
    "mp3:32",
    "mp3:48",
    "mp3:64",
    "mp3:96",
    "mp3:128",
    "mp3:192",
    "mp3:320",
    "vbr:0.4",
    "vbr:0.7",
)
# Share of draws per manifest kind (data.mix): music is the bulk, as in people's MP3s;
# drum-only material keeps a fixed share however many grooves a corpus holds.
DEFAULT_MIX = ("music=0.75", "drums=0.15", "one-shot=0.1")
# Four MP3 frames: covers the 1105-sample codec delay plus the MDCT overlap, and leaves a
# few frames for the encoder's bit reservoir and psychoacoustic state to settle.
DEFAULT_MARGIN = 4 * audio_lib.MP3_FRAME
# Redraws (another crop, maybe another file) before giving up on silence or read errors.
MAX_ATTEMPTS = 16


@dataclass(frozen=True)
class PairSettings:
    """How pairs are made (``mp3gan.data.loader.pair_settings`` reads them from a config)."""

    sample_rate: int = audio_lib.MODEL_SAMPLE_RATE
    crop_samples: int = 32768
    degradations: tuple[str, ...] = DEFAULT_DEGRADATIONS
    encode_margin: int = DEFAULT_MARGIN
    gain_db: tuple[float, float] = (-12.0, 6.0)
    silence_db: float = -50.0
    cache_dir: str = ""
    mix: tuple[str, ...] = DEFAULT_MIX
    lead_in: float = 0.15

    def __post_init__(self):
        if self.crop_samples <= 0 or self.encode_margin < 0:
            raise ValueError("crop_samples must be > 0 and encode_margin >= 0")
        if not 0.0 <= self.lead_in <= 1.0:
            raise ValueError(f"lead_in must be a share of crops in [0, 1], got {self.lead_in}")
        if not self.degradations:
            raise ValueError("degradations is empty: list at least one spec, e.g. 'mp3:64'")
        for spec in self.degradations:
            degrade_lib.parse_degradation(spec)  # fail at configuration, not in a worker
        parse_mix(self.mix)


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


def parse_mix(mix: Sequence[str]) -> list[tuple[str, float]]:
    """``("music=0.6", ...)`` as ``[("music", 0.6), ...]``; ValueError on a bad entry."""
    parsed = []
    for entry in mix:
        name, _, share = str(entry).partition("=")
        try:
            value = float(share)
        except ValueError:
            value = -1.0
        if not name.strip() or value <= 0:
            raise ValueError(
                f"bad data.mix entry {entry!r}: use NAME=SHARE with a share > 0, where NAME "
                "is a manifest kind or source (e.g. music=0.6)"
            )
        parsed.append((name.strip(), value))
    return parsed


def mix_weights(recordings: Sequence[Recording], mix: Sequence[str]) -> np.ndarray:
    """Each recording's probability of being drawn (see the module docstring)."""
    durations = np.array([r.duration_s for r in recordings], np.float64)
    entries = parse_mix(mix)
    names = [name for name, _ in entries]
    group = np.array(
        [next((i for i, n in enumerate(names) if n in (r.source, r.kind)), -1) for r in recordings]
    )
    present = sorted(set(group.tolist()) - {-1})
    if not present:
        if entries:
            log.info("data.mix: no file has a source or kind named %s; drawing by duration",
                     ", ".join(names))  # fmt: skip
        return durations / durations.sum()
    total = sum(entries[i][1] for i in present)
    weights = np.zeros(len(recordings))
    for i in present:
        members = group == i
        weights[members] = entries[i][1] / total * durations[members] / durations[members].sum()
    if (group == -1).any():
        log.warning("data.mix names no group for %d of %d files (e.g. %s): they are not drawn",
                    int((group == -1).sum()), len(recordings),
                    recordings[int(np.argmax(group == -1))].path)  # fmt: skip
    return weights


@dataclass
class PairMaker:
    """Makes pairs from the recordings of one corpus split (or one process's shard).

    Picklable (grain sends it to worker processes). :meth:`random_pair` draws a file
    (by :func:`mix_weights`), a crop, a degradation and a gain from ``rng``;
    :meth:`pair_at` makes one fixed pair.
    """

    root: Path
    recordings: Sequence[Recording]
    settings: PairSettings
    _degradations: list = field(init=False, repr=False)
    _cumulative_weights: np.ndarray = field(init=False, repr=False)
    _cache: PairCache | None = field(init=False, repr=False)
    _warned: set = field(init=False, repr=False)

    def __post_init__(self):
        if not self.recordings:
            raise DataError(f"{self.root}: no recordings to make pairs from")
        self.root = Path(self.root)
        s = self.settings
        self._degradations = [degrade_lib.parse_degradation(d) for d in s.degradations]
        self._cumulative_weights = np.cumsum(mix_weights(self.recordings, s.mix))
        self._cumulative_weights /= self._cumulative_weights[-1]
        self._cache = (
            PairCache(s.cache_dir, s.sample_rate, s.encode_margin) if s.cache_dir else None
        )
        self._warned = set()

    def cache_coverage(self) -> tuple[int, int]:
        """(cached, all) (recording, degradation) combinations; (0, n) without a cache."""
        total = len(self.recordings) * len(self._degradations)
        if self._cache is None:
            return 0, total
        cached = sum(
            self._cache.has(r, d.name) for r in self.recordings for d in self._degradations
        )
        return cached, total

    def _read(
        self, recording: Recording, start: int, length: int, degradation=None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(reference crop, window, whole)``: the window is the crop plus the codec margin
        on each side; ``whole`` the cached whole-file decode (None: degrade the window)."""
        s, m = self.settings, self.settings.encode_margin
        whole = None
        # Before the file's start the cache has nothing (it keeps the file's span only).
        if self._cache is not None and degradation is not None and start >= 0:
            whole = self._cache.degraded(recording, degradation.name)
            if whole is None and "<cache>" not in self._warned:  # once per process
                self._warned.add("<cache>")
                log.warning("pair cache %s lacks %s of %s (maybe more): such crops are encoded "
                            "on the fly; complete it with launch/prepare_data.py --pair-cache",
                            self._cache.dir, degradation.name, recording.path)  # fmt: skip
        path = self.root / recording.path
        window = read_window(path, recording, start - m, length + 2 * m, s.sample_rate)
        return window[:, m : m + length], window, whole

    def _finish(self, recording, start, degradation, gain_db, reference, window, whole) -> Pair:
        s = self.settings
        gain = _capped_gain(gain_db, window)
        if whole is None:  # on the fly: gain before the codec, degrade the window, its middle
            degraded = degrade_crop(window * gain, degradation, s.sample_rate, s.encode_margin)
        else:  # cached: a slice of the whole-file decode, gain after the codec
            degraded = _slice(whole, start, reference.shape[-1]) * gain
        return Pair(
            (reference * gain).astype(np.float32),
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
        parts = self._read(recording, start, length, degradation)
        return self._finish(recording, start, degradation, gain_db, *parts)

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
            # (No draw at all when off, so lead_in=0 keeps the streams of the code before it.)
            if s.lead_in > 0 and rng.random() < s.lead_in:  # the file's start, after silence
                start = -int(rng.integers(0, s.crop_samples // 2 + 1))
            else:
                start = self.random_start(recording, rng, s.crop_samples)
            degradation = self._degradations[int(rng.integers(len(self._degradations)))]
            gain_db = float(rng.uniform(*s.gain_db))
            try:
                parts = self._read(recording, start, s.crop_samples, degradation)
                if level_db(parts[0]) < s.silence_db:
                    silent = (recording, start, degradation, gain_db, *parts)
                    continue
                return self._finish(recording, start, degradation, gain_db, *parts)
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


@dataclass
class PairCacheSummary:
    """What :func:`build_pair_cache` did, per degradation."""

    dir: Path
    files: int
    minutes: float
    encoded: dict[str, int]  # degradation -> files encoded by this run
    seconds: dict[str, float]  # degradation -> seconds this run spent on it
    bytes: dict[str, int]  # degradation -> size of its cache folder
    failed: list[str]

    def report(self) -> str:
        lines = [f"pair cache: {self.dir}  ({self.files} files, {self.minutes:.1f} min of audio)"]
        for name, n in self.encoded.items():
            lines.append(f"  {name:10s} encoded {n:5d} files in {self.seconds[name]:7.0f} s, "
                         f"{self.bytes[name] / 1e9:6.2f} GB on disk")  # fmt: skip
        lines += [f"  failed     {x}" for x in self.failed]
        return "\n".join(lines)


def build_pair_cache(
    corpus: str | Path,
    cache_dir: str | Path,
    degradations: Sequence[str] = DEFAULT_DEGRADATIONS,
    settings: PairSettings | None = None,
    progress: bool = True,
) -> PairCacheSummary:
    """Encode every file of ``corpus`` once per degradation into ``cache_dir``.

    Degradation by degradation, in the order given (a stopped build leaves the first ones
    complete); files already cached are skipped, so it resumes. ``settings`` gives the
    model rate and codec margin (default: :class:`PairSettings`' defaults, the base
    config's). A file that cannot be encoded is reported by name and skipped.
    """
    settings = settings or PairSettings(degradations=tuple(degradations))
    degs = [degrade_lib.parse_degradation(d) for d in degradations]
    recordings = scan_folder(corpus)
    cache = PairCache(cache_dir, settings.sample_rate, settings.encode_margin)
    total_s = sum(r.duration_s for r in recordings)
    encoded, seconds, sizes, failed = {}, {}, {}, []
    for degradation in degs:
        start, n = time.perf_counter(), 0
        with tqdm(total=round(total_s), unit="s audio", desc=degradation.name,
                  disable=not progress) as bar:  # fmt: skip
            for r in recordings:
                try:
                    n += cache.build(Path(corpus), r, degradation)
                except (audio_lib.AudioError, audio_lib.AlignmentError, OSError) as e:
                    failed.append(f"{r.path} ({degradation.name}): {e}")
                    log.warning("pair cache: skipped %s under %s: %s", r.path, degradation.name, e)
                bar.update(round(r.duration_s))
        encoded[degradation.name], seconds[degradation.name] = n, time.perf_counter() - start
        folder = cache.path(recordings[0], degradation.name).parent
        sizes[degradation.name] = sum(f.stat().st_size for f in folder.glob("*.npy"))
        print(f"pair cache: {degradation.name} complete ({n} files encoded now, "
              f"{seconds[degradation.name]:.0f} s, {sizes[degradation.name] / 1e9:.2f} GB)",
              file=sys.stderr, flush=True)  # fmt: skip
    return PairCacheSummary(cache.dir, len(recordings), total_s / 60, encoded, seconds, sizes,
                            failed)  # fmt: skip


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
