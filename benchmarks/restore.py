"""Benchmark restoration: real-time factor, and peak memory of the streaming file path.

    python benchmarks/restore.py                      # RTF (base) + memory (tiny), ~15 min
    python benchmarks/restore.py --memory-model base  # memory with the base model (slow)

1. Real-time factor (processing time / audio duration; < 1 is faster than real time)
   of restoring 60 s of 44.1 kHz stereo with the base generator through the API
   (``Restorer``), compile excluded and reported apart. The weights are untrained: a
   trained generator has the same shapes and costs exactly the same.
2. Peak resident memory (``ru_maxrss`` of a fresh ``launch/restore.py`` process) for a
   1-minute and a 10-minute stereo file, WAV and MP3 input, written to WAV. Streaming
   should make the 10-minute run cost about what the 1-minute one does (goal <= 1.2x).
   The model size only shifts both numbers by its constant working set, so the default
   uses the tiny generator to keep the 10-minute runs short on a small CPU.

Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from common import SR, music_like, write_long

ROOT = Path(__file__).resolve().parent.parent


def rtf(seconds: float) -> None:
    from mp3gan.restore import DEFAULT_CHUNK_LENGTH, Restorer, untrained_generator

    t0 = time.perf_counter()
    generator = untrained_generator()
    t_init = time.perf_counter() - t0
    restorer = Restorer(generator, SR)
    t0 = time.perf_counter()
    restorer(np.zeros((2, 100), np.float32), SR)
    t_compile = time.perf_counter() - t0
    x = music_like(seconds)
    t0 = time.perf_counter()
    restorer(x, SR)
    t_run = time.perf_counter() - t0
    print(
        f"RTF, base generator (untrained weights; same cost as trained), {seconds:g} s "
        f"stereo 44.1 kHz, chunk {DEFAULT_CHUNK_LENGTH} samples, {os.cpu_count()} CPU cores:"
    )
    print(f"  init {t_init:.1f} s, compile {t_compile:.1f} s (once per Restorer)")
    print(
        f"  restore {t_run:.1f} s -> RTF {t_run / seconds:.2f} "
        f"({seconds / t_run:.2f}x real time), load average {os.getloadavg()[0]:.1f}"
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process (audio held in memory): {rss:.0f} MB")


def checkpoint_for(model: str, folder: Path) -> str:
    """``none`` (the base generator) or a saved tiny checkpoint."""
    if model == "base":
        return "none"
    import ml_collections
    from flax import nnx

    from mp3gan import models
    from mp3gan.checkpoint import save_generator

    config = ml_collections.ConfigDict(
        {"data": {"sample_rate": SR}, "model": {"generator": dict(models.TINY_GENERATOR)}}
    )
    generator = models.Generator(**models.TINY_GENERATOR, rngs=nnx.Rngs(0))
    save_generator(folder / "tiny", generator, config)
    return str(folder / "tiny")


# Runs the command from a small launcher process: a child forked from this (large)
# process would count this process's pages, copied at fork, in its own ru_maxrss.
_LAUNCHER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_memory(src: Path, checkpoint: str) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one CLI run in a fresh process."""
    out = src.with_name(src.stem + ".out.wav")
    cmd = [sys.executable, str(ROOT / "launch" / "restore.py"), str(src), "-o", str(out)]
    cmd += ["-q", "--checkpoint", checkpoint]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    frames = sf.info(out).frames
    assert frames == sf.info(src).frames, (frames, sf.info(src).frames)
    out.unlink()
    return int(proc.stdout.split()[-1]) / 1024, wall  # Linux reports kilobytes


def memory(model: str, minutes: list[float], formats: list[str], rate: int = SR) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = checkpoint_for(model, folder)
        print(f"Peak memory of launch/restore.py ({model} generator), {rate} Hz input -> WAV:")
        for ext in formats:
            peaks = []
            for m in minutes:
                src = folder / f"in_{m:g}min.{ext}"
                write_long(src, 60 * m, rate)
                mb, wall = peak_memory(src, checkpoint)
                src.unlink()
                peaks.append(mb)
                print(
                    f"  {ext.upper():4} {m:4g} min: {mb:7.0f} MB peak RSS ({wall:.0f} s wall)",
                    flush=True,
                )
            if len(peaks) > 1:
                print(
                    f"  {ext.upper():4} ratio {minutes[-1]:g} min / {minutes[0]:g} min: "
                    f"{peaks[-1] / peaks[0]:.3f}"
                )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rtf-seconds", type=float, default=60.0)
    p.add_argument("--skip-rtf", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--memory-model", choices=("tiny", "base"), default="tiny")
    p.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    p.add_argument("--formats", nargs="+", default=["wav", "mp3"])
    p.add_argument("--rate", type=int, default=SR, help="input sample rate (resampled path)")
    args = p.parse_args()
    if not args.skip_rtf:
        rtf(args.rtf_seconds)
    if not args.skip_memory:
        memory(args.memory_model, args.minutes, args.formats, args.rate)


if __name__ == "__main__":
    main()
