"""The corpus sources, by name: adding a source is one entry here.

Each entry is a :class:`mp3gan.data.corpus.items.Source` (its packages, a file count
for the progress bar, and a build function); :func:`mp3gan.data.corpus.build.prepare_corpus`
runs the ones asked for, in this order.
"""

from __future__ import annotations

from mp3gan.data.corpus.drums import AVLDRUMS, HYDROGEN, SONIC_PI
from mp3gan.data.corpus.items import Source
from mp3gan.data.corpus.music import LMMS, SONGS

REGISTRY: dict[str, Source] = {s.name: s for s in (SONIC_PI, HYDROGEN, AVLDRUMS, SONGS, LMMS)}
SOURCES = tuple(REGISTRY)
# Sources that generate as many minutes as asked (``--<name>-minutes``).
GENERATED = ("avldrums", "songs")
