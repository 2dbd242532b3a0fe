"""Renderers: MIDI through fluidsynth and a soundfont, LMMS song projects through lmms.

Both run the Debian program headless into a temporary folder and return float32
``[channels, samples]`` at the asked rate; the caller writes the corpus file (atomically)
only from a finished render, so a failure never leaves part of a file behind. A render
that fails (the program exits with an error or a signal, writes nothing, writes audio
that is unreadable, silent or not finite, or runs past its time limit) raises
:class:`RenderError` naming the input, so the build can report it and go on.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mp3gan.audio import MODEL_SAMPLE_RATE, AudioError, read_audio
from mp3gan.data.corpus.manifest import CorpusError

LMMS_TIMEOUT_S = 900.0  # the slowest packaged demo takes ~2 min on a shared 2-core CPU
FLUIDSYNTH_TIMEOUT_S = 600.0


class RenderError(CorpusError):
    """A render failed; the message names the input and says what went wrong."""


def soundfont_version(path: str | os.PathLike) -> tuple[int, int]:
    """The ``ifil`` version of a SoundFont file (RIFF ``sfbk``), e.g. (2, 1).

    Version 2 stores its samples as 16- or 24-bit PCM: lossless. Version 3 (MuseScore's
    "sf3", the ``-small`` packages) stores them Ogg Vorbis compressed: lossy.
    """
    with open(path, "rb") as f:
        head = f.read(64)
    riff, form, info_list, info, ifil = head[:4], head[8:12], head[12:16], head[20:24], head[24:28]
    if (riff, form, info_list, info, ifil) != (b"RIFF", b"sfbk", b"LIST", b"INFO", b"ifil"):
        raise RenderError(f"{path}: not a SoundFont file (no RIFF sfbk/INFO/ifil header)")
    major, minor = struct.unpack("<HH", head[32:36])
    return major, minor


def check_lossless_soundfont(path: str | os.PathLike) -> None:
    """Raise RenderError unless ``path`` is a SoundFont 2 (PCM samples, not Vorbis)."""
    major, minor = soundfont_version(path)
    if major != 2:
        raise RenderError(
            f"{path}: SoundFont version {major}.{minor}; only version 2 (PCM samples) is "
            "lossless (version 3 holds Ogg Vorbis samples)"
        )


def _why(result: subprocess.CompletedProcess) -> str:
    if result.returncode < 0:
        how = f"killed by {signal.Signals(-result.returncode).name}"
    else:
        how = f"exit status {result.returncode}"
    lines = [x.strip() for x in (result.stderr or "").replace("\r", "\n").splitlines()]
    lines = [x for x in lines if x and not x.startswith("|")]  # drop progress bars
    return how + (f": {' | '.join(lines[-2:])[-300:]}" if lines else "")


def _run_render(cmd: list[str], out: Path, name: str, timeout: float, env=None) -> np.ndarray:
    """Run a render command that writes ``out``; its audio, or RenderError naming ``name``."""
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise RenderError(f"{name}: render still running after {timeout:.0f} s") from None
    except OSError as e:
        raise RenderError(f"{name}: cannot run {cmd[0]} ({e})") from None
    if result.returncode != 0:
        raise RenderError(f"{name}: {Path(cmd[0]).name} failed ({_why(result)})")
    if not out.is_file():
        raise RenderError(f"{name}: {Path(cmd[0]).name} wrote no audio ({_why(result)})")
    try:
        audio, sr = read_audio(out)
    except AudioError as e:
        raise RenderError(f"{name}: the render is not usable audio ({e})") from None
    if np.abs(audio).max(initial=0.0) <= 0:
        raise RenderError(f"{name}: the render is silent")
    return audio


def render_midi(
    midi: bytes,
    soundfont: str | os.PathLike,
    sample_rate: int = MODEL_SAMPLE_RATE,
    fluidsynth: str = "fluidsynth",
    effects: bool = False,
    name: str = "MIDI",
) -> np.ndarray:
    """Render MIDI bytes with fluidsynth (float output) to ``[2, samples]``.

    ``effects`` turns fluidsynth's reverb and chorus on (each channel's CC91/CC93 send
    sets how much it gets); off, the sound is the samples' own room only.
    """
    with tempfile.TemporaryDirectory(prefix="mp3gan-render-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi)
        fx = "1" if effects else "0"
        # Float output, so a loud passage never clips before we set the level.
        cmd = [
            fluidsynth, "-n", "-i", "-q", "-R", fx, "-C", fx, "-g", "0.5",
            "-r", str(sample_rate), "-O", "float", "-T", "wav", "-F", str(wav),
            str(soundfont), str(mid),
        ]  # fmt: skip
        audio = _run_render(cmd, wav, name, FLUIDSYNTH_TIMEOUT_S)
    return audio


def render_lmms(
    project: str | os.PathLike,
    sample_rate: int = MODEL_SAMPLE_RATE,
    lmms: str = "lmms",
    timeout_s: float = LMMS_TIMEOUT_S,
) -> np.ndarray:
    """Render an LMMS project (``.mmp``/``.mmpz``) headless to float ``[2, samples]``.

    ``QT_QPA_PLATFORM=offscreen`` lets lmms run without a display; as root it refuses to
    start unless given ``--allowroot``. Best sinc interpolation, 32-bit float output.
    """
    project = Path(project)
    if not project.is_file():
        raise RenderError(f"{project}: no such project file")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    root = ["--allowroot"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with tempfile.TemporaryDirectory(prefix="mp3gan-lmms-") as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = [
            lmms, *root, "render", str(project), "-f", "wav", "-s", str(sample_rate), "-a",
            "-i", "sincbest", "-o", str(wav),
        ]  # fmt: skip
        return _run_render(cmd, wav, str(project), timeout_s, env)


def midi_loader(
    midi: Callable[[], bytes],
    soundfont: Path,
    peak_db: float,
    fluidsynth: str,
    effects: bool = False,
    name: str = "MIDI",
) -> Callable[[], tuple[np.ndarray, dict[str, Any]]]:
    """A corpus item's ``load``: compose (``midi()``), render, trim and set the peak."""

    def load() -> tuple[np.ndarray, dict[str, Any]]:
        audio = render_midi(midi(), soundfont, MODEL_SAMPLE_RATE, fluidsynth, effects, name)
        return finish_render(audio, peak_db), {}

    return load


def finish_render(
    audio: np.ndarray, peak_db: float, sample_rate: int = MODEL_SAMPLE_RATE
) -> np.ndarray:
    """Cut the decayed end of a render (-60 dB below its peak, 50 ms fade), set its peak.

    Synthesizers render seconds past the last note; that inaudible decay would otherwise
    add near-silence to every piece.
    """
    level = np.abs(audio).max(axis=0)
    if level.max(initial=0.0) <= 0:
        raise RenderError("the render is silent")
    end = int(np.flatnonzero(level > 1e-3 * level.max())[-1]) + 1
    fade = min(end, sample_rate // 20)
    audio = audio[:, :end].copy()
    audio[:, end - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return (audio * (10 ** (peak_db / 20) / np.abs(audio).max())).astype(np.float32)
