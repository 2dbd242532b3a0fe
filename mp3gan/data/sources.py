"""Lossless corpora on disk: folder scan -> manifest, split by recording, shard by process.

A corpus is any folder (searched recursively) of FLAC, WAV or AIFF files at any sample
rate, mono or stereo. :func:`scan_folder` indexes it into a list of :class:`Recording`
(path relative to the root, duration, rate, channels, frames, licence where known).
Probing a file reads its header and its first and last frames, so truncated files are
caught here, once, rather than in a data-loader worker hours into a run.

The index is cached as JSONL in the user's cache folder, not next to the data (corpora
often live on read-only or shared disks): ``<cache home>/index/<folder>-<hash>.jsonl``
where the cache home is ``$MP3GAN_CACHE_HOME``, else ``$XDG_CACHE_HOME/mp3gan``, else
``~/.cache/mp3gan``. A rescan re-probes only files whose size or mtime changed.

Files that cannot be used are reported by name (a logged warning) and skipped: unreadable
or corrupt audio, more than two channels, lossy formats (they would teach the model to
reproduce codec artefacts) and non-audio files. A folder with nothing usable raises
:class:`DataError` naming the folder.

If the folder holds a ``manifest.jsonl`` whose lines carry ``path`` and ``licence`` (the
format ``mp3gan.data.corpus`` writes), the licence, and the ``kind`` and ``source`` where
given, are carried into each recording (the loader's ``data.mix`` draws by them).

Splits are by recording, from a stable hash of the relative path: one file never feeds
two splits, and adding files never moves the others (see :func:`split_recordings`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from mp3gan import audio as audio_lib
from mp3gan.files import write_text_atomic

log = logging.getLogger(__name__)

LOSSLESS_EXTENSIONS = (".flac", ".wav", ".wave", ".aif", ".aiff", ".aifc")
LOSSY_EXTENSIONS = (".mp3", ".mp2", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma")
# The licence manifest a corpus may carry in its root (written by mp3gan.data.corpus),
# and prepare's list of what it left out: corpus metadata, not stray files to warn about.
LICENCE_MANIFEST = "manifest.jsonl"
EXCLUDED_LIST = "excluded.jsonl"
SPLITS = ("train", "validation", "test")
# Bump when the index format or the probing rules change, so stale indexes are rebuilt.
INDEX_VERSION = 1
# Frames read at each end of a file when probing it.
_PROBE_FRAMES = 2048
# How many names a summary warning lists before "and N more".
_NAMES_SHOWN = 10


class DataError(ValueError):
    """A corpus cannot be used: the message names the folder or file and the problem."""


@dataclass(frozen=True)
class Recording:
    """One lossless file of a corpus. ``path`` is relative to the corpus root (POSIX)."""

    path: str
    duration_s: float
    sample_rate: int
    channels: int
    frames: int
    licence: str | None = None
    size: int = 0
    mtime_ns: int = 0
    kind: str | None = None  # from the corpus manifest: music, drums, one-shot
    source: str | None = None  # from the corpus manifest: the source that made it

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> Recording:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def cache_home() -> Path:
    """The folder for mp3gan's caches (index files, the embedded corpus, encodes)."""
    if os.environ.get("MP3GAN_CACHE_HOME"):
        return Path(os.environ["MP3GAN_CACHE_HOME"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "mp3gan"
    return Path.home() / ".cache" / "mp3gan"


def index_path(root: str | os.PathLike) -> Path:
    """Where the cached index of ``root`` lives (one file per absolute folder path)."""
    root = Path(root).expanduser().resolve()
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:12]
    return cache_home() / "index" / f"{root.name or 'root'}-{digest}.jsonl"


def _names(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:_NAMES_SHOWN])
    more = len(paths) - _NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _read_manifest(root: Path) -> dict[str, dict[str, str | None]]:
    """``path -> {licence, kind, source}`` from the corpus's own manifest.jsonl, if any."""
    manifest = root / LICENCE_MANIFEST
    if not manifest.is_file():
        return {}
    known = {}
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            licence = entry.get("licence", entry.get("license"))
            known[Path(entry["path"]).as_posix()] = {
                "licence": None if licence is None else str(licence),
                "kind": entry.get("kind") or None,
                "source": entry.get("source") or None,
            }
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            log.warning("%s line %d: not a JSON object with a 'path'; ignored", manifest, n)
    return known


def probe(path: Path, relpath: str, licence: str | None = None) -> Recording:
    """Index one file: header plus a read of its first and last frames.

    Raises DataError naming the file when it is not usable audio.
    """
    try:
        info = sf.info(str(path))
        # Before anything is allocated for what the header claims.
        audio_lib.check_layout(str(path), int(info.samplerate), int(info.channels))
        if info.frames <= 0:
            raise DataError(f"{path}: no audio samples")
        if not 1 <= info.channels <= 2:
            raise DataError(f"{path}: {info.channels} channels (mono or stereo only)")
        # Decoding both ends catches truncated or corrupt streams whose header is intact.
        with sf.SoundFile(str(path)) as f:
            head = f.read(min(_PROBE_FRAMES, info.frames), dtype="float32")
            f.seek(max(0, info.frames - _PROBE_FRAMES))
            tail = f.read(dtype="float32")
        if len(tail) == 0 or not (np.isfinite(head).all() and np.isfinite(tail).all()):
            raise DataError(f"{path}: truncated stream or NaN/Inf samples")
    except DataError:
        raise
    except audio_lib.AudioError as e:
        raise DataError(str(e)) from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise DataError(f"{path}: not readable audio ({e})") from None
    stat = path.stat()
    return Recording(
        path=relpath,
        duration_s=round(info.frames / info.samplerate, 6),
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        licence=licence,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
    )


def _load_index(index_file: Path) -> dict[str, Recording]:
    if not index_file.is_file():
        return {}
    try:
        lines = index_file.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0]) if lines else {}
        if header.get("index_version") != INDEX_VERSION:
            return {}
        recordings = [Recording.from_dict(json.loads(line)) for line in lines[1:] if line]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError):
        log.warning("%s: unreadable index cache; rebuilding it", index_file)
        return {}
    return {r.path: r for r in recordings}


def _save_index(index_file: Path, root: Path, recordings: Iterable[Recording]) -> None:
    """Write the index atomically; a read-only cache folder only costs a rescan next time."""
    header = json.dumps({"index_version": INDEX_VERSION, "root": str(root)})
    text = "\n".join([header, *(r.to_json() for r in recordings)]) + "\n"
    try:
        write_text_atomic(index_file, text)
    except OSError as e:
        log.warning("could not write the index cache %s (%s); continuing without it", index_file, e)


def scan_folder(
    root: str | os.PathLike, index_file: str | os.PathLike | None = None
) -> list[Recording]:
    """Index every usable lossless file under ``root``, sorted by relative path.

    Uses and refreshes the cached index (``index_file``, default :func:`index_path`).
    Unusable files are logged by name and skipped; raises DataError when the folder is
    missing or holds no usable audio.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (data.path must be a folder of FLAC/WAV/AIFF)")
    index_file = Path(index_file) if index_file is not None else index_path(root)
    cached = _load_index(index_file)
    manifest = _read_manifest(root)

    recordings, lossy, other, bad = [], [], [], []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        # Hidden folders and files (.git, half-written .part files) are not corpus content.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            relpath = path.relative_to(root).as_posix()
            suffix = path.suffix.lower()
            if name.startswith(".") or relpath in (LICENCE_MANIFEST, EXCLUDED_LIST):
                continue
            if suffix in LOSSY_EXTENSIONS:
                lossy.append(relpath)
                continue
            if suffix not in LOSSLESS_EXTENSIONS:
                other.append(relpath)
                continue
            meta = manifest.get(relpath, {"licence": None, "kind": None, "source": None})
            try:
                stat = path.stat()
                hit = cached.get(relpath)
                if hit and (hit.size, hit.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                    recordings.append(dataclasses.replace(hit, **meta))
                else:
                    recordings.append(dataclasses.replace(probe(path, relpath), **meta))
            except (DataError, OSError) as e:
                bad.append(relpath)
                log.warning("skipping %s: %s", relpath, str(e).removeprefix(f"{path}: "))

    if lossy:
        log.warning(
            "skipping %d lossy file(s) under %s (not usable as references): %s",
            len(lossy),
            root,
            _names(lossy),
        )
    if other:
        log.warning("ignoring %d non-audio file(s) under %s: %s", len(other), root, _names(other))
    if not recordings:
        raise DataError(
            f"{root}: no usable lossless audio (FLAC/WAV/AIFF, mono or stereo) found; "
            f"{len(bad)} unreadable, {len(lossy)} lossy, {len(other)} other files skipped"
        )
    if {r.path: r for r in recordings} != cached:
        _save_index(index_file, root, recordings)
    return recordings


def _unit_hash(relpath: str) -> float:
    """A stable number in [0, 1) from a relative path (same on every machine and run)."""
    return int(hashlib.sha256(relpath.encode()).hexdigest()[:15], 16) / 16**15


def split_of(relpath: str, validation_fraction: float, test_fraction: float) -> str:
    """The split a path belongs to by its hash alone: validation, test, or train."""
    u = _unit_hash(relpath)
    if u < validation_fraction:
        return "validation"
    if u < validation_fraction + test_fraction:
        return "test"
    return "train"


def split_recordings(
    recordings: Sequence[Recording],
    validation_fraction: float = 0.05,
    test_fraction: float = 0.05,
) -> dict[str, list[Recording]]:
    """Split by recording into ``{"train", "validation", "test"}`` lists, sorted by path.

    Each file goes where the hash of its relative path falls, so the split is the same on
    every run and adding files never moves the others. With 3 or more files every split
    gets at least one file: an empty held-out split takes the file of the largest split
    whose hash lies nearest its interval (only small corpora ever need this, and for them
    adding files can move these borrowed files). With fewer than 3 files everything is
    training data and the held-out splits are empty.
    """
    if not (
        0 <= validation_fraction and 0 <= test_fraction and validation_fraction + test_fraction < 1
    ):
        raise ValueError(
            f"split fractions must be >= 0 and sum below 1, got validation={validation_fraction}, "
            f"test={test_fraction}"
        )
    ordered = sorted(recordings, key=lambda r: r.path)
    if len(ordered) < 3:
        if ordered:
            log.warning(
                "only %d recording(s): all used for training, no validation/test split",
                len(ordered),
            )
        return {"train": list(ordered), "validation": [], "test": []}
    splits: dict[str, list[Recording]] = {name: [] for name in SPLITS}
    for r in ordered:
        splits[split_of(r.path, validation_fraction, test_fraction)].append(r)
    intervals = {
        "validation": (0.0, validation_fraction),
        "test": (validation_fraction, validation_fraction + test_fraction),
        "train": (validation_fraction + test_fraction, 1.0),
    }
    for name in ("validation", "test", "train"):
        if splits[name]:
            continue
        lo, hi = intervals[name]
        donor = max(SPLITS, key=lambda s: len(splits[s]))
        moved = min(splits[donor], key=lambda r: abs(_unit_hash(r.path) - (lo + hi) / 2))
        splits[donor].remove(moved)
        splits[name].append(moved)
    return splits


def shard_for_process(
    recordings: Sequence[Recording], process_index: int, process_count: int
) -> list[Recording]:
    """The recordings one training process reads: every ``process_count``-th by path.

    Processes read disjoint files, so no recording is seen twice per step across hosts.
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    ordered = sorted(recordings, key=lambda r: r.path)
    if len(ordered) < process_count:
        raise DataError(
            f"{len(ordered)} training recordings cannot be shared by {process_count} processes "
            "(each process needs at least one file)"
        )
    return ordered[process_index::process_count]
