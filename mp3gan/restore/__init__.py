"""Restoring real audio after training: the API, chunked streaming and file I/O.

- :func:`restore` / :class:`Restorer` (``restorer.py``) restore an array ``[T]`` or
  ``[C, T]`` at any sample rate and give back the same shape, rate and channel count. A
  ``Restorer`` holds one jitted generator call, so many files share one compile.
- ``streaming.py``: the numpy building blocks :meth:`Restorer.stream` is made of (a
  streaming resampler, the chunker, the row batcher, the crossfading stitcher). Peak
  memory does not grow with the stream's length.
- ``fileio.py``: an atomic block writer (a hidden temporary file renamed at the end) and
  the FLAC safety limiter; files are read by :class:`mp3gan.audio.AudioReader`.
- ``batch.py``: :func:`restore_file` (one file, streamed) and the many-file loop of the
  command line (finding inputs, planning outputs, one line per file).

Exporting the generator for use without mp3gan lives in :mod:`mp3gan.export`; its names
are also reachable from here for older callers.
"""

from __future__ import annotations

from typing import Any

from mp3gan.audio import READ_BLOCK
from mp3gan.restore.batch import (
    FileResult,
    find_inputs,
    plan_outputs,
    restore_file,
    restore_files,
    same_file,
)
from mp3gan.restore.fileio import (
    FLAC_MAX_CHANNELS,
    LIMITER_CEILING,
    LIMITER_SECONDS,
    PeakLimiter,
)
from mp3gan.restore.restorer import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_LENGTH,
    DEFAULT_CROSSFADE,
    MODEL_SAMPLE_RATE,
    SILENCE_GATE,
    Restorer,
    _gated,
    generator_margin,
    restore,
    untrained_generator,
)
from mp3gan.restore.streaming import Chunker, Stitcher, StreamResampler

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CHUNK_LENGTH",
    "DEFAULT_CROSSFADE",
    "EXPORT_PLATFORMS",
    "FLAC_MAX_CHANNELS",
    "LIMITER_CEILING",
    "LIMITER_SECONDS",
    "MODEL_SAMPLE_RATE",
    "READ_BLOCK",
    "SILENCE_GATE",
    "Chunker",
    "FileResult",
    "PeakLimiter",
    "Restorer",
    "Stitcher",
    "StreamResampler",
    "_gated",
    "export_generator",
    "export_to_file",
    "find_inputs",
    "generator_margin",
    "plan_outputs",
    "restore",
    "restore_file",
    "restore_files",
    "same_file",
    "untrained_generator",
]

_EXPORT_NAMES = ("EXPORT_PLATFORMS", "export_generator", "export_to_file")


def __getattr__(name: str) -> Any:
    # mp3gan.export imports this package; importing it lazily keeps the two acyclic.
    if name in _EXPORT_NAMES:
        from mp3gan import export

        return getattr(export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
