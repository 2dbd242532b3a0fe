"""Build mp3gan's training corpus: freely licensed, lossless, full-band audio from Debian.

Every source is a Debian package (or a few), so anyone can rebuild the same corpus, and
every file carries the licence read from its package's copyright file. Sources (the
registry, ``REGISTRY`` in :mod:`mp3gan.data.corpus.build`):

* ``sonic-pi``, ``hydrogen``, ``avldrums``: drum loops, one-shots and generated grooves
  (:mod:`mp3gan.data.corpus.drums`);
* ``songs``: multi-part pieces composed from seeds (:mod:`mp3gan.data.corpus.songs`) and
  rendered through lossless GM soundfonts; ``lmms``: the songs LMMS ships, rendered
  headless (:mod:`mp3gan.data.corpus.music`).

The rest: :mod:`~mp3gan.data.corpus.packages` (requirements, dpkg checks, install hints),
:mod:`~mp3gan.data.corpus.licences` (DEP-5), :mod:`~mp3gan.data.corpus.manifest`
(``manifest.jsonl``), :mod:`~mp3gan.data.corpus.midi` (MIDI files with ``mido``),
:mod:`~mp3gan.data.corpus.grooves` (drum grooves), :mod:`~mp3gan.data.corpus.render`
(fluidsynth, lmms), :mod:`~mp3gan.data.corpus.items` (making, measuring and recording
one file), :mod:`~mp3gan.data.corpus.build` (:func:`prepare_corpus`).

Every output is a 44.1 kHz 24-bit FLAC (channels as the source) with one line in
``manifest.jsonl`` (see docs/DATA.md).
"""

from mp3gan.data.corpus.build import GENERATED, REGISTRY, SOURCES, CorpusSummary, prepare_corpus
from mp3gan.data.corpus.drums import DEFAULT_GROOVE_MINUTES
from mp3gan.data.corpus.items import MIN_SOURCE_CUTOFF_HZ
from mp3gan.data.corpus.manifest import (
    EXCLUDED,
    KINDS,
    MANIFEST,
    CorpusError,
    ManifestEntry,
    read_manifest,
    write_manifest,
)
from mp3gan.data.corpus.music import DEFAULT_SONG_MINUTES
from mp3gan.data.corpus.packages import SystemPaths
from mp3gan.data.corpus.render import RenderError

__all__ = [
    "DEFAULT_GROOVE_MINUTES",
    "DEFAULT_SONG_MINUTES",
    "EXCLUDED",
    "MIN_SOURCE_CUTOFF_HZ",
    "GENERATED",
    "KINDS",
    "MANIFEST",
    "REGISTRY",
    "SOURCES",
    "CorpusError",
    "CorpusSummary",
    "ManifestEntry",
    "RenderError",
    "SystemPaths",
    "prepare_corpus",
    "read_manifest",
    "write_manifest",
]
