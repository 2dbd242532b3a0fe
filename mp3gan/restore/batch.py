"""Restoring files: one file (:func:`restore_file`), and many (finding the inputs,
planning their outputs, the batch loop that reports one line per file)."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from math import ceil
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from mp3gan import audio
from mp3gan.audio import READ_EXTENSIONS, WRITE_FORMATS, AudioError, AudioReader
from mp3gan.restore.fileio import (
    FLAC_MAX_CHANNELS,
    LIMITER_SECONDS,
    AtomicWriter,
    PeakLimiter,
)
from mp3gan.restore.restorer import Restorer


@dataclasses.dataclass
class FileResult:
    """What :func:`restore_file` did: paths, duration, and any limiting applied."""

    src: Path
    dst: Path
    seconds: float
    limited_samples: int = 0
    limiter_db: float = 0.0


def _identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of an existing file: equal for hard links and symlinks to it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Inputs:
    """The inputs of a run, to tell whether an output path is one of them: by resolved
    path (symlinks, ``..``) and, for files that exist, by device and inode (hard links)."""

    def __init__(self, sources: Sequence[Path]):
        self.by_path = {Path(os.path.realpath(src)): src for src in sources}
        self.by_inode = {key: src for src in sources if (key := _identity(src))}

    def find(self, path: Path) -> Path | None:
        found = self.by_path.get(Path(os.path.realpath(path)))
        key = _identity(path)
        return found if found is not None or key is None else self.by_inode.get(key)


def same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same file (resolving links), existing or not."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def restore_file(
    restorer: Restorer,
    src: str | Path,
    dst: str | Path,
    *,
    block: int | None = None,
    progress: Any = None,
) -> FileResult:
    """Restore one audio file (WAV/FLAC/AIFF/MP3/OGG) into ``dst`` (.wav or .flac).

    Streams, ``block`` frames at a time (default :data:`mp3gan.audio.READ_BLOCK`): memory does
    not grow with the file's length. WAV output is float32 and keeps peaks above full
    scale; FLAC (24-bit) cannot, so it goes through :class:`PeakLimiter` and the result
    reports how much it limited. The output appears only when complete. ``progress`` (a
    tqdm bar) gets the estimated chunk count as its total and one update per chunk.
    Raises AudioError naming the file for every bad-input case.
    """
    src, dst = Path(src), Path(dst)
    if same_file(src, dst):
        raise AudioError(f"{src}: output path is the input file; refusing to overwrite it")
    reader = AudioReader(src, audio.READ_BLOCK if block is None else block)
    try:
        if dst.suffix.lower() == ".flac" and reader.channels > FLAC_MAX_CHANNELS:
            raise AudioError(
                f"{src}: {reader.channels} channels, but FLAC holds at most "
                f"{FLAC_MAX_CHANNELS} (write .wav)"
            )
        writer = AtomicWriter(dst, reader.sample_rate, reader.channels)
        try:
            limiter = None
            if dst.suffix.lower() == ".flac":
                window = round(LIMITER_SECONDS * reader.sample_rate)
                limiter = PeakLimiter(reader.channels, window)
            estimate = reader.frames * restorer.sample_rate / reader.sample_rate
            n_chunks = max(1, ceil((estimate - restorer.overlap) / restorer.hop))
            on_chunk = None
            if progress is not None:
                progress.reset(total=n_chunks)
                on_chunk = lambda: progress.update(1)  # noqa: E731
            blocks = reader.blocks()
            for y in restorer.stream(
                blocks, reader.sample_rate, reader.channels, on_chunk, str(src)
            ):
                writer.write(limiter.process(y) if limiter else y)
            if limiter:
                writer.write(limiter.flush())
            seconds = writer.file.frames / reader.sample_rate
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    finally:
        reader.close()
    result = FileResult(src, dst, seconds)
    if limiter and limiter.limited_samples:
        result.limited_samples = limiter.limited_samples
        result.limiter_db = float(-20 * np.log10(limiter.min_gain))
    return result


def find_inputs(
    paths: Sequence[str | Path], output: str | Path | None = None
) -> list[tuple[Path, Path | None]]:
    """Expand inputs into ``(file, folder it was found under or None)``.

    Folders are searched recursively for audio extensions, skipping our own outputs
    (``*.restored.*``), temporary files, and everything under ``output`` when that lies
    inside a searched folder, so re-running on a folder does not restore the
    restorations. A named path that does not exist is kept (it fails later with a clear
    message) so the other files still run.
    """
    skip = Path(output).resolve() if output is not None else None
    found: list[tuple[Path, Path | None]] = []
    for p in map(Path, paths):
        if p.is_dir():
            inside = skip is not None and skip != p.resolve() and skip.is_relative_to(p.resolve())
            for f in sorted(p.rglob("*")):
                if (
                    f.is_file()
                    and f.suffix.lower() in READ_EXTENSIONS
                    and not f.stem.endswith(".restored")
                    and not f.name.startswith(".")
                    and not (inside and f.resolve().is_relative_to(skip))
                ):
                    found.append((f, p))
        else:
            found.append((p, None))
    return found


def plan_outputs(
    inputs: Sequence[tuple[Path, Path | None]], output: str | Path | None, ext: str = ".wav"
) -> list[tuple[Path, Path]]:
    """Output path per input.

    - no ``output``: ``song.restored.wav`` next to each input;
    - ``output`` a folder (exists, ends with a separator, or several/folder inputs):
      ``output/<path below the input folder>/song.wav``;
    - otherwise ``output`` is the single input's output file; its extension (.wav or
      .flac) picks the format.
    """
    ext = ext if ext.startswith(".") else f".{ext}"
    if output is None:
        return [(src, src.with_name(f"{src.stem}.restored{ext}")) for src, _ in inputs]
    out = Path(output)
    as_folder = (
        out.is_dir()
        or str(output).endswith((os.sep, "/"))
        or len(inputs) > 1
        or any(root is not None for _, root in inputs)
    )
    if not as_folder:
        return [(inputs[0][0], out)] if inputs else []
    if out.suffix.lower() in WRITE_FORMATS:
        raise AudioError(f"{out}: several inputs need an output folder, not a file")
    pairs = []
    for src, root in inputs:
        rel = src.relative_to(root).parent if root is not None else Path()
        pairs.append((src, out / rel / f"{src.stem}{ext}"))
    return pairs


def restore_files(
    restorer: Restorer,
    pairs: Sequence[tuple[Path, Path]],
    *,
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> int:
    """Restore each ``(src, dst)``; report one line per file. Returns how many failed.

    A bad file (unreadable, NaN, truncated, unsupported layout, output == input, two
    inputs with one output, or any other failure while restoring it) goes to
    ``on_error`` as one line naming it, and the rest go on. No output is ever written
    over an input of the run (any of them, however it is reached). ``log`` gets the
    success lines. Both default to printing to stderr through tqdm.
    ``show_progress=None`` shows tqdm bars (files, and chunks of each file) only on a
    terminal.
    """
    from tqdm import tqdm

    def stderr(msg: str) -> None:
        tqdm.write(msg, file=sys.stderr)

    log = log or stderr
    on_error = on_error or (lambda msg: stderr(f"error: {msg}"))
    failed = 0
    inputs = _Inputs([src for src, _ in pairs])
    claimed: dict[Path, Path] = {}
    disable = None if show_progress is None else not show_progress
    bars = tqdm(pairs, unit="file", disable=disable)
    for src, dst in bars:
        try:
            clash = inputs.find(dst)
            if clash is not None and not same_file(clash, src):
                raise AudioError(
                    f"{src}: output {dst} is an input of this run ({clash}); "
                    "refusing to overwrite it"
                )
            key = dst.resolve()
            if key in claimed:
                raise AudioError(f"{src}: output {dst} is also the output of {claimed[key]}")
            claimed[key] = src
            bar = tqdm(unit="chunk", desc=src.name, leave=False, disable=bars.disable)
            try:
                result = restore_file(restorer, src, dst, progress=bar)
            finally:
                bar.close()
            note = ""
            if result.limited_samples:
                note = (
                    f"; FLAC safety limiter reduced {result.limited_samples} samples "
                    f"by up to {result.limiter_db:.2f} dB"
                )
            log(f"{src} -> {dst} ({result.seconds:.2f} s{note})")
        except Exception as e:  # one bad file never stops the batch, whatever the cause
            failed += 1
            if isinstance(e, AudioError):
                on_error(str(e))
            elif isinstance(e, OSError | sf.LibsndfileError):
                on_error(f"{src}: {e}")
            else:
                on_error(f"{src}: {type(e).__name__}: {e}")
    return failed
