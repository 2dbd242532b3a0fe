"""Multi-part compositions from a seed, for General MIDI soundfonts (source ``songs``).

:func:`compose_song` writes a piece the way a small band plays: a key (any tonic; major,
minor, dorian, mixolydian or harmonic minor), a tempo of 60-170 BPM in 4/4 or 3/4, an
optional swing feel, and a form of sections (intro, A, B, A, ... outro) with their own
chord progressions and dynamics. Over it play, at the same time:

- a bass line (roots, root-fifth, eighth pulse, walking or syncopated);
- harmony: comping chords (block, off-beat, quarters or broken) and/or a sustained pad;
- a melody built from two-bar motifs that repeat and vary, chord tones on strong beats;
- often an arpeggio (up, down or up-down in eighths or sixteenths);
- often drums on the GM percussion channel (rock, sixteenths, four-on-the-floor,
  half-time, shuffle, waltz or brushes), with crashes and fills at section changes.

Each part gets a GM instrument drawn for its role from the families that play it
(pianos, chromatic percussion, organs, guitars, basses, strings, ensembles, brass, reeds,
pipes, synth leads and pads, ethnic instruments), a register, an articulation from
staccato to legato, a level, a stereo position and, in half of the songs, reverb and
chorus sends. Everything is drawn from one ``numpy`` generator seeded with the song's
seed, so a seed always gives the same MIDI file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from mp3gan.data.corpus.grooves import plan
from mp3gan.data.corpus.midi import DRUM_CHANNEL, PPQ, Note, Voice, family, midi_file

MODES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
}
# Chord progressions as scale degrees (0 = the tonic), for bright and dark modes.
PROGRESSIONS = {
    "bright": ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 3), (1, 4, 0, 0), (0, 3, 0, 4),
               (5, 3, 0, 4), (0, 2, 3, 4), (0, 0, 3, 4)),
    "dark": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4), (0, 3, 0, 4)),
}  # fmt: skip
# GM programs that can play each role (0-based program numbers).
ROLE_PROGRAMS = {
    "bass": (32, 33, 34, 35, 36, 37, 38, 39, 43, 58, 70),
    "chords": (0, 1, 2, 4, 5, 6, 16, 17, 18, 19, 24, 25, 26, 27, 29, 46, 48, 49, 61, 62),
    "pad": (19, 48, 49, 50, 51, 52, 53, 54, 88, 89, 90, 91, 92, 94, 95),
    "melody": (0, 8, 9, 11, 12, 13, 22, 24, 26, 27, 29, 30, 40, 41, 52, 53, 54, 56, 57, 59,
               60, 64, 65, 66, 67, 68, 69, 71, 72, 73, 74, 75, 79, 80, 81, 82, 84, 85,
               104, 105, 109),
    "arpeggio": (0, 1, 4, 6, 8, 10, 11, 12, 13, 24, 25, 45, 46, 80, 81, 105, 107, 108),
}  # fmt: skip
ROLE_RANGE = {"bass": (28, 52), "chords": (48, 76), "pad": (45, 79), "melody": (60, 88),
              "arpeggio": (52, 91)}  # fmt: skip
ROLE_VOLUME = {"bass": 100, "chords": 84, "pad": 74, "melody": 104, "arpeggio": 80, "drums": 100}
# GM drum kits (programs on the percussion channel): standard, room, power, electronic,
# TR-808, jazz, brush.
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)
STRAIGHT_DRUM_STYLES = ("rock", "sixteenths", "four", "halftime")
SWUNG_DRUM_STYLES = ("rock", "halftime", "shuffle", "brushes")  # (in 3/4: a waltz)

KICK, SIDE, SNARE, CLAP, CLOSED, PEDAL, OPEN, CRASH, RIDE = 36, 37, 38, 39, 42, 44, 46, 49, 51
TOMS = (50, 48, 47, 45, 43, 41)  # high to low
TAIL_S = 2.5  # let the last chord ring


@dataclass(frozen=True)
class Part:
    """One instrument of a song: its role and the MIDI voice that plays it."""

    role: str  # bass, chords, pad, melody, arpeggio or drums
    style: str  # the pattern it plays (e.g. walking bass, broken chords, shuffle drums)
    voice: Voice
    legato: float  # played length / written length: ~0.3 staccato .. 1.0 legato

    @property
    def family(self) -> str:
        return "drums" if self.role == "drums" else family(self.voice.program)


@dataclass(frozen=True)
class Song:
    """A generated piece, fully determined by its seed."""

    seed: int
    bpm: int
    tonic: int  # pitch class, 0 = C
    mode: str
    beats_per_bar: int
    bars: int
    swing: bool
    effects: bool  # reverb and chorus on (sends set per part)
    parts: tuple[Part, ...]
    ppq: int = PPQ

    @property
    def end_tick(self) -> int:
        return (self.bars * self.beats_per_bar + round(TAIL_S * self.bpm / 60)) * self.ppq

    @property
    def duration_s(self) -> float:
        return self.end_tick / self.ppq * 60 / self.bpm

    def midi(self) -> bytes:
        """The song as a format-1 Standard MIDI File, one track per part."""
        voices = [p.voice for p in self.parts]
        return midi_file(voices, self.bpm, self.end_tick, self.beats_per_bar, self.ppq)


@dataclass
class _Score:
    """What every part follows: metre, harmony per bar, dynamics per bar, the scale."""

    rng: np.random.Generator
    ppq: int
    beats: int  # per bar
    tonic: int
    scale: tuple[int, ...]
    chords: list[list[int]]  # per bar: one or two scale degrees
    level: list[float]  # per bar: velocity scale from the section's dynamics
    section_start: list[bool]  # per bar: a new section starts here
    section_end: list[bool]
    swing: bool
    plays: dict[str, list[bool]] = field(default_factory=dict)  # role -> per bar

    @property
    def bar_ticks(self) -> int:
        return self.beats * self.ppq

    def pitch(self, degree: int, octave: int = 0) -> int:
        """A scale degree (any integer) as a MIDI key around C4 + 12 * octave."""
        return 60 + self.tonic + 12 * (octave + degree // 7) + self.scale[degree % 7]

    def chord_slots(self, bar: int) -> list[tuple[int, int, int]]:
        """(start tick, length, degree) of the chords of one bar."""
        degrees = self.chords[bar]
        length = self.bar_ticks // len(degrees)
        return [(bar * self.bar_ticks + i * length, length, d) for i, d in enumerate(degrees)]

    def chord_keys(self, degree: int, lo: int, hi: int, seventh: bool = False) -> list[int]:
        """Every key in [lo, hi] whose pitch class belongs to the chord on ``degree``."""
        classes = {self.pitch(degree + 2 * k) % 12 for k in range(4 if seventh else 3)}
        return [k for k in range(lo, hi + 1) if k % 12 in classes]

    def velocity(self, bar: int, base: float, accent: float = 1.0) -> int:
        v = base * self.level[bar] * accent + self.rng.normal(0, 4)
        return int(np.clip(round(v), 1, 127))


def _form(rng: np.random.Generator, bars: int) -> list[tuple[str, int]]:
    """Sections (label, bars): intro, alternating A/B sections of 8 (or 4), outro."""
    form, left = [("intro", 4)], bars - 8
    label = "A"
    while left > 0:
        n = min(left, int(rng.choice([4, 8, 8])))
        form.append((label, n))
        left -= n
        label = "B" if label == "A" and rng.random() < 0.7 else "A"
    return [*form, ("outro", 4)]


def _score(
    rng: np.random.Generator, ppq: int, beats: int, tonic: int, mode: str, bars: int, swing: bool
) -> _Score:
    scale = MODES[mode]
    family_name = "bright" if scale[2] == 4 else "dark"
    choices = PROGRESSIONS[family_name]
    progressions = {s: choices[int(rng.integers(len(choices)))] for s in ("A", "B")}
    levels = {
        s: float(rng.uniform(lo, hi))
        for s, lo, hi in [
            ("intro", 0.6, 0.8),
            ("A", 0.75, 0.95),
            ("B", 0.85, 1.05),
            ("outro", 0.6, 0.8),
        ]
    }
    two_per_bar = beats == 4 and rng.random() < 0.35
    chords, level, starts, ends = [], [], [], []
    for label, n in _form(rng, bars):
        progression = progressions["A" if label in ("intro", "outro") else label]
        for i in range(n):
            slot = 2 * i if two_per_bar else i
            degrees = [
                progression[(slot + j) % len(progression)] for j in range(2 if two_per_bar else 1)
            ]
            if label == "outro" and i == n - 1:
                degrees = [0]  # end on the tonic
            chords.append(degrees)
            ramp = 1.0 + 0.08 * i / max(n - 1, 1) if label != "outro" else 1.0 - 0.1 * i / n
            level.append(levels[label] * ramp)
            starts.append(i == 0)
            ends.append(i == n - 1)
    return _Score(rng, ppq, beats, tonic, scale, chords, level, starts, ends, swing)


def _bass(score: _Score, style: str, lo: int, hi: int, legato: float) -> list[Note]:
    notes, ppq = [], score.ppq
    for bar in range(len(score.chords)):
        if not score.plays["bass"][bar]:
            continue
        for start, length, degree in score.chord_slots(bar):
            root = lo + (score.pitch(degree) - lo) % 12  # the chord's root, lowest octave
            fifth = root + (score.pitch(degree + 4) - score.pitch(degree)) % 12
            if style == "pulse":
                hits = [(t, ppq // 2, root) for t in range(0, length, ppq // 2)]
            elif style == "root-fifth":
                hits = [(0, length // 2, root), (length // 2, length // 2, fifth)]
            elif style == "walking":
                keys = [root, *score.chord_keys(degree, root + 1, root + 12)[:3]]
                hits = [(t, ppq, keys[i % len(keys)]) for i, t in enumerate(range(0, length, ppq))]
            elif style == "syncopated":
                offs = [t for t in (0, 3 * ppq // 2, 5 * ppq // 2) if t < length]
                hits = [(t, ppq, root if i != 1 else root + 12) for i, t in enumerate(offs)]
            else:  # "root"
                hits = [(0, length, root)]
            for t, d, key in hits:
                accent = 1.1 if t == 0 else 0.95
                velocity = score.velocity(bar, 92, accent)
                notes.append(Note(start + t, key, velocity, max(30, int(d * legato))))
    return notes


def _voicing(score: _Score, degree: int, lo: int, hi: int, center: float, seventh: bool):
    """Three or four chord keys near ``center``: smooth voice leading between chords."""
    keys = score.chord_keys(degree, lo, hi, seventh)
    size = 4 if seventh else 3
    start = min(range(max(1, len(keys) - size + 1)),
                key=lambda i: abs(np.mean(keys[i : i + size]) - center))  # fmt: skip
    return keys[start : start + size]


def _chords(score: _Score, style: str, lo: int, hi: int, legato: float, role: str):
    notes, ppq = [], score.ppq
    seventh = score.rng.random() < 0.4
    center = (lo + hi) / 2
    for bar in range(len(score.chords)):
        if not score.plays[role][bar]:
            continue
        for start, length, degree in score.chord_slots(bar):
            keys = _voicing(score, degree, lo, hi, center, seventh)
            center = 0.7 * center + 0.3 * float(np.mean(keys))
            if role == "pad" or style == "block":
                hits = [(0, length, keys)]
            elif style == "offbeat":
                hits = [(t + ppq // 2, ppq // 2, keys) for t in range(0, length, ppq)]
            elif style == "quarters":
                hits = [(t, ppq, keys) for t in range(0, length, ppq)]
            else:  # "broken": low, high, middle, high in eighths
                order = [keys[0], keys[-1], keys[len(keys) // 2], keys[-1]]
                hits = [(t, ppq // 2, [order[i % 4]]) for i, t in
                        enumerate(range(0, length, ppq // 2))]  # fmt: skip
            base = 64 if role == "pad" else 80
            for t, d, chord in hits:
                velocity = score.velocity(bar, base, 1.08 if t == 0 else 1.0)
                notes += [Note(start + t, k, velocity, max(30, int(d * legato))) for k in chord]
    return notes


def _arpeggio(score: _Score, style: str, lo: int, hi: int, legato: float, step: int):
    notes = []
    for bar in range(len(score.chords)):
        if not score.plays["arpeggio"][bar]:
            continue
        for start, length, degree in score.chord_slots(bar):
            keys = score.chord_keys(degree, lo, hi)[:7]
            if style == "down":
                keys = keys[::-1]
            elif style == "updown":
                keys = keys + keys[-2:0:-1]
            for i, t in enumerate(range(0, length, step)):
                velocity = score.velocity(bar, 72, 1.12 if t % score.ppq == 0 else 1.0)
                notes.append(Note(start + t, keys[i % len(keys)], velocity, int(step * legato)))
    return notes


_RHYTHMS = {  # melody rhythms of one bar, in eighth notes
    4: ((2, 2, 2, 2), (3, 1, 2, 2), (1, 1, 2, 4), (2, 1, 1, 2, 2), (4, 4), (2, 2, 4),
        (1, 1, 1, 1, 2, 2), (3, 3, 2), (6, 2)),
    3: ((2, 2, 2), (3, 1, 2), (4, 2), (2, 4), (1, 1, 2, 2), (6,)),
}  # fmt: skip


def _motif(score: _Score) -> list[tuple[int, int]]:
    """Two bars of (length in eighths, scale step from the start): the melody's cell."""
    rng, cell, step = score.rng, [], 0
    for _ in range(2):
        rhythms = _RHYTHMS[score.beats]
        for length in rhythms[int(rng.integers(len(rhythms)))]:
            cell.append((length, step))
            step += int(rng.choice([-2, -1, -1, 0, 1, 1, 1, 2, 3, -3, 4]))
            step = int(np.clip(step, -5, 7))
    return cell


def _melody(score: _Score, lo: int, hi: int, legato: float) -> list[Note]:
    notes, eighth, rng = [], score.ppq // 2, score.rng
    motif = _motif(score)
    for bar in range(0, len(score.chords) - 1, 2):
        if not score.plays["melody"][bar]:
            continue
        if rng.random() < 0.4:  # a new cell; otherwise the last one again, on new chords
            motif = _motif(score)
        home = score.chord_keys(score.chords[bar][0], lo + 5, hi - 5)
        base = home[int(rng.integers(len(home)))] if home else (lo + hi) // 2
        t = bar * score.bar_ticks
        rest_at = len(motif) - 1 if rng.random() < 0.3 else -1
        for i, (length, step) in enumerate(motif):
            key = _scale_step(score, base, step)
            here = min(t // score.bar_ticks, len(score.chords) - 1)
            if t % score.ppq == 0:  # strong beats land on a chord tone
                tones = score.chord_keys(score.chords[here][0], key - 4, key + 4) or [key]
                key = min(tones, key=lambda k: abs(k - key))
            key = int(np.clip(key, lo, hi))
            if i != rest_at:
                velocity = score.velocity(here, 88, 1.1 if t % score.bar_ticks == 0 else 1.0)
                notes.append(Note(t, key, velocity, max(40, int(length * eighth * legato))))
            t += length * eighth
    return notes


def _scale_step(score: _Score, key: int, step: int) -> int:
    """``key`` moved ``step`` notes along the scale (from the scale note at or below it)."""
    classes = sorted({(score.tonic + s) % 12 for s in score.scale})
    below = max(k for k in range(key - 12, key + 1) if k % 12 in classes)
    keys = [k for k in range(below - 40, below + 41) if k % 12 in classes]
    return keys[keys.index(below) + step]


def _drums(score: _Score, style: str) -> list[Note]:
    notes, ppq, rng = [], score.ppq, score.rng
    half = ppq // 2
    for bar in range(len(score.chords)):
        if not score.plays["drums"][bar]:
            continue
        t0 = bar * score.bar_ticks
        hits = [(t0, CRASH, 110)] if score.section_start[bar] and bar > 0 else []
        fill_from = score.beats - 1 if score.section_end[bar] and rng.random() < 0.8 else 99
        for beat in range(score.beats):
            t = t0 + beat * ppq
            if beat >= fill_from:
                step = ppq // 4 if score.beats == 4 else ppq // 3
                for i, s in enumerate(range(0, ppq, step)):
                    hits.append((t + s, TOMS[min(i + int(rng.integers(2)), 5)], 85 + 8 * i))
                continue
            hits += _drum_beat(score, style, beat, t, half)
        notes += [Note(t, k, score.velocity(bar, v), ppq // 8) for t, k, v in hits]
    return notes


def _drum_beat(score: _Score, style: str, beat: int, t: int, half: int) -> list[tuple]:
    """The strokes of one beat: (tick, key, velocity)."""
    ppq, rng, backbeat = score.ppq, score.rng, beat % 2 == 1
    if score.beats == 3:  # waltz: kick on one, soft snare or side stick on two and three
        return [(t, KICK if beat == 0 else SIDE, 100 if beat == 0 else 60), (t, CLOSED, 70)]
    if style == "brushes":
        return [(t, RIDE, 75), (t + 2 * ppq // 3, RIDE, 55)] + ([(t, SNARE, 45)] * backbeat)
    hits = []
    kick = beat in (0, 2) if style != "four" else True
    if style == "halftime":
        kick, backbeat = beat == 0 or (beat == 2 and rng.random() < 0.4), beat == 2
    if kick or (style == "rock" and beat == 2 and rng.random() < 0.3):
        hits.append((t, KICK, 105))
    if backbeat:
        hits.append((t, CLAP if style == "four" and rng.random() < 0.5 else SNARE, 108))
    if style == "sixteenths":
        hits += [(t + s, CLOSED, 82 if s == 0 else 58) for s in range(0, ppq, ppq // 4)]
    elif style == "four":
        hits += [(t, PEDAL, 60), (t + half, OPEN, 78)]
    elif style == "shuffle":
        hits += [(t, CLOSED, 85), (t + 2 * ppq // 3, CLOSED, 62)]
    else:
        hits += [(t, CLOSED, 88), (t + half, CLOSED, 64)]
    return hits


def _swing(ticks: int, ppq: int) -> int:
    """Delay off-beat eighths to the third triplet (a swung feel)."""
    beat, within = divmod(ticks, ppq)
    return beat * ppq + (2 * ppq // 3 if within == ppq // 2 else within)


def _humanise(notes: list[Note], rng: np.random.Generator, jitter: int, swing: bool, ppq: int):
    out = []
    for n in notes:
        tick = _swing(n.tick, ppq) if swing else n.tick
        out.append(Note(max(0, tick + int(rng.integers(-jitter, jitter + 1))), n.key,
                        n.velocity, n.duration))  # fmt: skip
    return tuple(sorted(out, key=lambda n: (n.tick, n.key)))


def _roles(rng: np.random.Generator) -> list[str]:
    """Which parts play: always bass, harmony and melody; often arpeggio and drums."""
    harmony = [str(rng.choice(["chords", "pad", "both"]))]
    roles = ["bass", *(["chords", "pad"] if harmony == ["both"] else harmony), "melody"]
    if rng.random() < 0.6:
        roles.append("arpeggio")
    if rng.random() < 0.8:
        roles.append("drums")
    return roles


def _presence(score: _Score, roles: list[str]) -> None:
    """Per role and bar, whether it plays: parts enter and leave at section borders."""
    rng, bars = score.rng, len(score.chords)
    for role in roles:
        plays, on = [], True
        for bar in range(bars):
            if score.section_start[bar]:
                core = role in ("bass", "chords", "pad") and bar > 0
                on = core or rng.random() < (0.35 if bar == 0 else 0.8)
                if bar == 0 and role in ("chords", "pad"):
                    on = True
            plays.append(on)
        score.plays[role] = plays


def _pattern(score: _Score, role: str, bpm: int) -> str:
    """The pattern a part plays, drawn for its role (swung songs avoid sixteenths)."""
    rng = score.rng
    if role == "drums":
        styles = SWUNG_DRUM_STYLES if score.swing else STRAIGHT_DRUM_STYLES
        return "waltz" if score.beats == 3 else str(rng.choice(styles))
    if role == "bass":
        return str(rng.choice(["root", "root-fifth", "pulse", "walking", "syncopated"]))
    if role in ("chords", "pad"):
        return "block" if role == "pad" else str(rng.choice(["block", "offbeat", "quarters",
                                                              "broken"]))  # fmt: skip
    if role == "arpeggio":
        fast = bpm < 115 and not score.swing and rng.random() < 0.5
        return f"{rng.choice(['up', 'down', 'updown'])} {'16ths' if fast else '8ths'}"
    return "motifs"


def _part(score: _Score, role: str, channel: int, pan: int, effects: bool, bpm: int) -> Part:
    rng = score.rng
    style = _pattern(score, role, bpm)
    if role == "drums":
        program = 40 if style == "brushes" else int(rng.choice(DRUM_KITS))
        notes, legato = _drums(score, style), 1.0
        channel, pan = DRUM_CHANNEL, 64
    else:
        program = int(rng.choice(ROLE_PROGRAMS[role]))
        lo, hi = ROLE_RANGE[role]
        shift = int(rng.integers(-5, 6))  # register: a few semitones up or down
        lo, hi = lo + shift, hi + shift
        legato = float(rng.uniform(0.9, 1.0) if role == "pad" else rng.uniform(0.3, 1.0))
        if role == "bass":
            notes = _bass(score, style, lo, hi, legato)
        elif role in ("chords", "pad"):
            notes = _chords(score, style, lo, hi, legato, role)
        elif role == "arpeggio":
            order, rate = style.split()
            step = score.ppq // 4 if rate == "16ths" else score.ppq // 2
            notes = _arpeggio(score, order, lo, hi, legato, step)
        else:
            notes = _melody(score, lo, hi, legato)
    reverb = int(rng.integers(20, 90)) if effects else 0
    chorus = int(rng.integers(0, 60)) if effects and role not in ("bass", "drums") else 0
    volume = int(np.clip(ROLE_VOLUME[role] + rng.integers(-10, 11), 40, 127))
    voice = Voice(role, channel, program, tuple(notes), volume, pan, reverb, chorus)
    return Part(role, style, voice, legato)


def compose_song(seed: int, duration_s: float = 90.0, ppq: int = PPQ) -> Song:
    """Compose a seeded multi-part song of about ``duration_s`` (whole bars, plus a tail)."""
    rng = np.random.default_rng(seed)
    bpm = int(rng.integers(60, 171))
    beats = 3 if rng.random() < 0.2 else 4
    tonic, mode = int(rng.integers(12)), str(rng.choice(list(MODES)))
    swing, effects = bool(rng.random() < 0.2), bool(rng.random() < 0.5)
    bars = max(12, round(duration_s * bpm / 60 / beats))
    score = _score(rng, ppq, beats, tonic, mode, bars, swing)
    roles = _roles(rng)
    _presence(score, roles)
    pans = [int(p) for p in rng.permutation([20, 36, 50, 78, 92, 108])]
    parts = []
    for channel, role in enumerate(roles):
        pan = 64 if role == "bass" else pans[channel % len(pans)]
        part = _part(score, role, channel, pan, effects, bpm)
        notes = _humanise(list(part.voice.notes), rng, ppq // 60, swing, ppq)
        parts.append(replace(part, voice=replace(part.voice, notes=notes)))
    return Song(seed, bpm, tonic, mode, beats, bars, swing, effects, tuple(parts), ppq)


def song_plan(seed: int, minutes: float) -> list[tuple[int, float]]:
    """The songs for ``minutes``: 60-180 s each (see :func:`grooves.plan`)."""
    return plan(seed, minutes, 60.0, 180.0)
