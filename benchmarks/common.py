"""What the benchmark scripts share: test audio, loading a config file, and the
held-out clips of a corpus with their degraded versions.

Imported as ``common`` (a script's own folder is first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from mp3gan import degrade
from mp3gan.audio import AlignmentError
from mp3gan.evaluate_run import held_out_files, load_reference_clips

SR = 44100


def load_config(path: str | Path):
    """``get_config()`` of a config file (configs import each other as ``configs.*``)."""
    spec = importlib.util.spec_from_file_location("bench_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def add_held_out_arguments(
    p: argparse.ArgumentParser, split: str, clip_seconds: float, clips_per_file: int
) -> None:
    """The options that pick held-out clips and their degradations, with a script's defaults."""
    p.add_argument("--corpus", default="data/corpus", help="prepared corpus folder")
    p.add_argument("--split", default=split, choices=["validation", "test"])
    p.add_argument("--kinds", default="music", help="manifest kinds, comma-separated")
    p.add_argument("--degradations", default="mp3:32,mp3:64,mp3:128")
    p.add_argument("--clip-seconds", type=float, default=clip_seconds)
    p.add_argument("--clips-per-file", type=int, default=clips_per_file)


def model_on_held_out_options(doc: str) -> tuple[argparse.Namespace, str, object]:
    """Parse ``--checkpoint`` (default: the shipped model) and the held-out options
    (validation music, 5 clips of 5 s per file) for a script whose docstring is ``doc``:
    ``(args, checkpoint, data_config)``, the last the model's own split of the corpus."""
    from mp3gan import checkpoint as ck

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="model to score (default: the shipped one)")
    add_held_out_arguments(p, split="validation", clip_seconds=5.0, clips_per_file=5)
    args = p.parse_args()
    checkpoint = args.checkpoint or ck.DEFAULT_CHECKPOINT
    return args, str(checkpoint), ck.load_config(checkpoint).data


def held_out_clips(args: argparse.Namespace, data_config) -> list[tuple[np.ndarray, int]]:
    """``(clip, rate)`` of every file of the held-out split that the options of
    :func:`add_held_out_arguments` name, cut as ``launch/evaluate.py`` cuts them; prints
    how many. ``data_config`` decides the split (the model's own, where there is one)."""
    files = held_out_files(args.corpus, args.split, data_config, kinds=args.kinds.split(","))
    clips = []
    for path in files:
        found, rate = load_reference_clips(path, None, args.clip_seconds, args.clips_per_file)
        clips += [(clip, rate) for clip in found]
    print(f"{len(clips)} clips of {args.clip_seconds:g} s from {len(files)} {args.split} files")
    return clips


def degraded_clips(
    spec: str, clips: list[tuple[np.ndarray, int]]
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """``(reference, degraded, rate)`` per clip; a clip whose MP3 round trip fails its
    alignment check is reported and skipped, as ``launch/evaluate.py`` does."""
    degradation = degrade.parse_degradation(spec)
    for reference, rate in clips:
        try:
            degraded = np.asarray(degradation(reference, rate), np.float32)
        except AlignmentError as e:
            print(f"skipped a clip at {spec}: {e}")
            continue
        yield reference, degraded, rate


def music_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Stereo test audio: decaying noise bursts over a soft chord (float32 [2, T])."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    rng = np.random.default_rng(seed)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * 0.1
    x = np.stack([chord, np.roll(chord, 300)]) + 0.01 * rng.standard_normal((2, n))
    hit = 0.4 * rng.standard_normal((2, 4000)) * np.exp(-np.arange(4000) / 600)
    for start in range(0, n - 4000, SR // 2):
        x[:, start : start + 4000] += hit
    return x.astype(np.float32)


def write_long(path: Path, seconds: float, rate: int = SR) -> None:
    """Write ``seconds`` of audio in 10 s pieces (keeps this process small too); at a
    ``rate`` other than 44.1 kHz the same samples are just declared at that rate."""
    piece = music_like(10.0 * rate / SR)
    fmt = "MP3" if path.suffix == ".mp3" else "WAV"
    subtype = "MPEG_LAYER_III" if fmt == "MP3" else "FLOAT"
    with sf.SoundFile(path, "w", rate, 2, subtype=subtype, format=fmt) as f:
        for _ in range(int(seconds // 10)):
            f.write(piece.T)
