"""The prepared pair cache: every file degraded once per degradation, whole, on disk.

MP3 encoding is the expensive half of a training pair (tens of milliseconds per crop).
The cache does it once per (file, degradation), over the whole file, so the loader only
reads and crops. :func:`encode_whole` pads the file with ``encode_margin`` zeros at both
ends (so its own edges are codec-clean, like a crop's), runs the degradation (for MP3 the
one verified round trip, :func:`mp3gan.audio.mp3_roundtrip`: sample-aligned, lag 0 and
polarity + checked) and keeps the middle.

Storage: one float16 ``.npy`` per (file, degradation), ``[channels, samples]``, read as a
memory map. Chosen over FLAC because a crop is then a slice of a mapped file: no decoder,
no seek tables, and the operating system's page cache shares the pages between loader
workers and across runs. float16 keeps 11 significant bits at every level (about -72 dB
relative per sample, floating, so quiet passages keep their precision), far below any
MP3 error we train on, at half the size of float32; 16-bit FLAC would put a fixed floor
at -96 dBFS under quiet passages, and 24-bit FLAC barely compresses decoded codec noise.
Cost: 5.3 MB per channel-minute per degradation.

Layout: ``<cache_dir>/pairs-v2/<degradation>/<stem>-<key>.npy``, the key a hash of the
file's corpus-relative path, size and mtime, the model rate and the margin, so a changed
file is never served stale, and a corpus copied with its mtimes (``cp -a``) keeps its
cache. Files at another rate are resampled whole before encoding (their reference
crops are still read from the file, as without the cache). Every file is written
atomically: a reader sees a whole file or none.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np

from mp3gan import audio as audio_lib
from mp3gan.data.sources import Recording
from mp3gan.files import atomic_path

CACHE_VERSION = "pairs-v2"
# Open memmaps kept per process; bounded so a large corpus cannot exhaust file handles.
_OPEN_MEMMAPS = 256


def encode_whole(audio: np.ndarray, degradation, sample_rate: int, margin: int) -> np.ndarray:
    """A whole file degraded: padded with ``margin`` zeros each side, degraded, the middle.

    Over-full-scale sources (float WAV) are scaled down for the codec and back up.
    """
    scale = max(1.0, float(np.abs(audio).max(initial=0.0)) / 0.99)
    padded = np.pad(audio / scale, ((0, 0), (margin, margin)))
    degraded = degradation(padded, sample_rate)
    return degraded[:, margin : padded.shape[-1] - margin] * scale


def _folder(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name)


class PairCache:
    """Whole-file degraded audio (float16) on disk, one file per (recording, degradation)."""

    def __init__(self, cache_dir: str | Path, sample_rate: int, margin: int):
        self.dir = Path(cache_dir).expanduser() / CACHE_VERSION
        self.sample_rate = int(sample_rate)
        self.margin = int(margin)
        self._open: OrderedDict[Path, np.ndarray] = OrderedDict()

    def path(self, recording: Recording, degradation_name: str) -> Path:
        """Where ``recording`` degraded by ``degradation_name`` is kept."""
        ident = (f"{recording.path}|{recording.size}|{recording.mtime_ns}|{self.sample_rate}"
                 f"|margin={self.margin}")  # fmt: skip
        digest = hashlib.sha1(ident.encode()).hexdigest()[:20]
        stem = Path(recording.path).stem[:40]
        return self.dir / _folder(degradation_name) / f"{stem}-{digest}.npy"

    def _memmap(self, file: Path) -> np.ndarray | None:
        if file in self._open:
            self._open.move_to_end(file)
            return self._open[file]
        try:
            array = np.load(file, mmap_mode="r")
        except FileNotFoundError:
            return None
        self._open[file] = array
        if len(self._open) > _OPEN_MEMMAPS:
            self._open.popitem(last=False)
        return array

    def degraded(self, recording: Recording, degradation_name: str) -> np.ndarray | None:
        """The whole file degraded, ``[C, T]`` float16 memmap; None when not cached."""
        return self._memmap(self.path(recording, degradation_name))

    def has(self, recording: Recording, degradation_name: str) -> bool:
        return self.path(recording, degradation_name).is_file()

    def build(self, root: Path, recording: Recording, degradation) -> bool:
        """Encode ``recording`` under ``degradation`` unless cached; True if encoded now."""
        file = self.path(recording, degradation.name)
        if file.is_file():
            return False
        audio, sr = audio_lib.read_audio(root / recording.path)
        audio = audio_lib.resample(audio, sr, self.sample_rate)
        degraded = encode_whole(audio, degradation, self.sample_rate, self.margin)
        with atomic_path(file) as tmp, open(tmp, "wb") as f:
            np.save(f, degraded.astype(np.float16))
        return True

    def __getstate__(self):
        # Memmaps do not travel to worker processes; each reopens what it needs.
        return {**self.__dict__, "_open": OrderedDict()}
