"""The corpus manifest: one JSON line per file with its licence, origin and kind.

``manifest.jsonl`` sits in the corpus root; :mod:`mp3gan.data.sources` reads its
``licence``, ``kind`` and ``source`` into each recording, and the loader can weight draws
by kind or source (``data.mix``). ``excluded.jsonl`` beside it lists what a build left
out and why. Both are written atomically; a manifest row without a licence is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mp3gan.data.sources import EXCLUDED_LIST, LICENCE_MANIFEST
from mp3gan.files import write_text_atomic

MANIFEST = LICENCE_MANIFEST
EXCLUDED = EXCLUDED_LIST
# What a file holds: a piece of music with pitched parts, drums or percussion alone
# (grooves, drum loops), or a single sound (a drum hit, a note).
KINDS = ("music", "drums", "one-shot")


class CorpusError(RuntimeError):
    """The corpus cannot be built: the message says why and what to install."""


@dataclass
class ManifestEntry:
    """One corpus file and everything needed to use and attribute it."""

    path: str  # relative to the corpus root
    source: str  # the corpus source that made it (sonic-pi, hydrogen, songs, lmms, ...)
    kind: str  # one of KINDS
    duration_s: float
    sample_rate: int
    channels: int
    licence: str
    licence_source: str  # the file (and stanza) the licence was read from
    copyright: str  # attribution, required by CC-BY(-SA)
    origin: str  # original file, or how it was generated
    seed: int | None  # the generator's seed, for generated material
    project: str | None  # the song project it was rendered from, for rendered songs
    cutoff_hz: float  # measured by mp3gan.metrics.cutoff_frequency
    full_band: bool
    extra: dict[str, Any] = field(default_factory=dict)


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write one JSON object per line, atomically."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    write_text_atomic(Path(path), text)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file ([] when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _check(entry: ManifestEntry, where: str) -> None:
    if not (entry.licence and entry.licence_source):
        raise CorpusError(f"{where}: {entry.path} has no licence recorded")
    if entry.kind not in KINDS:
        raise CorpusError(f"{where}: {entry.path} has kind {entry.kind!r}, not one of {KINDS}")


def write_manifest(path: str | os.PathLike, entries: Iterable[ManifestEntry]) -> None:
    """Write ``manifest.jsonl`` atomically; refuses entries without a licence or kind."""
    entries = list(entries)
    for e in entries:
        _check(e, "refusing to write the manifest")
    write_jsonl(path, (asdict(e) for e in entries))


def read_manifest(path: str | os.PathLike) -> list[ManifestEntry]:
    """Read ``manifest.jsonl``; every entry must carry a licence and a kind.

    Rows from before ``kind`` and ``project`` existed read with ``kind=''`` and
    ``project=None`` (a rebuild fills them in); they fail the kind check only on writing.
    """
    names = {f.name for f in fields(ManifestEntry)}
    entries = []
    for row in read_jsonl(path):
        row = {"kind": "", "project": None, **{k: v for k, v in row.items() if k in names}}
        entry = ManifestEntry(**row)
        if not (entry.licence and entry.licence_source):
            raise CorpusError(f"{path}: entry {entry.path} has no licence")
        entries.append(entry)
    return entries
