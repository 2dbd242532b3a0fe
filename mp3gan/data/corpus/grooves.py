"""Drum grooves composed from a seed, for the AVL drum kits (source ``avldrums``).

:func:`generate_groove` writes a drum performance: tempo 70-180 BPM; one of eight styles
(rock 8ths and 16ths, funk, half-time, disco, shuffle, swing, breakbeat) with its kick
patterns, backbeat, timekeeping on hats or ride, open hats and ghost notes; phrases of 4
or 8 bars ending in a fill or a choked crash, each new phrase starting on a crash;
sometimes tambourine, cowbell or maracas; humanised timing and velocities.

The AVL soundfonts expose one preset, bank 0 program 0, and nothing in the GM
percussion bank, so the notes go on channel index 0 with bank 0 / program 0 selected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mp3gan.data.corpus.midi import PPQ, Note, Voice, midi_file

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
STROKE_TICKS = PPQ // 8  # a drum note's length (the sample rings on regardless)


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
    hits: tuple[Note, ...]
    ppq: int = PPQ

    @property
    def end_tick(self) -> int:
        return self.bars * 4 * self.ppq + round(TAIL_S * self.bpm / 60 * self.ppq)

    @property
    def duration_s(self) -> float:
        return self.end_tick / self.ppq * 60 / self.bpm

    def midi(self) -> bytes:
        """The groove as a Standard MIDI File (channel index 0, bank 0, program 0)."""
        voice = Voice("drums", channel=0, program=0, notes=self.hits, volume=127)
        return midi_file([voice], self.bpm, self.end_tick, ppq=self.ppq)


def _vel(rng: np.random.Generator, mean: float, spread: float) -> int:
    return int(np.clip(round(rng.normal(mean, spread)), 1, 127))


@dataclass
class _Drummer:
    """The state of one performance while it is generated (one rng, in a fixed order)."""

    rng: np.random.Generator
    style: Style
    bpm: int
    ppq: int
    timekeeper: int = 0
    kick_pattern: tuple[int, ...] = ()
    backbeat: int = SNARE
    percussion: int = 0
    hits: list[Note] = field(default_factory=list)

    def add(self, tick: int, key: int, velocity: int) -> None:
        self.hits.append(Note(tick, key, velocity, STROKE_TICKS))

    def new_section(self) -> None:
        """Draw the timekeeper and the kick pattern (at the start and at some phrases)."""
        self.timekeeper = int(self.rng.choice(self.style.timekeepers))
        self.kick_pattern = self.style.kicks[int(self.rng.integers(len(self.style.kicks)))]

    def steps(self, start: int, kicks: tuple[int, ...], fill_from: int, crash_now: bool) -> None:
        """The time-keeping part of a bar, up to the beat a fill starts on."""
        rng, style, spb = self.rng, self.style, self.style.steps_per_beat
        step = self.ppq // spb
        for s in range(4 * spb):
            beat, sub = divmod(s, spb)
            t = start + s * step
            if beat >= fill_from:
                continue
            accent = sub == 0
            if sub in style.cymbal_steps and not (s == 0 and crash_now):
                key = self.timekeeper
                if key in HATS and sub == max(style.cymbal_steps) and sub > 0:
                    key = SEMI_HAT if rng.random() < style.open_prob else key
                self.add(t, key, _vel(rng, 92 if accent else 68, 9))
            if accent and beat in style.snare_beats:
                self.add(t, self.backbeat, _vel(rng, 108, 9))
            elif sub != 0 and rng.random() < style.ghost_prob:
                self.add(t, SNARE, _vel(rng, 32, 8))
            if s in kicks and not (s == 0 and crash_now):
                self.add(t, KICK, _vel(rng, 102 if accent else 88, 10))
            if self.timekeeper not in HATS and accent and beat in (1, 3) and rng.random() < 0.7:
                self.add(t, PEDAL_HAT, _vel(rng, 70, 10))
            if self.percussion and accent and rng.random() < 0.8:
                self.add(t, self.percussion, _vel(rng, 75, 12))

    def fill(self, start: int, fill_from: int) -> None:
        """Walk down the kit (snare -> toms -> floor tom) with a crescendo."""
        rng, spb = self.rng, self.style.steps_per_beat
        step = self.ppq // spb
        n_steps = (4 - fill_from) * spb
        voice = 0
        # Sixteenth-note fills above ~130 BPM are rare: play eighths there.
        stride = 2 if spb == 4 and self.bpm > 130 else 1
        for i in range(0, n_steps, stride):
            t = start + (fill_from * spb + i) * step
            if rng.random() < 0.85:
                voice = min(len(FILL_VOICES) - 1, voice + int(rng.random() < 0.35))
                self.add(t, FILL_VOICES[voice], _vel(rng, 80 + 35 * i / n_steps, 8))
            if i % spb == 0 and rng.random() < 0.5:
                self.add(t, KICK, _vel(rng, 95, 10))

    def bar(self, bar: int, bars: int, phrase: int) -> None:
        """One bar: a crash on a new phrase, the groove, and a fill or a stop at its end."""
        rng, spb = self.rng, self.style.steps_per_beat
        start = bar * 4 * self.ppq
        phrase_start = bar % phrase == 0
        if phrase_start and rng.random() < 0.3:
            self.new_section()
        last_of_phrase = bar % phrase == phrase - 1 or bar == bars - 1
        fill = last_of_phrase and rng.random() < 0.85
        fill_from = int(rng.choice([0, 2, 3, 3])) if fill else 4  # beat the fill starts on
        kicks = self.kick_pattern
        if rng.random() < 0.25:  # a one-bar variation of the kick
            kicks = (*kicks, int(rng.integers(1, 4 * spb)))
        crash_now = phrase_start and (bar > 0 or rng.random() < 0.5)
        if crash_now:
            crash = int(rng.choice(CRASHES, p=[0.5, 0.25, 0.15, 0.1]))
            self.add(start, crash, _vel(rng, 112, 10))
            self.add(start, KICK, _vel(rng, 110, 8))
        self.steps(start, kicks, fill_from, crash_now)
        if fill:
            self.fill(start, fill_from)
        elif last_of_phrase:
            # No fill: a choked crash stop on the last beat instead.
            t = start + 3 * self.ppq
            self.add(t, CRASH1, _vel(rng, 115, 6))
            self.add(t, KICK, _vel(rng, 110, 6))
            self.add(t + self.ppq // 2, CRASH1_CHOKE, 64)


def generate_groove(seed: int, duration_s: float = 30.0, ppq: int = PPQ) -> Groove:
    """Generate a seeded drum groove of about ``duration_s`` (whole bars, plus a tail)."""
    rng = np.random.default_rng(seed)
    bpm = int(rng.integers(70, 181))
    style = STYLES[int(rng.integers(len(STYLES)))]
    bars = max(2, round(duration_s * bpm / 240))
    phrase = int(rng.choice([4, 8]))
    jitter = int(rng.integers(0, ppq // 40 + 1))  # tight to loose: up to ~1/160 note
    drummer = _Drummer(rng, style, bpm, ppq)
    drummer.new_section()
    drummer.backbeat = int(rng.choice([SNARE, SNARE, SNARE, SNARE_EDGE, CLAP]))
    drummer.percussion = int(rng.choice([0, 0, 0, TAMBOURINE, COWBELL, MARACAS]))
    for bar in range(bars):
        drummer.bar(bar, bars, phrase)
    end = bars * 4 * ppq
    drummer.add(end, int(rng.choice([CRASH1, CRASH2, CRASH3])), _vel(rng, 118, 5))
    drummer.add(end, KICK, _vel(rng, 112, 5))
    # Humanise: every stroke a little early or late (never before zero).
    hits = [
        Note(max(0, h.tick + int(rng.integers(-jitter, jitter + 1))), h.key, h.velocity, h.duration)
        for h in drummer.hits
    ]
    hits.sort(key=lambda h: (h.tick, h.key))
    return Groove(seed, bpm, style.name, bars, tuple(hits), ppq)


def plan(seed: int, minutes: float, shortest_s: float, longest_s: float) -> list[tuple[int, float]]:
    """(piece seed, target duration) for each generated piece until ``minutes`` are covered.

    Piece ``i`` depends only on (seed, i): asking for more minutes extends the corpus.
    """
    pieces, total, index = [], 0.0, 0
    while total < minutes * 60:
        piece_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
        duration = float(np.random.default_rng(piece_seed).uniform(shortest_s, longest_s))
        pieces.append((piece_seed, duration))
        total += duration
        index += 1
    return pieces


def groove_plan(seed: int, minutes: float) -> list[tuple[int, float]]:
    """The grooves for ``minutes``: 20-60 s each, long enough for phrases and fills."""
    return plan(seed, minutes, 20.0, 60.0)
