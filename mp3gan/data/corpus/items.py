"""What a corpus source is, and how one of its files is made, measured and recorded.

A :class:`Source` is one entry of the registry (``REGISTRY`` in
:mod:`mp3gan.data.corpus.build`): its name, the Debian packages it needs, how many
files it will look at (for the progress bar) and a ``build`` function that hands
:class:`Item` s to :meth:`Run.emit` (or reports what it leaves out with
:meth:`Run.exclude`). ``emit`` does the rest the same way for
every source: skip a file an earlier run made from the same origin, otherwise make the
audio (copy, render), measure its cutoff, leave it out if it is silent or (where the item
asks) band-limited, write it atomically and record its manifest entry. An item whose
audio cannot be made (a render that fails, a file that cannot be read) is reported by
name and left out; the build goes on.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mp3gan.audio import MODEL_SAMPLE_RATE, AudioError, read_audio, resample, write_audio
from mp3gan.data.corpus.licences import Licence
from mp3gan.data.corpus.manifest import CorpusError, ManifestEntry
from mp3gan.data.corpus.packages import Requirement, SystemPaths
from mp3gan.metrics import cutoff_frequency

# A source file is kept as a reference only when its measured cutoff reaches this: above
# the ~16-17 kHz low-pass LAME applies at 128 kbps, so every degradation removes real
# content the model must restore. (Whether an *input* is already full band is
# metrics.FULL_BAND_FRACTION's one definition; this is an admission threshold.)
MIN_SOURCE_CUTOFF_HZ = 18000.0
AUDIO_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff")
# Keep a little headroom when a resampled one-shot overshoots full scale (FLAC cannot clip).
_MAX_PEAK = 0.999


@dataclass(frozen=True)
class Context:
    """What a build was asked for: where the packages are, seeds and generated minutes."""

    paths: SystemPaths
    seed: int = 0
    minutes: dict[str, float] = field(default_factory=dict)  # source -> generated minutes
    min_cutoff_hz: float = MIN_SOURCE_CUTOFF_HZ


@dataclass
class Item:
    """One planned corpus file: where it goes, its licence, and how to make its audio."""

    rel: str  # path relative to the corpus root
    source: str
    kind: str  # manifest kind: music, drums or one-shot
    licence: Licence
    origin: str  # the original file, or how the audio is generated
    load: Callable[[], tuple[np.ndarray, dict[str, Any]]]  # audio [C, T] at 44.1 kHz, notes
    seed: int | None = None
    project: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    full_band_only: bool = False  # leave the file out when its cutoff is below the limit


@dataclass(frozen=True)
class Source:
    """One corpus source: a registry entry."""

    name: str
    summary: str  # one line for --help and the docs
    requirements: Callable[[SystemPaths], list[Requirement]]
    count: Callable[[Context], int]  # files it will consider (progress bar total)
    build: Callable[[Context, Run], None]


@dataclass
class Run:
    """State of one build: output root, earlier entries and exclusions, results, progress."""

    out: Path
    known: dict[str, ManifestEntry]
    min_cutoff_hz: float
    bar: Any  # a tqdm bar (or anything with update(n))
    known_excluded: dict[str, dict[str, Any]] = field(default_factory=dict)  # by original
    entries: list[ManifestEntry] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)

    def emit(self, item: Item) -> None:
        """Make ``item`` unless an earlier run did, measure it, and record its entry."""
        self.bar.update(1)
        target = self.out / item.rel
        prior = self.known.get(item.rel)
        if target.is_file() and prior is not None and prior.origin == item.origin:
            self.entries.append(self._entry(item, prior.cutoff_hz, prior.duration_s,
                                            prior.channels, prior.extra))  # fmt: skip
            return
        earlier = self.known_excluded.get(item.origin)
        if earlier is not None and not target.is_file() and not _failed(earlier):
            self.excluded.append(earlier)  # judged before (band-limited, silent): not again
            return
        # A file without an entry is from a killed run: measure what is there. Otherwise
        # the file is new, or was made from something else (another seed): (re)make it.
        fresh = not (target.is_file() and prior is None)
        try:
            audio, notes = item.load() if fresh else (read_audio(target)[0], {})
        except (CorpusError, AudioError, OSError) as e:
            # Not carried over like a judgement: a rerun tries again (renders can be flaky).
            self.exclude(item.source, item.origin, f"{_FAILED}{e}")
            return
        cutoff = measure_cutoff(audio)
        if cutoff is None:
            self.exclude(item.source, item.origin, "silent")
            return
        if item.full_band_only and cutoff < self.min_cutoff_hz:
            self.exclude(item.source, item.origin,
                         f"band-limited: cutoff {cutoff:.0f} Hz < {self.min_cutoff_hz:.0f} Hz",
                         cutoff_hz=round(cutoff, 1))  # fmt: skip
            target.unlink(missing_ok=True)
            return
        if fresh:
            write_audio(target, audio, MODEL_SAMPLE_RATE)
        duration = round(audio.shape[-1] / MODEL_SAMPLE_RATE, 4)
        self.entries.append(self._entry(item, round(cutoff, 1), duration, audio.shape[0], notes))

    def _entry(
        self, item: Item, cutoff: float, duration: float, channels: int, notes: dict[str, Any]
    ) -> ManifestEntry:
        lic = item.licence
        extra = {**notes, **item.extra}  # the item's own (newer) facts win over old notes
        extra.update({k: v for k, v in [("licence_note", lic.note), ("upstream", lic.upstream)]
                      if v})  # fmt: skip
        return ManifestEntry(
            path=item.rel,
            source=item.source,
            kind=item.kind,
            duration_s=duration,
            sample_rate=MODEL_SAMPLE_RATE,
            channels=channels,
            licence=lic.licence,
            licence_source=lic.source,
            copyright=lic.copyright,
            origin=item.origin,
            seed=item.seed,
            project=item.project,
            cutoff_hz=cutoff,
            full_band=cutoff >= self.min_cutoff_hz,
            extra=extra,
        )

    def exclude(self, source: str, original: str, reason: str, **info: Any) -> None:
        """Record that ``original`` is left out, and say so on stderr."""
        self.excluded.append({"source": source, "original": original, "reason": reason, **info})
        print(f"note: {source}: left out {original}: {reason}", file=sys.stderr)


_FAILED = "failed: "


def _failed(exclusion: dict[str, Any]) -> bool:
    return str(exclusion.get("reason", "")).startswith(_FAILED)


def slug(name: str) -> str:
    """A file-name-safe version of ``name``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "x"


def audio_files(folder: Path) -> list[Path]:
    """The lossless audio files directly in ``folder``, sorted."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)


def load_44k(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read ``path`` resampled to 44.1 kHz, and what was done to it (for the manifest)."""
    audio, sr = read_audio(path)
    notes: dict[str, Any] = {"source_sample_rate": sr}
    if sr != MODEL_SAMPLE_RATE:
        audio = resample(audio, sr, MODEL_SAMPLE_RATE)
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > 1.0:  # resampling can overshoot full scale, which FLAC cannot hold
        audio = audio * (_MAX_PEAK / peak)
        notes["gain_db"] = round(20 * np.log10(_MAX_PEAK / peak), 3)
    return audio.astype(np.float32), notes


def measure_cutoff(audio: np.ndarray) -> float | None:
    """``cutoff_frequency`` of 44.1 kHz audio; None for silence.

    The audio is zero-padded to a power-of-two length first: the metric's JAX Welch
    compiles once per input shape (~1 s each), which for ~1000 one-shots of distinct
    lengths would cost far more than the measuring. Zero segments scale the averaged
    spectrum uniformly, so the cliff it looks for is unchanged (checked on 80 files).
    """
    n = max(2048, 1 << int(np.ceil(np.log2(max(audio.shape[-1], 1)))))
    padded = np.pad(audio, ((0, 0), (0, n - audio.shape[-1])))
    cutoff = float(cutoff_frequency(padded, MODEL_SAMPLE_RATE))
    return None if np.isnan(cutoff) else cutoff
