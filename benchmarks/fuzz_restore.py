"""Fuzz the whole restore path: mutated audio files through ``launch/restore.py``.

Each case is one file (a WAV, FLAC, AIFF, MP3 or OGG seed, mutated) given to the command
line's ``main`` in-process, with a small random generator instead of a checkpoint (the
model is not under test; everything around it is). A case ends as one of:

- ``restored``: exit 0, an output that reads back with the input's length and channel
  count, finite, and nothing else left in the folder;
- ``clear error``: exit 1, exactly one error line naming the file (plus the "1 of 1
  files failed" summary), no traceback, no output and no temporary file left behind;
- ``anything else``: any other exit status, an exception escaping ``main``, a traceback,
  an output that does not match, debris, a crash (the worker process dies by a signal),
  or a hang. These are saved under ``--findings`` to reproduce.

With atheris installed (``pip install atheris``) the mutations come from libFuzzer,
guided by coverage of mp3gan's own code; otherwise from a seeded mutation fuzzer (bit
flips, interesting bytes, header fields, truncation, splices). Cases run in a worker
process that the parent restarts after a crash or a hang, so the counts survive either.

    python benchmarks/fuzz_restore.py --seconds 600
    python benchmarks/fuzz_restore.py --seconds 60 --engine mutate --seed 1
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTCOMES = ("restored", "clear error", "anything else")
HANG_SECONDS = 120.0  # a case this slow is a hang (a normal one takes well under 1 s)
SMALL = dict(
    kind="unet", channels=4, down_factors=(2, 2), dilations=(1, 3), kernel_size=3, max_channels=8
)


# --------------------------------------------------------------------------------------
# Seeds and mutations (the fallback engine)
# --------------------------------------------------------------------------------------


def make_seeds(folder: Path) -> list[Path]:
    """Small valid files of every input format, rate and layout the restore path reads."""
    import numpy as np
    import soundfile as sf

    from mp3gan import audio

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def tone(sr: int, channels: int, seconds: float) -> np.ndarray:
        t = np.arange(int(sr * seconds)) / sr
        x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))
        return np.tile(x.astype(np.float32), (channels, 1))

    specs = [
        ("float.wav", 44100, 2, 0.3, "FLOAT"),
        ("pcm16.wav", 48000, 1, 0.3, "PCM_16"),
        ("pcm24.wav", 96000, 2, 0.2, "PCM_24"),
        ("stereo.flac", 44100, 2, 0.3, "PCM_16"),
        ("mono.flac", 22050, 1, 0.3, "PCM_24"),
        ("low.aiff", 8000, 1, 0.5, "PCM_16"),
        ("music.ogg", 44100, 2, 0.3, "VORBIS"),
    ]
    for name, sr, channels, seconds, subtype in specs:
        sf.write(folder / name, tone(sr, channels, seconds).T, sr, subtype=subtype)
    (folder / "stereo.mp3").write_bytes(audio.mp3_encode(tone(44100, 2, 0.5), 44100, 128))
    (folder / "mono.mp3").write_bytes(audio.mp3_encode(tone(22050, 1, 0.5), 22050, 64))
    return sorted(folder.iterdir())


INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0xFE, 0x40]
# Where a WAV header keeps its channel count, sample rate, byte rate, block align, bits.
WAV_FIELDS = [(22, 2), (24, 4), (28, 4), (32, 2), (34, 2), (40, 4), (4, 4)]


def mutate(data: bytes, other: bytes, rng: random.Random) -> bytes:
    """One to four random mutations of ``data`` (``other``: a second seed, to splice)."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not b:
            b = bytearray(other[: rng.randint(1, len(other))])
        kind = rng.randrange(7)
        i = rng.randrange(len(b))
        if kind == 0:  # flip a bit
            b[i] ^= 1 << rng.randrange(8)
        elif kind == 1:  # an interesting byte
            b[i] = rng.choice(INTERESTING)
        elif kind == 2 and len(b) > 44:  # a header field: a large, tiny or odd value
            offset, size = rng.choice(WAV_FIELDS)
            value = rng.choice([0, 1, 3, 7, 185, 65535, 2**31 - 1, 2**32 - 1, rng.getrandbits(32)])
            b[offset : offset + size] = (value % 2 ** (8 * size)).to_bytes(size, "little")
        elif kind == 3:  # truncate
            del b[rng.randrange(len(b)) :]
        elif kind == 4:  # delete a run
            del b[i : i + rng.randint(1, 512)]
        elif kind == 5:  # duplicate a run
            b[i:i] = b[i : i + rng.randint(1, 512)]
        else:  # splice: this file's start, the other's end
            b = b[:i] + bytearray(other[rng.randrange(len(other)) :])
    return bytes(b)


# --------------------------------------------------------------------------------------
# One case through the whole restore path
# --------------------------------------------------------------------------------------


class Case:
    """Runs mutated files through ``launch/restore.py``'s ``main`` and classifies them."""

    def __init__(self, work: Path, findings: Path, status: Path):
        import numpy as np

        from mp3gan import audio
        from mp3gan.restore import Restorer

        self.np, self.audio = np, audio
        self.work, self.findings, self.status = work, findings, status
        self.counts = collections.Counter()
        self.errors = collections.Counter()  # clear errors by kind, for the summary
        self.restorer = Restorer(random_generator(), 44100, chunk_length=4096, crossfade=64)
        Restorer.from_checkpoint = staticmethod(lambda *a, **k: self.restorer)
        self.main = load_cli()
        self.n = 0

    def __call__(self, data: bytes, ext: str, flac: bool) -> str:
        """Restore ``data`` saved as ``input<ext>``; returns and counts the outcome."""
        self.n += 1
        case = self.work / f"case{self.n % 2}"
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir(parents=True)
        src = case / f"input{ext}"
        src.write_bytes(data)
        (self.work / "current").write_bytes(ext.encode() + b"\0" + data)  # for a crash
        dst = case / ("out.flac" if flac else "out.wav")
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                code = self.main([str(src), "-o", str(dst), "-q"])
            outcome, why = self.classify(code, err.getvalue(), src, dst)
        except BaseException as e:  # anything escaping main is a finding
            outcome, why = "anything else", f"{type(e).__name__} escaped main: {e}"
        self.counts[outcome] += 1
        if outcome == "anything else":
            self.save(data, ext, why)
        self.status.write_text(json.dumps({"counts": self.counts, "errors": self.errors}))
        return outcome

    def classify(self, code: int, err: str, src: Path, dst: Path) -> tuple[str, str]:
        left = sorted(p.name for p in src.parent.iterdir() if p not in (src, dst))
        if "Traceback" in err or left:
            return "anything else", f"exit {code}, debris {left}, stderr: {err[-2000:]}"
        lines = [line for line in err.splitlines() if line.strip()]
        if code == 1:
            named = [line for line in lines if str(src) in line]
            if dst.exists() or len(named) != 1 or len(lines) != 2:
                return "anything else", f"exit 1 but output {dst.exists()}, stderr: {err}"
            kind = named[0].split(f"{src}: ", 1)[-1]
            self.errors[re.sub(r"[\d.]+", "N", kind)[:70]] += 1
            return "clear error", kind
        if code != 0 or not dst.exists():
            return "anything else", f"exit {code}, output {dst.exists()}, stderr: {err}"
        x, sr_in = self.audio.read_audio(src)
        y, sr_out = self.audio.read_audio(dst)
        if y.shape != x.shape or sr_out != sr_in or not self.np.isfinite(y).all():
            return "anything else", f"restored {x.shape}@{sr_in} into {y.shape}@{sr_out}"
        return "restored", ""

    def save(self, data: bytes, ext: str, why: str) -> None:
        self.findings.mkdir(parents=True, exist_ok=True)
        name = f"{int(time.time() * 1000)}-{self.n}"
        (self.findings / f"{name}{ext}").write_bytes(data)
        (self.findings / f"{name}.txt").write_text(why + "\n")


def random_generator(seed: int = 1):
    """A small U-Net with random weights, built abstractly and filled with numpy draws
    (eager initialisation compiles every op once: tens of seconds on a small CPU)."""
    import jax
    import numpy as np
    from flax import nnx

    from mp3gan.models import build_generator

    abstract = nnx.eval_shape(lambda: build_generator(SMALL, nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        fan_in = max(1, int(np.prod(leaf.shape[:-1])))
        noise = 0.3 / np.sqrt(fan_in) * rng.standard_normal(leaf.shape)
        base = 1.0 if "alpha" in jax.tree_util.keystr(path) else 0.0  # Snake divides by alpha
        return (base + noise).astype(np.float32)

    return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(draw, state))


def load_cli():
    import importlib.util

    spec = importlib.util.spec_from_file_location("restore_cli", ROOT / "launch" / "restore.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


# --------------------------------------------------------------------------------------
# The worker (one engine) and the parent (time, restarts, totals)
# --------------------------------------------------------------------------------------

EXTENSIONS = [".wav", ".flac", ".aiff", ".mp3", ".ogg"]


def worker(args: argparse.Namespace) -> None:
    work = Path(args.work)
    seeds = [p.read_bytes() for p in sorted((work / "seeds").iterdir())]
    names = [p.suffix for p in sorted((work / "seeds").iterdir())]
    deadline = time.monotonic() + args.seconds
    if args.engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=["mp3gan"]):
            case = Case(work, Path(args.findings), Path(args.status))

        def one_input(data: bytes) -> None:
            if time.monotonic() > deadline:
                os._exit(0)
            if len(data) < 2:
                return
            ext = EXTENSIONS[data[0] % len(EXTENSIONS)]  # the first byte picks the name
            case(data[1:], ext, flac=bool(data[0] & 0x80))

        corpus = work / "corpus"
        corpus.mkdir(exist_ok=True)
        for i, (data, ext) in enumerate(zip(seeds, names, strict=True)):
            (corpus / f"seed{i}").write_bytes(bytes([EXTENSIONS.index(ext)]) + data)
        max_len = 2 * max(map(len, seeds))
        flags = [f"-seed={args.seed}", f"-max_len={max_len}", "-rss_limit_mb=6000", "-timeout=600"]
        atheris.Setup([sys.argv[0], *flags, str(corpus)], one_input)
        atheris.Fuzz()
    case = Case(work, Path(args.findings), Path(args.status))
    rng = random.Random(args.seed)
    while time.monotonic() < deadline:
        i, j = rng.randrange(len(seeds)), rng.randrange(len(seeds))
        ext = names[i] if rng.random() < 0.9 else rng.choice(EXTENSIONS)
        case(mutate(seeds[i], seeds[j], rng), ext, flac=rng.random() < 0.3)


def run_worker(args, status: Path, seed: int, seconds: float) -> tuple[str, dict]:
    """Start a worker for ``seconds``; returns how it ended and its last counts."""
    cmd = [sys.executable, __file__, "--worker", "--work", args.work, "--status", str(status)]
    cmd += ["--findings", args.findings, "--engine", args.engine, "--seed", str(seed)]
    cmd += ["--seconds", str(seconds)]
    log = status.with_suffix(".log")  # libFuzzer writes its progress to stderr: a file
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        current = Path(args.work) / "current"
        ended = "done"
        while proc.poll() is None:
            time.sleep(1.0)
            stamp = max((p.stat().st_mtime for p in (status, current) if p.exists()), default=0)
            if stamp and time.time() - stamp > HANG_SECONDS:
                proc.kill()
                proc.wait()
                ended = "hang"
    stderr = log.read_text(errors="replace")
    if ended == "done" and proc.returncode != 0:
        ended = f"crash (exit {proc.returncode}): {stderr.strip().splitlines()[-1:]}"
    counts = json.loads(status.read_text()) if status.exists() else {"counts": {}, "errors": {}}
    if ended != "done" and current.exists():  # the case that was running is a finding
        ext, data = current.read_bytes().split(b"\0", 1)
        Path(args.findings).mkdir(parents=True, exist_ok=True)
        found = Path(args.findings) / f"{ended.split()[0]}-{seed}{ext.decode()}"
        found.write_bytes(data)
        found.with_suffix(".txt").write_text(ended + "\n" + stderr[-4000:])
        counts["counts"]["anything else"] = counts["counts"].get("anything else", 0) + 1
    return ended, counts


def parent(args: argparse.Namespace) -> int:
    start = time.monotonic()
    work = Path(args.work)
    sys.path.insert(0, str(ROOT))
    make_seeds(work / "seeds")
    totals, errors = collections.Counter(), collections.Counter()
    seed, workers, events = args.seed, 0, []
    while (left := args.seconds - (time.monotonic() - start)) > 5:
        status = work / f"status-{workers}.json"
        ended, counts = run_worker(args, status, seed, left)
        totals.update(counts["counts"])
        errors.update(counts["errors"])
        workers += 1
        seed += 1
        if ended != "done":
            events.append(ended)
    elapsed = time.monotonic() - start
    print(f"fuzzed the restore path for {elapsed:.0f} s with {args.engine} ({workers} worker(s))")
    for outcome in OUTCOMES:
        print(f"  {outcome:>14}: {totals.get(outcome, 0)}")
    print("  clear errors by kind (numbers shown as N):")
    for kind, n in errors.most_common(12):
        print(f"    {n:6d}  {kind}")
    for event in events:
        print(f"  worker ended: {event}")
    if totals.get("anything else"):
        print(f"  findings saved in {args.findings}")
    return 1 if totals.get("anything else") else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600.0, help="how long to fuzz (default 600)")
    p.add_argument("--engine", choices=("atheris", "mutate"), help="default: atheris if installed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", help="scratch folder (default: a new temporary one)")
    p.add_argument("--findings", default="fuzz-findings", help="where 'anything else' cases go")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--status", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.engine is None:
        try:
            import atheris  # noqa: F401

            args.engine = "atheris"
        except ImportError:
            args.engine = "mutate"
    if args.worker:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        sys.path.insert(0, str(ROOT))
        worker(args)
        return 0
    if args.work is None:
        args.work = tempfile.mkdtemp(prefix="mp3gan-fuzz-")
    args.findings = str(Path(args.findings).resolve())
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
