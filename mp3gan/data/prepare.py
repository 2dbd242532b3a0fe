"""Build mp3gan's training corpus: freely licensed, lossless, drum-rich audio from Debian.

Three sources, all Debian packages so anyone can rebuild the same corpus:

* ``sonic-pi`` (package ``sonic-pi-samples``): CC0/MIT loops and one-shots, FLAC 44.1 kHz.
* ``hydrogen`` (``hydrogen-drumkits``): 14 drum kits of one-shots, licence per kit. Kits
  recorded through a band-limited chain are measured and left out.
* ``avldrums`` (``avldrums.lv2-soundfont`` + ``fluidsynth``): drum grooves generated here
  as MIDI (seeded) and rendered with real recorded drum samples; as much as asked for.

Every output is a 44.1 kHz 24-bit FLAC (channels as the source) with one line in
``manifest.jsonl``: licence, where the licence was read, where the audio came from (file
or seed) and its measured cutoff frequency. Licences come from the packages'
machine-readable Debian copyright files (DEP-5); audio whose licence cannot be
established is never included. Reruns skip files already written; every write is atomic.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mp3gan.audio import read_audio, resample, write_audio
from mp3gan.data.sources import EXCLUDED_LIST as EXCLUDED
from mp3gan.data.sources import LICENCE_MANIFEST as MANIFEST
from mp3gan.files import write_text_atomic
from mp3gan.metrics import cutoff_frequency

SAMPLE_RATE = 44100
SOURCES = ("sonic-pi", "hydrogen", "avldrums")
# A file is "full band" when its measured cutoff reaches this: above the ~16-17 kHz
# lowpass LAME applies at 128 kbps, so the model sees real content it must restore.
FULL_BAND_HZ = 18000.0
# A Hydrogen kit is left out as band-limited (its recording chain, not its instruments)
# when more than this fraction of its files show a cutoff below FULL_BAND_HZ.
KIT_BANDLIMITED_FRACTION = 0.25
DEFAULT_GROOVE_MINUTES = 20.0
AUDIO_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff")
# Keep a little headroom when a resampled one-shot overshoots full scale (FLAC cannot clip).
_MAX_PEAK = 0.999


class CorpusError(RuntimeError):
    """The corpus cannot be built: the message says why and what to install."""


# --------------------------------------------------------------------------- packages


@dataclass(frozen=True)
class SystemPaths:
    """Where the Debian packages put things (overridable, e.g. for tests)."""

    sonic_pi_samples: Path = Path("/usr/share/sonic-pi/samples")
    sonic_pi_copyright: Path = Path("/usr/share/doc/sonic-pi-samples/copyright")
    hydrogen_drumkits: Path = Path("/usr/share/hydrogen/data/drumkits")
    hydrogen_copyright: Path = Path("/usr/share/doc/hydrogen-drumkits/copyright")
    soundfonts: Path = Path("/usr/share/sounds/sf2")
    soundfont_glob: str = "*_LV2.sf2"
    avldrums_copyright: Path = Path("/usr/share/doc/avldrums.lv2-soundfont/copyright")
    fluidsynth: str = "fluidsynth"


@dataclass(frozen=True)
class Requirement:
    """One thing a source needs, the Debian package that provides it, and how to check."""

    package: str
    what: str
    present: Callable[[], bool]


def requirements(source: str, paths: SystemPaths) -> list[Requirement]:
    """What ``source`` needs on this machine."""
    if source == "sonic-pi":
        return [
            Requirement(
                "sonic-pi-samples",
                str(paths.sonic_pi_samples),
                lambda: any(paths.sonic_pi_samples.glob("*.flac")),
            )
        ]
    if source == "hydrogen":
        return [
            Requirement(
                "hydrogen-drumkits",
                str(paths.hydrogen_drumkits),
                lambda: any(paths.hydrogen_drumkits.glob("*/drumkit.xml")),
            )
        ]
    if source == "avldrums":
        return [
            Requirement(
                "avldrums.lv2-soundfont",
                str(paths.soundfonts / paths.soundfont_glob),
                lambda: any(paths.soundfonts.glob(paths.soundfont_glob)),
            ),
            Requirement(
                "fluidsynth",
                f"the '{paths.fluidsynth}' program",
                lambda: shutil.which(paths.fluidsynth) is not None,
            ),
        ]
    raise CorpusError(f"unknown source '{source}' (choose from {', '.join(SOURCES)})")


def missing_requirements(source: str, paths: SystemPaths) -> list[Requirement]:
    """The requirements of ``source`` that are not satisfied here."""
    return [r for r in requirements(source, paths) if not r.present()]


def install_command(packages: Iterable[str]) -> str:
    """The exact command that installs ``packages`` (with sudo unless we are root)."""
    sudo = "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get install -y {' '.join(sorted(set(packages)))}"


def missing_message(source: str, missing: Sequence[Requirement]) -> str:
    """A message naming what is missing, the package, and the command to install it."""
    items = "; ".join(f"{r.what} (Debian package '{r.package}')" for r in missing)
    return (
        f"source '{source}' skipped: missing {items}. "
        f"Install with: {install_command(r.package for r in missing)}"
    )


def _apt_install(packages: Sequence[str]) -> None:
    cmd = install_command(packages).split()
    print(f"running: {' '.join(cmd)}", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        print(
            f"warning: '{' '.join(cmd)}' exited with {result.returncode} "
            "(on a fresh system run 'apt-get update' first)",
            file=sys.stderr,
        )


# ------------------------------------------------------------------- Debian copyright


@dataclass(frozen=True)
class CopyrightStanza:
    """One ``Files:`` paragraph of a machine-readable (DEP-5) debian/copyright file."""

    patterns: tuple[str, ...]
    licence: str
    copyright: str
    upstream: str


def parse_copyright(text: str) -> list[CopyrightStanza]:
    """Parse the ``Files:`` stanzas of a DEP-5 copyright file, in file order."""
    stanzas = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        name = None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and name is not None:
                fields[name].append(line.strip())
            elif ":" in line:
                name, value = line.split(":", 1)
                name = name.strip().lower()
                fields[name] = [value.strip()]
        if "files" not in fields or "license" not in fields:
            continue
        patterns = tuple(" ".join(fields["files"]).split())
        lines = [v for v in fields.get("copyright", []) if v and v != "."]
        stanzas.append(
            CopyrightStanza(
                patterns=patterns,
                licence=fields["license"][0],
                copyright="; ".join(lines),
                upstream=" ".join(fields.get("source", [])),
            )
        )
    return stanzas


def _dep5_match(pattern: str, path: str) -> bool:
    # DEP-5 globs: '*' matches anything including '/', '?' one character; nothing else.
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, path) is not None


def licence_for(stanzas: Sequence[CopyrightStanza], paths: Iterable[str]) -> CopyrightStanza | None:
    """The stanza governing the first of ``paths`` that any stanza matches (last one wins)."""
    for path in paths:
        matches = [s for s in stanzas if any(_dep5_match(p, path) for p in s.patterns)]
        if matches:
            return matches[-1]
    return None


# -------------------------------------------------------------------------- manifest


@dataclass
class ManifestEntry:
    """One corpus file and everything needed to use and attribute it."""

    path: str  # relative to the corpus root
    source: str
    duration_s: float
    sample_rate: int
    channels: int
    licence: str
    licence_source: str  # the file (and stanza) the licence was read from
    copyright: str  # attribution, required by CC-BY(-SA)
    origin: str  # original file, or how it was generated
    seed: int | None
    cutoff_hz: float  # measured by mp3gan.metrics.cutoff_frequency
    full_band: bool
    extra: dict[str, Any] = field(default_factory=dict)


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write one JSON object per line, atomically."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    write_text_atomic(Path(path), text)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def write_manifest(path: str | os.PathLike, entries: Iterable[ManifestEntry]) -> None:
    """Write ``manifest.jsonl`` atomically; refuses entries without a licence."""
    entries = list(entries)
    for e in entries:
        if not (e.licence and e.licence_source):
            raise CorpusError(f"{e.path}: no licence recorded; refusing to write the manifest")
    write_jsonl(path, (asdict(e) for e in entries))


def read_manifest(path: str | os.PathLike) -> list[ManifestEntry]:
    """Read ``manifest.jsonl``; every entry must carry a licence."""
    entries = [ManifestEntry(**row) for row in _read_jsonl(Path(path))]
    for entry in entries:
        if not (entry.licence and entry.licence_source):
            raise CorpusError(f"{path}: entry {entry.path} has no licence")
    return entries


# ------------------------------------------------------------------------------ MIDI

PPQ = 480  # ticks per quarter note


def encode_vlq(value: int) -> bytes:
    """MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    if value < 0:
        raise ValueError(f"variable-length quantity must be >= 0, got {value}")
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


@dataclass(frozen=True)
class Hit:
    """One drum stroke: when (ticks), which key, how hard (1..127)."""

    tick: int
    key: int
    velocity: int


def midi_file(
    hits: Sequence[Hit],
    bpm: float,
    end_tick: int,
    ppq: int = PPQ,
    channel: int = 0,
    program: int = 0,
    note_ticks: int = PPQ // 8,
) -> bytes:
    """A format-0 Standard MIDI File playing ``hits`` at ``bpm`` in 4/4.

    Bank 0 / ``program`` is selected explicitly on ``channel`` (0-based). Each note is
    released after ``note_ticks`` or at the next stroke of the same key, whichever is
    first, so a release never cuts a later stroke.
    """
    events: list[tuple[int, int, bytes]] = []  # (tick, order at equal tick, data)
    tempo = round(60_000_000 / bpm)
    events.append((0, 0, b"\xff\x51\x03" + tempo.to_bytes(3, "big")))
    events.append((0, 0, b"\xff\x58\x04\x04\x02\x18\x08"))  # 4/4, 24 clocks, 8 32nds
    events.append((0, 0, bytes([0xB0 | channel, 0, 0])))  # bank select MSB
    events.append((0, 0, bytes([0xB0 | channel, 32, 0])))  # bank select LSB
    events.append((0, 0, bytes([0xC0 | channel, program])))
    hits = sorted(hits, key=lambda h: (h.tick, h.key))
    next_on: dict[int, int] = {}
    offs = [0] * len(hits)
    for i in range(len(hits) - 1, -1, -1):
        h = hits[i]
        offs[i] = min(h.tick + note_ticks, next_on.get(h.key, h.tick + note_ticks))
        next_on[h.key] = h.tick
    for h, off in zip(hits, offs, strict=True):
        # Note-offs sort before note-ons at the same tick (order 1 < 2).
        events.append((h.tick, 2, bytes([0x90 | channel, h.key, int(h.velocity)])))
        events.append((max(off, h.tick + 1), 1, bytes([0x80 | channel, h.key, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    last = max(end_tick, events[-1][0])
    events.append((last, 3, b"\xff\x2f\x00"))  # end of track
    track, now = bytearray(), 0
    for tick, _, data in events:
        track += encode_vlq(tick - now) + data
        now = tick
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ppq)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


# -------------------------------------------------------------------------- grooves

# AVL drumkits key map (x42/avldrums.lv2 midnam). Not plain GM: 46 is a semi-open hat,
# 48 a swish hat, 50/52/58 choke the crash/ride/crash2, 43/47 are tom edge hits.
KICK, SIDESTICK, SNARE, CLAP, SNARE_EDGE = 36, 37, 38, 39, 40
FLOOR_TOM, CLOSED_HAT, FLOOR_TOM_EDGE, PEDAL_HAT, TOM, SEMI_HAT, TOM_EDGE, SWISH_HAT = range(41, 49)
CRASH1, CRASH1_CHOKE, RIDE, RIDE_CHOKE, RIDE_BELL, TAMBOURINE, SPLASH, COWBELL = range(49, 57)
CRASH2, CRASH2_CHOKE, RIDE_SHANK, CRASH3, MARACAS = range(57, 62)
HATS = (CLOSED_HAT, PEDAL_HAT, SEMI_HAT, SWISH_HAT)
CRASHES = (CRASH1, CRASH2, CRASH3, SPLASH)
FILL_VOICES = (SNARE, SNARE_EDGE, TOM, TOM_EDGE, FLOOR_TOM, FLOOR_TOM_EDGE)
TAIL_S = 3.0  # let the last crash ring out


@dataclass(frozen=True)
class Style:
    """A groove family: grid, where the timekeeper and backbeat fall, kick patterns."""

    name: str
    steps_per_beat: int  # 4: sixteenths; 3: triplets (shuffle, swing)
    cymbal_steps: tuple[int, ...]  # steps within each beat played on the timekeeper
    snare_beats: tuple[int, ...]  # beats (0-based) with the backbeat
    kicks: tuple[tuple[int, ...], ...]  # kick steps within the bar, one pattern per tuple
    timekeepers: tuple[int, ...]
    ghost_prob: float  # snare ghost notes on off-steps
    open_prob: float  # an open hat on the last off-step of a beat


STYLES = (
    Style("rock8", 4, (0, 2), (1, 3), ((0, 8), (0, 8, 10), (0, 6, 8), (0, 3, 8, 10)),
          (CLOSED_HAT, SEMI_HAT, RIDE, RIDE_SHANK), 0.05, 0.15),
    Style("rock16", 4, (0, 1, 2, 3), (1, 3), ((0, 8), (0, 7, 8), (0, 10), (0, 6, 8, 14)),
          (CLOSED_HAT, SEMI_HAT), 0.1, 0.1),
    Style("funk", 4, (0, 1, 2, 3), (1, 3), ((0, 3, 10), (0, 6, 9, 14), (0, 2, 7, 10)),
          (CLOSED_HAT,), 0.35, 0.25),
    Style("halftime", 4, (0, 2), (2,), ((0, 3, 11), (0, 7, 10), (0, 14)),
          (CLOSED_HAT, RIDE, RIDE_BELL), 0.2, 0.2),
    Style("disco", 4, (2,), (1, 3), ((0, 4, 8, 12),), (SEMI_HAT, SWISH_HAT), 0.05, 0.0),
    Style("shuffle", 3, (0, 2), (1, 3), ((0, 6), (0, 5, 6), (0, 8, 11)),
          (CLOSED_HAT, RIDE), 0.2, 0.1),
    Style("swing", 3, (0, 2), (1, 3), ((0, 3, 6, 9),), (RIDE, RIDE_SHANK), 0.3, 0.0),
    Style("breakbeat", 4, (0, 2), (1, 3), ((0, 10), (0, 2, 10), (0, 10, 11)),
          (CLOSED_HAT, SEMI_HAT), 0.4, 0.2),
)  # fmt: skip


@dataclass(frozen=True)
class Groove:
    """A generated drum performance, fully determined by its seed."""

    seed: int
    bpm: int
    style: str
    bars: int
    hits: tuple[Hit, ...]
    ppq: int = PPQ

    @property
    def end_tick(self) -> int:
        return self.bars * 4 * self.ppq + round(TAIL_S * self.bpm / 60 * self.ppq)

    @property
    def duration_s(self) -> float:
        return self.end_tick / self.ppq * 60 / self.bpm

    def midi(self) -> bytes:
        return midi_file(self.hits, self.bpm, self.end_tick, self.ppq)


def _vel(rng: np.random.Generator, mean: float, spread: float) -> int:
    return int(np.clip(round(rng.normal(mean, spread)), 1, 127))


def generate_groove(seed: int, duration_s: float = 30.0, ppq: int = PPQ) -> Groove:
    """Generate a seeded drum groove of about ``duration_s`` (whole bars, plus a tail).

    Tempo 70-180 BPM, a style from STYLES, phrases of 4 or 8 bars that end in a fill
    (snare/toms, crescendo) and restart on a crash, ghost notes, open hats, occasional
    choked crashes and percussion, humanised timing and velocities.
    """
    rng = np.random.default_rng(seed)
    bpm = int(rng.integers(70, 181))
    style = STYLES[int(rng.integers(len(STYLES)))]
    spb = style.steps_per_beat
    step = ppq // spb
    bar_ticks = 4 * ppq
    bars = max(2, round(duration_s * bpm / 240))
    phrase = int(rng.choice([4, 8]))
    jitter = int(rng.integers(0, ppq // 40 + 1))  # tight to loose: up to ~1/160 note
    timekeeper = int(rng.choice(style.timekeepers))
    kick_pattern = style.kicks[int(rng.integers(len(style.kicks)))]
    backbeat = int(rng.choice([SNARE, SNARE, SNARE, SNARE_EDGE, CLAP]))
    percussion = int(rng.choice([0, 0, 0, TAMBOURINE, COWBELL, MARACAS]))
    hits: list[Hit] = []

    def add(tick: int, key: int, velocity: int) -> None:
        hits.append(Hit(tick, key, velocity))

    for bar in range(bars):
        start = bar * bar_ticks
        phrase_start = bar % phrase == 0
        if phrase_start and rng.random() < 0.3:
            # A new section: sometimes change the timekeeper or the kick pattern.
            timekeeper = int(rng.choice(style.timekeepers))
            kick_pattern = style.kicks[int(rng.integers(len(style.kicks)))]
        last_of_phrase = bar % phrase == phrase - 1 or bar == bars - 1
        fill = last_of_phrase and rng.random() < 0.85
        fill_from = int(rng.choice([0, 2, 3, 3])) if fill else 4  # beat the fill starts on
        kicks = kick_pattern
        if rng.random() < 0.25:  # a one-bar variation of the kick
            kicks = (*kicks, int(rng.integers(1, 4 * spb)))
        crash_now = phrase_start and (bar > 0 or rng.random() < 0.5)
        if crash_now:
            add(start, int(rng.choice(CRASHES, p=[0.5, 0.25, 0.15, 0.1])), _vel(rng, 112, 10))
            add(start, KICK, _vel(rng, 110, 8))
        for s in range(4 * spb):
            beat, sub = divmod(s, spb)
            t = start + s * step
            if beat >= fill_from:
                continue
            accent = sub == 0
            if sub in style.cymbal_steps and not (s == 0 and crash_now):
                key = timekeeper
                if key in HATS and sub == max(style.cymbal_steps) and sub > 0:
                    key = SEMI_HAT if rng.random() < style.open_prob else key
                add(t, key, _vel(rng, 92 if accent else 68, 9))
            if accent and beat in style.snare_beats:
                add(t, backbeat, _vel(rng, 108, 9))
            elif sub != 0 and rng.random() < style.ghost_prob:
                add(t, SNARE, _vel(rng, 32, 8))
            if s in kicks and not (s == 0 and crash_now):
                add(t, KICK, _vel(rng, 102 if accent else 88, 10))
            if timekeeper not in HATS and accent and beat in (1, 3) and rng.random() < 0.7:
                add(t, PEDAL_HAT, _vel(rng, 70, 10))
            if percussion and accent and rng.random() < 0.8:
                add(t, percussion, _vel(rng, 75, 12))
        if fill:
            n_steps = (4 - fill_from) * spb
            voice = 0
            # Sixteenth-note fills above ~130 BPM are rare: play eighths there.
            stride = 2 if spb == 4 and bpm > 130 else 1
            for i in range(0, n_steps, stride):
                t = start + (fill_from * spb + i) * step
                if rng.random() < 0.85:
                    # Walk down the kit (snare -> toms -> floor tom) with a crescendo.
                    voice = min(len(FILL_VOICES) - 1, voice + int(rng.random() < 0.35))
                    add(t, FILL_VOICES[voice], _vel(rng, 80 + 35 * i / n_steps, 8))
                if i % spb == 0 and rng.random() < 0.5:
                    add(t, KICK, _vel(rng, 95, 10))
        elif last_of_phrase:
            # No fill: a choked crash stop on the last beat instead.
            t = start + 3 * ppq
            add(t, CRASH1, _vel(rng, 115, 6))
            add(t, KICK, _vel(rng, 110, 6))
            add(t + ppq // 2, CRASH1_CHOKE, 64)
    end = bars * bar_ticks
    add(end, int(rng.choice([CRASH1, CRASH2, CRASH3])), _vel(rng, 118, 5))
    add(end, KICK, _vel(rng, 112, 5))
    # Humanise: every stroke a little early or late (never before zero).
    hits = [
        Hit(max(0, h.tick + int(rng.integers(-jitter, jitter + 1))), h.key, h.velocity)
        for h in hits
    ]
    hits.sort(key=lambda h: (h.tick, h.key))
    return Groove(seed, bpm, style.name, bars, tuple(hits), ppq)


def render_midi(
    midi: bytes,
    soundfont: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    fluidsynth: str = "fluidsynth",
) -> np.ndarray:
    """Render a MIDI file with fluidsynth (no reverb/chorus, float) to ``[2, samples]``."""
    with tempfile.TemporaryDirectory(prefix="mp3gan-render-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi)
        # Reverb and chorus off: the samples already carry the room; float output so a
        # loud groove never clips before we normalise it.
        cmd = [
            fluidsynth, "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "0.5",
            "-r", str(sample_rate), "-O", "float", "-T", "wav", "-F", str(wav),
            str(soundfont), str(mid),
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not wav.is_file():
            raise CorpusError(f"fluidsynth failed ({result.returncode}): {result.stderr.strip()}")
        audio, sr = read_audio(wav)
    if sr != sample_rate:
        raise CorpusError(f"fluidsynth rendered {sr} Hz, asked for {sample_rate} Hz")
    return audio


def _finish_render(audio: np.ndarray, peak_db: float) -> np.ndarray:
    """Cut the decayed end of a render (-60 dB below its peak, 50 ms fade) and set its peak."""
    level = np.abs(audio).max(axis=0)
    if level.max() <= 0:
        raise CorpusError("fluidsynth rendered silence (wrong soundfont preset or channel?)")
    # fluidsynth renders seconds past the end of the MIDI file; the last crash's
    # inaudible decay would otherwise add near-silence to each groove.
    end = int(np.flatnonzero(level > 1e-3 * level.max())[-1]) + 1
    fade = min(end, SAMPLE_RATE // 20)
    audio = audio[:, :end].copy()
    audio[:, end - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return (audio * (10 ** (peak_db / 20) / np.abs(audio).max())).astype(np.float32)


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Licence:
    """A licence as read from a file, and the attribution that goes with it."""

    licence: str
    source: str
    copyright: str = ""
    note: str = ""
    upstream: str = ""


def _read_stanzas(path: Path) -> list[CopyrightStanza]:
    return parse_copyright(path.read_text(encoding="utf-8")) if path.is_file() else []


def _stanza_licence(stanza: CopyrightStanza | None, copyright_file: Path) -> Licence | None:
    if stanza is None:
        return None
    where = f"{copyright_file} (Files: {' '.join(stanza.patterns)})"
    return Licence(stanza.licence, where, stanza.copyright, upstream=stanza.upstream)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "x"


def _drumkit_info(kit: Path) -> tuple[str, str]:
    """(licence text, author) from a Hydrogen drumkit.xml ('' when absent)."""
    try:
        root = ET.parse(kit / "drumkit.xml").getroot()
    except (ET.ParseError, OSError):
        return "", ""

    def top(tag: str) -> str:
        for child in root:  # top-level only: instruments may carry their own tags
            if child.tag.rsplit("}", 1)[-1] == tag:
                return (child.text or "").strip()
        return ""

    return top("license"), top("author")


def kit_licence(kit: Path, copyright_file: Path) -> Licence | None:
    """A Hydrogen kit's licence: the Debian copyright file first, else its drumkit.xml."""
    xml_licence, author = _drumkit_info(kit)
    # Debian names the upstream archives, e.g. drumkits/circAfrique.h2drumkit for the
    # folder "circAfrique v4": try the folder name, then without a trailing version.
    names = [kit.name, re.sub(r"[\s_-]+v?[\d.]+$", "", kit.name)]
    stanza = licence_for(_read_stanzas(copyright_file), [f"drumkits/{n}.h2drumkit" for n in names])
    found = _stanza_licence(stanza, copyright_file)
    if found is not None:
        return Licence(found.licence, found.source, found.copyright, note=xml_licence)
    if xml_licence:
        return Licence(xml_licence, f"{kit / 'drumkit.xml'} (<license>)", author)
    return None


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)


def _load_44k(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read ``path`` resampled to 44.1 kHz, and what was done to it (for the manifest)."""
    audio, sr = read_audio(path)
    notes: dict[str, Any] = {"source_sample_rate": sr}
    if sr != SAMPLE_RATE:
        audio = resample(audio, sr, SAMPLE_RATE)
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > 1.0:  # resampling can overshoot full scale, which FLAC cannot hold
        audio = audio * (_MAX_PEAK / peak)
        notes["gain_db"] = round(20 * np.log10(_MAX_PEAK / peak), 3)
    return audio.astype(np.float32), notes


def measure_cutoff(audio: np.ndarray) -> float | None:
    """``cutoff_frequency`` of 44.1 kHz audio; None for silence.

    The audio is zero-padded to a power-of-two length first: the metric's JAX Welch
    compiles once per input shape (~1 s each), which for ~1000 one-shots of distinct
    lengths would cost far more than the measuring. Zero segments scale the averaged
    spectrum uniformly, so the cliff it looks for is unchanged (checked on 80 files).
    """
    n = max(2048, 1 << int(np.ceil(np.log2(max(audio.shape[-1], 1)))))
    padded = np.pad(audio, ((0, 0), (0, n - audio.shape[-1])))
    cutoff = float(cutoff_frequency(padded, SAMPLE_RATE))
    return None if np.isnan(cutoff) else cutoff


@dataclass
class _Item:
    """One planned corpus file: where it goes, its licence, and how to make its audio."""

    rel: str  # path relative to the corpus root
    source: str
    licence: Licence
    origin: str
    load: Callable[[], tuple[np.ndarray, dict[str, Any]]]
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Run:
    """State of one run: output root, entries of earlier runs, results, progress bar."""

    out: Path
    known: dict[str, ManifestEntry]
    min_cutoff_hz: float
    bar: Any
    entries: list[ManifestEntry] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)

    def emit(self, item: _Item) -> None:
        """Write ``item`` unless it exists, measure it, and record its manifest entry."""
        target = self.out / item.rel
        self.bar.update(1)
        prior = self.known.get(item.rel)
        if target.is_file() and prior is not None and prior.origin == item.origin:
            self.entries.append(prior)
            return
        # A file without an entry is from a killed run: measure what is there. Otherwise
        # the file is new, or was made from something else (another seed): (re)make it.
        fresh = not (target.is_file() and prior is None)
        audio, notes = item.load() if fresh else (read_audio(target)[0], {})
        cutoff = measure_cutoff(audio)
        if cutoff is None:
            self.exclude(item.source, item.origin, "silent")
            return
        if fresh:
            write_audio(target, audio, SAMPLE_RATE)
        lic = item.licence
        extra = {**item.extra, **notes}
        extra.update(
            {k: v for k, v in [("licence_note", lic.note), ("upstream", lic.upstream)] if v}
        )
        self.entries.append(
            ManifestEntry(
                path=item.rel,
                source=item.source,
                duration_s=round(audio.shape[-1] / SAMPLE_RATE, 4),
                sample_rate=SAMPLE_RATE,
                channels=audio.shape[0],
                licence=lic.licence,
                licence_source=lic.source,
                copyright=lic.copyright,
                origin=item.origin,
                seed=item.seed,
                cutoff_hz=round(cutoff, 1),
                full_band=cutoff >= self.min_cutoff_hz,
                extra=extra,
            )
        )

    def exclude(self, source: str, original: str, reason: str, **info: Any) -> None:
        self.excluded.append({"source": source, "original": original, "reason": reason, **info})
        print(f"note: {source}: left out {original}: {reason}", file=sys.stderr)


def _file_loader(path: Path) -> Callable[[], tuple[np.ndarray, dict[str, Any]]]:
    return lambda: _load_44k(path)


def _do_sonic_pi(run: _Run, paths: SystemPaths) -> None:
    stanzas = _read_stanzas(paths.sonic_pi_copyright)
    for f in sorted(paths.sonic_pi_samples.glob("*.flac")):
        # The Debian copyright file names the upstream tree (etc/samples/*.flac).
        stanza = licence_for(stanzas, [f"etc/samples/{f.name}"])
        lic = _stanza_licence(stanza, paths.sonic_pi_copyright)
        if lic is None:
            run.bar.update(1)
            run.exclude("sonic-pi", str(f), "no licence found")
            continue
        run.emit(_Item(f"sonic-pi/{_slug(f.stem)}.flac", "sonic-pi", lic, str(f), _file_loader(f)))


def _count_sonic_pi(paths: SystemPaths) -> int:
    return len(list(paths.sonic_pi_samples.glob("*.flac")))


def _hydrogen_kits(paths: SystemPaths) -> list[Path]:
    return sorted(p.parent for p in paths.hydrogen_drumkits.glob("*/drumkit.xml"))


def _do_hydrogen(run: _Run, paths: SystemPaths) -> None:
    for kit in _hydrogen_kits(paths):
        files = _audio_files(kit)
        rels = [f"hydrogen/{_slug(kit.name)}/{_slug(f.stem)}.flac" for f in files]
        lic = kit_licence(kit, paths.hydrogen_copyright)
        if lic is None:
            run.bar.update(len(files))
            run.exclude("hydrogen", str(kit), "no licence found", kit=kit.name)
            continue
        if not any(r in run.known for r in rels):  # not judged by an earlier run
            # Judge the kit before writing any of it: cymbals cut off well below their
            # natural bandwidth mean the recording chain was band-limited, and then its
            # other, duller sounds are too, even where the metric cannot see it.
            cutoffs = [measure_cutoff(_load_44k(f)[0]) for f in files]
            low = [c for c in cutoffs if c is not None and c < run.min_cutoff_hz]
            fraction = len(low) / max(1, sum(c is not None for c in cutoffs))
            if fraction > KIT_BANDLIMITED_FRACTION:
                run.bar.update(len(files))
                run.exclude(
                    "hydrogen", str(kit),
                    f"band-limited kit: {len(low)} of {len(files)} files cut off below "
                    f"{run.min_cutoff_hz:.0f} Hz (median of those {np.median(low):.0f} Hz)",
                    kit=kit.name, licence=lic.licence, files=len(files),
                    cutoff_hz_median_low=round(float(np.median(low)), 1),
                )  # fmt: skip
                continue
        for f, rel in zip(files, rels, strict=True):
            run.emit(_Item(rel, "hydrogen", lic, str(f), _file_loader(f), extra={"kit": kit.name}))


def _count_hydrogen(paths: SystemPaths) -> int:
    return sum(len(_audio_files(k)) for k in _hydrogen_kits(paths))


def groove_plan(seed: int, minutes: float) -> list[tuple[int, float]]:
    """(groove seed, target duration) for each groove until ``minutes`` are covered.

    Groove ``i`` depends only on (seed, i): asking for more minutes extends the corpus.
    """
    plan, total, index = [], 0.0, 0
    while total < minutes * 60:
        gseed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
        # Lengths 20-60 s: long enough for phrases and fills, short enough to shuffle.
        duration = float(np.random.default_rng(gseed).uniform(20, 60))
        plan.append((gseed, duration))
        total += duration
        index += 1
    return plan


def _do_avldrums(run: _Run, paths: SystemPaths, seed: int, minutes: float) -> None:
    fonts = sorted(paths.soundfonts.glob(paths.soundfont_glob))
    stanzas = _read_stanzas(paths.avldrums_copyright)
    for index, (gseed, duration) in enumerate(groove_plan(seed, minutes)):
        rng = np.random.default_rng([gseed, 1])
        font = fonts[int(rng.integers(len(fonts)))]
        peak_db = float(rng.uniform(-6.0, -1.0))  # varied levels, as in real mixes
        lic = _stanza_licence(licence_for(stanzas, [f"sf2/{font.name}"]), paths.avldrums_copyright)
        if lic is None:
            run.bar.update(1)
            run.exclude("avldrums", str(font), "no licence found")
            continue
        groove = generate_groove(gseed, duration)
        kit = font.stem.removesuffix("_LV2")

        def load(groove: Groove = groove, font: Path = font, peak_db: float = peak_db):
            audio = render_midi(groove.midi(), font, SAMPLE_RATE, paths.fluidsynth)
            return _finish_render(audio, peak_db), {}

        run.emit(
            _Item(
                rel=f"avldrums/{_slug(kit)}/groove_{index:04d}_{groove.style}_{groove.bpm}bpm.flac",
                source="avldrums",
                licence=lic,
                origin=f"generate_groove(seed={gseed}, duration_s={duration!r}) "
                f"rendered by fluidsynth with {font}",
                load=load,
                seed=gseed,
                extra={
                    "kit": kit,
                    "bpm": groove.bpm,
                    "style": groove.style,
                    "bars": groove.bars,
                    "peak_dbfs": round(peak_db, 2),
                },
            )
        )


# ------------------------------------------------------------------------------ main


@dataclass
class CorpusSummary:
    """What a run produced, per source."""

    out: Path
    entries: list[ManifestEntry]
    excluded: list[dict[str, Any]]
    skipped_sources: dict[str, str]
    seconds: float
    stale: list[str] = field(default_factory=list)

    def minutes(self, source: str | None = None, full_band: bool = False) -> float:
        chosen = [e for e in self.entries if source in (None, e.source)]
        return sum(e.duration_s for e in chosen if e.full_band or not full_band) / 60

    def licences(self, source: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.entries:
            if e.source == source:
                counts[e.licence] = counts.get(e.licence, 0) + 1
        return counts

    def report(self) -> str:
        lines = [f"corpus: {self.out}  ({len(self.entries)} files, {self.seconds:.0f} s)"]
        for source in sorted({e.source for e in self.entries}):
            n = sum(e.source == source for e in self.entries)
            lic = ", ".join(f"{k} x{v}" for k, v in sorted(self.licences(source).items()))
            lines.append(
                f"  {source:9s} {n:4d} files {self.minutes(source):6.2f} min "
                f"({self.minutes(source, full_band=True):6.2f} full-band)  licences: {lic}"
            )
        lines.append(
            f"  total     {self.minutes():6.2f} min, full-band (cutoff >= "
            f"{FULL_BAND_HZ:.0f} Hz) {self.minutes(full_band=True):6.2f} min"
        )
        for x in self.excluded:
            lines.append(f"  excluded  {x['source']}: {x.get('kit', x['original'])}: {x['reason']}")
        for why in self.skipped_sources.values():
            lines.append(f"  skipped   {why}")
        if self.stale:
            lines.append(
                f"  warning   {len(self.stale)} audio file(s) under {self.out} are not in the "
                f"manifest (from another seed or older run?) but a folder scan would train on "
                f"them; delete them if unwanted, e.g. {self.stale[0]}"
            )
        return "\n".join(lines)


def prepare_corpus(
    out: str | os.PathLike = "data/corpus",
    sources: Sequence[str] = SOURCES,
    groove_minutes: float = DEFAULT_GROOVE_MINUTES,
    seed: int = 0,
    install: bool = False,
    min_cutoff_hz: float = FULL_BAND_HZ,
    paths: SystemPaths | None = None,
    progress: bool = True,
) -> CorpusSummary:
    """Build (or complete) the corpus in ``out`` and write its ``manifest.jsonl``.

    Sources whose packages are missing are skipped with the install command printed
    (``install=True`` runs apt-get for them first); CorpusError if none is available.
    Deterministic for ``seed``; files already present are not rewritten.
    """
    t0 = time.perf_counter()
    paths = paths or SystemPaths()
    out = Path(out)
    for s in sources:
        requirements(s, paths)  # validates the name
    missing = {s: missing_requirements(s, paths) for s in sources}
    if install and any(missing.values()):
        _apt_install(sorted({r.package for m in missing.values() for r in m}))
        missing = {s: missing_requirements(s, paths) for s in sources}
    skipped = {s: missing_message(s, m) for s, m in missing.items() if m}
    for message in skipped.values():
        print(f"warning: {message}", file=sys.stderr)
    available = [s for s in sources if not missing[s]]
    if not available:
        packages = [r.package for m in missing.values() for r in m]
        raise CorpusError(
            "no corpus source is available: " + " | ".join(skipped.values())
            + f". Install everything with: {install_command(packages)}"
        )  # fmt: skip

    manifest = out / MANIFEST
    known = {e.path: e for e in read_manifest(manifest)} if manifest.is_file() else {}
    old_excluded = _read_jsonl(out / EXCLUDED)
    work: list[tuple[Callable[[_Run], None], int]] = []
    if "sonic-pi" in available:
        work.append((lambda run: _do_sonic_pi(run, paths), _count_sonic_pi(paths)))
    if "hydrogen" in available:
        work.append((lambda run: _do_hydrogen(run, paths), _count_hydrogen(paths)))
    if "avldrums" in available:
        n_grooves = len(groove_plan(seed, groove_minutes))
        work.append((lambda run: _do_avldrums(run, paths, seed, groove_minutes), n_grooves))

    with tqdm(total=sum(n for _, n in work), unit="file", disable=not progress) as bar:
        run = _Run(out, known, min_cutoff_hz, bar)
        finished = False
        try:
            for do, _ in work:
                do(run)
            finished = True
        finally:
            # Keep entries this run did not reach: sources skipped now but built before
            # (a run with fewer packages never forgets files), and, after an error or
            # Ctrl-C, everything not redone yet (the rerun then skips those files).
            done = {e.path for e in run.entries}
            kept = [
                e
                for e in known.values()
                if e.path not in done
                and (not finished or e.source not in available)
                and (out / e.path).is_file()
            ]
            write_manifest(manifest, kept + run.entries)
            redone = {x["original"] for x in run.excluded}
            excluded = [
                x
                for x in old_excluded
                if x["original"] not in redone and (not finished or x["source"] not in available)
            ]
            write_jsonl(out / EXCLUDED, excluded + run.excluded)
    entries = kept + run.entries
    listed = {e.path for e in entries}
    stale = sorted(
        p.relative_to(out).as_posix()
        for s in SOURCES
        for p in (out / s).rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.relative_to(out).as_posix() not in listed
    )
    return CorpusSummary(
        out, entries, excluded + run.excluded, skipped, time.perf_counter() - t0, stale
    )
